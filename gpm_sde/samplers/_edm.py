r"""The EDM samplers of Karras et al. (2022): Heun's method on the probability-flow ODE in
$\tilde\sigma$, deterministic (Algorithm 1) and with churn (Algorithm 2)."""

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
    as_params,
    check_static_float,
    denoise,
    karras_time_grid,
    sample_with_plan,
    scale_fields,
)
from ._result import Samples


class HeunStep(eqx.Module):
    r"""One step of Karras et al.'s Algorithm 2 in scaled variables: churn
    $\hat x = \tilde x + \sqrt{\hat\sigma^2 - \tilde\sigma_i^2}\,S_{\text{noise}}\,z$, an Euler
    step of $d\tilde x/d\tilde\sigma = (\tilde x - D(\tilde x; \tilde\sigma))/\tilde\sigma$ from
    $\hat\sigma$ to $\tilde\sigma_{i+1}$, and Heun's correction unless `first_order`."""

    score: Callable[..., Any]

    def __call__(self, state, z, p, *, first_order: bool):
        (x,) = state
        if z is not None:
            x = x + p["noise"] * z
        d = (x - denoise(self.score, p["t_hat"], p["a_hat"], p["r_hat"], x)) / p["r_hat"]
        dt = p["r_next"] - p["r_hat"]
        x_euler = x + dt * d
        if first_order:
            return (x_euler,)
        d2 = (x_euler - denoise(self.score, p["t_next"], p["a_next"], p["r_next"], x_euler)) / p[
            "r_next"
        ]
        return (x + dt * 0.5 * (d + d2),)


def heun_plan(
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    *,
    steps: IntLike | None = None,
    ts: Float[ArrayLike, " k"] | None = None,
    eps: float | int | None = None,
    rho: float = 7.0,
    to_zero: bool = True,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
    has_init: bool = False,
) -> StepPlan:
    """The plan of [`edm_stochastic`][gpm_sde.samplers.edm_stochastic] (with `s_churn = 0`,
    [`edm_heun`][gpm_sde.samplers.edm_heun])."""
    check_process(process)
    check_callable("score", score, "(t, x) -> ∇log p_t(x)")
    churn = check_static_float("s_churn", s_churn, "pass S_churn >= 0, e.g. 0.0 or 40.0")
    tmin = check_static_float("s_tmin", s_tmin, "pass S_tmin >= 0")
    tmax = check_static_float("s_tmax", s_tmax, "pass S_tmax (may be inf)")
    snoise = check_static_float("s_noise", s_noise, "pass S_noise > 0, e.g. 1.0")
    if churn < 0 or snoise <= 0:
        raise ValueError(
            f"`s_churn` must be >= 0 and `s_noise` > 0, got s_churn={churn}, s_noise={snoise}."
        )
    t = karras_time_grid(process, steps, ts, eps, rho, to_zero, has_init)
    a, r = scaled_coefficients(process, t)
    n = len(t) - 1
    r_i, r_next = r[:-1], r[1:]
    gamma = np.where((tmin <= r_i) & (r_i <= tmax), min(churn / n, np.sqrt(2.0) - 1.0), 0.0)
    r_top = scaled_coefficients(process, np.array([float(process.T)]))[1][0]
    r_hat = np.minimum(r_i * (1.0 + gamma), np.maximum(r_top, r_i))  # σ̂ never beyond σ̃(T)
    noisy = bool(np.any(r_hat > r_i))
    t_hat, a_hat = t[:-1], a[:-1]
    if noisy:
        t_hat = np.where(r_hat > r_i, times_of_ratio(process, r_hat), t_hat)
        a_hat = np.where(r_hat > r_i, scaled_coefficients(process, t_hat)[0], a_hat)
    last_first_order = bool(r_next[-1] == 0.0)
    if np.any(r_next[:-1] <= 0.0):
        raise ValueError(
            "the grid reaches sigma(t)/alpha(t) = 0 before its last time; end it there."
        )
    params = as_params(
        t_hat=t_hat,
        a_hat=a_hat,
        r_hat=r_hat,
        noise=snoise * np.sqrt(np.maximum(r_hat**2 - r_i**2, 0.0)),
        t_next=t[1:],
        a_next=a[1:],
        r_next=r_next,
    )
    scale_in, scale_out = scale_fields(a)
    return StepPlan(
        HeunStep(score),
        params,
        scale_in,
        scale_out,
        n_state=1,
        noisy=noisy,
        last_first_order=last_first_order,
        nfe=2 * n - int(last_first_order),
    )


def edm_heun(
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
    r"""EDM's deterministic sampler (Karras et al. 2022, Algorithm 1; k-diffusion's
    `sample_heun` with `s_churn=0`): Heun's method on the probability-flow ODE written in
    the noise-to-signal ratio $\tilde\sigma = \sigma/\alpha$ and the scaled state
    $\tilde x = x/\alpha$,

    $$\frac{d\tilde x}{d\tilde\sigma} = \frac{\tilde x - D(\tilde x; \tilde\sigma)}
    {\tilde\sigma}, \qquad D(\tilde x; \tilde\sigma) = \tilde x + \tilde\sigma^2\,\alpha\,
    \nabla\log p_t(\alpha\tilde x)$$

    ($D$ is Tweedie's posterior mean of $x_0$; for $\alpha = 1$ this is Karras et al.'s
    eq. 4 with $\sigma(t) = t$). From $\tilde\sigma_i$ to $\tilde\sigma_{i+1}$: $d_i =
    (\tilde x_i - D(\tilde x_i; \tilde\sigma_i))/\tilde\sigma_i$, $\tilde x' = \tilde x_i +
    (\tilde\sigma_{i+1} - \tilde\sigma_i)\,d_i$, and, unless $\tilde\sigma_{i+1} = 0$, the
    correction $\tilde x_{i+1} = \tilde x_i + (\tilde\sigma_{i+1} - \tilde\sigma_i)(d_i +
    d'_{i+1})/2$. A second-order method: the error of the output law falls as
    $\mathrm{NFE}^{-2}$. Works for any linear process (VP, VE, EDM, ...); the grid's scaled
    cloud is mapped back by $\alpha$ at the end.

    **Grid.** `steps` $= N$ gives Karras et al.'s $\rho$-grid: $N$ levels $\tilde\sigma$ from
    $\tilde\sigma(T)$ to $\tilde\sigma(\epsilon)$ (eq. 5) then $0$ (`to_zero=True`, as
    k-diffusion's `get_sigmas_karras`), whose last step is Euler's, so NFE $= 2N - 1$;
    with `to_zero=False` the grid ends at $\epsilon$ and NFE $= 2N$. Or pass the increasing
    generation times `ts` ($s = T - t$).

    **Arguments:**

    - `process`: the forward process; `score`: its score `score(t, x)` in diffusion time,
      pointwise or a cloud score.
    - `key`: split into the prior draw and (unused) noise; may be `None` with `x_init`.
    - `n`, `event_shape`: the number of points and the shape of one point.
    - `steps` or `ts`: the grid (above).
    - `x_init`: a starting cloud at $t_0 = T - $ `ts[0]` instead of a prior draw.
    - `eps`: the last positive diffusion time $\epsilon$ of the $\rho$-grid (default 1e-3).
    - `rho`: $\rho$ of eq. 5 (default 7).
    - `to_zero`: end the `steps` grid with a step to $t = 0$.

    **Returns:** [`Samples`][gpm_sde.samplers.Samples] with `.x` the cloud at the grid's end.
    """
    plan = heun_plan(
        process, score, steps=steps, ts=ts, eps=eps, rho=rho, to_zero=to_zero,
        has_init=x_init is not None,
    )  # fmt: skip
    return sample_with_plan(plan, process, score, key, n, event_shape, x_init)


def edm_stochastic(
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    key: PRNGKeyArray,
    n: IntLike | None = None,
    event_shape: Sequence[int] | None = None,
    *,
    steps: IntLike | None = None,
    ts: Float[ArrayLike, " k"] | None = None,
    x_init: Float[Array, " n *event"] | None = None,
    eps: float | int | None = None,
    rho: float = 7.0,
    to_zero: bool = True,
    s_churn: float = 40.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
) -> Samples:
    r"""EDM's stochastic sampler (Karras et al. 2022, Algorithm 2, as k-diffusion's
    `sample_heun` implements it): before each Heun step of
    [`edm_heun`][gpm_sde.samplers.edm_heun], raise the noise level from $\tilde\sigma_i$ to
    $\hat\sigma_i = (1 + \gamma_i)\tilde\sigma_i$ by adding fresh noise,

    $$\hat x_i = \tilde x_i + \sqrt{\hat\sigma_i^2 - \tilde\sigma_i^2}\;S_{\text{noise}}\,z_i,
    \qquad \gamma_i = \begin{cases}\min(S_{\text{churn}}/N, \sqrt2 - 1) & S_{t\min} \le
    \tilde\sigma_i \le S_{t\max}\\ 0 & \text{otherwise,}\end{cases}$$

    then take the Heun step from $\hat\sigma_i$ to $\tilde\sigma_{i+1}$ (Euler's when
    $\tilde\sigma_{i+1} = 0$). Here $\hat\sigma_i$ is also capped at $\tilde\sigma(T)$, where
    the process (and its score) ends; the score is evaluated at the time $\hat t_i$ with
    $\tilde\sigma(\hat t_i) = \hat\sigma_i$, found by bisection. $S_{\text{churn}} = 0$ is
    [`edm_heun`][gpm_sde.samplers.edm_heun]. With $S_{\text{noise}} = 1$ the churn adds
    exactly the noise of the forward process from $\tilde\sigma_i$ to $\hat\sigma_i$, so the
    law of $\hat x_i$ is $p$ at $\hat\sigma_i$ when that of $\tilde x_i$ is $p$ at
    $\tilde\sigma_i$.

    Step $i$ draws $z_i$ from `jax.random.fold_in(noise_key, i)`.

    **Arguments:** as [`edm_heun`][gpm_sde.samplers.edm_heun] (here `key` is required), and

    - `s_churn`: $S_{\text{churn}} \ge 0$ (default 40; k-diffusion's default 0 is the
      deterministic sampler).
    - `s_tmin`, `s_tmax`: the range of $\tilde\sigma$ where noise is added (default all).
    - `s_noise`: $S_{\text{noise}} > 0$ (default 1, the law-preserving value).

    **Returns:** [`Samples`][gpm_sde.samplers.Samples] with `.x` the cloud at the grid's end.
    """
    plan = heun_plan(
        process, score, steps=steps, ts=ts, eps=eps, rho=rho, to_zero=to_zero,
        s_churn=s_churn, s_tmin=s_tmin, s_tmax=s_tmax, s_noise=s_noise,
        has_init=x_init is not None,
    )  # fmt: skip
    return sample_with_plan(plan, process, score, key, n, event_shape, x_init)
