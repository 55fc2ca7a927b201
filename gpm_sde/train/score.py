r"""`fit_score`: train a score model by denoising score matching (or the DDPM ε-loss)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, Unpack

import jax.random as jr
import numpy as np
import optax
from jaxtyping import PRNGKeyArray

from ..losses import ddpm_eps_loss, dsm_loss
from ..processes import DDPM, AbstractLinearProcess
from ._common import (
    as_sampler,
    check_batch_size,
    check_optimizer,
    ema_init,
    ema_update,
    opt_init,
    opt_step,
    value_and_grad,
)
from .loop import LoopOptions, run_loop

_M = TypeVar("_M", bound=Callable[..., Any])


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
    **loop: Unpack[LoopOptions],
) -> tuple[_M, dict[str, np.ndarray]]:
    r"""Train a score model by denoising score matching (Vincent 2011; Song et al. 2021, eq. 7):

    $$\theta \leftarrow \theta - \eta\,\nabla_\theta\,\mathbb{E}_t\lambda(t)\,
    \mathbb{E}\Big\|s_\theta(t, \alpha_t x_0 + \sigma_t\varepsilon) +
    \frac{\varepsilon}{\sigma_t}\Big\|^2$$

    ([`dsm_loss`][gpm_sde.losses.dsm_loss]), or, for a [`DDPM`][gpm_sde.DDPM] chain, by the
    simplified ε-loss of Ho et al. 2020, eq. 14 ([`ddpm_eps_loss`][gpm_sde.losses.ddpm_eps_loss]).
    Its minimiser is the score of the noised data $\nabla\log p_t$.

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
    - `**loop`: the loop options `checkpoint`, `resume`, `checkpoint_every`, `progress`
      and `chunk` ([`LoopOptions`][gpm_sde.train.LoopOptions]).

    Returns `(model, history)` with `history["loss"]` the loss of every step.
    """
    if not callable(model):
        raise TypeError(f"`model` must be a callable score model, got {type(model).__name__}.")
    if not isinstance(process, AbstractLinearProcess | DDPM):
        raise TypeError(
            f"`process` must be a forward process such as `gpm_sde.vp()` or a "
            f"`gpm_sde.ddpm(...)` chain, got {type(process).__name__}."
        )
    batch_size = check_batch_size(batch_size)
    optimizer = check_optimizer(optimizer, "optimizer", lr)
    if ema is not None and not 0.0 <= float(ema) < 1.0:
        raise ValueError(f"`ema` must be a decay in [0, 1) or None, got {ema!r}.")
    options = dict(loss_options or {})
    sample = as_sampler(data)

    def loss_fn(m: Any, x0: Any, k: PRNGKeyArray) -> Any:
        if isinstance(process, DDPM):
            return ddpm_eps_loss(m, process, x0, k)
        return dsm_loss(m, process, x0, k, weighting=weighting, **options)

    def step(state: Any, k: PRNGKeyArray) -> Any:
        m, opt_state, avg = state
        k_data, k_loss = jr.split(k)
        x0 = sample(k_data, batch_size)
        loss, grads = value_and_grad(loss_fn, m, x0, k_loss)
        m, opt_state = opt_step(optimizer, m, grads, opt_state)
        if avg is not None:
            avg = ema_update(avg, m, float(ema))  # pyright: ignore[reportArgumentType]
        return (m, opt_state, avg), {"loss": loss}

    state = (model, opt_init(optimizer, model), None if ema is None else ema_init(model))
    (model, _, avg), history = run_loop(
        "fit_score",
        step,
        state,
        key,
        steps=steps,
        **loop,
    )
    return (model if avg is None else avg[0]), history
