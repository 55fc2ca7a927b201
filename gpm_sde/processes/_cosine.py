"""The cosine schedule of Nichol & Dhariwal 2021 as a continuous-time process."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_positive, check_scalar
from ._base import AbstractLinearProcess, check_coefficients


class Cosine(AbstractLinearProcess):
    r"""The cosine process (Nichol & Dhariwal 2021, eq. 17) in continuous time:

    $$\bar\alpha(t) = \frac{\cos^2\phi(t)}{\cos^2\phi(0)},\quad
    \phi(t) = \frac{t + s}{1 + s}\,\frac{\pi}{2},\qquad
    \alpha(t) = \sqrt{\bar\alpha(t)},\quad \sigma(t)^2 = 1 - \bar\alpha(t).$$

    It is variance-preserving: $f = -\beta/2$, $g^2 = \beta$ with
    $\beta(t) = \frac{\pi}{1+s}\tan\phi(t)$. Since $\alpha(1) = 0$ makes $f(1) = -\infty$, the
    horizon is $T < 1$ (default 0.995, where $\alpha(T) \approx 7.8\times10^{-3}$).
    Build it with [`cosine`][gpm_sde.cosine].
    """

    s: Float[Array, ""]
    T: float = eqx.field(static=True)

    def _phi(self, t):
        return (jnp.asarray(t) + self.s) / (1.0 + self.s) * (jnp.pi / 2)

    def alpha(self, t):
        return jnp.cos(self._phi(t)) / jnp.cos(self._phi(0.0))

    def variance(self, t):
        # 1 - cos²φ(t)/cos²φ(0) = sin(φ(t) - φ(0)) sin(φ(t) + φ(0)) / cos²φ(0), free of the
        # cancellation that 1 - α² suffers near t = 0.
        phi, phi0 = self._phi(t), self._phi(0.0)
        return jnp.sin(phi - phi0) * jnp.sin(phi + phi0) / jnp.cos(phi0) ** 2


def cosine(s: float = 0.008, T: float = 0.995) -> Cosine:
    r"""The cosine process with offset `s` (Nichol & Dhariwal 2021, eq. 17; default 0.008) on
    $[0, T]$, $T < 1$."""
    check_scalar("s", s)
    check_scalar("T", T)
    check_positive("s", s, strict=False, fix="pass e.g. s=0.008")
    check_positive("T", T, fix="pass a horizon in (0, 1), e.g. T=0.995")
    if not T < 1.0:
        raise ValueError(f"`T` must be < 1 for the cosine process (alpha(1) = 0), got {T}.")
    process = Cosine(s=jnp.asarray(s, dtype=float), T=float(T))
    check_coefficients(process, f"cosine(s={s!r}, T={T!r})", ("s", "T"))
    return process
