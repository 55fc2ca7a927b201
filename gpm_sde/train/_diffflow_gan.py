r"""A generator moved along the DiffFlow field (Zhang et al. 2023):
[`DiffFlowGANState`][gpm_sde.train.DiffFlowGANState],
[`diffflow_gan_init`][gpm_sde.train.diffflow_gan_init],
[`diffflow_gan_make_step`][gpm_sde.train.diffflow_gan_make_step] and the loop over them,
[`train_diffflow_gan`][gpm_sde.train.train_diffflow_gan]."""

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

from .._checks import check_callable, check_positive
from ..flows import diffflow
from ..losses import int_pm_loss
from ..schedules import Schedule
from ..scores import AnnealedScore, SmoothedCloudScore
from ._common import (
    Trainable,
    check_batch_size,
    check_optimizer,
    draw_latents,
    float_dtype,
    latent_shape,
    opt_init,
    opt_step,
    trainable_mask,
    value_and_grad,
)
from ._loop import LoopOptions, check_steps, run_loop
from ._particle_labels import (
    ClassSmoothedCloudScore,
    LabeledCloudScore,
    check_pointwise,
    label_sampler,
)

_G = TypeVar("_G")


class DiffFlowGANState(eqx.Module):
    """The training state of a DiffFlow-GAN, what
    [`train_diffflow_gan`][gpm_sde.train.train_diffflow_gan] checkpoints.

    - `generator`: the current generator.
    - `opt_state`: its optimiser state.
    - `step`: the number of steps taken $k$ (training time $s = k/K$).
    - `trainable`: the mask of what trains (static).
    """

    generator: Any
    opt_state: PyTree
    step: Int[Array, ""]
    trainable: PyTree[bool] = eqx.field(static=True)

    def models(self) -> Any:
        """The generator, as `train_diffflow_gan` returns it."""
        return self.generator


def diffflow_gan_init(
    generator: PyTree,
    optimizer: optax.GradientTransformation | None = None,
    *,
    trainable: Trainable = None,
    lr: float = 1e-3,
) -> DiffFlowGANState:
    """The initial [`DiffFlowGANState`][gpm_sde.train.DiffFlowGANState]: the optimiser state
    (default `optax.adam(lr)`) of the trainable leaves
    ([`Trainable`][gpm_sde.train.Trainable]), step 0."""
    opt = check_optimizer(optimizer, "optimizer", lr)
    mask = trainable_mask(generator, trainable)
    return DiffFlowGANState(
        generator, opt_init(opt, generator, mask), jnp.zeros((), jnp.int32), mask
    )


def diffflow_gan_make_step(
    real_score: Callable[..., Any],
    optimizer: optax.GradientTransformation | None = None,
    *,
    steps: int,
    latent_dim: int,
    g: float = 0.0,
    beta: float = 1.0,
    sigma: Schedule = 0.1,
    gen_score: Callable[..., Any] | None = None,
    batch_size: int = 512,
    lr: float = 1e-3,
    labels: Any = None,
) -> Callable[[DiffFlowGANState, PRNGKeyArray], tuple[DiffFlowGANState, dict[str, Array]]]:
    r"""One DiffFlow-GAN step as a pure jittable `step(state, key) -> (state, {"g_loss"})`:
    one Int-PM descent of the generator along the drift of this library's form of the DiffFlow
    SDE ([`diffflow`][gpm_sde.diffflow]; Zhang et al. 2023)

    $$b_g(s, x) = \beta\,\nabla\log q_{\sigma(s)}(x) - \big(\beta - \tfrac12 g^2\big)
    \nabla\log p_\theta(x)$$

    at training time $s = k/K$, $k$ = `state.step`, $K$ = `steps`. The arguments are those of
    [`train_diffflow_gan`][gpm_sde.train.train_diffflow_gan] (`latent_dim`: the size of one
    latent); `optimizer` must be the one given to
    [`diffflow_gan_init`][gpm_sde.train.diffflow_gan_init]. With `labels`, the
    class-conditional step of `train_diffflow_gan`.
    """
    check_callable("real_score", real_score, "(sigma, x) -> score", "on one point")
    steps = check_steps(steps)
    check_positive("beta", beta, fix="pass e.g. beta=1.0")
    check_positive("g", g, strict=False, fix="pass g >= 0, e.g. g=0.0 (the GAN end)")
    if not float(g) ** 2 <= 2.0 * float(beta) * (1 + 1e-12):
        raise ValueError(
            f"`g` must satisfy g² <= 2β (the Langevin end), got g={g!r}, beta={beta!r}; beyond "
            f"it the generated score would attract instead of repel."
        )
    batch_size = check_batch_size(batch_size)
    opt = check_optimizer(optimizer, "optimizer", lr)
    shape = latent_shape(None, latent_dim)
    dtype = float_dtype()
    if labels is not None:
        return _conditional_step(
            real_score, opt, steps, shape, g, beta, sigma, gen_score, batch_size, labels
        )
    sde = diffflow(
        AnnealedScore(real_score, sigma),
        SmoothedCloudScore(sigma) if gen_score is None else gen_score,
        beta,
        g,
    )

    def step(
        state: DiffFlowGANState, key: PRNGKeyArray
    ) -> tuple[DiffFlowGANState, dict[str, Array]]:
        mask = state.trainable
        s = state.step.astype(dtype) / steps
        z = draw_latents(key, batch_size, shape, dtype)
        loss, grads = value_and_grad(int_pm_loss, state.generator, mask, sde.drift, z, s)
        gen, g_state = opt_step(opt, state.generator, grads, state.opt_state, mask)
        return DiffFlowGANState(gen, g_state, state.step + 1, mask), {"g_loss": loss}

    return step


def train_diffflow_gan(
    generator: _G,
    real_score: Callable[..., Any],
    key: PRNGKeyArray,
    *,
    steps: int,
    g: float = 0.0,
    beta: float = 1.0,
    sigma: Schedule = 0.1,
    gen_score: Callable[..., Any] | None = None,
    batch_size: int = 512,
    latent_dim: int | None = None,
    optimizer: optax.GradientTransformation | None = None,
    lr: float = 1e-3,
    trainable: Trainable = None,
    labels: Any = None,
    **loop: Unpack[LoopOptions],
) -> tuple[_G, dict[str, np.ndarray]]:
    r"""Train a generator along the drift of this library's form of the DiffFlow SDE
    ([`diffflow`][gpm_sde.diffflow]; Zhang et al. 2023) at a chosen $g$ by Int-PM
    ([`int_pm_loss`][gpm_sde.losses.int_pm_loss]):

    $$b_g(s, x) = \beta\,\nabla\log q_{\sigma(s)}(x) - \big(\beta - \tfrac12 g^2\big)
    \nabla\log p_\theta(x),\qquad
    \mathcal{L}(\theta) = \mathbb{E}_z\big\langle G_\theta(z),\ \mathrm{sg}[-b_g(s, G_\theta(z))]
    \big\rangle,$$

    with training time $s = k/K \in [0, 1)$ at step $k$ of $K$ (so a schedule `sigma(s)`
    anneals the smoothing over training). Unless `gen_score` is given, $\nabla\log p_\theta$
    is the score of each generated batch smoothed at the same level,
    $\nabla\log(\hat p_\theta * k_{\sigma(s)})$
    ([`SmoothedCloudScore`][gpm_sde.scores.SmoothedCloudScore]): both laws are then seen through
    the same kernel, and $\hat p_\theta * k_\sigma = q * k_\sigma$ holds exactly when
    $p_\theta = q$ (Franceschi et al. 2023, §4.1). The plain DiffFlow choice, a kernel estimate
    of the unsmoothed $\nabla\log p_\theta$ (`KernelScore("scott")`), has its fixed point at
    $p_\theta * k_h = q_\sigma$, a generator narrower than the data whenever the bandwidth
    $h > \sigma$.

    A thin loop over [`diffflow_gan_init`][gpm_sde.train.diffflow_gan_init] and
    [`diffflow_gan_make_step`][gpm_sde.train.diffflow_gan_make_step] that checkpoints the
    [`DiffFlowGANState`][gpm_sde.train.DiffFlowGANState].

    **Class-conditional (`labels`).** With `labels`, every generated point carries a class
    $y$ drawn from the law of the data's labels, the generator is $G_\theta(z, y)$, the data
    score is `real_score(sigma, x, y)` $= \nabla\log(q(\cdot\mid y) * k_\sigma)$, and each
    point moves along the drift of its own class,

    $$b_g(s, x\mid y) = \beta\,\nabla\log q_{\sigma(s)}(x\mid y) - \big(\beta -
    \tfrac12 g^2\big)\nabla\log p_\theta(x\mid y),$$

    the unconditional drift above with $q$ and $p_\theta$ replaced by their class-$y$
    conditionals, so the fixed points are those above, class by class (this library's
    combination of DiffFlow with a conditional generator). By default
    $\nabla\log p_\theta(\cdot\mid y)$ is the smoothed score of the batch's points of class
    $y$ only, $\nabla\log(\hat p_\theta(\cdot\mid y) * k_{\sigma(s)})$; a `gen_score` must then
    be a conditional pointwise score `gen_score(s, x, y)`.

    **What $g$ does to a generator.** For particles, the Brownian term $g\,dW$ compensates
    the $\tfrac12 g^2\nabla\log p$ removed from the drift, and the law is the same for every
    $g$ (the marginals' invariance to the weights stated in Zhang et al. 2023, abstract; derived
    by the Fokker–Planck argument in the docs page Theory › DiffFlow). A generator with fresh
    latents at every step cannot store per-particle noise: the Brownian increment has zero mean
    and adds nothing to the expected Int-PM gradient, so the generator follows $b_g$ alone.
    $g = 0$ is the GAN end (the full repulsion $-\beta\nabla\log p_\theta$; fixed point
    $p_\theta = q_\sigma$); growing $g$ weakens the repulsion, and at $g^2 = 2\beta$ the generator
    climbs $\nabla\log q_\sigma$ only and collapses onto its modes. For $0 < g^2 < 2\beta$ the
    fixed point is $p_\theta * k_\sigma \propto q_\sigma^{\beta/(\beta - g^2/2)}$, a sharpened
    target.

    **Arguments:**

    - `generator`: `G(z)` on one latent.
    - `real_score`: the $\sigma$-conditioned data score `real_score(sigma, x)` (a network
      trained by [`fit_score`][gpm_sde.train.fit_score] on `gpm_sde.edm()`, or an exact
      [`SmoothedMixtureScore`][gpm_sde.scores.SmoothedMixtureScore]).
    - `key`: PRNG key. `steps`: generator steps.
    - `g`, `beta`: the DiffFlow diffusion and step weight, $0 \le g^2 \le 2\beta$.
    - `sigma`: the data smoothing $\sigma(s)$, a float or a schedule of $s \in [0, 1)$.
    - `gen_score`: the generated score, pointwise `(s, x)` or a cloud score (default
      `SmoothedCloudScore(sigma)`).
    - `batch_size`, `latent_dim`, `optimizer`, `lr`: as in [`train_gan`][gpm_sde.train.train_gan].
    - `trainable`: what trains ([`Trainable`][gpm_sde.train.Trainable]; default
      [`default_trainable`][gpm_sde.train.default_trainable]).
    - `labels`: `None` (unconditional), or the law of the classes: a 1-D integer array of
      the data's labels (drawn uniformly, so each class comes with its data frequency), a
      law with `.sample_with_components(key, n)` such as a
      [`GaussianMixture`][gpm_sde.GaussianMixture] (class = component), or a callable
      `(key, n) -> labels`. The generator is then called `G(z, y)`, see above.
    - `**loop`: the loop options `checkpoint`, `resume`, `checkpoint_every`, `progress`
      and `chunk` ([`LoopOptions`][gpm_sde.train.LoopOptions]).

    Returns `(generator, history)` with the Int-PM surrogate `g_loss` per step.
    """
    (latent_dim,) = latent_shape(generator, latent_dim)
    opt = check_optimizer(optimizer, "optimizer", lr)
    step = diffflow_gan_make_step(
        real_score,
        opt,
        steps=steps,
        latent_dim=latent_dim,
        g=g,
        beta=beta,
        sigma=sigma,
        gen_score=gen_score,
        batch_size=batch_size,
        labels=labels,
    )
    state = diffflow_gan_init(generator, opt, trainable=trainable)
    state, history = run_loop("train_diffflow_gan", step, state, key, steps=steps, **loop)
    return state.models(), history


def _conditional_step(
    real_score: Callable[..., Any],
    opt: optax.GradientTransformation,
    steps: int,
    shape: tuple[int, ...],
    g: float,
    beta: float,
    sigma: Schedule,
    gen_score: Callable[..., Any] | None,
    batch_size: int,
    labels: Any,
) -> Callable[[DiffFlowGANState, PRNGKeyArray], tuple[DiffFlowGANState, dict[str, Array]]]:
    """The class-conditional DiffFlow-GAN step (arguments checked by the caller)."""
    check_pointwise("real_score", real_score)
    if gen_score is not None:
        check_pointwise("gen_score", gen_score)
    draw_labels = label_sampler(labels)
    dtype = float_dtype()

    def loss_fn(generator: Any, z: Any, y: Any, s: Any) -> Any:
        # The drift of each point's class: both scores see the point's own label, and the
        # default generated score smooths the batch's points of that class only.
        gen: Any = (
            ClassSmoothedCloudScore(sigma, y)
            if gen_score is None
            else LabeledCloudScore(gen_score, y)
        )
        sde = diffflow(AnnealedScore(LabeledCloudScore(real_score, y), sigma), gen, beta, g)
        x = jax.vmap(generator)(z, y)
        direction = jax.lax.stop_gradient(sde.drift(s, jax.lax.stop_gradient(x), None))
        return jnp.sum(x * -direction) / x.shape[0]

    def step(
        state: DiffFlowGANState, key: PRNGKeyArray
    ) -> tuple[DiffFlowGANState, dict[str, Array]]:
        mask = state.trainable
        s = state.step.astype(dtype) / steps
        k_z, k_y = jr.split(key)
        z = draw_latents(k_z, batch_size, shape, dtype)
        y = draw_labels(k_y, batch_size)
        loss, grads = value_and_grad(loss_fn, state.generator, mask, z, y, s)
        gen, g_state = opt_step(opt, state.generator, grads, state.opt_state, mask)
        return DiffFlowGANState(gen, g_state, state.step + 1, mask), {"g_loss": loss}

    return step
