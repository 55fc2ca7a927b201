r"""Convolutional Denoising Diffusion GAN networks for 8×8 single-channel images (Xiao, Kreis &
Vahdat 2022): the generator $G(x_n, z, n) \approx x_0$ on the U-Net of
[`UNet8`][gpm_sde.nn.UNet8] and the pair discriminator $D(x_{n-1}, x_n, n)$ on
[`ConvDiscriminator8`][gpm_sde.nn.ConvDiscriminator8]."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from ._common import check_event, check_size
from ._conv import ConvDiscriminator8
from ._unet import IMAGE_SHAPE, UNet8


def _step_time(n: Int[ArrayLike, ""], num_steps: int) -> Array:
    # The step n in 1..T as the time n / T in (0, 1] of the networks' Fourier embeddings.
    return jnp.asarray(n) / num_steps


class DDGANUNet8(eqx.Module):
    r"""The generator of Denoising Diffusion GAN for one 8×8 image: a U-Net that maps a noisy
    image $x_n$, a latent $z$ and the 1-based step $n$ to a prediction of the clean image,

    $$w = \operatorname{MLP}\!\Big(\frac{z}{\sqrt{\tfrac1k\|z\|^2 + 10^{-8}}}\Big),\qquad
    \hat x_0 = \tanh\big(F_\theta(n/T,\ x_n;\ w)\big),$$

    with $F_\theta$ a [`UNet8`][gpm_sde.nn.UNet8] whose conditioning is $e =
    \operatorname{SiLU}(A\gamma(n/T) + w)$: the mapped latent shifts the time embedding, so both
    enter every residual block through its adaptive group normalisation. The authors' generator
    (their `ncsnpp_generator_adagn.py`) maps $z$ the same way (pixel norm, then dense layers
    with SiLU, `n_mlp` = 3 hidden) and ends in $\tanh$ by default (`not_use_tanh=False`); it
    feeds $w$ to a separate style modulation of each group norm rather than adding it to the
    time embedding, and it is an NCSN++ with attention: this is the 8×8 version. The fake
    $x_{n-1}$ is then drawn from the forward posterior at $\hat x_0$
    ([`ddgan_posterior_sample`][gpm_sde.samplers.ddgan_posterior_sample]).

    **Arguments:**

    - `latent_dim`: $k$, the size of $z$.
    - `num_steps`: $T$, the number of denoising steps of the chain.
    - `key`: PRNG key.
    - `channels`: $(c_0, c_1, c_2)$ of the U-Net; `embed_dim`: its embedding size (even).
    - `mapping_depth`: the number of hidden layers of the latent's MLP (3, as theirs).

    Called as `G(x_n, z, n)` with `x_n: (1, 8, 8)`, `z: (latent_dim,)` and an integer `n` in
    $1..T$; returns $\hat x_0$, `(1, 8, 8)`, in $[-1, 1]$.
    """

    unet: UNet8
    mapping: eqx.nn.MLP
    latent_dim: int = eqx.field(static=True)
    num_steps: int = eqx.field(static=True)

    def __init__(
        self,
        latent_dim: int,
        num_steps: int,
        *,
        key: PRNGKeyArray,
        channels: Sequence[int] = (32, 64, 64),
        embed_dim: int = 32,
        mapping_depth: int = 3,
    ):
        self.latent_dim = check_size("latent_dim", latent_dim)
        self.num_steps = check_size("num_steps", num_steps)
        depth = check_size("mapping_depth", mapping_depth)
        k_unet, k_map = jr.split(key)
        self.unet = UNet8(key=k_unet, channels=channels, embed_dim=embed_dim)
        self.mapping = eqx.nn.MLP(
            latent_dim,
            embed_dim,
            embed_dim,
            depth,
            activation=jax.nn.silu,
            final_activation=jax.nn.silu,
            key=k_map,
        )

    def __call__(
        self, x_n: Float[Array, "1 8 8"], z: Float[Array, " latent_dim"], n: Int[ArrayLike, ""]
    ) -> Float[Array, "1 8 8"]:
        check_event("x_n", x_n, IMAGE_SHAPE, "one single-channel 8×8 image")
        check_event("z", z, (self.latent_dim,), "the latent dimension `latent_dim`")
        z = z.astype(x_n.dtype)
        w = self.mapping(z / jnp.sqrt(jnp.mean(z**2) + 1e-8))
        return jnp.tanh(self.unet(_step_time(n, self.num_steps), x_n, cond=w))


class DDGANConvDiscriminator8(eqx.Module):
    r"""The discriminator of Denoising Diffusion GAN for pairs of 8×8 images: is $x_{n-1}$ a
    real denoising of $x_n$ at step $n$? The pair is stacked as two channels and read by a
    time-conditioned [`ConvDiscriminator8`][gpm_sde.nn.ConvDiscriminator8] at time $n/T$,

    $$D(x_{n-1}, x_n, n) = D_\phi\big(n/T,\ [x_{n-1}; x_n]\big),$$

    a scalar logit, as the authors' discriminators concatenate $x_t$ and $x_{t+1}$ along the
    channels and add a time embedding to their feature maps (their `discriminator.py`). No
    normalisation layers, so R1 acts on a per-pair function.

    **Arguments:**

    - `num_steps`: $T$; `key`: PRNG key; `channels`: $c$ of the convolutional trunk;
      `embed_dim`: the size of its Fourier time embedding (even).

    Called as `D(x_prev, x_n, n)` with `x_prev, x_n: (1, 8, 8)` and an integer `n` in
    $1..T$; returns a scalar `()`.
    """

    net: ConvDiscriminator8
    num_steps: int = eqx.field(static=True)

    def __init__(
        self, num_steps: int, *, key: PRNGKeyArray, channels: int = 32, embed_dim: int = 32
    ):
        self.num_steps = check_size("num_steps", num_steps)
        self.net = ConvDiscriminator8(
            key=key, channels=channels, in_channels=2, time_conditioned=True, embed_dim=embed_dim
        )

    def __call__(
        self, x_prev: Float[Array, "1 8 8"], x_n: Float[Array, "1 8 8"], n: Int[ArrayLike, ""]
    ) -> Float[Array, ""]:
        check_event("x_prev", x_prev, IMAGE_SHAPE, "one single-channel 8×8 image")
        check_event("x_n", x_n, IMAGE_SHAPE, "one single-channel 8×8 image")
        pair = jnp.concatenate([x_prev, x_n.astype(x_prev.dtype)])
        return self.net(_step_time(n, self.num_steps), pair)
