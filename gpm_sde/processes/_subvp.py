"""The sub-VP process of Song et al. 2021."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_positive, check_scalar
from ._base import AbstractLinearProcess, check_coefficients
from ._vp import integrated_beta


class SubVP(AbstractLinearProcess):
    r"""Sub-VP SDE $dx = -\tfrac12\beta(t)x\,dt + \sqrt{\beta(t)(1 - e^{-2B(t)})}\,dW$
    (Song et al. 2021, eq. 12), defined here by its marginal

    $$\alpha(t) = e^{-B(t)/2}, \qquad \sigma(t) = 1 - e^{-B(t)}\ \ (\text{not square-rooted}),$$

    whence $g^2 = \beta(1 - e^{-2B})$ by autodiff. Build it with [`subvp`][gpm_sde.subvp].
    """

    beta_min: Float[Array, ""]
    beta_max: Float[Array, ""]
    T: float = eqx.field(static=True)

    def alpha(self, t):
        return jnp.exp(-0.5 * integrated_beta(t, self.beta_min, self.beta_max, self.T))

    def variance(self, t):
        return jnp.expm1(-integrated_beta(t, self.beta_min, self.beta_max, self.T)) ** 2


def subvp(beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0) -> SubVP:
    r"""The sub-VP process with linear $\beta(t)$ from `beta_min` to `beta_max` over $[0, T]$
    (Song et al. 2021, eq. 12)."""
    check_scalar("beta_min", beta_min)
    check_scalar("beta_max", beta_max)
    check_scalar("T", T)
    check_positive("beta_min", beta_min, fix="pass e.g. beta_min=0.1")
    check_positive("beta_max", beta_max, fix="pass e.g. beta_max=20.0")
    check_positive("T", T, fix="pass the time horizon, e.g. T=1.0")
    process = SubVP(
        beta_min=jnp.asarray(beta_min, dtype=float),
        beta_max=jnp.asarray(beta_max, dtype=float),
        T=float(T),
    )
    call = f"subvp(beta_min={beta_min!r}, beta_max={beta_max!r}, T={T!r})"
    check_coefficients(process, call, ("beta_min", "beta_max", "T"))
    return process
