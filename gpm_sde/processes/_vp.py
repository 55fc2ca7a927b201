"""The variance-preserving (VP) process of Song et al. 2021 (the continuous DDPM)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._checks import check_positive, check_scalar
from ._base import AbstractLinearProcess, check_coefficients


def integrated_beta(
    t: Float[ArrayLike, "*t"],
    beta_min: Float[ArrayLike, ""],
    beta_max: Float[ArrayLike, ""],
    T: float,
) -> Float[Array, "*t"]:
    r"""$B(t) = \int_0^t \beta = \beta_{\min} t + \tfrac12 t^2 (\beta_{\max} - \beta_{\min}) / T$
    for the linear schedule $\beta(t) = \beta_{\min} + (\beta_{\max} - \beta_{\min}) t / T$
    (Song et al. 2021, eq. 33, with $T = 1$)."""
    t, beta_min, beta_max = jnp.asarray(t), jnp.asarray(beta_min), jnp.asarray(beta_max)
    return beta_min * t + 0.5 * t**2 * (beta_max - beta_min) / T


class VP(AbstractLinearProcess):
    r"""Variance-preserving SDE $dx = -\tfrac12\beta(t)x\,dt + \sqrt{\beta(t)}\,dW$
    (Song et al. 2021, eq. 11), defined here by its marginal

    $$\alpha(t) = e^{-B(t)/2}, \qquad \sigma(t)^2 = 1 - e^{-B(t)},$$

    with $B$ from [`integrated_beta`][gpm_sde.processes.integrated_beta]; then
    $f = -\beta/2$ and $g^2 = \beta$ follow by autodiff. Build it with
    [`vp`][gpm_sde.vp].
    """

    beta_min: Float[Array, ""]
    beta_max: Float[Array, ""]
    T: float = eqx.field(static=True)

    def alpha(self, t):
        return jnp.exp(-0.5 * integrated_beta(t, self.beta_min, self.beta_max, self.T))

    def variance(self, t):
        return -jnp.expm1(-integrated_beta(t, self.beta_min, self.beta_max, self.T))


def vp(beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0) -> VP:
    r"""The VP process with linear $\beta(t)$ from `beta_min` to `beta_max` over $[0, T]$
    (Song et al. 2021, eq. 11; defaults $\beta_{\min} = 0.1$, $\beta_{\max} = 20$)."""
    check_scalar("beta_min", beta_min)
    check_scalar("beta_max", beta_max)
    check_scalar("T", T)
    check_positive("beta_min", beta_min, fix="pass e.g. beta_min=0.1")
    check_positive("beta_max", beta_max, fix="pass e.g. beta_max=20.0")
    check_positive("T", T, fix="pass the time horizon, e.g. T=1.0")
    process = VP(
        beta_min=jnp.asarray(beta_min, dtype=float),
        beta_max=jnp.asarray(beta_max, dtype=float),
        T=float(T),
    )
    call = f"vp(beta_min={beta_min!r}, beta_max={beta_max!r}, T={T!r})"
    check_coefficients(process, call, ("beta_min", "beta_max", "T"))
    return process
