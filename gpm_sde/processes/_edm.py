r"""The EDM process of Karras et al. 2022: $\alpha = 1$, $\sigma(t) = t$."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from .._checks import check_positive, check_scalar
from ._base import AbstractLinearProcess, check_coefficients


class EDM(AbstractLinearProcess):
    r"""The EDM process (Karras et al. 2022, §2 and Table 1, "ours"): scale $s(t) = 1$ and
    noise level $\sigma(t) = t$, so

    $$\alpha(t) = 1,\qquad \sigma(t)^2 = t^2,\qquad f = 0,\qquad g = \sqrt{2t},$$

    on $t \in [0, T]$ with $T = \sigma_{\max}$ (default 80). Build it with [`edm`][gpm_sde.edm].
    """

    T: float = eqx.field(static=True)

    def alpha(self, t):
        return jnp.ones_like(jnp.asarray(t, dtype=float))

    def variance(self, t):
        return jnp.asarray(t, dtype=float) ** 2


def edm(sigma_max: float = 80.0) -> EDM:
    r"""The EDM process $\sigma(t) = t$ on $[0, \sigma_{\max}]$ (Karras et al. 2022, default 80)."""
    check_scalar("sigma_max", sigma_max)
    check_positive("sigma_max", sigma_max, fix="pass e.g. sigma_max=80.0")
    process = EDM(T=float(sigma_max))
    check_coefficients(process, f"edm(sigma_max={sigma_max!r})", ("sigma_max",))
    return process
