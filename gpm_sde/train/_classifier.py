r"""Noisy classifiers for classifier guidance:
[`ClassifierState`][gpm_sde.train.ClassifierState],
[`classifier_init`][gpm_sde.train.classifier_init],
[`classifier_make_step`][gpm_sde.train.classifier_make_step] and the loop over them,
[`fit_classifier`][gpm_sde.train.fit_classifier]."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, Unpack

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from .._checks import check_callable
from ..losses import noisy_classifier_loss
from ..processes import AbstractLinearProcess
from ._common import (
    EMA,
    Trainable,
    as_labeled_sampler,
    check_batch_size,
    check_ema,
    check_optimizer,
    ema_init,
    ema_update,
    opt_init,
    opt_step,
    trainable_mask,
    value_and_grad,
)
from ._loop import LoopOptions, run_loop

_M = TypeVar("_M", bound=Callable[..., Any])
ClassifierStep = Callable[
    ["ClassifierState", PRNGKeyArray], tuple["ClassifierState", dict[str, Array]]
]


class ClassifierState(eqx.Module):
    """The training state of a noisy classifier, what
    [`fit_classifier`][gpm_sde.train.fit_classifier] checkpoints.

    - `model`: the current iterate $\\phi_k$.
    - `opt_state`: the optimiser state (of the trainable leaves).
    - `ema`: the [`EMA`][gpm_sde.train.EMA] of the iterates, or `None` without one.
    - `step`: the number of steps taken.
    - `trainable`: the mask of the leaves that train (static).
    """

    model: Any
    opt_state: PyTree
    ema: EMA | None
    step: Int[Array, ""]
    trainable: PyTree[bool] = eqx.field(static=True)

    def models(self) -> Any:
        """The classifier `fit_classifier` returns: the EMA average if one is kept, else the
        iterate."""
        return self.model if self.ema is None else self.ema.average


def _check_model(model: Any) -> None:
    check_callable(
        "model",
        model,
        "(t, x) -> logits (K,)",
        "e.g. `gpm_sde.nn.NoisyClassifierMLP(dim, K, 64, 2, 16, key=key)`",
    )


def classifier_init(
    model: PyTree,
    optimizer: optax.GradientTransformation | None = None,
    *,
    ema: float | None = None,
    trainable: Trainable = None,
    lr: float = 1e-3,
) -> ClassifierState:
    """The initial [`ClassifierState`][gpm_sde.train.ClassifierState] of `model`: the
    optimiser state of the trainable leaves, an [`EMA`][gpm_sde.train.EMA] if `ema` is set,
    step 0.

    **Arguments:**

    - `model`: the classifier `model(t, x) -> logits (K,)` on one point.
    - `optimizer`: an optax transformation (default `optax.adam(lr)`); pass the same one to
      [`classifier_make_step`][gpm_sde.train.classifier_make_step].
    - `ema`: a decay in [0, 1) to keep an average of the iterates, or `None`.
    - `trainable`: what trains ([`Trainable`][gpm_sde.train.Trainable]).
    - `lr`: the learning rate of the default optimiser.
    """
    _check_model(model)
    optimizer = check_optimizer(optimizer, "optimizer", lr)
    ema = check_ema(ema)
    mask = trainable_mask(model, trainable)
    return ClassifierState(
        model=model,
        opt_state=opt_init(optimizer, model, mask),
        ema=None if ema is None else ema_init(model),
        step=jnp.zeros((), jnp.int32),
        trainable=mask,
    )


def classifier_make_step(
    process: AbstractLinearProcess,
    data: Any,
    optimizer: optax.GradientTransformation | None = None,
    *,
    labels: Any,
    batch_size: int = 256,
    t_min: float = 1e-5,
    ema: float | None = None,
    lr: float = 1e-3,
) -> ClassifierStep:
    r"""One step of noisy-classifier training, as a pure jittable function
    `step(state, key) -> (state, {"loss": loss})`:

    $$\phi_{k+1} = \phi_k + \mathrm{update}\Big(\nabla_\phi\,\mathbb{E}_t\,
    \mathbb{E}\big[-\log p_\phi(y\mid t, \alpha_t x_0 + \sigma_t\varepsilon)\big]\Big)$$

    on a minibatch of `batch_size` pairs $(x_0, y)$ drawn with `key`
    ([`noisy_classifier_loss`][gpm_sde.losses.noisy_classifier_loss]). The gradient is taken
    on the trainable leaves only, then the EMA update if the state keeps one.

    The arguments are those of [`fit_classifier`][gpm_sde.train.fit_classifier]; `optimizer`
    (and `ema`) must be those given to [`classifier_init`][gpm_sde.train.classifier_init].
    """
    if not isinstance(process, AbstractLinearProcess):
        raise TypeError(
            f"`process` must be a linear forward process such as `gpm_sde.vp()`, got "
            f"{type(process).__name__}."
        )
    if labels is None:
        raise ValueError(
            "`labels` is required: an integer array (N,) aligned with `data`, 'components' "
            "for a mixture law (class = component), or 'paired' for a callable `(key, n) -> "
            "(batch, labels)`."
        )
    batch_size = check_batch_size(batch_size)
    optimizer = check_optimizer(optimizer, "optimizer", lr)
    decay = check_ema(ema)
    sample = as_labeled_sampler(data, labels)

    def loss_fn(m: Any, x0: Any, y: Any, k: PRNGKeyArray) -> Float[Array, ""]:
        return noisy_classifier_loss(m, process, x0, y, k, t_min=t_min)

    def step(state: ClassifierState, key: PRNGKeyArray) -> tuple[ClassifierState, dict[str, Array]]:
        if (decay is None) != (state.ema is None):
            raise ValueError(
                "`ema` must be the same in `classifier_init` and `classifier_make_step` (the "
                f"state {'has no' if state.ema is None else 'has an'} EMA, the step has "
                f"ema={decay})."
            )
        k_data, k_loss = jr.split(key)
        x0, y = sample(k_data, batch_size)
        mask = state.trainable
        loss, grads = value_and_grad(loss_fn, state.model, mask, x0, y, k_loss)
        model, opt_state = opt_step(optimizer, state.model, grads, state.opt_state, mask)
        avg = state.ema
        if avg is not None:
            avg = ema_update(avg, model, decay, mask)  # pyright: ignore[reportArgumentType]
        new = ClassifierState(model, opt_state, avg, state.step + 1, mask)
        return new, {"loss": loss}

    return step


def fit_classifier(
    model: _M,
    process: AbstractLinearProcess,
    data: Any,
    key: PRNGKeyArray,
    *,
    labels: Any,
    steps: int,
    batch_size: int = 256,
    optimizer: optax.GradientTransformation | None = None,
    lr: float = 1e-3,
    t_min: float = 1e-5,
    ema: float | None = None,
    trainable: Trainable = None,
    **loop: Unpack[LoopOptions],
) -> tuple[_M, dict[str, np.ndarray]]:
    r"""Train a time-conditioned noisy classifier $p_\phi(y\mid t, x)$ for classifier guidance
    (Dhariwal & Nichol 2021, sec. 4) by the cross-entropy of the label on noised data,

    $$\phi \leftarrow \phi - \eta\,\nabla_\phi\,\mathbb{E}_{t\sim\mathcal{U}(t_{\min}, T)}\,
    \mathbb{E}_{(x_0, y),\varepsilon}\big[-\log p_\phi(y\mid t, \alpha_t x_0 +
    \sigma_t\varepsilon)\big]$$

    ([`noisy_classifier_loss`][gpm_sde.losses.noisy_classifier_loss]), whose minimiser is the
    posterior $p_t(y\mid x)$ of the noised data at every $t$. Guide with
    `classifier_guidance(score, classifier_log_prob(clf, y), gamma)`
    ([`classifier_log_prob`][gpm_sde.nn.classifier_log_prob],
    [`classifier_guidance`][gpm_sde.scores.classifier_guidance]).

    A thin loop: [`classifier_init`][gpm_sde.train.classifier_init], then `steps` calls of the
    step of [`classifier_make_step`][gpm_sde.train.classifier_make_step] under
    [`run_loop`][gpm_sde.train.run_loop], which checkpoints the
    [`ClassifierState`][gpm_sde.train.ClassifierState].

    **Arguments:**

    - `model`: the classifier `model(t, x) -> logits (K,)` on one point, e.g.
      [`NoisyClassifierMLP`][gpm_sde.nn.NoisyClassifierMLP].
    - `process`: the linear forward process whose noise the classifier sees (that of the
      score model it will guide).
    - `data`: the training data, with
    - `labels`: the classes, as every class-conditional trainer takes them: an integer array
      `(N,)` aligned with a data array `(N, *event)`, `"components"` for a mixture law (class
      = component), or `"paired"` for a callable `(key, n) -> (batch, labels)`.
    - `key`: PRNG key of the run.
    - `steps`: number of optimiser steps (the total, when resuming).
    - `batch_size`: points per step.
    - `optimizer`: an optax transformation (default `optax.adam(lr)`).
    - `lr`: the learning rate of the default optimiser.
    - `t_min`: the smallest time drawn.
    - `ema`: if set, a decay: the returned classifier is the bias-corrected exponential moving
      average of the iterates ([`ema_update`][gpm_sde.train.ema_update]).
    - `trainable`: what trains ([`Trainable`][gpm_sde.train.Trainable]).
    - `**loop`: the loop options ([`LoopOptions`][gpm_sde.train.LoopOptions]).

    Returns `(model, history)` with `history["loss"]` the cross-entropy of every step.
    """
    _check_model(model)
    optimizer = check_optimizer(optimizer, "optimizer", lr)
    step = classifier_make_step(
        process, data, optimizer, labels=labels, batch_size=batch_size, t_min=t_min, ema=ema
    )
    state = classifier_init(model, optimizer, ema=ema, trainable=trainable)
    state, history = run_loop("fit_classifier", step, state, key, steps=steps, **loop)
    return state.models(), history
