r"""GANs: [`GANState`][gpm_sde.train.GANState], [`gan_init`][gpm_sde.train.gan_init],
[`gan_make_step`][gpm_sde.train.gan_make_step] (alternating discriminator and generator
descents for every GAN loss) and the loop over them, [`train_gan`][gpm_sde.train.train_gan]."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, Unpack

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Int, PRNGKeyArray, PyTree

from .._checks import check_positive, check_scalar
from ..losses import AbstractGANLoss, clip_weights, gan_loss, gradient_penalty, r1_penalty
from ._common import (
    EMA,
    Trainable,
    as_sampler,
    check_batch_size,
    check_ema,
    check_optimizer,
    draw_latents,
    ema_init,
    ema_update,
    float_dtype,
    latent_shape,
    opt_init,
    opt_step,
    trainable_mask,
    value_and_grad,
)
from ._loop import LoopOptions, check_steps, run_loop

_G = TypeVar("_G")
_D = TypeVar("_D")
Penalty = str | None  # "gp", "r1" or None, checked by `check_penalty`


def as_gan_loss(loss: Any) -> AbstractGANLoss:
    """A GAN loss object from a name of [`gan_loss`][gpm_sde.losses.gan_loss] or itself."""
    if isinstance(loss, AbstractGANLoss):
        return loss
    if isinstance(loss, str):
        try:
            return gan_loss(loss)
        except ValueError as err:
            raise ValueError(
                f"`loss` must be a loss name accepted by `gan_loss` or a GAN loss object; {err}"
            ) from err
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


class GANState(eqx.Module):
    """The training state of a GAN, what [`train_gan`][gpm_sde.train.train_gan] checkpoints.

    - `generator`, `discriminator`: the current iterates.
    - `g_opt_state`, `d_opt_state`: their optimiser states.
    - `ema`: the [`EMA`][gpm_sde.train.EMA] of the generator iterates, or `None`.
    - `step`: the number of (generator) steps taken.
    - `g_trainable`, `d_trainable`: the masks of what trains (static).
    """

    generator: Any
    discriminator: Any
    g_opt_state: PyTree
    d_opt_state: PyTree
    ema: EMA | None
    step: Int[Array, ""]
    g_trainable: PyTree[bool] = eqx.field(static=True)
    d_trainable: PyTree[bool] = eqx.field(static=True)

    def models(self) -> tuple[Any, Any]:
        """`(generator, discriminator)` as `train_gan` returns them: the generator's EMA
        average if one is kept."""
        g = self.generator if self.ema is None else self.ema.average
        return g, self.discriminator


def _gan_optimizers(
    g_optimizer: Any, d_optimizer: Any, lr: float
) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    if g_optimizer is None or d_optimizer is None:
        check_scalar("lr", lr)
        check_positive("lr", lr, fix="pass a learning rate such as lr=2e-4")
    default = optax.adam(lr, b1=0.5)
    g_opt = check_optimizer(default if g_optimizer is None else g_optimizer, "g_optimizer", lr)
    d_opt = check_optimizer(default if d_optimizer is None else d_optimizer, "d_optimizer", lr)
    return g_opt, d_opt


def gan_init(
    generator: PyTree,
    discriminator: PyTree,
    g_optimizer: optax.GradientTransformation | None = None,
    d_optimizer: optax.GradientTransformation | None = None,
    *,
    ema: float | None = None,
    g_trainable: Trainable = None,
    d_trainable: Trainable = None,
    lr: float = 2e-4,
) -> GANState:
    """The initial [`GANState`][gpm_sde.train.GANState]: optimiser states of the trainable
    leaves of both networks (default optimisers `optax.adam(lr, b1=0.5)`), an
    [`EMA`][gpm_sde.train.EMA] of the generator if `ema` is set, step 0. `g_trainable` and
    `d_trainable` select what trains ([`Trainable`][gpm_sde.train.Trainable])."""
    g_opt, d_opt = _gan_optimizers(g_optimizer, d_optimizer, lr)
    ema = check_ema(ema)
    g_mask = trainable_mask(generator, g_trainable)
    d_mask = trainable_mask(discriminator, d_trainable)
    return GANState(
        generator=generator,
        discriminator=discriminator,
        g_opt_state=opt_init(g_opt, generator, g_mask),
        d_opt_state=opt_init(d_opt, discriminator, d_mask),
        ema=None if ema is None else ema_init(generator),
        step=jnp.zeros((), jnp.int32),
        g_trainable=g_mask,
        d_trainable=d_mask,
    )


def gan_make_step(
    data: Any,
    g_optimizer: optax.GradientTransformation | None = None,
    d_optimizer: optax.GradientTransformation | None = None,
    *,
    loss: str | AbstractGANLoss = "nonsaturating",
    batch_size: int = 256,
    latent_dim: int,
    d_steps: int = 1,
    penalty: Penalty = None,
    penalty_weight: float = 10.0,
    clip: float | None = None,
    ema: float | None = None,
    lr: float = 2e-4,
) -> Callable[[GANState, PRNGKeyArray], tuple[GANState, dict[str, Array]]]:
    r"""One GAN step (Goodfellow et al. 2014, Algorithm 1) as a pure jittable
    `step(state, key) -> (state, {"d_loss", "penalty", "g_loss"})`: `d_steps` descents of
    the discriminator loss plus its regulariser, then one descent of the generator loss,

    $$\phi \leftarrow \phi - \eta\nabla_\phi\big[\ell_D(D_\phi(x), D_\phi(G_\theta(z)))
    + R(\phi)\big],\qquad \theta \leftarrow \theta - \eta\nabla_\theta\,
    \ell_G(D_\phi(G_\theta(z))),$$

    with fresh real and latent batches drawn from `key` for every descent, then the EMA
    update of the generator if the state keeps one. The arguments are those of
    [`train_gan`][gpm_sde.train.train_gan] (`latent_dim`: the size of one latent $z$);
    the optimisers (and `ema`) must be those given to [`gan_init`][gpm_sde.train.gan_init].
    """
    gan = as_gan_loss(loss)
    batch_size = check_batch_size(batch_size)
    d_steps = check_steps(d_steps, "d_steps")
    check_penalty(penalty, penalty_weight)
    if clip is not None and not float(clip) > 0.0:
        raise ValueError(f"`clip` must be a positive weight bound c or None, got {clip!r}.")
    g_opt, d_opt = _gan_optimizers(g_optimizer, d_optimizer, lr)
    decay = check_ema(ema)
    sample = as_sampler(data)
    dtype = float_dtype()
    shape = latent_shape(None, latent_dim)

    def d_loss_fn(d: Any, g: Any, real: Any, z: Any, k: PRNGKeyArray) -> Any:
        fake = jax.lax.stop_gradient(jax.vmap(g)(z))
        raw = gan.discriminator_loss(jax.vmap(d)(real), jax.vmap(d)(fake))
        reg = penalty_term(penalty, penalty_weight, d, real, fake, k)
        return raw + reg, (raw, reg)

    def g_loss_fn(g: Any, d: Any, z: Any) -> Any:
        return gan.generator_loss(jax.vmap(d)(jax.vmap(g)(z)))

    def step(state: GANState, key: PRNGKeyArray) -> tuple[GANState, dict[str, Array]]:
        _check_ema_matches(decay, state.ema, "gan")
        g, d = state.generator, state.discriminator
        g_state, d_state, avg = state.g_opt_state, state.d_opt_state, state.ema
        g_mask, d_mask = state.g_trainable, state.d_trainable
        keys = jr.split(key, d_steps + 1)
        raw = reg = jnp.zeros((), dtype)
        for kd in keys[:d_steps]:
            k_real, k_z, k_pen = jr.split(kd, 3)
            real = sample(k_real, batch_size)
            z = draw_latents(k_z, batch_size, shape, dtype)
            (_, (raw, reg)), grads = value_and_grad(
                d_loss_fn, d, d_mask, g, real, z, k_pen, has_aux=True
            )
            d, d_state = opt_step(d_opt, d, grads, d_state, d_mask)
            if clip is not None:
                d = clip_weights(d, float(clip))
        z = draw_latents(keys[-1], batch_size, shape, dtype)
        g_loss, grads = value_and_grad(g_loss_fn, g, g_mask, d, z)
        g, g_state = opt_step(g_opt, g, grads, g_state, g_mask)
        if avg is not None:
            avg = ema_update(avg, g, decay, g_mask)  # pyright: ignore[reportArgumentType]
        new = GANState(g, d, g_state, d_state, avg, state.step + 1, g_mask, d_mask)
        return new, {"d_loss": raw, "penalty": reg, "g_loss": g_loss}

    return step


def _check_ema_matches(decay: float | None, ema: Any, family: str) -> None:
    if (decay is None) != (ema is None):
        raise ValueError(
            f"`ema` must be the same in `{family}_init` and `{family}_make_step` (the state "
            f"{'has no' if ema is None else 'has an'} EMA, the step has ema={decay})."
        )


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
    g_trainable: Trainable = None,
    d_trainable: Trainable = None,
    **loop: Unpack[LoopOptions],
) -> tuple[_G, _D, dict[str, np.ndarray]]:
    r"""Train a GAN (Goodfellow et al. 2014, Algorithm 1): per step, `d_steps` descents of
    the discriminator loss plus its regulariser, then one descent of the generator loss,

    $$\phi \leftarrow \phi - \eta\nabla_\phi\big[\ell_D(D_\phi(x), D_\phi(G_\theta(z)))
    + R(\phi)\big],\qquad \theta \leftarrow \theta - \eta\nabla_\theta\,
    \ell_G(D_\phi(G_\theta(z))),$$

    with fresh real and latent batches for every descent. A thin loop over
    [`gan_init`][gpm_sde.train.gan_init] and [`gan_make_step`][gpm_sde.train.gan_make_step]
    that checkpoints the [`GANState`][gpm_sde.train.GANState]. The loss pairs $(\ell_D, \ell_G)$ are
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
    - `g_trainable`, `d_trainable`: what trains in each network
      ([`Trainable`][gpm_sde.train.Trainable]; default
      [`default_trainable`][gpm_sde.train.default_trainable]).
    - `**loop`: the loop options `checkpoint`, `resume`, `checkpoint_every`, `progress`
      and `chunk` ([`LoopOptions`][gpm_sde.train.LoopOptions]).

    Returns `(generator, discriminator, history)` with `d_loss` (without the regulariser),
    `penalty` and `g_loss` per step.
    """
    (latent_dim,) = latent_shape(generator, latent_dim)
    g_opt, d_opt = _gan_optimizers(g_optimizer, d_optimizer, lr)
    step = gan_make_step(
        data,
        g_opt,
        d_opt,
        loss=loss,
        batch_size=batch_size,
        latent_dim=latent_dim,
        d_steps=d_steps,
        penalty=penalty,
        penalty_weight=penalty_weight,
        clip=clip,
        ema=ema,
    )
    state = gan_init(
        generator,
        discriminator,
        g_opt,
        d_opt,
        ema=ema,
        g_trainable=g_trainable,
        d_trainable=d_trainable,
    )
    state, history = run_loop("train_gan", step, state, key, steps=steps, **loop)
    generator, discriminator = state.models()
    return generator, discriminator, history
