r"""Autoencoders: a VAE trained on its ELBO ([`VAEState`][gpm_sde.train.VAEState],
[`vae_init`][gpm_sde.train.vae_init], [`vae_make_step`][gpm_sde.train.vae_make_step],
[`fit_vae`][gpm_sde.train.fit_vae]) and a VQ-VAE with a gradient or EMA codebook
([`VQVAEState`][gpm_sde.train.VQVAEState], [`vq_vae_init`][gpm_sde.train.vq_vae_init],
[`vq_vae_make_step`][gpm_sde.train.vq_vae_make_step],
[`fit_vq_vae`][gpm_sde.train.fit_vq_vae])."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Unpack

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Int, PRNGKeyArray, PyTree

from .._checks import check_scalar
from ..losses import elbo, gaussian_kl, vq_vae_loss
from ..nn import CodebookEMA, VectorQuantizer
from ._common import (
    Trainable,
    as_sampler,
    check_batch_size,
    check_optimizer,
    opt_init,
    opt_step,
    trainable_mask,
    value_and_grad,
)
from ._loop import LoopOptions, run_loop

Step = Callable[[Any, PRNGKeyArray], tuple[Any, dict[str, Array]]]


class VAEState(eqx.Module):
    """The training state of a VAE, what [`fit_vae`][gpm_sde.train.fit_vae] checkpoints.

    - `encoder`, `decoder`: the current iterates.
    - `opt_state`: the optimiser state of their trainable leaves (one optimiser for both).
    - `step`: the number of steps taken.
    - `trainable`: the mask of what trains, over `(encoder, decoder)` (static).
    """

    encoder: Any
    decoder: Any
    opt_state: PyTree
    step: Int[Array, ""]
    trainable: PyTree[bool] = eqx.field(static=True)

    def models(self) -> tuple[Any, Any]:
        """`(encoder, decoder)`."""
        return self.encoder, self.decoder


def vae_init(
    encoder: Any,
    decoder: Any,
    optimizer: optax.GradientTransformation | None = None,
    *,
    trainable: Trainable = None,
    lr: float = 1e-3,
) -> VAEState:
    """The initial [`VAEState`][gpm_sde.train.VAEState]: the optimiser state of the trainable
    leaves of `(encoder, decoder)`, step 0.

    **Arguments:**

    - `encoder`, `decoder`: as in [`fit_vae`][gpm_sde.train.fit_vae].
    - `optimizer`: an optax transformation (default `optax.adam(lr)`); pass the same one to
      [`vae_make_step`][gpm_sde.train.vae_make_step].
    - `trainable`: what trains ([`Trainable`][gpm_sde.train.Trainable]), for the pair
      `(encoder, decoder)`.
    - `lr`: the learning rate of the default optimiser.
    """
    optimizer = check_optimizer(optimizer, "optimizer", lr)
    models = (encoder, decoder)
    mask = trainable_mask(models, trainable)
    return VAEState(
        encoder, decoder, opt_init(optimizer, models, mask), jnp.zeros((), jnp.int32), mask
    )


def vae_make_step(
    data: Any,
    optimizer: optax.GradientTransformation | None = None,
    *,
    batch_size: int = 128,
    beta: float = 1.0,
    n_samples: int = 1,
    lr: float = 1e-3,
) -> Step:
    r"""One stochastic-gradient step on the negative (β-)ELBO (Kingma & Welling 2014,
    Algorithm 1), a pure jittable `step(state, key) -> (state, metrics)`:

    $$(\phi, \theta) \leftarrow (\phi, \theta) + \mathrm{update}\big(-\nabla_{\phi,\theta}
    \tfrac1M\textstyle\sum_i \mathcal{L}_\beta(x_i)\big)$$

    on a minibatch of $M$ = `batch_size` points ([`elbo`][gpm_sde.losses.elbo], analytic KL),
    with `metrics = {"loss": -ELBO_β, "elbo": ELBO (β = 1), "kl": KL}` (batch means, nats).

    The arguments are those of [`fit_vae`][gpm_sde.train.fit_vae].
    """
    batch_size = check_batch_size(batch_size)
    optimizer = check_optimizer(optimizer, "optimizer", lr)
    check_scalar("beta", beta)
    sample = as_sampler(data)

    def loss_fn(models: tuple[Any, Any], x: Array, key: PRNGKeyArray) -> tuple[Array, Any]:
        encoder, decoder = models
        bound = elbo(encoder, decoder, x, key, beta=1.0, n_samples=n_samples, reduction="none")
        kl = gaussian_kl(*jax.vmap(encoder)(x))
        return -jnp.mean(bound + (1.0 - beta) * kl), (jnp.mean(bound), jnp.mean(kl))

    def step(state: VAEState, key: PRNGKeyArray) -> tuple[VAEState, dict[str, Array]]:
        k_data, k_loss = jr.split(key)
        x = sample(k_data, batch_size)
        models, mask = state.models(), state.trainable
        (loss, (bound, kl)), grads = value_and_grad(loss_fn, models, mask, x, k_loss, has_aux=True)
        (encoder, decoder), opt_state = opt_step(optimizer, models, grads, state.opt_state, mask)
        new = VAEState(encoder, decoder, opt_state, state.step + 1, mask)
        return new, {"loss": loss, "elbo": bound, "kl": kl}

    return step


def fit_vae(
    encoder: Any,
    decoder: Any,
    data: Any,
    key: PRNGKeyArray,
    *,
    steps: int,
    batch_size: int = 128,
    beta: float = 1.0,
    n_samples: int = 1,
    optimizer: optax.GradientTransformation | None = None,
    lr: float = 1e-3,
    trainable: Trainable = None,
    **loop: Unpack[LoopOptions],
) -> tuple[tuple[Any, Any], dict[str, np.ndarray]]:
    r"""Train a VAE (Kingma & Welling 2014) by maximising the β-ELBO with the
    reparameterisation trick:

    $$\max_{\phi, \theta}\ \mathbb{E}_{x}\Big[\mathbb{E}_{q_\phi(z \mid x)}\log p_\theta(x \mid
    z) - \beta\,\mathrm{KL}\big(q_\phi(z \mid x)\,\|\,\mathcal{N}(0, I)\big)\Big]$$

    (β = 1: the ELBO; β > 1: β-VAE, Higgins et al. 2017). A thin loop:
    [`vae_init`][gpm_sde.train.vae_init], then `steps` calls of the step of
    [`vae_make_step`][gpm_sde.train.vae_make_step] under
    [`run_loop`][gpm_sde.train.run_loop].

    **Arguments:**

    - `encoder`: `encoder(x) -> (mean, log_std)` on one point, e.g.
      [`GaussianEncoder`][gpm_sde.nn.GaussianEncoder].
    - `decoder`: a module with `decoder.log_prob(z, x)`, e.g.
      [`GaussianDecoder`][gpm_sde.nn.GaussianDecoder] or
      [`BernoulliDecoder`][gpm_sde.nn.BernoulliDecoder].
    - `data`: training data `(N, *shape)`, a law with `.sample(key, n)` or a callable
      `(key, n) -> batch`.
    - `key`: PRNG key of the run.
    - `steps`: number of optimiser steps.
    - `batch_size`: points per step.
    - `beta`: the KL weight β.
    - `n_samples`: draws of $z$ per point.
    - `optimizer`: an optax transformation (default `optax.adam(lr)`).
    - `lr`: the learning rate of the default optimiser.
    - `trainable`: what trains ([`Trainable`][gpm_sde.train.Trainable]) of the pair
      `(encoder, decoder)`.
    - `**loop`: the loop options ([`LoopOptions`][gpm_sde.train.LoopOptions]).

    Returns `((encoder, decoder), history)`, with the per-step `"loss"`, `"elbo"` and `"kl"`.
    """
    optimizer = check_optimizer(optimizer, "optimizer", lr)
    step = vae_make_step(data, optimizer, batch_size=batch_size, beta=beta, n_samples=n_samples)
    state = vae_init(encoder, decoder, optimizer, trainable=trainable)
    state, history = run_loop("fit_vae", step, state, key, steps=steps, **loop)
    return state.models(), history


class VQVAEState(eqx.Module):
    """The training state of a VQ-VAE, what [`fit_vq_vae`][gpm_sde.train.fit_vq_vae]
    checkpoints.

    - `encoder`, `decoder`, `quantizer`: the current iterates.
    - `codebook_ema`: the [`CodebookEMA`][gpm_sde.nn.CodebookEMA] state when the codebook is
      learnt by moving averages, or `None` when it is learnt by gradient.
    - `opt_state`: the optimiser state of the trainable leaves.
    - `step`: the number of steps taken.
    - `trainable`: the mask over `(encoder, decoder, quantizer)` (static); with an EMA
      codebook the quantiser is excluded from it.
    """

    encoder: Any
    decoder: Any
    quantizer: VectorQuantizer
    codebook_ema: CodebookEMA | None
    opt_state: PyTree
    step: Int[Array, ""]
    trainable: PyTree[bool] = eqx.field(static=True)

    def models(self) -> tuple[Any, Any, VectorQuantizer]:
        """`(encoder, decoder, quantizer)`."""
        return self.encoder, self.decoder, self.quantizer


def vq_vae_init(
    encoder: Any,
    decoder: Any,
    quantizer: VectorQuantizer,
    optimizer: optax.GradientTransformation | None = None,
    *,
    ema: float | None = 0.99,
    trainable: Trainable = None,
    lr: float = 1e-3,
) -> VQVAEState:
    """The initial [`VQVAEState`][gpm_sde.train.VQVAEState].

    **Arguments:**

    - `encoder`, `decoder`, `quantizer`: as in [`fit_vq_vae`][gpm_sde.train.fit_vq_vae].
    - `optimizer`: an optax transformation (default `optax.adam(lr)`).
    - `ema`: the codebook EMA decay γ, or `None` to learn the codebook by gradient.
    - `trainable`: what trains, for `(encoder, decoder, quantizer)`.
    - `lr`: the learning rate of the default optimiser.
    """
    if not isinstance(quantizer, VectorQuantizer):
        raise TypeError(
            f"`quantizer` must be a gpm_sde.nn.VectorQuantizer, got {type(quantizer).__name__}."
        )
    optimizer = check_optimizer(optimizer, "optimizer", lr)
    models = (encoder, decoder, quantizer)
    mask = trainable_mask(models, trainable)
    codebook_ema = None
    if ema is not None:
        codebook_ema = CodebookEMA(quantizer, decay=ema)
        mask = (mask[0], mask[1], jax.tree.map(lambda _: False, mask[2]))
    return VQVAEState(
        encoder,
        decoder,
        quantizer,
        codebook_ema,
        opt_init(optimizer, models, mask),
        jnp.zeros((), jnp.int32),
        mask,
    )


def vq_vae_make_step(
    data: Any,
    optimizer: optax.GradientTransformation | None = None,
    *,
    batch_size: int = 128,
    beta: float = 0.25,
    lr: float = 1e-3,
) -> Step:
    r"""One step of the VQ-VAE (van den Oord et al. 2017, eq. 3), a pure jittable
    `step(state, key) -> (state, metrics)`: a gradient step on
    [`vq_vae_loss`][gpm_sde.losses.vq_vae_loss] (without its codebook term when the state
    keeps a [`CodebookEMA`][gpm_sde.nn.CodebookEMA]), then the EMA codebook update from the
    encoder outputs of the same batch (their App. A.1). `metrics` holds the batch's
    `"loss"`, `"recon"`, `"commitment"` and codebook `"perplexity"`.

    The arguments are those of [`fit_vq_vae`][gpm_sde.train.fit_vq_vae].
    """
    batch_size = check_batch_size(batch_size)
    optimizer = check_optimizer(optimizer, "optimizer", lr)
    check_scalar("beta", beta)
    sample = as_sampler(data)

    def step(state: VQVAEState, key: PRNGKeyArray) -> tuple[VQVAEState, dict[str, Array]]:
        use_ema = state.codebook_ema is not None

        def loss_fn(models: Any, x: Array) -> tuple[Array, Any]:
            encoder, decoder, quantizer = models
            return vq_vae_loss(encoder, decoder, quantizer, x, beta=beta, codebook_loss=not use_ema)

        x = sample(key, batch_size)
        models, mask = state.models(), state.trainable
        (loss, aux), grads = value_and_grad(loss_fn, models, mask, x, has_aux=True)
        (encoder, decoder, quantizer), opt_state = opt_step(
            optimizer, models, grads, state.opt_state, mask
        )
        codebook_ema = state.codebook_ema
        if codebook_ema is not None:
            codebook_ema, quantizer = codebook_ema.update(quantizer, aux["z_e"], aux["indices"])
        new = VQVAEState(encoder, decoder, quantizer, codebook_ema, opt_state, state.step + 1, mask)
        metrics = {k: aux[k] for k in ("recon", "commitment", "perplexity")}
        return new, {"loss": loss, **metrics}

    return step


def fit_vq_vae(
    encoder: Any,
    decoder: Any,
    quantizer: VectorQuantizer,
    data: Any,
    key: PRNGKeyArray,
    *,
    steps: int,
    batch_size: int = 128,
    beta: float = 0.25,
    ema: float | None = 0.99,
    optimizer: optax.GradientTransformation | None = None,
    lr: float = 1e-3,
    trainable: Trainable = None,
    **loop: Unpack[LoopOptions],
) -> tuple[tuple[Any, Any, VectorQuantizer], dict[str, np.ndarray]]:
    r"""Train a VQ-VAE (van den Oord et al. 2017) on

    $$L = -\log p_\theta(x \mid z_q^{\rm st}) + \|\operatorname{sg}[z_e] - e\|^2
    + \beta\|z_e - \operatorname{sg}[e]\|^2$$

    ([`vq_vae_loss`][gpm_sde.losses.vq_vae_loss]), with the codebook learnt by exponential
    moving averages (`ema=γ`, their App. A.1, which drops the codebook term) or by gradient
    (`ema=None`). A thin loop: [`vq_vae_init`][gpm_sde.train.vq_vae_init], then the step of
    [`vq_vae_make_step`][gpm_sde.train.vq_vae_make_step] under
    [`run_loop`][gpm_sde.train.run_loop].

    **Arguments:**

    - `encoder`: `encoder(x) -> z_e` on one point, `z_e: (..., code_dim)`, e.g.
      [`MLPEncoder`][gpm_sde.nn.MLPEncoder].
    - `decoder`: a module with `decoder.log_prob(z, x)` taking `z` of the shape of `z_e`.
    - `quantizer`: a [`VectorQuantizer`][gpm_sde.nn.VectorQuantizer].
    - `data`: training data `(N, *shape)`, a law with `.sample(key, n)` or a callable.
    - `key`: PRNG key of the run.
    - `steps`: number of steps; `batch_size`: points per step.
    - `beta`: the commitment weight β (0.25 in the paper).
    - `ema`: the codebook decay γ (0.99 in the paper), or `None`.
    - `optimizer`: an optax transformation (default `optax.adam(lr)`); `lr` its rate.
    - `trainable`: what trains, for `(encoder, decoder, quantizer)`.
    - `**loop`: the loop options ([`LoopOptions`][gpm_sde.train.LoopOptions]).

    Returns `((encoder, decoder, quantizer), history)`, with the per-step `"loss"`,
    `"recon"`, `"commitment"` and `"perplexity"`.
    """
    optimizer = check_optimizer(optimizer, "optimizer", lr)
    step = vq_vae_make_step(data, optimizer, batch_size=batch_size, beta=beta)
    state = vq_vae_init(encoder, decoder, quantizer, optimizer, ema=ema, trainable=trainable)
    state, history = run_loop("fit_vq_vae", step, state, key, steps=steps, **loop)
    return state.models(), history
