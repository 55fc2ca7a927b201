r"""`train_gan`: alternating discriminator and generator steps for every GAN loss."""

from __future__ import annotations

from typing import Any, TypeVar, Unpack

import jax
import jax.random as jr
import numpy as np
import optax
from jaxtyping import PRNGKeyArray

from ..losses import AbstractGANLoss, clip_weights, gan_loss, gradient_penalty, r1_penalty
from ._common import (
    as_sampler,
    check_batch_size,
    check_optimizer,
    draw_latents,
    ema_init,
    ema_update,
    float_dtype,
    latent_shape,
    opt_init,
    opt_step,
    value_and_grad,
)
from .loop import LoopOptions, check_steps, run_loop

_G = TypeVar("_G")
_D = TypeVar("_D")
Penalty = str | None  # "gp", "r1" or None, checked by `check_penalty`


def as_gan_loss(loss: Any) -> AbstractGANLoss:
    """A GAN loss object from a name of [`gan_loss`][gpm_sde.losses.gan_loss] or itself."""
    if isinstance(loss, AbstractGANLoss):
        return loss
    if isinstance(loss, str):
        return gan_loss(loss)
    raise TypeError(
        f"`loss` must be a loss name such as 'nonsaturating' or 'wgan', or a "
        f"gpm_sde.losses GAN loss object, got {type(loss).__name__}."
    )


def check_penalty(penalty: Any, weight: Any) -> None:
    if penalty not in ("gp", "r1", None):
        raise ValueError(
            f"`penalty` must be 'gp' (WGAN-GP interpolation penalty), 'r1' or None, got "
            f"{penalty!r}."
        )
    if not float(weight) >= 0.0:
        raise ValueError(f"`penalty_weight` must be >= 0, got {weight!r}.")


def penalty_term(
    penalty: Penalty, weight: float, d: Any, real: Any, fake: Any, key: PRNGKeyArray
) -> Any:
    """The regulariser added to the discriminator loss (0 when `penalty` is None)."""
    if penalty == "gp":
        return gradient_penalty(d, real, fake, key, lam=weight)
    if penalty == "r1":
        return r1_penalty(d, real, gamma=weight)
    return jax.numpy.zeros((), real.dtype)


def train_gan(
    generator: _G,
    discriminator: _D,
    data: Any,
    key: PRNGKeyArray,
    *,
    steps: int,
    loss: str | AbstractGANLoss = "nonsaturating",
    batch_size: int = 256,
    latent_dim: int | None = None,
    d_steps: int = 1,
    penalty: Penalty = None,
    penalty_weight: float = 10.0,
    clip: float | None = None,
    g_optimizer: optax.GradientTransformation | None = None,
    d_optimizer: optax.GradientTransformation | None = None,
    lr: float = 2e-4,
    ema: float | None = None,
    **loop: Unpack[LoopOptions],
) -> tuple[_G, _D, dict[str, np.ndarray]]:
    r"""Train a GAN (Goodfellow et al. 2014, Algorithm 1): per step, `d_steps` descents of
    the discriminator loss plus its regulariser, then one descent of the generator loss,

    $$\phi \leftarrow \phi - \eta\nabla_\phi\big[\ell_D(D_\phi(x), D_\phi(G_\theta(z)))
    + R(\phi)\big],\qquad \theta \leftarrow \theta - \eta\nabla_\theta\,
    \ell_G(D_\phi(G_\theta(z))),$$

    with fresh real and latent batches for every descent. The loss pairs $(\ell_D, \ell_G)$ are
    those of `gpm_sde.losses` (critic trained high on data): `"minimax"`, `"nonsaturating"`,
    `"wgan"` (with `clip=0.01`: WGAN, Arjovsky et al. 2017, Alg. 1, `d_steps=5`; with
    `penalty="gp"`: WGAN-GP, Gulrajani et al. 2017, Alg. 1, λ = 10), `"hinge"`,
    `"lsgan"`, or a loss object (e.g. `FGAN(f_divergence("kl"))`).

    **Arguments:**

    - `generator`: `G(z)` on one latent; `discriminator`: `D(x)` on one point, a scalar.
    - `data`: real data `(N, *event)`, a law with `.sample`, or a callable `(key, n)`.
    - `key`: PRNG key of the run. `steps`: generator steps.
    - `loss`: a name accepted by [`gan_loss`][gpm_sde.losses.gan_loss] or a loss object.
    - `batch_size`: real and generated points per descent.
    - `latent_dim`: the latent size (default: `generator.latent_dim`); latents are
      $\mathcal{N}(0, I)$.
    - `d_steps`: discriminator descents per generator descent.
    - `penalty`: `"gp"` (interpolation penalty), `"r1"` or `None`; `penalty_weight`: λ or γ.
    - `clip`: if set, clip the discriminator weights to $[-c, c]$ after each descent.
    - `g_optimizer`, `d_optimizer`: optax transformations (default `optax.adam(lr, b1=0.5)`,
      as in DCGAN).
    - `ema`: if set, a decay $d$: the returned generator is the exponential moving average of
      the generator iterates (Yazıcı et al. 2019), bias-corrected as in
      [`fit_score`][gpm_sde.train.fit_score] (no share for the initial weights). GAN games
      rotate around their equilibrium rather than converge to it (WGAN-GP is not locally
      convergent, Mescheder et al. 2018, §3), and the average sits near the centre of the
      orbit.
    - `**loop`: the loop options `checkpoint`, `resume`, `checkpoint_every`, `progress`
      and `chunk` ([`LoopOptions`][gpm_sde.train.LoopOptions]).

    Returns `(generator, discriminator, history)` with `d_loss` (without the regulariser),
    `penalty` and `g_loss` per step.
    """
    gan = as_gan_loss(loss)
    batch_size = check_batch_size(batch_size)
    d_steps = check_steps(d_steps, "d_steps")
    check_penalty(penalty, penalty_weight)
    if clip is not None and not float(clip) > 0.0:
        raise ValueError(f"`clip` must be a positive weight bound c or None, got {clip!r}.")
    default = optax.adam(lr, b1=0.5)
    g_opt = check_optimizer(g_optimizer or default, "g_optimizer", lr)
    d_opt = check_optimizer(d_optimizer or default, "d_optimizer", lr)
    shape = latent_shape(generator, latent_dim)
    sample = as_sampler(data)
    dtype = float_dtype()

    def d_loss_fn(d: Any, g: Any, real: Any, z: Any, k: PRNGKeyArray) -> Any:
        fake = jax.lax.stop_gradient(jax.vmap(g)(z))
        raw = gan.discriminator_loss(jax.vmap(d)(real), jax.vmap(d)(fake))
        reg = penalty_term(penalty, penalty_weight, d, real, fake, k)
        return raw + reg, (raw, reg)

    def g_loss_fn(g: Any, d: Any, z: Any) -> Any:
        return gan.generator_loss(jax.vmap(d)(jax.vmap(g)(z)))

    def step(state: Any, k: PRNGKeyArray) -> Any:
        g, d, g_state, d_state, avg = state
        keys = jr.split(k, d_steps + 1)
        for kd in keys[:d_steps]:
            k_real, k_z, k_pen = jr.split(kd, 3)
            real = sample(k_real, batch_size)
            z = draw_latents(k_z, batch_size, shape, dtype)
            (_, (raw, reg)), grads = value_and_grad(d_loss_fn, d, g, real, z, k_pen, has_aux=True)
            d, d_state = opt_step(d_opt, d, grads, d_state)
            if clip is not None:
                d = clip_weights(d, float(clip))
        z = draw_latents(keys[-1], batch_size, shape, dtype)
        g_loss, grads = value_and_grad(g_loss_fn, g, d, z)
        g, g_state = opt_step(g_opt, g, grads, g_state)
        if avg is not None:
            avg = ema_update(avg, g, float(ema))  # pyright: ignore[reportArgumentType]
        metrics = {"d_loss": raw, "penalty": reg, "g_loss": g_loss}
        return (g, d, g_state, d_state, avg), metrics

    if ema is not None and not 0.0 <= float(ema) < 1.0:
        raise ValueError(f"`ema` must be a decay in [0, 1) or None, got {ema!r}.")
    state = (
        generator,
        discriminator,
        opt_init(g_opt, generator),
        opt_init(d_opt, discriminator),
        None if ema is None else ema_init(generator),
    )
    (generator, discriminator, _, _, avg), history = run_loop(
        "train_gan",
        step,
        state,
        key,
        steps=steps,
        **loop,
    )
    return (generator if avg is None else avg[0]), discriminator, history
