r"""Convolutional generator and discriminator for 8×8 single-channel images."""

from __future__ import annotations

from typing import Any, overload

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, Real

from ._blocks import upsample2
from ._common import check_event, check_size, num_groups
from ._embedding import FourierEmbedding
from ._mlp import _split_labelled_call, check_state, leaky_relu
from ._spectral import (
    apply,
    check_conditioning,
    check_flag,
    label_embedding,
    label_row,
    maybe_spectral,
)


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
    - `num_classes`: if given, $K$: class-conditional, $G(z, y)$ (Mirza & Osindero 2014):
      a learned label row $E_y \in \mathbb{R}^{8c}$ is added to the output of the first
      `Linear`, exactly that layer acting on $[z; \mathrm{onehot}(y)]$; row $K$ is the null
      label. `None` (the default) leaves the parameters unchanged.

    Called as `G(z)` with `z: (latent_dim,)`, or `G(z, y)` with an integer label `y` in
    $[0, K]$ (`None`: the null label); returns `(1, 8, 8)` with values in $[-1, 1]$.
    """

    proj: eqx.nn.Linear
    norm0: eqx.nn.GroupNorm
    conv1: eqx.nn.Conv2d
    norm1: eqx.nn.GroupNorm
    conv2: eqx.nn.Conv2d
    norm2: eqx.nn.GroupNorm
    conv_out: eqx.nn.Conv2d
    label_embedding: eqx.nn.Embedding | None
    latent_dim: int = eqx.field(static=True)
    channels: int = eqx.field(static=True)

    def __init__(
        self,
        latent_dim: int,
        *,
        key: PRNGKeyArray,
        channels: int = 32,
        num_classes: int | None = None,
    ):
        self.latent_dim = check_size("latent_dim", latent_dim)
        c = self.channels = check_size("channels", channels)
        if num_classes is not None:
            num_classes = check_size("num_classes", num_classes)
        self.label_embedding = label_embedding(num_classes, 2 * c * 4, key)
        k = jr.split(key, 4)
        self.proj = eqx.nn.Linear(latent_dim, 2 * c * 4, key=k[0])
        self.norm0 = eqx.nn.GroupNorm(num_groups(2 * c), 2 * c)
        self.conv1 = eqx.nn.Conv2d(2 * c, c, 3, padding=1, key=k[1])
        self.norm1 = eqx.nn.GroupNorm(num_groups(c), c)
        self.conv2 = eqx.nn.Conv2d(c, c, 3, padding=1, key=k[2])
        self.norm2 = eqx.nn.GroupNorm(num_groups(c), c)
        self.conv_out = eqx.nn.Conv2d(c, 1, 3, padding=1, key=k[3])

    def __call__(
        self, z: Float[Array, " latent_dim"], y: Int[ArrayLike, ""] | None = None
    ) -> Float[Array, "1 8 8"]:
        check_event("z", z, (self.latent_dim,), "the latent dimension `latent_dim`")
        row, _ = label_row(self.label_embedding, y, None, "generator")
        pre = self.proj(z) if row is None else self.proj(z) + row
        h = jnp.reshape(pre, (2 * self.channels, 2, 2))
        h = jax.nn.relu(self.norm0(h))
        h = jax.nn.relu(self.norm1(self.conv1(upsample2(h))))
        h = jax.nn.relu(self.norm2(self.conv2(upsample2(h))))
        return jnp.tanh(self.conv_out(h))


class ConvDiscriminator8(eqx.Module):
    r"""A DCGAN-style discriminator (Radford et al. 2016, §3, scaled to 8×8) returning a scalar
    logit, $D(x)$ or, time-conditioned, $D(s, x)$ (Discriminator Flow, Franceschi et al. 2023,
    §4.2):

    ```
    (k, 8, 8) → conv → (c, 8, 8) → LReLU → stride-2 conv → (2c, 4, 4) → LReLU
              → stride-2 conv → (2c, 2, 2) → LReLU → Linear → scalar
    ```

    With `time_conditioned=True` a projection of the time embedding $e =
    \operatorname{LReLU}(A\gamma(s))$ is added to every feature map before its activation. No
    normalisation layers, so gradient penalties act on a per-image function (Gulrajani et al.
    2017, §4: no batch normalisation in the critic).

    **Arguments:**

    - `key`: PRNG key.
    - `channels`: $c$.
    - `in_channels`: $k$, the channels of the input image (1 by default; the Denoising
      Diffusion GAN discriminator [`DDGANConvDiscriminator8`][gpm_sde.nn.DDGANConvDiscriminator8]
      stacks a pair of images as 2 channels).
    - `time_conditioned`: whether the call is `D(s, x)` (True) or `D(x)` (False).
    - `embed_dim`, `fourier_scale`: the Fourier embedding of $s$ (time-conditioned only).
    - `num_classes`: $K$ for a class-conditional discriminator, $D(x, y)$ or $D(s, x, y)$,
      through a learned label embedding $E$ (row $K$: the null label); `None` (the default)
      leaves it unconditional and its parameters unchanged.
    - `conditioning`: `"projection"` (default): $D(x, y) = \psi(\phi(x)) + \langle E_y,
      \phi(x)\rangle$ with $\phi(x) \in \mathbb{R}^{8c}$ the flattened last feature map and
      $\psi$ the final `Linear` (Miyato & Koyama 2018); `"concat"`: $E_y \in \mathbb{R}^c$ is
      added as a per-channel bias to the first feature map (Mirza & Osindero 2014 feed the
      label alongside the input; on images this equals concatenating constant one-hot
      channels except at the zero-padded border).
    - `spectral_norm`: divide every weight (the convolutions reshaped to
      $c_{\rm out} \times c_{\rm in}k^2$ matrices, as Miyato et al. 2018 do, the `Linear`
      layers and $E$) by its estimated largest singular value (`eqx.nn.SpectralNorm`); build
      with `eqx.nn.make_with_state` and call `D(..., state=state) -> (logit, state)`.
    - `power_iterations`: power iterations per call of each normalised layer (1 by default).

    Returns a scalar `()` (with `spectral_norm=True`: `(logit, state)`).
    """

    conv0: Any
    conv1: Any
    conv2: Any
    out: Any
    embedding: FourierEmbedding | None
    time_proj: Any
    conds: tuple[Any, ...] | None
    label_embedding: Any
    time_conditioned: bool = eqx.field(static=True)
    conditioning: str = eqx.field(static=True)
    spectral_norm: bool = eqx.field(static=True)
    in_channels: int = eqx.field(static=True)

    def __init__(
        self,
        *,
        key: PRNGKeyArray,
        channels: int = 32,
        in_channels: int = 1,
        time_conditioned: bool = False,
        embed_dim: int = 32,
        fourier_scale: float = 16.0,
        num_classes: int | None = None,
        conditioning: str = "projection",
        spectral_norm: bool = False,
        power_iterations: int = 1,
    ):
        c = check_size("channels", channels)
        self.in_channels = check_size("in_channels", in_channels)
        check_flag("time_conditioned", time_conditioned)
        sn = self.spectral_norm = check_flag("spectral_norm", spectral_norm)
        self.conditioning = check_conditioning(conditioning)
        if num_classes is not None:
            num_classes = check_size("num_classes", num_classes)
        width = c if conditioning == "concat" else 2 * c * 4
        iters = check_size("power_iterations", power_iterations)
        self.label_embedding = label_embedding(num_classes, width, key, sn, iters)
        sn_keys = iter(jr.split(jr.fold_in(key, 104729), 8))

        def wrap(layer: Any) -> Any:
            return maybe_spectral(layer, sn, next(sn_keys), iters)

        k = jr.split(key, 9)
        self.conv0 = wrap(eqx.nn.Conv2d(in_channels, c, 3, padding=1, key=k[0]))
        self.conv1 = wrap(eqx.nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, key=k[1]))
        self.conv2 = wrap(eqx.nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1, key=k[2]))
        self.out = wrap(eqx.nn.Linear(2 * c * 4, "scalar", key=k[3]))
        self.time_conditioned = time_conditioned
        if time_conditioned:
            embed_dim = check_size("embed_dim", embed_dim, even=True, minimum=2)
            self.embedding = FourierEmbedding(embed_dim, key=k[4], scale=fourier_scale)
            self.time_proj = wrap(eqx.nn.Linear(embed_dim, embed_dim, key=k[5]))
            self.conds = tuple(
                wrap(eqx.nn.Linear(embed_dim, width, key=kk))
                for width, kk in zip((c, 2 * c, 2 * c), k[6:9], strict=True)
            )
        else:
            self.embedding = self.time_proj = self.conds = None

    @overload
    def __call__(
        self,
        s_or_x: Real[ArrayLike, ""] | Float[Array, "k 8 8"],
        x: Float[Array, "k 8 8"] | Int[ArrayLike, ""] | None = None,
        y: Int[ArrayLike, ""] | None = None,
        *,
        state: None = None,
    ) -> Float[Array, ""]: ...

    @overload
    def __call__(
        self,
        s_or_x: Real[ArrayLike, ""] | Float[Array, "k 8 8"],
        x: Float[Array, "k 8 8"] | Int[ArrayLike, ""] | None = None,
        y: Int[ArrayLike, ""] | None = None,
        *,
        state: eqx.nn.State,
    ) -> tuple[Float[Array, ""], eqx.nn.State]: ...

    def __call__(
        self,
        s_or_x: Real[ArrayLike, ""] | Float[Array, "k 8 8"],
        x: Float[Array, "k 8 8"] | Int[ArrayLike, ""] | None = None,
        y: Int[ArrayLike, ""] | None = None,
        *,
        state: eqx.nn.State | None = None,
    ) -> Float[Array, ""] | tuple[Float[Array, ""], eqx.nn.State]:
        s, x, y = _split_labelled_call(
            self.time_conditioned, self.label_embedding is not None, s_or_x, x, y
        )
        what = f"one {self.in_channels}-channel 8×8 image"
        check_event("x", x, (self.in_channels, 8, 8), what)
        check_state(self.spectral_norm, state)
        if self.embedding is None or self.time_proj is None or self.conds is None:
            shifts: list[Any] = [0.0, 0.0, 0.0]
        else:
            pre, state = apply(self.time_proj, self.embedding(s), state)
            e = leaky_relu(pre)
            shifts = []
            for cond in self.conds:
                shift, state = apply(cond, e, state)
                shifts.append(shift[:, None, None])
        row, state = label_row(self.label_embedding, y, state, "discriminator")
        if row is not None and self.conditioning == "concat":
            shifts[0] = shifts[0] + row[:, None, None]
        h = x
        for conv, shift in zip((self.conv0, self.conv1, self.conv2), shifts, strict=True):
            pre, state = apply(conv, h, state)
            h = leaky_relu(pre + shift)
        phi = jnp.ravel(h)
        out, state = apply(self.out, phi, state)
        if row is not None and self.conditioning == "projection":
            out = out + jnp.dot(row, phi)
        if self.spectral_norm and state is not None:
            return out, state
        return out
