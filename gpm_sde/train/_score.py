r"""Score models by denoising score matching: [`ScoreState`][gpm_sde.train.ScoreState],
[`score_init`][gpm_sde.train.score_init], [`score_make_step`][gpm_sde.train.score_make_step]
and the loop over them, [`fit_score`][gpm_sde.train.fit_score]."""

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
from ..losses import ddpm_eps_loss, dsm_loss
from ..processes import DDPM, AbstractLinearProcess
from ._common import (
    EMA,
    Trainable,
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
    state keeps one.

    The arguments are those of [`fit_score`][gpm_sde.train.fit_score]; `optimizer` (and
    `ema`) must be those given to [`score_init`][gpm_sde.train.score_init].
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
    sample = as_sampler(data)

    def loss_fn(m: Any, x0: Any, k: PRNGKeyArray) -> Float[Array, ""]:
        if isinstance(process, DDPM):
            return ddpm_eps_loss(m, process, x0, k)
        return dsm_loss(m, process, x0, k, weighting=weighting, **options)

    def step(state: ScoreState, key: PRNGKeyArray) -> tuple[ScoreState, dict[str, Array]]:
        if (decay is None) != (state.ema is None):
            raise ValueError(
                "`ema` must be the same in `score_init` and `score_make_step` (the state "
                f"{'has no' if state.ema is None else 'has an'} EMA, the step has ema={decay})."
            )
        k_data, k_loss = jr.split(key)
        x0 = sample(k_data, batch_size)
        mask = state.trainable
        loss, grads = value_and_grad(loss_fn, state.model, mask, x0, k_loss)
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
    step = score_make_step(
        process,
        data,
        optimizer,
        batch_size=batch_size,
        weighting=weighting,
        ema=ema,
        loss_options=loss_options,
    )
    state = score_init(model, optimizer, ema=ema, trainable=trainable)
    state, history = run_loop("fit_score", step, state, key, steps=steps, **loop)
    return state.models(), history
