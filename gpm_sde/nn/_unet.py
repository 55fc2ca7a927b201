r"""A small convolutional U-Net for 8×8 single-channel images."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, Real

from ._blocks import ResBlock, upsample2
from ._common import check_channels, check_event, check_size, num_groups
from ._embedding import FourierEmbedding
from ._spectral import label_embedding, label_row

IMAGE_SHAPE = (1, 8, 8)


class UNet8(eqx.Module):
    r"""A time/σ-conditioned U-Net $F_\theta(t, x)$ for one image $x \in \mathbb{R}^{1\times 8
    \times 8}$ (Ronneberger et al. 2015; the DDPM/NCSN++ layout of Ho et al. 2020, appendix B,
    and Song et al. 2021, appendix H, scaled down):

    ```
    8×8: conv_in → ResBlock(c₀) ───────────────────────────── skip ─┐
    4×4:   ↓ stride-2 conv → ResBlock(c₁) ───────────── skip ─┐      │
    2×2:        ↓ stride-2 conv → ResBlock(c₂)                │      │
    4×4:   ↑ nearest + conv → concat ─────────────────────────┘ → ResBlock(c₁)
    8×8: ↑ nearest + conv → concat ─────────────────────────────────┘ → ResBlock(c₀)
         → GroupNorm → SiLU → conv_out (1 channel)
    ```

    Every residual block normalises with GroupNorm (at most 8 groups) and is conditioned on
    the time embedding $e = \operatorname{SiLU}(A\gamma(t))$ ($\gamma$ the Gaussian Fourier
    features of [`FourierEmbedding`][gpm_sde.nn.FourierEmbedding]) by a per-channel scale and
    shift after its second normalisation (AdaGN, Dhariwal & Nichol 2021, §3). The raw output
    has the shape of the input; wrap it in a score parameterisation.

    With `num_classes=K` the network is class-conditional, $F_\theta(t, x, y)$: a learned
    label embedding $E_y \in \mathbb{R}^{\text{embed\_dim}}$ is added to the time
    embedding, $e = \operatorname{SiLU}(A\gamma(t) + E_y)$ (a class embedding added to the
    timestep embedding, as in the class-conditional U-Net of Dhariwal & Nichol 2021;
    reconstructed, not checked line by line against their code), with
    the extra index $K$ the *null label* of classifier-free training (Ho & Salimans 2022,
    sec. 3.2), exactly as in [`ScoreMLP`][gpm_sde.nn.ScoreMLP].

    **Arguments:**

    - `key`: PRNG key.
    - `channels`: $(c_0, c_1, c_2)$, the widths at 8×8, 4×4 and 2×2.
    - `embed_dim`: size of the Fourier time embedding (even).
    - `fourier_scale`: standard deviation of the Fourier frequencies.
    - `num_classes`: if given, the number $K$ of classes of a class-conditional network
      (label embedding with $K + 1$ rows, the last the null label). `None` (the default)
      leaves the network unconditional and its parameters unchanged.

    Called as `net(t, x)` with a scalar `t` and `x: (1, 8, 8)`; returns `(1, 8, 8)`. A
    conditional network is called as `net(t, x, y)` with an integer label `y` in
    `[0, num_classes]` (`y = num_classes` or `y = None`: the null label); the
    parameterisation wrappers pass the label through (`EpsilonParam(net, sigma)(t, x, y)`),
    and [`bind_label`][gpm_sde.scores.bind_label] binds it.

    Any other conditioning vector $c \in \mathbb{R}^{\text{embed\_dim}}$ enters the same
    way, `net(t, x, cond=c)`: $e = \operatorname{SiLU}(A\gamma(t) + E_y + c)$ (the
    Denoising Diffusion GAN generator [`DDGANUNet8`][gpm_sde.nn.DDGANUNet8] passes its mapped
    latent so).
    """

    embedding: FourierEmbedding
    time_proj: eqx.nn.Linear
    label_embedding: eqx.nn.Embedding | None
    conv_in: eqx.nn.Conv2d
    block0: ResBlock
    down1: eqx.nn.Conv2d
    block1: ResBlock
    down2: eqx.nn.Conv2d
    mid: ResBlock
    up1: eqx.nn.Conv2d
    block_up1: ResBlock
    up0: eqx.nn.Conv2d
    block_up0: ResBlock
    norm_out: eqx.nn.GroupNorm
    conv_out: eqx.nn.Conv2d

    def __init__(
        self,
        *,
        key: PRNGKeyArray,
        channels: Sequence[int] = (32, 64, 64),
        embed_dim: int = 32,
        fourier_scale: float = 16.0,
        num_classes: int | None = None,
    ):
        c0, c1, c2 = check_channels("channels", channels, 3)
        embed_dim = check_size("embed_dim", embed_dim, even=True, minimum=2)
        if num_classes is not None:
            num_classes = check_size("num_classes", num_classes)
        self.label_embedding = label_embedding(num_classes, embed_dim, key)
        k = jr.split(key, 13)
        self.embedding = FourierEmbedding(embed_dim, key=k[0], scale=fourier_scale)
        self.time_proj = eqx.nn.Linear(embed_dim, embed_dim, key=k[1])
        self.conv_in = eqx.nn.Conv2d(1, c0, 3, padding=1, key=k[2])
        self.block0 = ResBlock(c0, c0, embed_dim, key=k[3])
        self.down1 = eqx.nn.Conv2d(c0, c1, 3, stride=2, padding=1, key=k[4])
        self.block1 = ResBlock(c1, c1, embed_dim, key=k[5])
        self.down2 = eqx.nn.Conv2d(c1, c2, 3, stride=2, padding=1, key=k[6])
        self.mid = ResBlock(c2, c2, embed_dim, key=k[7])
        self.up1 = eqx.nn.Conv2d(c2, c1, 3, padding=1, key=k[8])
        self.block_up1 = ResBlock(2 * c1, c1, embed_dim, key=k[9])
        self.up0 = eqx.nn.Conv2d(c1, c0, 3, padding=1, key=k[10])
        self.block_up0 = ResBlock(2 * c0, c0, embed_dim, key=k[11])
        self.norm_out = eqx.nn.GroupNorm(num_groups(c0), c0)
        self.conv_out = eqx.nn.Conv2d(c0, 1, 3, padding=1, key=k[12])

    def __call__(
        self,
        t: Real[ArrayLike, ""],
        x: Float[Array, "1 8 8"],
        y: Int[ArrayLike, ""] | None = None,
        *,
        cond: Float[Array, " embed"] | None = None,
    ) -> Float[Array, "1 8 8"]:
        check_event("x", x, IMAGE_SHAPE, "one single-channel 8×8 image")
        pre = self.time_proj(self.embedding(t))
        row, _ = label_row(self.label_embedding, y, None, "UNet8")
        if row is not None:
            pre = pre + row
        if cond is not None:
            check_event("cond", cond, pre.shape, "the embedding size `embed_dim`")
            pre = pre + cond.astype(pre.dtype)
        e = jax.nn.silu(pre)
        h0 = self.block0(self.conv_in(x), e)  # (c0, 8, 8)
        h1 = self.block1(self.down1(h0), e)  # (c1, 4, 4)
        h = self.mid(self.down2(h1), e)  # (c2, 2, 2)
        h = self.up1(upsample2(h))  # (c1, 4, 4)
        h = self.block_up1(jnp.concatenate([h, h1]), e)
        h = self.up0(upsample2(h))  # (c0, 8, 8)
        h = self.block_up0(jnp.concatenate([h, h0]), e)
        return self.conv_out(jax.nn.silu(self.norm_out(h)))
