"""The variance-exploding (VE) process of Song et al. 2021 (the continuous NCSN)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import as_numpy, check_positive, check_scalar, is_concrete
from ._base import AbstractLinearProcess, check_coefficients


class VE(AbstractLinearProcess):
    r"""Variance-exploding SDE $dx = \sigma(t)\sqrt{2\ln(\sigma_{\max}/\sigma_{\min})/T}\,dW$
    (Song et al. 2021, eq. 9 and 30), defined here by its marginal

    $$\alpha(t) = 1, \qquad \sigma(t) = \sigma_{\min}(\sigma_{\max}/\sigma_{\min})^{t/T}.$$

    As in Song et al., $\sigma(0) = \sigma_{\min} > 0$: the law at $t = 0$ is the data smoothed
    by $\sigma_{\min}$ (`marginal(law, 0)`), and the SDE moves it to $q * \mathcal{N}(0,
    \sigma(t)^2 I)$. Build it with [`ve`][gpm_sde.ve].
    """

    sigma_min: Float[Array, ""]
    sigma_max: Float[Array, ""]
    T: float = eqx.field(static=True)

    def alpha(self, t):
        return jnp.ones_like(jnp.asarray(t, dtype=self.sigma_min.dtype))

    def variance(self, t):
        return self.sigma_min**2 * (self.sigma_max / self.sigma_min) ** (
            2.0 * jnp.asarray(t) / self.T
        )


def ve(sigma_min: float = 0.01, sigma_max: float = 50.0, T: float = 1.0) -> VE:
    r"""The VE process with geometric $\sigma(t)$ from `sigma_min` to `sigma_max` over $[0, T]$
    (Song et al. 2021, eq. 9; defaults 0.01 and 50)."""
    check_scalar("sigma_min", sigma_min)
    check_scalar("sigma_max", sigma_max)
    check_scalar("T", T)
    check_positive("sigma_min", sigma_min, fix="pass e.g. sigma_min=0.01")
    check_positive("sigma_max", sigma_max, fix="pass e.g. sigma_max=50.0")
    check_positive("T", T, fix="pass the time horizon, e.g. T=1.0")
    if is_concrete(sigma_min, sigma_max) and as_numpy(sigma_max) <= as_numpy(sigma_min):
        raise ValueError(
            f"`sigma_max` must exceed `sigma_min`, got sigma_min={sigma_min}, "
            f"sigma_max={sigma_max}; swap them."
        )
    process = VE(
        sigma_min=jnp.asarray(sigma_min, dtype=float),
        sigma_max=jnp.asarray(sigma_max, dtype=float),
        T=float(T),
    )
    call = f"ve(sigma_min={sigma_min!r}, sigma_max={sigma_max!r}, T={T!r})"
    check_coefficients(process, call, ("sigma_min", "sigma_max", "T"))
    return process
