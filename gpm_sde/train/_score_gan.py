r"""GPM's Score GAN (Franceschi et al. 2023, Algorithm 1):
[`ScoreGANState`][gpm_sde.train.ScoreGANState],
[`score_gan_init`][gpm_sde.train.score_gan_init],
[`score_gan_make_step`][gpm_sde.train.score_gan_make_step] and the loop over them,
[`train_score_gan`][gpm_sde.train.train_score_gan]."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, Unpack

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Int, PRNGKeyArray, PyTree

from .._checks import check_callable, check_positive
from ..flows import score_gan_field
from ..losses import dsm_loss, int_pm_loss
from ..processes import edm
from ..schedules import AbstractSigmaLaw, LogNormalSigma
from ..scores import bind_label, couples_particles
from ._common import (
    EMA,
    Trainable,
    check_batch_size,
    check_count,
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
    where_tree,
)
from ._gan import _check_ema_matches
from ._loop import LoopOptions, check_steps, run_loop
from ._particle_labels import check_pointwise, label_sampler

_G = TypeVar("_G")
_S = TypeVar("_S")
FieldAt = Literal["generated", "noised"]
FieldWeight = Literal["sigma2", "sigma"]
ScoreLoss = Literal["edm", "denoiser"]
_FIELD_POWER = {"sigma2": 2, "sigma": 1}


class ScoreGANState(eqx.Module):
    """The training state of a Score GAN, what
    [`train_score_gan`][gpm_sde.train.train_score_gan] checkpoints.

    - `generator`, `gen_score`: the current generator and generated-score network.
    - `g_opt_state`, `s_opt_state`: their optimiser states.
    - `ema`: the [`EMA`][gpm_sde.train.EMA] of the generator iterates (from the end of the
      warm-up), or `None`.
    - `step`: the number of steps taken (warm-up included).
    - `g_trainable`, `s_trainable`: the masks of what trains (static).
    """

    generator: Any
    gen_score: Any
    g_opt_state: PyTree
    s_opt_state: PyTree
    ema: EMA | None
    step: Int[Array, ""]
    g_trainable: PyTree[bool] = eqx.field(static=True)
    s_trainable: PyTree[bool] = eqx.field(static=True)

    def models(self) -> tuple[Any, Any]:
        """`(generator, gen_score)` as `train_score_gan` returns them: the generator's EMA
        average if one is kept."""
        g = self.generator if self.ema is None else self.ema.average
        return g, self.gen_score


def score_gan_init(
    generator: PyTree,
    gen_score: PyTree,
    g_optimizer: optax.GradientTransformation | None = None,
    s_optimizer: optax.GradientTransformation | None = None,
    *,
    ema: float | None = None,
    g_trainable: Trainable = None,
    s_trainable: Trainable = None,
    lr: float = 1e-3,
) -> ScoreGANState:
    """The initial [`ScoreGANState`][gpm_sde.train.ScoreGANState]: optimiser states of the
    trainable leaves (default optimisers `optax.adam(lr)`), an [`EMA`][gpm_sde.train.EMA] of
    the generator if `ema` is set, step 0. `g_trainable` and `s_trainable` select what trains
    ([`Trainable`][gpm_sde.train.Trainable])."""
    check_callable("gen_score", gen_score, "(sigma, x) -> score", "on one point")
    g_opt = check_optimizer(g_optimizer, "g_optimizer", lr)
    s_opt = check_optimizer(s_optimizer, "s_optimizer", lr)
    ema = check_ema(ema)
    g_mask = trainable_mask(generator, g_trainable)
    s_mask = trainable_mask(gen_score, s_trainable)
    return ScoreGANState(
        generator=generator,
        gen_score=gen_score,
        g_opt_state=opt_init(g_opt, generator, g_mask),
        s_opt_state=opt_init(s_opt, gen_score, s_mask),
        ema=None if ema is None else ema_init(generator),
        step=jnp.zeros((), jnp.int32),
        g_trainable=g_mask,
        s_trainable=s_mask,
    )


def score_gan_make_step(
    real_score: Callable[..., Any],
    g_optimizer: optax.GradientTransformation | None = None,
    s_optimizer: optax.GradientTransformation | None = None,
    *,
    latent_dim: int,
    batch_size: int = 256,
    score_steps: int = 1,
    warmup: int = 0,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    sigma_max: float = 80.0,
    sigma_law: AbstractSigmaLaw | None = None,
    field_at: FieldAt = "generated",
    field_weight: FieldWeight = "sigma2",
    score_loss: ScoreLoss = "edm",
    weight_data: float = 1.0,
    weight_gen: float = 1.0,
    g_loss_scale: float = 1.0,
    ema: float | None = None,
    lr: float = 1e-3,
    labels: Any = None,
) -> Callable[[ScoreGANState, PRNGKeyArray], tuple[ScoreGANState, dict[str, Array]]]:
    r"""One Score-GAN step (Franceschi et al. 2023, Algorithm 1) as a pure jittable
    `step(state, key) -> (state, {"score_loss", "g_loss", "sigma"})`: `score_steps`
    denoising-score-matching descents of the generated score on fresh generator samples,
    then, once `state.step >= warmup`, one Int-PM descent of the generator along

    $$\nabla h(x) = \sigma^p\big[w_q\nabla\log(q * k_\sigma)(x) -
    w_\rho\nabla\log(\rho_\theta * k_\sigma)(x)\big]$$

    and the EMA update of the generator. The arguments are those of
    [`train_score_gan`][gpm_sde.train.train_score_gan] (`latent_dim`: the size of one latent);
    the optimisers (and `ema`) must be those given to
    [`score_gan_init`][gpm_sde.train.score_gan_init]. With `labels`, the class-conditional
    step: each point carries a label $y$ drawn from `labels`, and the step above is applied
    to $q(\cdot\mid y)$ and $\rho_\theta(\cdot\mid y)$ (see `train_score_gan`).
    """
    check_callable("real_score", real_score, "(sigma, x) -> score", "on one point")
    batch_size = check_batch_size(batch_size)
    score_steps = check_steps(score_steps, "score_steps")
    warmup = check_count("warmup", warmup)
    if sigma_law is not None and not isinstance(sigma_law, AbstractSigmaLaw):
        raise TypeError(
            f"`sigma_law` must be a law of noise levels such as "
            f"`gpm_sde.schedules.KarrasSigma(0.1, 10.0, 3.0)` or None (log-normal with p_mean, "
            f"p_std), got {type(sigma_law).__name__}."
        )
    # One law for both steps; the default log-normal is clipped at sigma_max for the field only.
    law = LogNormalSigma(p_mean, p_std, sigma_max) if sigma_law is None else sigma_law
    score_law = LogNormalSigma(p_mean, p_std) if sigma_law is None else sigma_law
    for name, value in (("weight_data", weight_data), ("weight_gen", weight_gen)):
        check_positive(name, value, strict=False, fix="pass e.g. 1.0")
    check_positive("g_loss_scale", g_loss_scale, fix="pass e.g. 1.0")
    if field_weight not in _FIELD_POWER:
        raise ValueError(
            f"`field_weight` must be 'sigma2' (σ² × the score difference, a difference of "
            f"denoisers) or 'sigma' (σ ×, the GPM authors' code), got {field_weight!r}."
        )
    if score_loss not in ("edm", "denoiser"):
        raise ValueError(
            f"`score_loss` must be 'edm' (EDM-weighted denoising score matching) or "
            f"'denoiser' (the plain ‖D(x + σε; σ) − x‖², the GPM authors' code), got "
            f"{score_loss!r}."
        )
    decay = check_ema(ema)
    if field_at not in ("generated", "noised"):
        raise ValueError(
            f"`field_at` must be 'generated' (the field at G(z)) or 'noised' (at G(z) + σε), "
            f"got {field_at!r}."
        )
    if field_at == "noised" and couples_particles(real_score):
        # Each noised point has its own σ, so the field is evaluated point by point: a
        # mean-field score would see one-point clouds and return a wrong field, silently.
        raise TypeError(
            "`real_score` couples the particles (a mean-field cloud score), but "
            "field_at='noised' evaluates the field one point at a time (one σ per point); "
            "pass field_at='generated' or a pointwise score."
        )
    draw_labels = None
    if labels is not None:
        check_pointwise("real_score", real_score)
        draw_labels = label_sampler(labels)
    process = edm(sigma_max)
    g_opt = check_optimizer(g_optimizer, "g_optimizer", lr)
    s_opt = check_optimizer(s_optimizer, "s_optimizer", lr)
    shape = latent_shape(None, latent_dim)
    dtype = float_dtype()
    power = _FIELD_POWER[field_weight]
    field_weights = {
        "alpha": lambda s: weight_data * s**power,
        "beta": lambda s: weight_gen * s**power,
        "sigma": lambda s: s,
    }

    def score_loss_fn(s_model: Any, x: Any, k: PRNGKeyArray) -> Any:
        return dsm_loss(s_model, process, x, k, weighting=score_loss, sigma_law=score_law)

    def g_loss_fn(g: Any, s_model: Any, z: Any, sigma: Any) -> Any:
        field = score_gan_field(real_score, s_model, **field_weights)
        return g_loss_scale * int_pm_loss(g, field, z, sigma)

    def noised_g_loss_fn(g: Any, s_model: Any, z: Any, k: PRNGKeyArray) -> Any:
        # Int-PM with the field of each point at its own noised copy x_i + σ_i ε_i.
        field = score_gan_field(real_score, s_model, **field_weights)
        x = jax.vmap(g)(z)
        k_sigma, k_eps = jr.split(k)
        sigma = draw_sigma(k_sigma, (x.shape[0],))
        noised = x + sigma.reshape((-1,) + (1,) * (x.ndim - 1)) * jr.normal(k_eps, x.shape, dtype)
        direction = jax.vmap(lambda si, yi: field(si, yi[None], None)[0])(sigma, noised)
        surrogate = jnp.sum(x * -jax.lax.stop_gradient(direction)) / x.shape[0]
        return g_loss_scale * surrogate, sigma

    def draw_sigma(k: PRNGKeyArray, shape: tuple[int, ...]) -> Any:
        return law.sample(k, shape, dtype)

    def cond_score_loss_fn(s_model: Any, x: Any, y: Any, k: PRNGKeyArray) -> Any:
        # Denoising score matching of s(σ, ·, y_i) on the pair (x_i, y_i), point by point.
        def one(xi: Any, yi: Any, ki: PRNGKeyArray) -> Any:
            loss = dsm_loss(
                bind_label(s_model, yi),
                process,
                xi[None],
                ki,
                weighting=score_loss,
                sigma_law=score_law,
                reduction="none",
            )
            return loss[0]

        return jnp.mean(jax.vmap(one)(x, y, jr.split(k, x.shape[0])))

    def cond_g_loss_fn(g: Any, s_model: Any, z: Any, y: Any, k: PRNGKeyArray) -> Any:
        # Int-PM with the field of each point's own class: the unconditional field of
        # q(·|y_i) and ρ_θ(·|y_i) at G(z_i, y_i) (or at its noised copy).
        x = jax.vmap(g)(z, y)
        k_sigma, k_eps = jr.split(k)
        if field_at == "noised":
            sigma = draw_sigma(k_sigma, (x.shape[0],))
            eps = jr.normal(k_eps, x.shape, dtype)
            at = x + sigma.reshape((-1,) + (1,) * (x.ndim - 1)) * eps
        else:
            sigma = jnp.broadcast_to(draw_sigma(k_sigma, ()), (x.shape[0],))
            at = x

        def one(si: Any, xi: Any, yi: Any) -> Any:
            field = score_gan_field(
                bind_label(real_score, yi), bind_label(s_model, yi), **field_weights
            )
            return field(si, xi[None], None)[0]

        direction = jax.vmap(one)(sigma, jax.lax.stop_gradient(at), y)
        surrogate = jnp.sum(x * -jax.lax.stop_gradient(direction)) / x.shape[0]
        return g_loss_scale * surrogate, sigma

    def cond_losses(
        g: Any, s_model: Any, s_state: Any, g_mask: Any, s_mask: Any, keys: Any
    ) -> tuple[Any, Any, Any, Any, Any, Any]:
        assert draw_labels is not None
        s_loss = jnp.zeros((), dtype)
        for ks in keys[:score_steps]:
            k_z, k_y, k_loss = jr.split(ks, 3)
            y = draw_labels(k_y, batch_size)
            z = draw_latents(k_z, batch_size, shape, dtype)
            x = jax.lax.stop_gradient(jax.vmap(g)(z, y))
            s_loss, grads = value_and_grad(cond_score_loss_fn, s_model, s_mask, x, y, k_loss)
            s_model, s_state = opt_step(s_opt, s_model, grads, s_state, s_mask)
        k_z, k_y, k_sigma = jr.split(keys[-1], 3)
        z = draw_latents(k_z, batch_size, shape, dtype)
        y = draw_labels(k_y, batch_size)
        (g_loss, sigmas), grads = value_and_grad(
            cond_g_loss_fn, g, g_mask, s_model, z, y, k_sigma, has_aux=True
        )
        sigma = jnp.exp(jnp.mean(jnp.log(sigmas)))
        return s_model, s_state, s_loss, g_loss, grads, sigma

    def plain_losses(
        g: Any, s_model: Any, s_state: Any, g_mask: Any, s_mask: Any, keys: Any
    ) -> tuple[Any, Any, Any, Any, Any, Any]:
        s_loss = jnp.zeros((), dtype)
        for ks in keys[:score_steps]:
            k_z, k_loss = jr.split(ks)
            x = jax.lax.stop_gradient(jax.vmap(g)(draw_latents(k_z, batch_size, shape, dtype)))
            s_loss, grads = value_and_grad(score_loss_fn, s_model, s_mask, x, k_loss)
            s_model, s_state = opt_step(s_opt, s_model, grads, s_state, s_mask)
        k_z, k_sigma = jr.split(keys[-1])
        z = draw_latents(k_z, batch_size, shape, dtype)
        if field_at == "noised":
            (g_loss, sigmas), grads = value_and_grad(
                noised_g_loss_fn, g, g_mask, s_model, z, k_sigma, has_aux=True
            )
            sigma = jnp.exp(jnp.mean(jnp.log(sigmas)))
        else:
            sigma = draw_sigma(k_sigma, ())
            g_loss, grads = value_and_grad(g_loss_fn, g, g_mask, s_model, z, sigma)
        return s_loss, g_loss, grads, sigma, s_model, s_state

    def step(state: ScoreGANState, key: PRNGKeyArray) -> tuple[ScoreGANState, dict[str, Array]]:
        _check_ema_matches(decay, state.ema, "score_gan")
        g, s_model = state.generator, state.gen_score
        g_state, s_state, avg = state.g_opt_state, state.s_opt_state, state.ema
        g_mask, s_mask = state.g_trainable, state.s_trainable
        keys = jr.split(key, score_steps + 2)
        if draw_labels is not None:
            s_model, s_state, s_loss, g_loss, grads, sigma = cond_losses(
                g, s_model, s_state, g_mask, s_mask, keys
            )
        else:
            s_loss, g_loss, grads, sigma, s_model, s_state = plain_losses(
                g, s_model, s_state, g_mask, s_mask, keys
            )
        new_g, new_g_state = opt_step(g_opt, g, grads, g_state, g_mask)
        train_g = state.step >= warmup
        g, g_state = where_tree(train_g, (new_g, new_g_state), (g, g_state))
        if avg is not None:  # the average starts with the first trained generator
            avg = where_tree(
                train_g,
                ema_update(avg, g, decay, g_mask),  # pyright: ignore[reportArgumentType]
                avg,
            )
        new = ScoreGANState(g, s_model, g_state, s_state, avg, state.step + 1, g_mask, s_mask)
        return new, {"score_loss": s_loss, "g_loss": g_loss, "sigma": sigma}

    return step


def train_score_gan(
    generator: _G,
    gen_score: _S,
    real_score: Callable[..., Any],
    key: PRNGKeyArray,
    *,
    steps: int,
    batch_size: int = 256,
    latent_dim: int | None = None,
    score_steps: int = 1,
    warmup: int = 0,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    sigma_max: float = 80.0,
    sigma_law: AbstractSigmaLaw | None = None,
    field_at: FieldAt = "generated",
    field_weight: FieldWeight = "sigma2",
    score_loss: ScoreLoss = "edm",
    weight_data: float = 1.0,
    weight_gen: float = 1.0,
    g_loss_scale: float = 1.0,
    g_optimizer: optax.GradientTransformation | None = None,
    s_optimizer: optax.GradientTransformation | None = None,
    lr: float = 1e-3,
    ema: float | None = None,
    g_trainable: Trainable = None,
    s_trainable: Trainable = None,
    labels: Any = None,
    **loop: Unpack[LoopOptions],
) -> tuple[_G, _S, dict[str, np.ndarray]]:
    r"""Train a generator with GPM's Score GAN (Franceschi et al. 2023, §4.1 and Algorithm 1).

    Per step:

    1. `score_steps` descents of denoising score matching of the **generated-score network**
       on fresh generator samples $x = G_\theta(z)$ ([`dsm_loss`][gpm_sde.losses.dsm_loss]
       with `weighting=score_loss`: `"edm"`, Karras et al.'s weighted loss, or `"denoiser"`,
       the plain $\|D(x + \sigma\varepsilon;\sigma) - x\|^2$), $\sigma$ drawn from
       `sigma_law`, so that $s_\psi(\sigma, \cdot) \approx
       \nabla\log(\rho_\theta * k_\sigma)$;
    2. one Int-PM descent of the generator ([`int_pm_loss`][gpm_sde.losses.int_pm_loss],
       multiplied by `g_loss_scale`) along the Score-GAN field
       ([`score_gan_field`][gpm_sde.flows.score_gan_field]) at noise levels $\sigma$ from the
       same law:

    $$\nabla h(x) = \sigma^p\big[w_q\nabla\log(q * k_\sigma)(x) -
    w_\rho\nabla\log(\rho_\theta * k_\sigma)(x)\big],$$

    with $w_q$ = `weight_data`, $w_\rho$ = `weight_gen` and the power $p$ set by
    `field_weight`: `"sigma2"` (the default) gives, for $w_q = w_\rho = 1$,
    $D_q(x;\sigma) - D_{\rho}(x;\sigma)$, the difference of the two optimal denoisers
    (Tweedie), $O(1)$ at every noise level; `"sigma"` is the GPM authors' code
    (`ScoreGAN.forward_generator`: $\sigma\nabla\log = (D - x)/\sigma$). At the fixed point
    $\rho_\theta * k_\sigma = q * k_\sigma$ for all $\sigma$, i.e. $\rho_\theta = q$ (for
    $w_q = w_\rho$).

    **The authors' algorithm.** The GPM authors' code (github.com/White-Link/gpm,
    `gpm/models/score_gan/score_gan.py`) is `field_weight="sigma"`, `field_at="noised"`,
    `sigma_law=KarrasSigma(0.1, 10, 3)` (one $\sigma$ per point), `score_loss="denoiser"`,
    `score_steps=10`, batch 128 and Adam(2e-4) for both networks:
    [`official_score_gan`][gpm_sde.train.official_score_gan] returns exactly these keywords.
    The defaults here are this library's first choices (σ² weight, the field at the generated
    points, EDM's log-normal law, one σ per step, the EDM-weighted loss, one score step).

    Where the field is evaluated (`field_at`):

    - `"generated"` (GPM's particle field): at the generated points $x = G_\theta(z)$
      themselves, with one $\sigma$ per step.
    - `"noised"`: at noised points $x_i + \sigma_i\varepsilon_i$, with
      $\sigma_i$ and $\varepsilon_i \sim \mathcal{N}(0, I)$ drawn for every point, and the
      direction applied to $x_i$. Since $\partial_\theta(x + \sigma\varepsilon) = J_\theta$, the
      expected Int-PM gradient is then
      $\mathbb{E}_{\sigma}\,\sigma^2\,\nabla_\theta\,
      \mathrm{KL}(\rho_\theta * k_\sigma \,\|\, q * k_\sigma)$ (the score of
      $\rho_\theta * k_\sigma$ has zero mean under it), the gradient used by Diff-Instruct
      (Luo et al. 2023, Thm. 3.1) and DMD (Yin et al. 2024, eq. 7). Both score networks are
      then queried on the noisy inputs they were trained on, which matters for images: a
      network trained on $x_0 + \sigma\varepsilon$ has never seen a clean generated image at
      level $\sigma$. The field is evaluated one point at a time (one $\sigma_i$ each), so
      `real_score` must not couple the particles (a mean-field cloud score is refused).

    Both have $\rho_\theta = q$ as a fixed point.

    **Class-conditional (`labels`).** With `labels`, every generated point carries a class
    $y$ drawn from the law of the data's labels, the generator is $G_\theta(z, y)$, both
    scores take the label, `real_score(sigma, x, y)` $= \nabla\log(q(\cdot\mid y) *
    k_\sigma)$ and `gen_score(sigma, x, y)`, and the generated score is trained by
    denoising score matching on the pairs $(G_\theta(z, y), y)$, so that
    $s_\psi(\sigma, \cdot, y) \approx \nabla\log(\rho_\theta(\cdot\mid y) * k_\sigma)$.
    The generator moves each point along the field of its own class,

    $$\nabla h(x\mid y) = \sigma^p\big[w_q\nabla\log(q(\cdot\mid y) * k_\sigma)(x) -
    w_\rho\nabla\log(\rho_\theta(\cdot\mid y) * k_\sigma)(x)\big],$$

    which is, class by class, the unconditional field above with $q$ replaced by
    $q(\cdot\mid y)$ and $\rho_\theta$ by $\rho_\theta(\cdot\mid y)$: its fixed point is
    $\rho_\theta(\cdot\mid y) = q(\cdot\mid y)$ for every class of positive probability
    (the conditional GAN of Mirza & Osindero 2014 with GPM's Score-GAN field; the combination
    is this library's). `field_at`, `field_weight`, `score_loss` and the weights act as
    above, and both scores must be pointwise (a cloud score is refused).

    A thin loop over [`score_gan_init`][gpm_sde.train.score_gan_init] and
    [`score_gan_make_step`][gpm_sde.train.score_gan_make_step] that checkpoints the
    [`ScoreGANState`][gpm_sde.train.ScoreGANState].

    **Arguments:**

    - `generator`: `G(z)` on one latent.
    - `gen_score`: the generated-score model, a $\sigma$-conditioned pointwise score
      `gen_score(sigma, x)` (e.g. `EDMDenoiser(net)` or `ScoreParam(net, ...)`), trained
      here.
    - `real_score`: the data score `real_score(sigma, x)` of $q * k_\sigma$, fixed: a network
      pre-trained by [`fit_score`][gpm_sde.train.fit_score] on `gpm_sde.edm()`, or an exact
      [`SmoothedMixtureScore`][gpm_sde.scores.SmoothedMixtureScore].
    - `key`: PRNG key of the run. `steps`: generator steps.
    - `batch_size`: generated points per descent. `latent_dim`: as in
      [`train_gan`][gpm_sde.train.train_gan].
    - `score_steps`: score descents per generator step; `warmup`: score-only steps first
      (counted in `steps`), so the generated score fits the initial generator.
    - `p_mean`, `p_std`: the log-normal law of $\sigma$ when `sigma_law` is `None` (Karras et
      al. 2022: −1.2, 1.2; use a law matching the data's scale); `sigma_max`: the largest
      $\sigma$ of the EDM process (the field's log-normal $\sigma$ is clipped there).
    - `sigma_law`: the law of $\sigma$ for both steps
      ([`AbstractSigmaLaw`][gpm_sde.schedules.AbstractSigmaLaw], e.g.
      [`KarrasSigma`][gpm_sde.schedules.KarrasSigma]); `None`: log-normal as above.
    - `field_at`: `"generated"` or `"noised"`, see above.
    - `field_weight`: `"sigma2"` or `"sigma"`, the power of $\sigma$ in the field.
    - `score_loss`: `"edm"` or `"denoiser"`, the generated score's loss.
    - `weight_data`, `weight_gen`: $w_q$, $w_\rho$ of the field (the authors' `weight_data`,
      `weight_gen`); `g_loss_scale`: the generator loss's factor (their `gen_loss_scale`).
    - `g_optimizer`, `s_optimizer`: optax transformations (default `optax.adam(lr)`).
    - `ema`: if set, a decay $d$: the returned generator is the bias-corrected exponential
      moving average of its iterates, as in [`train_gan`][gpm_sde.train.train_gan]. The
      generator and the generated score form a two-timescale game that can orbit its fixed
      point (`tests/test_train.py` shows it at a large learning rate); the average sits near
      the centre of the orbit.
    - `g_trainable`, `s_trainable`: what trains in the generator and in the generated score
      ([`Trainable`][gpm_sde.train.Trainable]; default
      [`default_trainable`][gpm_sde.train.default_trainable]).
    - `labels`: `None` (unconditional), or the law of the classes: a 1-D integer array of
      the data's labels (drawn uniformly, so each class comes with its data frequency), a
      law with `.sample_with_components(key, n)` such as a
      [`GaussianMixture`][gpm_sde.GaussianMixture] (class = component, drawn with the
      mixture weights), or a callable `(key, n) -> labels`. The generator is then called
      `G(z, y)` and both scores `(sigma, x, y)`, see above.
    - `**loop`: the loop options `checkpoint`, `resume`, `checkpoint_every`, `progress`
      and `chunk` ([`LoopOptions`][gpm_sde.train.LoopOptions]).

    Returns `(generator, gen_score, history)` with `score_loss`, `g_loss` and `sigma` per step
    (with `"noised"`, the geometric mean of the step's $\sigma_i$)
    (`g_loss` is the Int-PM surrogate, whose value is not a distance: watch a sample metric).
    """
    (latent_dim,) = latent_shape(generator, latent_dim)
    g_opt = check_optimizer(g_optimizer, "g_optimizer", lr)
    s_opt = check_optimizer(s_optimizer, "s_optimizer", lr)
    step = score_gan_make_step(
        real_score,
        g_opt,
        s_opt,
        latent_dim=latent_dim,
        batch_size=batch_size,
        score_steps=score_steps,
        warmup=warmup,
        p_mean=p_mean,
        p_std=p_std,
        sigma_max=sigma_max,
        sigma_law=sigma_law,
        field_at=field_at,
        field_weight=field_weight,
        score_loss=score_loss,
        weight_data=weight_data,
        weight_gen=weight_gen,
        g_loss_scale=g_loss_scale,
        ema=ema,
        labels=labels,
    )
    state = score_gan_init(
        generator,
        gen_score,
        g_opt,
        s_opt,
        ema=ema,
        g_trainable=g_trainable,
        s_trainable=s_trainable,
    )
    state, history = run_loop("train_score_gan", step, state, key, steps=steps, **loop)
    generator, gen_score = state.models()
    return generator, gen_score, history
