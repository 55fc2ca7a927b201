r"""DPM-Solver++ (Lu et al. 2022): exponential integrators of the probability-flow ODE in
$\lambda = \log(\alpha/\sigma)$ with the data prediction $D$, multistep (2M) and singlestep
(2S)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import IntLike, check_callable
from ..processes import AbstractLinearProcess
from ..schedules import scaled_coefficients, times_of_ratio
from ._common import check_process
from ._plan import (
    StepPlan,
    ancestral_grid,
    as_params,
    denoise,
    karras_time_grid,
    sample_with_plan,
    scale_fields,
)
from ._result import Samples


def _check_grid(r: np.ndarray) -> None:
    if np.any(r[:-1] <= 0.0) or np.any(np.diff(r) >= 0.0):
        raise ValueError(
            "the grid's noise-to-signal ratios sigma(t)/alpha(t) must decrease and stay "
            "positive before the last time (which may reach 0); pass another grid."
        )


class MultistepStep(eqx.Module):
    r"""One DPM-Solver++(2M) step on the state $(\tilde x_i, D_{i-1})$:
    $\tilde x_{i+1} = c_x\tilde x_i + c_D\,(w_1 D_i + w_0 D_{i-1})$."""

    score: Callable[..., Any]

    def __call__(self, state, z, p, *, first_order: bool):
        x, d_prev = state
        d = denoise(self.score, p["t"], p["a"], p["r"], x)
        x_next = p["cx"] * x + p["cd"] * (p["w1"] * d + p["w0"] * d_prev)
        return (x_next, d)


class SinglestepStep(eqx.Module):
    r"""One DPM-Solver++(2S) step (with k-diffusion's ancestral noise when $\eta > 0$): an
    intermediate point at the midpoint in $\lambda$ between $\tilde\sigma_i$ and
    $\sigma_{\text{down}}$, the update with its denoised value, then $\sigma_{\text{up}} z$;
    Euler's step to $\sigma_{\text{down}}$ when `first_order`."""

    score: Callable[..., Any]

    def __call__(self, state, z, p, *, first_order: bool):
        (x,) = state
        d = denoise(self.score, p["t"], p["a"], p["r"], x)
        if first_order:
            x_next = x + (p["r_down"] - p["r"]) * (x - d) / p["r"]
        else:
            x_mid = p["cx_mid"] * x + p["cd_mid"] * d
            d_mid = denoise(self.score, p["t_mid"], p["a_mid"], p["r_mid"], x_mid)
            x_next = p["cx"] * x + p["cd"] * d_mid
        if z is not None:
            x_next = x_next + p["noise"] * z
        return (x_next,)


def multistep_plan(
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    *,
    steps: IntLike | None = None,
    ts: Float[ArrayLike, " k"] | None = None,
    eps: float | int | None = None,
    rho: float = 7.0,
    to_zero: bool = True,
    has_init: bool = False,
) -> StepPlan:
    """The plan of [`dpm_solver_pp_2m`][gpm_sde.samplers.dpm_solver_pp_2m]."""
    check_process(process)
    check_callable("score", score, "(t, x) -> ∇log p_t(x)")
    t = karras_time_grid(process, steps, ts, eps, rho, to_zero, has_init)
    a, r = scaled_coefficients(process, t)
    _check_grid(r)
    r_i, r_next = r[:-1], r[1:]
    with np.errstate(divide="ignore"):
        lam = -np.log(r)  # λ = log(α/σ), +inf at σ = 0
    h = lam[1:] - lam[:-1]
    final = r_next == 0.0
    cx = np.where(final, 0.0, r_next / r_i)
    cd = np.where(final, 1.0, -np.expm1(-np.where(final, 1.0, h)))
    h_last = np.concatenate([[np.nan], h[:-1]])
    ratio = np.where(np.isnan(h_last), 1.0, h_last) / np.where(final, 1.0, h)
    second = ~np.isnan(h_last) & ~final
    w1 = np.where(second, 1.0 + 1.0 / (2.0 * ratio), 1.0)
    w0 = np.where(second, -1.0 / (2.0 * ratio), 0.0)
    params = as_params(t=t[:-1], a=a[:-1], r=r_i, cx=cx, cd=cd, w1=w1, w0=w0)
    scale_in, scale_out = scale_fields(a)
    n = len(t) - 1
    return StepPlan(
        MultistepStep(score), params, scale_in, scale_out,
        n_state=2, noisy=False, last_first_order=False, nfe=n,
    )  # fmt: skip


def singlestep_plan(
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    *,
    steps: IntLike | None = None,
    ts: Float[ArrayLike, " k"] | None = None,
    eps: float | int | None = None,
    rho: float = 7.0,
    to_zero: bool = True,
    eta: float = 0.0,
    s_noise: float = 1.0,
    has_init: bool = False,
) -> StepPlan:
    """The plan of [`dpm_solver_pp_2s`][gpm_sde.samplers.dpm_solver_pp_2s]."""
    g = ancestral_grid(
        process, score, steps, ts, eps, rho, to_zero, eta, s_noise, has_init,
        "pass eta >= 0 (0: deterministic)",
    )  # fmt: skip
    _check_grid(g.r)
    t, a, r_i, r_next, r_down, r_up = g.t, g.a, g.r[:-1], g.r[1:], g.r_down, g.r_up
    snoise, eta_v = g.s_noise, g.eta
    if np.any(r_down[:-1] <= 0.0):
        raise ValueError("`eta` too large: sigma_down reaches 0 before the last step.")
    last_first_order = bool(r_down[-1] == 0.0)
    safe_down = np.where(r_down > 0, r_down, r_i)
    h = np.log(r_i / safe_down)  # λ_down − λ_i
    r_mid = np.sqrt(r_i * safe_down)  # the λ-midpoint, exp(−(λ_i + h/2))
    t_mid = times_of_ratio(process, r_mid)
    a_mid = scaled_coefficients(process, t_mid)[0]
    params = as_params(
        t=t[:-1], a=a[:-1], r=r_i, r_down=r_down,
        noise=snoise * np.where(r_next > 0, r_up, 0.0),
        t_mid=t_mid, a_mid=a_mid, r_mid=r_mid,
        cx_mid=r_mid / r_i, cd_mid=-np.expm1(-0.5 * h),
        cx=safe_down / r_i, cd=-np.expm1(-h),
    )  # fmt: skip
    scale_in, scale_out = scale_fields(a)
    n = len(t) - 1
    noisy = bool(np.any(r_up[r_next > 0] > 0.0)) and eta_v > 0
    return StepPlan(
        SinglestepStep(score), params, scale_in, scale_out,
        n_state=1, noisy=noisy, last_first_order=last_first_order,
        nfe=2 * n - int(last_first_order),
    )  # fmt: skip


def dpm_solver_pp_2m(
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    key: PRNGKeyArray | None,
    n: IntLike | None = None,
    event_shape: Sequence[int] | None = None,
    *,
    steps: IntLike | None = None,
    ts: Float[ArrayLike, " k"] | None = None,
    x_init: Float[Array, " n *event"] | None = None,
    eps: float | int | None = None,
    rho: float = 7.0,
    to_zero: bool = True,
) -> Samples:
    r"""DPM-Solver++(2M) (Lu et al. 2022, the multistep second-order solver with data
    prediction; the update of k-diffusion's `sample_dpmpp_2m`). In
    $\lambda = \log(\alpha/\sigma) = -\log\tilde\sigma$, with $h_i = \lambda_{i+1} -
    \lambda_i$ and the denoiser $D_i = D(\tilde x_i; \tilde\sigma_i)$ (Tweedie, see
    [`edm_heun`][gpm_sde.samplers.edm_heun]),

    $$\tilde x_{i+1} = \frac{\tilde\sigma_{i+1}}{\tilde\sigma_i}\,\tilde x_i -
    \big(e^{-h_i} - 1\big)\Big[\Big(1 + \frac{1}{2r_i}\Big) D_i - \frac{1}{2r_i}\,D_{i-1}
    \Big], \qquad r_i = \frac{h_{i-1}}{h_i},$$

    in scaled variables $\tilde x = x/\alpha$ (times $\alpha(t_{i+1})$ this is the data-
    prediction update $x_{i+1} = \frac{\sigma_{i+1}}{\sigma_i}x_i - \alpha_{i+1}(e^{-h_i} -
    1)\,\hat x_0$). The first step, and a last step to $\tilde\sigma = 0$ ($h = \infty$,
    which returns $D_i$), use $D_i$ alone (DPM-Solver++(1), which is DDIM). One evaluation
    per step: NFE $= N$; second order, so the error falls as $\mathrm{NFE}^{-2}$.

    **Arguments:** as [`edm_heun`][gpm_sde.samplers.edm_heun] (the same $\rho$-grid from
    `steps`, ending with a step to $t = 0$ unless `to_zero=False`).

    **Returns:** [`Samples`][gpm_sde.samplers.Samples] with `.x` the cloud at the grid's end.
    """
    plan = multistep_plan(
        process, score, steps=steps, ts=ts, eps=eps, rho=rho, to_zero=to_zero,
        has_init=x_init is not None,
    )  # fmt: skip
    return sample_with_plan(plan, process, score, key, n, event_shape, x_init)


def dpm_solver_pp_2s(
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    key: PRNGKeyArray | None,
    n: IntLike | None = None,
    event_shape: Sequence[int] | None = None,
    *,
    steps: IntLike | None = None,
    ts: Float[ArrayLike, " k"] | None = None,
    x_init: Float[Array, " n *event"] | None = None,
    eps: float | int | None = None,
    rho: float = 7.0,
    to_zero: bool = True,
    eta: float = 0.0,
    s_noise: float = 1.0,
) -> Samples:
    r"""DPM-Solver++(2S) (Lu et al. 2022, the singlestep second-order solver with data
    prediction and the midpoint $r = \tfrac12$; k-diffusion's `sample_dpmpp_2s_ancestral`,
    whose default `eta=1` adds ancestral noise). From $\tilde\sigma_i$ to
    $\sigma_{\text{down}}$, with $h = \log(\tilde\sigma_i/\sigma_{\text{down}})$ and the
    intermediate level $\tilde\sigma_s = e^{-(\lambda_i + h/2)} =
    \sqrt{\tilde\sigma_i\sigma_{\text{down}}}$:

    $$u = \frac{\tilde\sigma_s}{\tilde\sigma_i}\tilde x_i - (e^{-h/2} - 1)\,D(\tilde x_i;
    \tilde\sigma_i), \qquad \tilde x_{i+1} = \frac{\sigma_{\text{down}}}{\tilde\sigma_i}
    \tilde x_i - (e^{-h} - 1)\,D(u; \tilde\sigma_s) + \sigma_{\text{up}}\,S_{\text{noise}}\,z,$$

    with k-diffusion's ancestral levels $\sigma_{\text{up}} = \min\big(\tilde\sigma_{i+1},
    \eta\,\tilde\sigma_{i+1}\sqrt{1 - \tilde\sigma_{i+1}^2/\tilde\sigma_i^2}\big)$,
    $\sigma_{\text{down}} = \sqrt{\tilde\sigma_{i+1}^2 - \sigma_{\text{up}}^2}$ (no noise on
    a last step to $0$). $\eta = 0$ (default) is the deterministic DPM-Solver++(2S). A last
    step to $\sigma_{\text{down}} = 0$ is Euler's (it returns $D$). The score at
    $\tilde\sigma_s$ is evaluated at the time found by bisection. NFE $= 2N - 1$ on the
    default grid.

    **Arguments:** as [`edm_heun`][gpm_sde.samplers.edm_heun], and `eta` $\ge 0$,
    `s_noise` $> 0$ (the noise's scale, default 1). `key` is required when $\eta > 0$.

    **Returns:** [`Samples`][gpm_sde.samplers.Samples] with `.x` the cloud at the grid's end.
    """
    plan = singlestep_plan(
        process, score, steps=steps, ts=ts, eps=eps, rho=rho, to_zero=to_zero, eta=eta,
        s_noise=s_noise, has_init=x_init is not None,
    )  # fmt: skip
    return sample_with_plan(plan, process, score, key, n, event_shape, x_init)
