r"""Gaussian random Fourier features of a scalar time or noise level."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from .._checks import check_positive
from ._common import TWO_PI, as_scalar_time, check_size


class FourierEmbedding(eqx.Module):
    r"""Gaussian random Fourier features of a scalar $t$ (Tancik et al. 2020, §5, Gaussian
    mapping; the "Gaussian Fourier projection" of the score networks of Song et al. 2021):

    $$\gamma(t) = \big[\sin(2\pi W t),\ \cos(2\pi W t)\big] \in \mathbb{R}^{m},
    \qquad W \in \mathbb{R}^{m/2},\ W_i \sim \mathcal{N}(0, s^2).$$

    The frequencies $W$ are drawn once and **not trained**, as in both papers: they pass through
    `jax.lax.stop_gradient`, so a gradient with respect to them is zero.

    **Arguments:**

    - `embed_dim`: $m$, the (even) output size.
    - `key`: PRNG key for $W$.
    - `scale`: $s$, the standard deviation of the frequencies (Song et al. use 16 for
      $t \in [0, 1]$; use about 1 for a slowly varying input such as $\tfrac14\ln\sigma$).

    Called as `emb(t)` with a scalar `t`; returns `(embed_dim,)`.
    """

    frequencies: Float[Array, " half"]
    embed_dim: int = eqx.field(static=True)

    def __init__(self, embed_dim: int, *, key: PRNGKeyArray, scale: float = 16.0):
        embed_dim = check_size("embed_dim", embed_dim, even=True, minimum=2)
        check_positive("scale", scale, fix="pass e.g. scale=16.0")
        self.embed_dim = embed_dim
        self.frequencies = scale * jr.normal(key, (embed_dim // 2,), dtype=float)

    def __call__(self, t: Real[ArrayLike, ""]) -> Float[Array, " embed_dim"]:
        t = as_scalar_time(t)
        angle = TWO_PI * jax.lax.stop_gradient(self.frequencies) * t
        return jnp.concatenate([jnp.sin(angle), jnp.cos(angle)])
