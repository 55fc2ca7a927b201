"""Building blocks of the 8×8 convolutional networks (private)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ._common import num_groups


def upsample2(x: Float[Array, "c h w"]) -> Float[Array, "c 2*h 2*w"]:
    """Nearest-neighbour upsampling by 2 in both spatial axes."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class ResBlock(eqx.Module):
    r"""A residual block with GroupNorm and adaptive group normalisation by the time embedding
    (AdaGN, Dhariwal & Nichol 2021, §3; the residual block of Ho et al. 2020, appendix B):

    $$h = \mathrm{conv}_1(\mathrm{act}(\mathrm{GN}(x))),\qquad
    h \leftarrow (1 + a(e))\,\mathrm{GN}(h) + b(e),\qquad
    \mathrm{out} = \mathrm{conv}_2(\mathrm{act}(h)) + \mathrm{skip}(x),$$

    with $(a, b)$ a linear map of the embedding $e$, one scale and shift per channel. The
    scale-and-shift comes after the normalisation: a shift added before a GroupNorm is removed
    by it whenever a group holds a single channel."""

    norm1: eqx.nn.GroupNorm
    conv1: eqx.nn.Conv2d
    time: eqx.nn.Linear
    norm2: eqx.nn.GroupNorm
    conv2: eqx.nn.Conv2d
    skip: eqx.nn.Conv2d | None

    def __init__(self, c_in: int, c_out: int, embed: int, *, key: PRNGKeyArray):
        k1, k2, k3, k4 = jr.split(key, 4)
        self.norm1 = eqx.nn.GroupNorm(num_groups(c_in), c_in)
        self.conv1 = eqx.nn.Conv2d(c_in, c_out, 3, padding=1, key=k1)
        self.time = eqx.nn.Linear(embed, 2 * c_out, key=k2)
        self.norm2 = eqx.nn.GroupNorm(num_groups(c_out), c_out)
        self.conv2 = eqx.nn.Conv2d(c_out, c_out, 3, padding=1, key=k3)
        self.skip = None if c_in == c_out else eqx.nn.Conv2d(c_in, c_out, 1, key=k4)

    def __call__(self, x: Float[Array, "ci h w"], e: Float[Array, " e"]) -> Float[Array, "co h w"]:
        h = self.conv1(jax.nn.silu(self.norm1(x)))
        scale, shift = jnp.split(self.time(e)[:, None, None], 2)
        h = (1.0 + scale) * self.norm2(h) + shift
        h = self.conv2(jax.nn.silu(h))
        return h + (x if self.skip is None else self.skip(x))
