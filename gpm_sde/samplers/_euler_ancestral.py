r"""Euler ancestral sampling in the noise-to-signal ratio (k-diffusion's
`sample_euler_ancestral`); with $\eta = 0$ it is DDIM on any linear process."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import IntLike
from ..processes import AbstractLinearProcess
from ._plan import (
    StepPlan,
    ancestral_grid,
    as_params,
    denoise,
    sample_with_plan,
    scale_fields,
)
from ._result import Samples


class AncestralStep(eqx.Module):
    r"""One Euler ancestral step: $\tilde x + (\sigma_{\text{down}} - \tilde\sigma_i)
    (\tilde x - D)/\tilde\sigma_i + \sigma_{\text{up}} z$."""

    score: Callable[..., Any]

    def __call__(self, state, z, p, *, first_order: bool):
        (x,) = state
        d = denoise(self.score, p["t"], p["a"], p["r"], x)
        x_next = x + (p["r_down"] - p["r"]) * (x - d) / p["r"]
        if z is not None:
            x_next = x_next + p["noise"] * z
        return (x_next,)


def ancestral_plan(
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    *,
    steps: IntLike | None = None,
    ts: Float[ArrayLike, " k"] | None = None,
    eps: float | int | None = None,
    rho: float = 7.0,
    to_zero: bool = True,
    eta: float = 1.0,
    s_noise: float = 1.0,
    has_init: bool = False,
) -> StepPlan:
    """The plan of [`euler_ancestral`][gpm_sde.samplers.euler_ancestral]."""
    g = ancestral_grid(
        process, score, steps, ts, eps, rho, to_zero, eta, s_noise, has_init,
        "pass eta >= 0 (0: DDIM, 1: ancestral)",
    )  # fmt: skip
    t, a, r_i, r_down = g.t, g.a, g.r[:-1], g.r_down
    noise = g.s_noise * np.where(g.r[1:] > 0, g.r_up, 0.0)
    params = as_params(t=t[:-1], a=a[:-1], r=r_i, r_down=r_down, noise=noise)
    scale_in, scale_out = scale_fields(a)
    n = len(t) - 1
    return StepPlan(
        AncestralStep(score), params, scale_in, scale_out,
        n_state=1, noisy=bool(np.any(noise > 0)), last_first_order=True, nfe=n,
    )  # fmt: skip


def euler_ancestral(
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
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> Samples:
    r"""Euler ancestral sampling (k-diffusion's `sample_euler_ancestral`) in scaled variables
    $\tilde x = x/\alpha$, $\tilde\sigma = \sigma/\alpha$: an Euler step of the
    probability-flow ODE down to $\sigma_{\text{down}}$, then fresh noise of scale
    $\sigma_{\text{up}}$,

    $$\tilde x_{i+1} = \tilde x_i + (\sigma_{\text{down}} - \tilde\sigma_i)\,
    \frac{\tilde x_i - D(\tilde x_i; \tilde\sigma_i)}{\tilde\sigma_i} +
    \sigma_{\text{up}}\,S_{\text{noise}}\,z_i,$$

    $\sigma_{\text{up}} = \min\big(\tilde\sigma_{i+1}, \eta\,\tilde\sigma_{i+1}
    \sqrt{1 - \tilde\sigma_{i+1}^2/\tilde\sigma_i^2}\big)$, $\sigma_{\text{down}} =
    \sqrt{\tilde\sigma_{i+1}^2 - \sigma_{\text{up}}^2}$ (k-diffusion's `get_ancestral_step`;
    no noise on a last step to $0$). With $\eta = 1$, $\sigma_{\text{down}} =
    \tilde\sigma_{i+1}^2/\tilde\sigma_i$ and the step draws exactly from the posterior
    $q(\tilde x_{i+1} \mid \tilde x_i, x_0 = D)$: DDPM's ancestral step for any linear
    process. With $\eta = 0$ it is $\tilde x_{i+1} = D + \frac{\tilde\sigma_{i+1}}
    {\tilde\sigma_i}(\tilde x_i - D)$, deterministic DDIM (Song, Meng & Ermon 2021, eq. 12
    with $\sigma = 0$; [`ddim`][gpm_sde.samplers.ddim] on a DDPM chain) and
    DPM-Solver++(1). One evaluation per step, first order.

    **Arguments:** as [`edm_heun`][gpm_sde.samplers.edm_heun], and `eta` $\ge 0$ (default
    1), `s_noise` $> 0$ (default 1). `key` is required when $\eta > 0$.

    **Returns:** [`Samples`][gpm_sde.samplers.Samples] with `.x` the cloud at the grid's end.
    """
    plan = ancestral_plan(
        process, score, steps=steps, ts=ts, eps=eps, rho=rho, to_zero=to_zero, eta=eta,
        s_noise=s_noise, has_init=x_init is not None,
    )  # fmt: skip
    return sample_with_plan(plan, process, score, key, n, event_shape, x_init)
