r"""Convolutional generator and discriminator for 8×8 single-channel images."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from ._blocks import upsample2
from ._common import check_event, check_size, num_groups
from ._embedding import FourierEmbedding
from ._mlp import _split_call, leaky_relu
from ._unet import IMAGE_SHAPE


class ConvGenerator8(eqx.Module):
    r"""A DCGAN-style generator (Radford et al. 2016, §3, scaled to 8×8, GroupNorm in place of
    BatchNorm so each sample is processed on its own) from a latent $z \in \mathbb{R}^k$ to an
    image in $[-1, 1]^{1\times 8\times 8}$:

    ```
    z → Linear → (2c, 2, 2) → GN → ReLU
      → nearest×2 → conv → (c, 4, 4) → GN → ReLU
      → nearest×2 → conv → (c, 8, 8) → GN → ReLU → conv → (1, 8, 8) → tanh
    ```

    **Arguments:**

    - `latent_dim`: $k$.
    - `key`: PRNG key.
    - `channels`: $c$, the width at 4×4 and 8×8 ($2c$ at 2×2).

    Called as `G(z)` with `z: (latent_dim,)`; returns `(1, 8, 8)` with values in $[-1, 1]$.
    """

    proj: eqx.nn.Linear
    norm0: eqx.nn.GroupNorm
    conv1: eqx.nn.Conv2d
    norm1: eqx.nn.GroupNorm
    conv2: eqx.nn.Conv2d
    norm2: eqx.nn.GroupNorm
    conv_out: eqx.nn.Conv2d
    latent_dim: int = eqx.field(static=True)
    channels: int = eqx.field(static=True)

    def __init__(self, latent_dim: int, *, key: PRNGKeyArray, channels: int = 32):
        self.latent_dim = check_size("latent_dim", latent_dim)
        c = self.channels = check_size("channels", channels)
        k = jr.split(key, 4)
        self.proj = eqx.nn.Linear(latent_dim, 2 * c * 4, key=k[0])
        self.norm0 = eqx.nn.GroupNorm(num_groups(2 * c), 2 * c)
        self.conv1 = eqx.nn.Conv2d(2 * c, c, 3, padding=1, key=k[1])
        self.norm1 = eqx.nn.GroupNorm(num_groups(c), c)
        self.conv2 = eqx.nn.Conv2d(c, c, 3, padding=1, key=k[2])
        self.norm2 = eqx.nn.GroupNorm(num_groups(c), c)
        self.conv_out = eqx.nn.Conv2d(c, 1, 3, padding=1, key=k[3])

    def __call__(self, z: Float[Array, " latent_dim"]) -> Float[Array, "1 8 8"]:
        check_event("z", z, (self.latent_dim,), "the latent dimension `latent_dim`")
        h = jnp.reshape(self.proj(z), (2 * self.channels, 2, 2))
        h = jax.nn.relu(self.norm0(h))
        h = jax.nn.relu(self.norm1(self.conv1(upsample2(h))))
        h = jax.nn.relu(self.norm2(self.conv2(upsample2(h))))
        return jnp.tanh(self.conv_out(h))


class ConvDiscriminator8(eqx.Module):
    r"""A DCGAN-style discriminator (Radford et al. 2016, §3, scaled to 8×8) returning a scalar
    logit, $D(x)$ or, time-conditioned, $D(s, x)$ (Discriminator Flow, Franceschi et al. 2023,
    §4.2):

    ```
    (1, 8, 8) → conv → (c, 8, 8) → LReLU → stride-2 conv → (2c, 4, 4) → LReLU
              → stride-2 conv → (2c, 2, 2) → LReLU → Linear → scalar
    ```

    With `time_conditioned=True` a projection of the time embedding $e =
    \operatorname{LReLU}(A\gamma(s))$ is added to every feature map before its activation. No
    normalisation layers, so gradient penalties act on a per-image function (Gulrajani et al.
    2017, §4: no batch normalisation in the critic).

    **Arguments:**

    - `key`: PRNG key.
    - `channels`: $c$.
    - `time_conditioned`: whether the call is `D(s, x)` (True) or `D(x)` (False).
    - `embed_dim`, `fourier_scale`: the Fourier embedding of $s$ (time-conditioned only).

    Returns a scalar `()`.
    """

    conv0: eqx.nn.Conv2d
    conv1: eqx.nn.Conv2d
    conv2: eqx.nn.Conv2d
    out: eqx.nn.Linear
    embedding: FourierEmbedding | None
    time_proj: eqx.nn.Linear | None
    conds: tuple[eqx.nn.Linear, ...] | None
    time_conditioned: bool = eqx.field(static=True)

    def __init__(
        self,
        *,
        key: PRNGKeyArray,
        channels: int = 32,
        time_conditioned: bool = False,
        embed_dim: int = 32,
        fourier_scale: float = 16.0,
    ):
        c = check_size("channels", channels)
        if not isinstance(time_conditioned, bool):
            raise TypeError(
                f"`time_conditioned` must be a bool, got {type(time_conditioned).__name__}."
            )
        k = jr.split(key, 9)
        self.conv0 = eqx.nn.Conv2d(1, c, 3, padding=1, key=k[0])
        self.conv1 = eqx.nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, key=k[1])
        self.conv2 = eqx.nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1, key=k[2])
        self.out = eqx.nn.Linear(2 * c * 4, "scalar", key=k[3])
        self.time_conditioned = time_conditioned
        if time_conditioned:
            embed_dim = check_size("embed_dim", embed_dim, even=True, minimum=2)
            self.embedding = FourierEmbedding(embed_dim, key=k[4], scale=fourier_scale)
            self.time_proj = eqx.nn.Linear(embed_dim, embed_dim, key=k[5])
            self.conds = tuple(
                eqx.nn.Linear(embed_dim, width, key=kk)
                for width, kk in zip((c, 2 * c, 2 * c), k[6:9], strict=True)
            )
        else:
            self.embedding = self.time_proj = self.conds = None

    def __call__(
        self,
        s_or_x: Real[ArrayLike, ""] | Float[Array, "1 8 8"],
        x: Float[Array, "1 8 8"] | None = None,
    ) -> Float[Array, ""]:
        s, x = _split_call(self.time_conditioned, s_or_x, x)
        check_event("x", x, IMAGE_SHAPE, "one single-channel 8×8 image")
        if self.embedding is None or self.time_proj is None or self.conds is None:
            shifts = [0.0, 0.0, 0.0]
        else:
            e = leaky_relu(self.time_proj(self.embedding(s)))
            shifts = [cond(e)[:, None, None] for cond in self.conds]
        h = leaky_relu(self.conv0(x) + shifts[0])
        h = leaky_relu(self.conv1(h) + shifts[1])
        h = leaky_relu(self.conv2(h) + shifts[2])
        return self.out(jnp.ravel(h))
