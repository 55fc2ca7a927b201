"""Pieces shared by the trainers: data samplers, optimiser steps, latent draws."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, PRNGKeyArray

from .._checks import check_finite, check_float_array, is_concrete
from ..nn import FourierEmbedding
from ..processes import DDPM, AbstractLinearProcess
from ..schedules import AbstractSchedule

_M = TypeVar("_M")
Sampler = Callable[[PRNGKeyArray, int], Array]


def as_sampler(data: Any, name: str = "data") -> Sampler:
    """`(key, n) -> batch` from a data array `(N, *event)` (minibatches drawn uniformly with
    replacement), an object with `.sample(key, n)` (e.g. a `GaussianMixture`), or a callable
    `(key, n)`."""
    if hasattr(data, "sample") and callable(data.sample):
        return lambda key, n: data.sample(key, n)
    if callable(data):
        return lambda key, n: jnp.asarray(data(key, n))
    check_float_array(name, data)
    arr = jnp.asarray(data)
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise ValueError(
            f"`{name}` must be a non-empty array of points (N, *event), a law with "
            f"`.sample(key, n)` or a callable `(key, n) -> batch`; got an array of shape "
            f"{arr.shape}."
        )
    if is_concrete(arr):
        check_finite(name, arr, "remove or impute non-finite data")
    return lambda key, n: arr[jr.randint(key, (n,), 0, arr.shape[0])]


def check_batch_size(batch_size: Any, name: str = "batch_size") -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`{name}` must be an int >= 1, got {batch_size!r}.")
    return batch_size


_CONSTANTS = (AbstractLinearProcess, DDPM, AbstractSchedule, FourierEmbedding)


def _constant(x: Any) -> bool:
    return isinstance(x, _CONSTANTS)


def params(model: Any) -> Any:
    """The trainable leaves: every inexact array of the model except the constants it
    carries: the parameters of a forward process or schedule held by a parameterisation
    (`EpsilonParam(net, process.sigma)` holds the process's β) and the fixed Fourier
    frequencies of a time embedding. Other leaves are `None`."""
    return jax.tree.map(
        lambda x: None if _constant(x) or not eqx.is_inexact_array(x) else x,
        model,
        is_leaf=_constant,
    )


def partition_trainable(model: Any) -> tuple[Any, Any]:
    r"""Split `model` into `(trainable, rest)` with `eqx.combine(trainable, rest) == model`:
    `trainable` holds the inexact arrays a training loop should update, `rest` everything else,
    including the constants a model carries (a forward process's $\beta$ held by
    `EpsilonParam(net, process.sigma)`, a schedule's values, the fixed Fourier frequencies of
    a time embedding), which `eqx.is_inexact_array` alone would train."""
    diff = params(model)
    rest = jax.tree.map(
        lambda d, x: None if d is not None else x, diff, model, is_leaf=lambda x: x is None
    )
    return diff, rest


def value_and_grad(loss_fn: Callable[..., Any], model: Any, *args: Any, has_aux: bool = False):
    """`loss_fn(model, *args)` and its gradient with respect to `params(model)` only."""
    diff, static = partition_trainable(model)

    def wrapped(d: Any, *a: Any) -> Any:
        return loss_fn(eqx.combine(d, static), *a)

    return eqx.filter_value_and_grad(wrapped, has_aux=has_aux)(diff, *args)


def opt_init(optimizer: optax.GradientTransformation, model: Any) -> Any:
    return optimizer.init(params(model))


def opt_step(
    optimizer: optax.GradientTransformation, model: _M, grads: Any, opt_state: Any
) -> tuple[_M, Any]:
    """One optimiser update of `model` by `grads`."""
    updates, opt_state = optimizer.update(grads, opt_state, params(model))
    return eqx.apply_updates(model, updates), opt_state


def check_optimizer(optimizer: Any, name: str, lr: float) -> optax.GradientTransformation:
    """`optimizer`, or Adam with learning rate `lr` when it is `None`."""
    if optimizer is None:
        return optax.adam(lr)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"`{name}` must be an optax.GradientTransformation such as `optax.adam(1e-3)`, "
            f"got {type(optimizer).__name__}."
        )
    return optimizer


def latent_shape(generator: Any, latent_dim: int | None) -> tuple[int, ...]:
    """The latent shape: `(latent_dim,)`, or the generator's own `latent_dim`."""
    if latent_dim is None:
        latent_dim = getattr(generator, "latent_dim", None)
        if latent_dim is None:
            raise ValueError(
                "`latent_dim` is needed: the generator has no `latent_dim` attribute; pass "
                "`latent_dim=k` for a generator `G(z)` with `z: (k,)`."
            )
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
        raise ValueError(f"`latent_dim` must be an int >= 1, got {latent_dim!r}.")
    return (latent_dim,)


def draw_latents(key: PRNGKeyArray, n: int, shape: tuple[int, ...], dtype: Any) -> Array:
    """`n` standard normal latents."""
    return jr.normal(key, (n, *shape), dtype=dtype)


def float_dtype() -> Any:
    """The default float dtype (float64 when x64 is enabled)."""
    return jnp.zeros(()).dtype


def ema_init(model: _M) -> tuple[_M, Any]:
    """The state of `ema_update`: the average (a copy of `model`, given no weight) and the
    number of iterates averaged so far (0)."""
    return model, jnp.zeros((), jnp.int32)


def ema_update(state: tuple[_M, Any], model: _M, decay: float) -> tuple[_M, Any]:
    r"""Add the iterate $\theta_k$ to the bias-corrected exponential moving average

    $$\bar\theta_k = \frac{\sum_{j=1}^k d^{\,k-j}\,\theta_j}{\sum_{j=1}^k d^{\,k-j}}
    = \beta_k\bar\theta_{k-1} + (1 - \beta_k)\,\theta_k, \qquad
    \beta_k = \frac{d\,(1 - d^{\,k-1})}{1 - d^{\,k}},$$

    the plain average $m_k = d\,m_{k-1} + (1-d)\,\theta_k$ from $m_0 = 0$ divided by
    $1 - d^k$ (the correction of Adam, Kingma & Ba 2015, §3). Unlike the plain average started
    at the initial weights, it gives the initialisation no weight: after $k$ steps that one
    would still hold a share $d^k$ of it (37% after 1,000 steps at $d = 0.999$). On the
    inexact arrays of `params` only."""
    avg, k = state
    d = jnp.asarray(decay, float_dtype())
    beta = d * (1.0 - d**k) / (1.0 - d ** (k + 1))
    new = jax.tree.map(
        lambda a, b: (beta * a + (1.0 - beta) * b).astype(a.dtype), params(avg), params(model)
    )
    return eqx.combine(new, avg), k + 1
