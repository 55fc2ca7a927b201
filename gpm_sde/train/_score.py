r"""Score models by denoising score matching: [`ScoreState`][gpm_sde.train.ScoreState],
[`score_init`][gpm_sde.train.score_init], [`score_make_step`][gpm_sde.train.score_make_step]
and the loop over them, [`fit_score`][gpm_sde.train.fit_score]."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, Unpack

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from .._checks import check_callable, is_concrete
from ..losses import ddpm_eps_loss, drop_labels, dsm_loss
from ..processes import DDPM, AbstractLinearProcess
from ._common import (
    EMA,
    Trainable,
    as_labeled_sampler,
    as_sampler,
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
ScoreStep = Callable[["ScoreState", PRNGKeyArray], tuple["ScoreState", dict[str, Array]]]


class ScoreState(eqx.Module):
    """The training state of a score model, what [`fit_score`][gpm_sde.train.fit_score]
    checkpoints.

    - `model`: the current iterate $\\theta_k$.
    - `opt_state`: the optimiser state (of the trainable leaves).
    - `ema`: the [`EMA`][gpm_sde.train.EMA] of the iterates, or `None` without one.
    - `step`: the number of steps taken.
    - `trainable`: the mask of the leaves that train (static; see
      [`trainable_mask`][gpm_sde.train.trainable_mask]).
    """

    model: Any
    opt_state: PyTree
    ema: EMA | None
    step: Int[Array, ""]
    trainable: PyTree[bool] = eqx.field(static=True)

    def models(self) -> Any:
        """The model `fit_score` returns: the EMA average if one is kept, else the iterate."""
        return self.model if self.ema is None else self.ema.average


def _check_model(model: Any) -> None:
    check_callable(
        "model", model, "(t, x) -> score", "e.g. `EpsilonParam(ScoreMLP(...), process.sigma)`"
    )


def _model_num_classes(model: Any) -> int | None:
    """The number of classes K of a class-conditional network of the library inside `model`
    (its `label_embedding` has K + 1 rows, the last the null label), or `None`."""
    found = set()
    for path, leaf in jax.tree_util.tree_flatten_with_path(
        model, is_leaf=lambda x: isinstance(x, eqx.nn.Embedding)
    )[0]:
        if isinstance(leaf, eqx.nn.Embedding) and path:
            if getattr(path[-1], "name", None) == "label_embedding":
                found.add(int(leaf.num_embeddings) - 1)
    return found.pop() if len(found) == 1 else None


def _data_num_classes(data: Any, labels: Any) -> int | None:
    """K from the data: the number of mixture components (`labels='components'`) or the
    largest label + 1 of a concrete label array; `None` if unknown."""
    if isinstance(labels, str):
        weights = getattr(data, "weights", None)
        if labels == "components" and weights is not None:
            return int(jnp.shape(weights)[0])
        return None
    lab = jnp.asarray(labels)
    if jnp.issubdtype(lab.dtype, jnp.integer) and lab.size > 0 and is_concrete(lab):
        return int(lab.max()) + 1
    return None


def _resolve_num_classes(
    num_classes: Any, model: Any, data: Any, labels: Any, needed: bool
) -> int | None:
    """`num_classes` (K; the null label is K): as given, else the model's, else the data's;
    checked against both."""
    from_model = None if model is None else _model_num_classes(model)
    from_data = _data_num_classes(data, labels)
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer):
            raise TypeError(
                f"`num_classes` must be an int >= 1 (the null label is `num_classes`), got "
                f"{num_classes!r}."
            )
        if num_classes < 1:
            raise ValueError(f"`num_classes` must be an int >= 1, got {num_classes}.")
        if from_model is not None and from_model != num_classes:
            raise ValueError(
                f"`num_classes={num_classes}` disagrees with the model, whose label embedding "
                f"has {from_model} classes and the null label {from_model}; pass "
                f"`num_classes={from_model}` or leave it out."
            )
        k = int(num_classes)
    else:
        k = from_model if from_model is not None else from_data
    if k is not None and from_data is not None and from_data > k:
        raise ValueError(
            f"the labels run up to {from_data - 1}, but there are only {k} classes "
            f"(0..{k - 1}, the null label {k}); build the network with `num_classes="
            f"{from_data}` or pass labels in range."
        )
    if needed and k is None:
        raise ValueError(
            "`label_dropout > 0` replaces labels by the null label `num_classes`, which could "
            "not be read from the model or the data; pass `num_classes=K` (the labels are "
            "0..K-1)."
        )
    return k


def _check_label_options(labels: Any, label_dropout: Any, num_classes: Any) -> float:
    if isinstance(label_dropout, bool) or not isinstance(label_dropout, int | float | np.floating):
        raise TypeError(
            f"`label_dropout` must be a probability in [0, 1] such as 0.1, got {label_dropout!r}."
        )
    p = float(label_dropout)
    if not 0.0 <= p <= 1.0:
        raise ValueError(
            f"`label_dropout` must be a probability in [0, 1] such as 0.1, got {label_dropout!r}."
        )
    if labels is None and (p != 0.0 or num_classes is not None):
        raise ValueError(
            "`label_dropout` and `num_classes` act on labels, but `labels` is None; pass "
            "`labels=` (an integer array aligned with `data`, 'components' or 'paired') to "
            "train a conditional model."
        )
    return p


def score_init(
    model: PyTree,
    optimizer: optax.GradientTransformation | None = None,
    *,
    ema: float | None = None,
    trainable: Trainable = None,
    lr: float = 1e-3,
) -> ScoreState:
    """The initial [`ScoreState`][gpm_sde.train.ScoreState] of `model`: the optimiser state
    `optimizer.init` of the trainable leaves, an [`EMA`][gpm_sde.train.EMA] if `ema` is set,
    step 0.

    **Arguments:**

    - `model`: the score model `model(t, x)` on one point.
    - `optimizer`: an optax transformation (default `optax.adam(lr)`); pass the same one to
      [`score_make_step`][gpm_sde.train.score_make_step].
    - `ema`: a decay in [0, 1) to keep an average of the iterates, or `None`.
    - `trainable`: what trains ([`Trainable`][gpm_sde.train.Trainable]; default
      [`default_trainable`][gpm_sde.train.default_trainable]).
    - `lr`: the learning rate of the default optimiser.
    """
    _check_model(model)
    optimizer = check_optimizer(optimizer, "optimizer", lr)
    ema = check_ema(ema)
    mask = trainable_mask(model, trainable)
    return ScoreState(
        model=model,
        opt_state=opt_init(optimizer, model, mask),
        ema=None if ema is None else ema_init(model),
        step=jnp.zeros((), jnp.int32),
        trainable=mask,
    )


def score_make_step(
    process: AbstractLinearProcess | DDPM,
    data: Any,
    optimizer: optax.GradientTransformation | None = None,
    *,
    labels: Any = None,
    label_dropout: float = 0.0,
    num_classes: int | None = None,
    batch_size: int = 256,
    weighting: str = "std2",
    ema: float | None = None,
    loss_options: dict[str, Any] | None = None,
    lr: float = 1e-3,
) -> ScoreStep:
    r"""One step of denoising score matching (Vincent 2011; Song et al. 2021, eq. 7), as a
    pure jittable function `step(state, key) -> (state, {"loss": loss})`:

    $$\theta_{k+1} = \theta_k + \mathrm{update}\Big(\nabla_\theta\,\mathbb{E}_t\lambda(t)\,
    \mathbb{E}\Big\|s_\theta(t, \alpha_t x_0 + \sigma_t\varepsilon) +
    \frac{\varepsilon}{\sigma_t}\Big\|^2\Big)$$

    on a minibatch $x_0$ of `batch_size` points drawn with `key`
    ([`dsm_loss`][gpm_sde.losses.dsm_loss]; for a [`DDPM`][gpm_sde.DDPM] chain the ε-loss of
    Ho et al. 2020, eq. 14, [`ddpm_eps_loss`][gpm_sde.losses.ddpm_eps_loss]), with the
    gradient taken on the trainable leaves `state.trainable` only, then the EMA update if the
    state keeps one. With `labels`, the minibatch is of pairs $(x_0, y)$, each label replaced
    by the null label with probability `label_dropout`, and the model is called
    `model(t, x, y)`.

    The arguments are those of [`fit_score`][gpm_sde.train.fit_score]; `optimizer` (and
    `ema`) must be those given to [`score_init`][gpm_sde.train.score_init]. Without the model,
    `num_classes` is read from the data (the number of mixture components, or the largest
    label + 1): pass it when `label_dropout > 0` and the labels may not cover every class.
    """
    if not isinstance(process, AbstractLinearProcess | DDPM):
        raise TypeError(
            f"`process` must be a forward process such as `gpm_sde.vp()` or a "
            f"`gpm_sde.ddpm(...)` chain, got {type(process).__name__}."
        )
    batch_size = check_batch_size(batch_size)
    optimizer = check_optimizer(optimizer, "optimizer", lr)
    decay = check_ema(ema)
    options = dict(loss_options or {})
    dropout = _check_label_options(labels, label_dropout, num_classes)
    sample = as_sampler(data) if labels is None else None
    sample_pairs = None if labels is None else as_labeled_sampler(data, labels)
    null = (
        None
        if labels is None
        else _resolve_num_classes(num_classes, None, data, labels, dropout > 0.0)
    )

    def loss_fn(m: Any, x0: Any, y: Any, k: PRNGKeyArray) -> Float[Array, ""]:
        if isinstance(process, DDPM):
            return ddpm_eps_loss(m, process, x0, k, labels=y)
        return dsm_loss(m, process, x0, k, labels=y, weighting=weighting, **options)

    def step(state: ScoreState, key: PRNGKeyArray) -> tuple[ScoreState, dict[str, Array]]:
        if (decay is None) != (state.ema is None):
            raise ValueError(
                "`ema` must be the same in `score_init` and `score_make_step` (the state "
                f"{'has no' if state.ema is None else 'has an'} EMA, the step has ema={decay})."
            )
        if sample is not None:
            k_data, k_loss = jr.split(key)
            x0, y = sample(k_data, batch_size), None
        else:
            assert sample_pairs is not None
            # The dropout key is a sibling of the data key: a key derived from the data key
            # (e.g. `fold_in(k_data, 1)`) can coincide with one the sampler derives itself
            # (a mixture draws its components so), correlating dropout with the class.
            k_data, k_loss, k_drop = jr.split(key, 3)
            x0, y = sample_pairs(k_data, batch_size)
            if dropout > 0.0:
                assert null is not None
                y = drop_labels(k_drop, y, dropout, null)
        mask = state.trainable
        loss, grads = value_and_grad(loss_fn, state.model, mask, x0, y, k_loss)
        model, opt_state = opt_step(optimizer, state.model, grads, state.opt_state, mask)
        avg = state.ema
        if avg is not None:
            avg = ema_update(avg, model, decay, mask)  # pyright: ignore[reportArgumentType]
        new = ScoreState(model, opt_state, avg, state.step + 1, mask)
        return new, {"loss": loss}

    return step


def fit_score(
    model: _M,
    process: AbstractLinearProcess | DDPM,
    data: Any,
    key: PRNGKeyArray,
    *,
    steps: int,
    labels: Any = None,
    label_dropout: float = 0.0,
    num_classes: int | None = None,
    batch_size: int = 256,
    optimizer: optax.GradientTransformation | None = None,
    lr: float = 1e-3,
    weighting: str = "std2",
    ema: float | None = None,
    loss_options: dict[str, Any] | None = None,
    trainable: Trainable = None,
    **loop: Unpack[LoopOptions],
) -> tuple[_M, dict[str, np.ndarray]]:
    r"""Train a score model by denoising score matching (Vincent 2011; Song et al. 2021, eq. 7):

    $$\theta \leftarrow \theta - \eta\,\nabla_\theta\,\mathbb{E}_t\lambda(t)\,
    \mathbb{E}\Big\|s_\theta(t, \alpha_t x_0 + \sigma_t\varepsilon) +
    \frac{\varepsilon}{\sigma_t}\Big\|^2$$

    ([`dsm_loss`][gpm_sde.losses.dsm_loss]), or, for a [`DDPM`][gpm_sde.DDPM] chain, by the
    simplified ε-loss of Ho et al. 2020, eq. 14 ([`ddpm_eps_loss`][gpm_sde.losses.ddpm_eps_loss]).
    Its minimiser is the score of the noised data $\nabla\log p_t$.

    **Conditional models** (`labels=`): the model is called $s_\theta(t, x, y)$ on pairs
    $(x_0, y)$ and the loss is the same with $s_\theta(t, x_t, \tilde y)$, its minimiser the
    conditional score $\nabla\log p_t(x\mid y)$. With `label_dropout` $= p > 0$ each label
    is replaced by the null label $\varnothing = K$ with probability $p$
    ([`drop_labels`][gpm_sde.losses.drop_labels]), so one network also learns the
    unconditional score $s_\theta(t, x, \varnothing) \approx \nabla\log p_t(x)$:
    classifier-free training (Ho & Salimans 2022, algorithm 1), the two scores of
    [`classifier_free_guidance`][gpm_sde.scores.classifier_free_guidance].

    A thin loop: [`score_init`][gpm_sde.train.score_init], then `steps` calls of the step of
    [`score_make_step`][gpm_sde.train.score_make_step] under
    [`run_loop`][gpm_sde.train.run_loop], which checkpoints the
    [`ScoreState`][gpm_sde.train.ScoreState].

    **Arguments:**

    - `model`: the score `model(t, x)` on one point, e.g.
      `EpsilonParam(ScoreMLP(...), process)`; for a DDPM chain, the noise predictor
      `model(n, x)`.
    - `process`: the forward process (`vp()`, `ve()`, `edm()`, ...) or a `ddpm(...)` chain.
    - `data`: training data `(N, *event)` (minibatches drawn with replacement), a law with
      `.sample(key, n)`, or a callable `(key, n) -> batch`.
    - `key`: PRNG key of the run.
    - `steps`: number of optimiser steps (the total, when resuming).
    - `labels`: `None` (unconditional), or the classes of the data, as every
      class-conditional trainer takes them: an integer array
      `(N,)` aligned with a data array, `"components"` for a mixture law (class = component),
      or `"paired"` for a callable `(key, n) -> (batch, labels)`. The model is then
      `model(t, x, y)`, e.g. `EpsilonParam(ScoreMLP(..., num_classes=K), process.sigma)`.
    - `label_dropout`: the probability $p$ of replacing a label by the null label (0: a
      purely conditional model; 0.1–0.2 in Ho & Salimans 2022; 1: the unconditional score at
      the null label only).
    - `num_classes`: $K$, the null label; by default read from the model's label embedding
      ([`ScoreMLP`][gpm_sde.nn.ScoreMLP], [`UNet8`][gpm_sde.nn.UNet8] with `num_classes=K`),
      else from the data (mixture components, or the largest label + 1).
    - `batch_size`: points per step.
    - `optimizer`: an optax transformation (default `optax.adam(lr)`).
    - `lr`: the learning rate of the default optimiser.
    - `weighting`: the DSM weighting, `"std2"`, `"likelihood"` or `"edm"`.
    - `ema`: if set, a decay $d$ (e.g. 0.999): the returned model is the exponential moving
      average of the iterates (Song et al. 2021, App. H), which samples better than the last
      iterate, bias-corrected so that the initial weights get no share:
      $\bar\theta_k = \sum_{j \le k} d^{\,k-j}\theta_j / \sum_{j \le k} d^{\,k-j}$.
    - `loss_options`: extra keyword arguments of `dsm_loss` (`t_min`, `sigma_data`, `p_mean`,
      `p_std`).
    - `trainable`: what trains ([`Trainable`][gpm_sde.train.Trainable]): by default every
      float array except the constants of the library's modules
      ([`default_trainable`][gpm_sde.train.default_trainable]); pass
      `trainable_mask(model, frozen=lambda m: m.my_constant)` to keep your own arrays fixed.
    - `**loop`: the loop options `checkpoint`, `resume`, `checkpoint_every`, `progress`
      and `chunk` ([`LoopOptions`][gpm_sde.train.LoopOptions]).

    Returns `(model, history)` with `history["loss"]` the loss of every step.
    """
    _check_model(model)
    optimizer = check_optimizer(optimizer, "optimizer", lr)
    if labels is None:
        _check_label_options(labels, label_dropout, num_classes)
        step = score_make_step(
            process,
            data,
            optimizer,
            batch_size=batch_size,
            weighting=weighting,
            ema=ema,
            loss_options=loss_options,
        )
    else:
        # The model is known here: its label embedding gives the null label.
        step = score_make_step(
            process,
            data,
            optimizer,
            labels=labels,
            label_dropout=label_dropout,
            num_classes=_resolve_num_classes(
                num_classes, model, data, labels, float(label_dropout) > 0.0
            ),
            batch_size=batch_size,
            weighting=weighting,
            ema=ema,
            loss_options=loss_options,
        )
    state = score_init(model, optimizer, ema=ema, trainable=trainable)
    state, history = run_loop("fit_score", step, state, key, steps=steps, **loop)
    return state.models(), history
