r"""Denoising Diffusion GAN (Xiao, Kreis & Vahdat 2022):
[`DDGANState`][gpm_sde.train.DDGANState], [`ddgan_init`][gpm_sde.train.ddgan_init],
[`ddgan_make_step`][gpm_sde.train.ddgan_make_step] and the loop over them,
[`train_ddgan`][gpm_sde.train.train_ddgan]."""

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
from ..losses import AbstractGANLoss
from ..processes import DDPM
from ..samplers import ddgan_chain, ddgan_pairs, ddgan_posterior_sample
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
from ._gan import as_gan_loss
from ._loop import LoopOptions, run_loop

_G = TypeVar("_G")
_D = TypeVar("_D")


class DDGANState(eqx.Module):
    """The training state of a Denoising Diffusion GAN, what
    [`train_ddgan`][gpm_sde.train.train_ddgan] checkpoints.

    - `generator` `G(x_n, z, n)`, `discriminator` `D(x_prev, x_n, n)`: the current iterates.
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
        """`(generator, discriminator)` as `train_ddgan` returns them: the generator's EMA
        average if one is kept."""
        g = self.generator if self.ema is None else self.ema.average
        return g, self.discriminator


def _optimizers(
    g_optimizer: Any, d_optimizer: Any, g_lr: float, d_lr: float
) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    opts = []
    for opt, lr, name in ((g_optimizer, g_lr, "g"), (d_optimizer, d_lr, "d")):
        if opt is None:
            check_scalar(f"{name}_lr", lr)
            check_positive(f"{name}_lr", lr, fix="pass a learning rate such as 1e-4")
            opt = optax.adam(lr, b1=0.5, b2=0.9)
        opts.append(check_optimizer(opt, f"{name}_optimizer", lr))
    return opts[0], opts[1]


def _check_chain(chain: Any, generator: Any = None, discriminator: Any = None) -> DDPM:
    if not isinstance(chain, DDPM):
        raise TypeError(
            f"`chain` must be a DDPM chain such as `gpm_sde.samplers.ddgan_chain(4)`, got "
            f"{type(chain).__name__}."
        )
    for name, net in (("generator", generator), ("discriminator", discriminator)):
        steps = getattr(net, "num_steps", None)
        if steps is not None and steps != chain.n_steps:
            raise ValueError(
                f"the `{name}` was built for num_steps={steps} but the chain has "
                f"{chain.n_steps} steps; build both with the same T."
            )
    return chain


def ddgan_init(
    generator: PyTree,
    discriminator: PyTree,
    g_optimizer: optax.GradientTransformation | None = None,
    d_optimizer: optax.GradientTransformation | None = None,
    *,
    ema: float | None = None,
    g_trainable: Trainable = None,
    d_trainable: Trainable = None,
    g_lr: float = 1.5e-4,
    d_lr: float = 1e-4,
) -> DDGANState:
    """The initial [`DDGANState`][gpm_sde.train.DDGANState]: optimiser states of the trainable
    leaves of both networks (default optimisers `optax.adam(lr, b1=0.5, b2=0.9)` with
    `g_lr` and `d_lr`, the defaults of the authors' `train_ddgan.py`), an
    [`EMA`][gpm_sde.train.EMA] of the generator if `ema` is set, step 0."""
    g_opt, d_opt = _optimizers(g_optimizer, d_optimizer, g_lr, d_lr)
    ema = check_ema(ema)
    g_mask = trainable_mask(generator, g_trainable)
    d_mask = trainable_mask(discriminator, d_trainable)
    return DDGANState(
        generator=generator,
        discriminator=discriminator,
        g_opt_state=opt_init(g_opt, generator, g_mask),
        d_opt_state=opt_init(d_opt, discriminator, d_mask),
        ema=None if ema is None else ema_init(generator),
        step=jnp.zeros((), jnp.int32),
        g_trainable=g_mask,
        d_trainable=d_mask,
    )


def _r1(d: Any, x_prev: Array, x_n: Array, n: Array, gamma: float) -> Array:
    # γ/2 E ||∇_{x_prev} D(x_prev, x_n, n)||², on the real pairs (the denoised input only).
    grads = jax.vmap(jax.grad(lambda a, b, k: d(a, b, k)))(x_prev, x_n, n)
    return 0.5 * gamma * jnp.mean(jnp.sum(grads.reshape(grads.shape[0], -1) ** 2, axis=1))


def ddgan_make_step(
    data: Any,
    chain: DDPM,
    g_optimizer: optax.GradientTransformation | None = None,
    d_optimizer: optax.GradientTransformation | None = None,
    *,
    latent_dim: int,
    loss: str | AbstractGANLoss = "nonsaturating",
    batch_size: int = 256,
    r1_gamma: float = 0.05,
    ema: float | None = None,
    g_lr: float = 1.5e-4,
    d_lr: float = 1e-4,
) -> Callable[[DDGANState, PRNGKeyArray], tuple[DDGANState, dict[str, Array]]]:
    r"""One step of Denoising Diffusion GAN (Xiao, Kreis & Vahdat 2022, the adversarial
    objective over the denoising steps; the authors' `train_ddgan.py`) as a pure jittable
    `step(state, key) -> (state, {"d_loss", "r1", "g_loss"})`. With $x_0$ a data batch,
    steps $n \sim \mathcal{U}\{1..T\}$ per point, real pairs $(x_{n-1}, x_n) \sim
    q(x_{n-1}, x_n \mid x_0)$ ([`ddgan_pairs`][gpm_sde.samplers.ddgan_pairs]) and fakes
    $x'_{n-1} \sim q(x_{n-1} \mid x_n, \hat x_0)$, $\hat x_0 = G(x_n, z, n)$
    ([`ddgan_posterior_sample`][gpm_sde.samplers.ddgan_posterior_sample]):

    $$\phi \leftarrow \phi - \eta\nabla_\phi\Big[\ell_D\big(D_\phi(x_{n-1}, x_n, n),
    D_\phi(x'_{n-1}, x_n, n)\big) + \tfrac{\gamma}{2}\,\mathbb{E}\big\|\nabla_{x_{n-1}}
    D_\phi(x_{n-1}, x_n, n)\big\|^2\Big],$$

    $$\theta \leftarrow \theta - \eta\nabla_\theta\,\ell_G\big(D_\phi(x'_{n-1}, x_n, n)\big),$$

    with $(\ell_D, \ell_G)$ the non-saturating pair by default ($\operatorname{softplus}(-D)$
    on real, $\operatorname{softplus}(D)$ on fake; $\operatorname{softplus}(-D)$ for the
    generator), R1 on the real pairs' denoised input $x_{n-1}$ as theirs (their default
    $\gamma = 0.05$), and fresh data, steps, pairs and latents for the generator descent;
    then the EMA update of the generator if the state keeps one. The arguments are those of
    [`train_ddgan`][gpm_sde.train.train_ddgan]; the optimisers (and `ema`) must be those given
    to [`ddgan_init`][gpm_sde.train.ddgan_init].
    """
    chain = _check_chain(chain)
    gan = as_gan_loss(loss)
    batch_size = check_batch_size(batch_size)
    check_scalar("r1_gamma", r1_gamma)
    check_positive("r1_gamma", r1_gamma, strict=False, fix="pass e.g. r1_gamma=0.05, or 0")
    gamma = float(r1_gamma)
    g_opt, d_opt = _optimizers(g_optimizer, d_optimizer, g_lr, d_lr)
    decay = check_ema(ema)
    sample = as_sampler(data)
    dtype = float_dtype()
    shape = latent_shape(None, latent_dim)
    T = chain.n_steps

    def batch(key: PRNGKeyArray) -> tuple[Array, Array, Array, Array, PRNGKeyArray]:
        k_data, k_n, k_pair, k_z, k_post = jr.split(key, 5)
        x0 = sample(k_data, batch_size)
        n = jr.randint(k_n, (batch_size,), 1, T + 1)
        x_prev, x_n = ddgan_pairs(chain, k_pair, x0, n)
        z = draw_latents(k_z, batch_size, shape, x0.dtype)
        return x_prev, x_n, n, z, k_post

    def fake(g: Any, x_n: Array, z: Array, n: Array, key: PRNGKeyArray) -> Array:
        x0_hat = jax.vmap(g)(x_n, z, n).astype(x_n.dtype)
        return ddgan_posterior_sample(chain, key, x0_hat, x_n, n)

    def d_loss_fn(d: Any, g: Any, key: PRNGKeyArray) -> Any:
        x_prev, x_n, n, z, k_post = batch(key)
        x_fake = jax.lax.stop_gradient(fake(g, x_n, z, n, k_post))
        raw = gan.discriminator_loss(jax.vmap(d)(x_prev, x_n, n), jax.vmap(d)(x_fake, x_n, n))
        reg = _r1(d, x_prev, x_n, n, gamma) if gamma > 0 else jnp.zeros((), raw.dtype)
        return raw + reg, (raw, reg)

    def g_loss_fn(g: Any, d: Any, key: PRNGKeyArray) -> Any:
        _, x_n, n, z, k_post = batch(key)
        return gan.generator_loss(jax.vmap(d)(fake(g, x_n, z, n, k_post), x_n, n))

    def step(state: DDGANState, key: PRNGKeyArray) -> tuple[DDGANState, dict[str, Array]]:
        if (decay is None) != (state.ema is None):
            raise ValueError(
                f"`ema` must be the same in `ddgan_init` and `ddgan_make_step` (the state "
                f"{'has no' if state.ema is None else 'has an'} EMA, the step has ema={decay})."
            )
        g, d = state.generator, state.discriminator
        g_mask, d_mask = state.g_trainable, state.d_trainable
        k_d, k_g = jr.split(key)
        (_, (raw, reg)), grads = value_and_grad(d_loss_fn, d, d_mask, g, k_d, has_aux=True)
        d, d_state = opt_step(d_opt, d, grads, state.d_opt_state, d_mask)
        g_loss, grads = value_and_grad(g_loss_fn, g, g_mask, d, k_g)
        g, g_state = opt_step(g_opt, g, grads, state.g_opt_state, g_mask)
        avg = state.ema
        if avg is not None:
            avg = ema_update(avg, g, decay, g_mask)  # pyright: ignore[reportArgumentType]
        new = DDGANState(g, d, g_state, d_state, avg, state.step + 1, g_mask, d_mask)
        return new, {
            "d_loss": raw.astype(dtype),
            "r1": reg.astype(dtype),
            "g_loss": g_loss.astype(dtype),
        }

    return step


def train_ddgan(
    generator: _G,
    discriminator: _D,
    data: Any,
    key: PRNGKeyArray,
    *,
    steps: int,
    num_steps: int = 4,
    chain: DDPM | None = None,
    loss: str | AbstractGANLoss = "nonsaturating",
    batch_size: int = 256,
    latent_dim: int | None = None,
    r1_gamma: float = 0.05,
    g_optimizer: optax.GradientTransformation | None = None,
    d_optimizer: optax.GradientTransformation | None = None,
    g_lr: float = 1.5e-4,
    d_lr: float = 1e-4,
    ema: float | None = None,
    g_trainable: Trainable = None,
    d_trainable: Trainable = None,
    **loop: Unpack[LoopOptions],
) -> tuple[_G, _D, dict[str, np.ndarray]]:
    r"""Train a Denoising Diffusion GAN (Xiao, Kreis & Vahdat 2022): a conditional GAN models
    each denoising step $q(x_{n-1} \mid x_n)$ of a short chain ($T$ = `num_steps`, 2 to 4
    for few-step sampling), the generator predicting $\hat x_0 = G(x_n, z, n)$ and the fake
    $x_{n-1}$ drawn from the forward posterior $q(x_{n-1} \mid x_n, \hat x_0)$, the
    discriminator $D(x_{n-1}, x_n, n)$ telling real pairs from fake ones (the step of
    [`ddgan_make_step`][gpm_sde.train.ddgan_make_step]). A thin loop over
    [`ddgan_init`][gpm_sde.train.ddgan_init] and `ddgan_make_step` that checkpoints the
    [`DDGANState`][gpm_sde.train.DDGANState]. Sample with
    [`ddgan_sample`][gpm_sde.samplers.ddgan_sample]`(generator, chain, key, n, event_shape)`.

    **Arguments:**

    - `generator`: `G(x_n, z, n)` on one point, one latent and a 1-based step, returning
      $\hat x_0$ (e.g. [`DDGANGenerator`][gpm_sde.nn.DDGANGenerator]); `discriminator`:
      `D(x_prev, x_n, n)`, a scalar logit (e.g.
      [`DDGANDiscriminator`][gpm_sde.nn.DDGANDiscriminator]).
    - `data`: real data `(N, *event)`, a law with `.sample`, or a callable `(key, n)`.
    - `key`: PRNG key of the run. `steps`: training steps (one discriminator and one
      generator descent each).
    - `num_steps`: $T$, the chain [`ddgan_chain`][gpm_sde.samplers.ddgan_chain]`(num_steps)`
      (their VP discretisation), unless `chain` (a [`DDPM`][gpm_sde.processes.DDPM]) is
      given.
    - `loss`: a GAN loss name or object ([`gan_loss`][gpm_sde.losses.gan_loss]); theirs is
      `"nonsaturating"`.
    - `batch_size`: real and generated pairs per descent.
    - `latent_dim`: the latent size (default: `generator.latent_dim`).
    - `r1_gamma`: $\gamma \ge 0$ of the R1 penalty on the real pairs (0: none).
    - `g_optimizer`, `d_optimizer`: optax transformations (default
      `optax.adam(lr, b1=0.5, b2=0.9)` with `g_lr` = 1.5e-4 and `d_lr` = 1e-4, theirs for
      CIFAR-10, without their cosine learning-rate decay).
    - `ema`: if set, the decay of an EMA of the generator iterates, which is returned.
    - `g_trainable`, `d_trainable`: what trains ([`Trainable`][gpm_sde.train.Trainable]).
    - `**loop`: the loop options ([`LoopOptions`][gpm_sde.train.LoopOptions]).

    Returns `(generator, discriminator, history)` with `d_loss` (without R1), `r1` and
    `g_loss` per step.
    """
    chain = ddgan_chain(num_steps) if chain is None else chain
    chain = _check_chain(chain, generator, discriminator)
    (latent,) = latent_shape(generator, latent_dim)
    g_opt, d_opt = _optimizers(g_optimizer, d_optimizer, g_lr, d_lr)
    step = ddgan_make_step(
        data,
        chain,
        g_opt,
        d_opt,
        latent_dim=latent,
        loss=loss,
        batch_size=batch_size,
        r1_gamma=r1_gamma,
        ema=ema,
    )
    state = ddgan_init(
        generator,
        discriminator,
        g_opt,
        d_opt,
        ema=ema,
        g_trainable=g_trainable,
        d_trainable=d_trainable,
    )
    state, history = run_loop("train_ddgan", step, state, key, steps=steps, **loop)
    generator, discriminator = state.models()
    return generator, discriminator, history
