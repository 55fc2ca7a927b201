r"""Numerics shared by the claims: a small optax training loop for the claims that fit a
network (a discriminator, a critic, a score network) to a known target, and a chunked map over
points.

Kept generic: the claims only need "minimise this scalar loss of the model with Adam for so
many steps". What is trained is what `gpm_sde.train` trains
([`partition_trainable`][gpm_sde.train.partition_trainable]): the constants a model carries
(a process's β inside `EpsilonParam(net, process.sigma)`) stay fixed. The loop is a
`jax.lax.scan`, so one call compiles once and runs without Python overhead per step; it can
be called inside a caller's `jax.jit` (to compile the model's construction with it) or
`jax.vmap` (several fits at once).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from gpm_sde.train import partition_trainable

_M = TypeVar("_M")


def adam_cosine(lr: float, steps: int, start: int | Array = 0) -> optax.GradientTransformation:
    r"""Adam with a cosine decay of the learning rate from `lr` to `lr / 100` over `steps`,
    entered at step `start` (to continue a run in stages): the decay lets a stochastic fit
    settle near the minimiser instead of jittering at the scale set by `lr`."""
    schedule = optax.cosine_decay_schedule(lr, steps, alpha=0.01)
    return optax.adam(lambda i: schedule(i + start))


@eqx.filter_jit
def fit(
    model: _M,
    loss_fn: Callable[[_M, PRNGKeyArray], Float[Array, ""]],
    steps: int,
    lr: float,
    key: PRNGKeyArray,
    *,
    schedule_steps: int | None = None,
    start: int | Array = 0,
    optimizer: optax.GradientTransformation | None = None,
) -> tuple[_M, Float[Array, " steps"]]:
    r"""Minimise `loss_fn(model, key)` over the model's trainable arrays.

    Each step draws a fresh key (`jax.random.split(key, steps)`), takes
    the gradient of the loss and applies one optimizer update; the steps run in one
    `jax.lax.scan`, compiled once per loss function (`eqx.filter_jit`). Only the arrays of
    `gpm_sde.train.partition_trainable(model)[0]` move: integers, static fields, process and
    schedule parameters and fixed Fourier frequencies are left alone.

    **Arguments:**

    - `model`: an equinox module (or any pytree of arrays).
    - `loss_fn`: `loss_fn(model, key) -> scalar`; draw the step's batch from `key` inside.
    - `steps`: the number of optimizer steps.
    - `lr`: the peak learning rate of the default optimizer, [`adam_cosine`][theory.fitting.
      adam_cosine]`(lr, schedule_steps, start)`.
    - `key`: PRNG key for the steps' keys.
    - `schedule_steps`, `start`: to train in stages along one schedule: its length (default
      `steps`) and the step this call starts at. Pass `start` as an array to reuse one
      compilation for every stage. Adam's moments restart at each call.
    - `optimizer`: an optax transformation to use instead of the default.

    Returns the trained model and the loss at every step (before that step's update).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be a positive int, got {steps!r}.")
    if optimizer is None:
        optimizer = adam_cosine(lr, steps if schedule_steps is None else schedule_steps, start)
    opt = optimizer
    params, static = partition_trainable(model)

    def step(carry: tuple[Any, optax.OptState], k: PRNGKeyArray) -> tuple[Any, Array]:
        p, state = carry
        value, grads = jax.value_and_grad(lambda q: loss_fn(eqx.combine(q, static), k))(p)
        updates, state = opt.update(grads, state, p)
        return (optax.apply_updates(p, updates), state), value

    (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), jr.split(key, steps))
    return eqx.combine(params, static), jnp.asarray(losses)


BATCH_SIZE = 16


def map_points(fn: Callable[..., Any], *args: Any, batch_size: int = BATCH_SIZE) -> Any:
    """`jax.vmap(fn)(*args)`, computed in chunks of `batch_size` points by `jax.lax.map`.

    Use it when `fn` factorises a matrix that differs from point to point (a smoothed
    covariance $\\Sigma_k + \\sigma(s)^2 I$ at a per-point time, say): under a plain `vmap`
    that becomes one batched LAPACK call over all points, and jaxlib 0.10's CPU kernels split
    a large batch across the intra-op thread pool and block waiting for it, which deadlocks
    the pool when two such calls run at once (seen here on a 2-core machine; the parallel
    path is compiled out of open-source jaxlib from 0.11). Chunks keep every batch small.
    """
    return jax.lax.map(lambda a: fn(*a), args, batch_size=batch_size)
