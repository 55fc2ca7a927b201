"""Pieces shared by the trainers: data samplers, optimiser steps, latent draws."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Int, PRNGKeyArray, PyTree

from .._checks import (
    check_finite,
    check_float_array,
    check_int,
    check_positive,
    check_scalar,
    is_concrete,
)
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


LabeledSampler = Callable[[PRNGKeyArray, int], tuple[Array, Array]]


def as_labeled_sampler(data: Any, labels: Any, name: str = "data") -> LabeledSampler:
    r"""The labelled data of every class-conditional trainer (`labels=` of
    [`fit_score`][gpm_sde.train.fit_score], [`train_gan`][gpm_sde.train.train_gan],
    [`train_score_gan`][gpm_sde.train.train_score_gan], ...): a sampler
    `(key, n) -> (batch, labels)` of $n$ pairs $(x_i, y_i) \sim p(x, y)$, from

    - a data array `(N, *event)` and `labels`, an integer array `(N,)` aligned with it
      (pairs drawn uniformly with replacement);
    - a law with `.sample_with_components(key, n)` (e.g. a
      [`GaussianMixture`][gpm_sde.GaussianMixture]: the class is the mixture component) and
      `labels="components"`;
    - a callable `(key, n) -> (batch, labels)` and `labels="paired"`.

    **Arguments:**

    - `data`: the points, the law or the callable (above).
    - `labels`: the integer labels `(N,)`, `"components"` or `"paired"`.
    - `name`: the argument's name in error messages.

    **Returns:** the sampler `(key, n) -> (batch (n, *event), labels (n,))`.
    """
    if isinstance(labels, str):
        if labels == "components":
            if not callable(getattr(data, "sample_with_components", None)):
                raise TypeError(
                    f"`labels='components'` needs `{name}` to be a law with "
                    f"`.sample_with_components(key, n)` (e.g. a GaussianMixture), got "
                    f"{type(data).__name__}; pass a data array with an integer `labels` array."
                )
            return lambda key, n: data.sample_with_components(key, n)
        if labels == "paired":
            if not callable(data):
                raise TypeError(
                    f"`labels='paired'` needs `{name}` to be a callable `(key, n) -> (batch, "
                    f"labels)`, got {type(data).__name__}."
                )

            draw_pairs: Callable[..., Any] = data

            def paired(key: PRNGKeyArray, n: int) -> tuple[Array, Array]:
                x, y = draw_pairs(key, n)
                return jnp.asarray(x), jnp.asarray(y)

            return paired
        raise ValueError(
            f"`labels` must be an integer array (N,) aligned with `{name}`, 'components' or "
            f"'paired', got {labels!r}."
        )
    check_float_array(name, data)
    arr = jnp.asarray(data)
    lab = jnp.asarray(labels)
    if not jnp.issubdtype(lab.dtype, jnp.integer) or lab.ndim != 1:
        raise TypeError(
            f"`labels` must be a 1-D integer array of class indices, got dtype {lab.dtype} "
            f"and shape {lab.shape}; pass e.g. `labels=y.astype(int)`."
        )
    if arr.ndim < 2 or arr.shape[0] != lab.shape[0] or arr.shape[0] == 0:
        raise ValueError(
            f"`{name}` (shape {arr.shape}) and `labels` (shape {lab.shape}) must hold the "
            f"same non-zero number of points N: `{name}` (N, *event), `labels` (N,)."
        )
    if is_concrete(arr):
        check_finite(name, arr, "remove or impute non-finite data")
    if is_concrete(lab) and int(lab.min()) < 0:
        raise ValueError(f"`labels` must be class indices >= 0, got a minimum of {int(lab.min())}.")

    def draw(key: PRNGKeyArray, n: int) -> tuple[Array, Array]:
        idx = jr.randint(key, (n,), 0, arr.shape[0])
        return arr[idx], lab[idx]

    return draw


def check_batch_size(batch_size: Any, name: str = "batch_size") -> int:
    """`batch_size` as an int >= 1 (`TypeError` for a non-int, `ValueError` below 1)."""
    return check_int(name, batch_size, 1, "points per step")


_CONSTANTS = (AbstractLinearProcess, DDPM, AbstractSchedule, FourierEmbedding)

Trainable = Callable[[Any], bool] | PyTree[bool | Callable[[Any], bool]] | None
"""What a trainer updates (the `trainable=` argument of every `init` and trainer):

- `None` (the default): [`default_trainable`][gpm_sde.train.default_trainable];
- a predicate `leaf -> bool` applied to every leaf, e.g. `eqx.is_inexact_array` (every float
  array, constants included);
- a pytree of bools (or of predicates) with the structure of the model or a prefix of it, as
  `eqx.filter` takes, e.g. built with `eqx.tree_at` from
  [`trainable_mask`][gpm_sde.train.trainable_mask].

Only inexact (floating) arrays are ever trained: a `True` on an integer or a Python leaf is
ignored."""


def _constant(x: Any) -> bool:
    return isinstance(x, _CONSTANTS)


def default_trainable(model: PyTree) -> PyTree[bool]:
    r"""The default answer to "what trains": every inexact array of `model` except those
    inside the constants the library's own modules carry, which are data of the problem
    rather than parameters: a forward process or schedule held by a parameterisation
    (`EpsilonParam(net, process.sigma)` holds the process's $\beta$), a `DDPM` chain, and the
    fixed random Fourier frequencies of a [`FourierEmbedding`][gpm_sde.nn.FourierEmbedding]
    (Tancik et al. 2020). Any other float array, including one of your own modules, trains:
    mark it with `trainable=` ([`trainable_mask`][gpm_sde.train.trainable_mask]) to keep it
    fixed.

    Returns a pytree of bools with the structure of `model`."""
    return jax.tree.map(
        lambda x: jax.tree.map(lambda _: False, x) if _constant(x) else eqx.is_inexact_array(x),
        model,
        is_leaf=_constant,
    )


def _is_spec_leaf(x: Any) -> bool:
    return isinstance(x, bool | np.bool_) or (callable(x) and not isinstance(x, eqx.Module))


def trainable_mask(
    model: PyTree, trainable: Trainable = None, *, frozen: Callable[[Any], Any] | None = None
) -> PyTree[bool]:
    r"""The mask of the leaves a trainer updates: a pytree of bools with the structure of
    `model`, `True` exactly on the inexact arrays selected by `trainable` (see
    [`Trainable`][gpm_sde.train.Trainable]; `None`: the
    [`default_trainable`][gpm_sde.train.default_trainable] rule).

    `frozen`, if given, is a function `model -> leaf or tuple of leaves/subtrees` (as the
    `where` of `eqx.tree_at`) whose leaves are then set to `False`: the way to keep one's own
    constant arrays fixed,

    ```python
    mask = trainable_mask(model, frozen=lambda m: m.offset)
    model, history = fit_score(model, process, data, key, steps=100, trainable=mask)
    ```

    The gradient step then acts on $\theta_{\rm train}$ only, with
    $\theta = \mathrm{combine}(\theta_{\rm train}, \theta_{\rm fixed})$
    (`eqx.partition`/`eqx.combine`)."""
    spec = default_trainable(model) if trainable is None else trainable
    try:
        mask = jax.tree.map(
            lambda s, sub: jax.tree.map(
                lambda x: bool(s(x) if callable(s) else s) and eqx.is_inexact_array(x), sub
            ),
            spec,
            model,
            is_leaf=_is_spec_leaf,
        )
    except (ValueError, TypeError) as err:
        raise TypeError(
            f"`trainable` must be None, a predicate `leaf -> bool` such as "
            f"`eqx.is_inexact_array`, or a pytree of bools with the structure of the model (or "
            f"a prefix of it), e.g. from `gpm_sde.train.trainable_mask(model, frozen=...)`; it "
            f"does not match the model: {err}"
        ) from None
    if frozen is not None:
        where = frozen
        try:
            mask = eqx.tree_at(
                where, mask, replace_fn=lambda sub: jax.tree.map(lambda _: False, sub)
            )
        except Exception as err:
            raise ValueError(
                f"`frozen` must be a function `model -> leaf or tuple of leaves` of the model "
                f"(as the `where` of `eqx.tree_at`), e.g. `lambda m: m.offset`; it failed: {err}"
            ) from None
    return mask


def params(model: Any, mask: Any = None) -> Any:
    """The trainable leaves of `model` under `mask` (default: the
    [`default_trainable`][gpm_sde.train.default_trainable] rule); other leaves are `None`."""
    return eqx.filter(model, trainable_mask(model) if mask is None else mask)


def partition_trainable(model: PyTree, trainable: Trainable = None) -> tuple[PyTree, PyTree]:
    r"""Split `model` into `(trainable, rest)` with `eqx.combine(trainable, rest) == model`:
    `trainable` holds the inexact arrays a training loop updates (selected by `trainable`,
    see [`trainable_mask`][gpm_sde.train.trainable_mask]; by default the
    [`default_trainable`][gpm_sde.train.default_trainable] rule, which leaves out the
    constants a model carries: a forward process's $\beta$ held by
    `EpsilonParam(net, process.sigma)`, a schedule's values, the fixed Fourier frequencies of
    a time embedding, which `eqx.is_inexact_array` alone would train), `rest` everything
    else."""
    return eqx.partition(model, trainable_mask(model, trainable))


def value_and_grad(
    loss_fn: Callable[..., Any], model: Any, mask: Any, *args: Any, has_aux: bool = False
) -> Any:
    """`loss_fn(model, *args)` and its gradient with respect to the leaves of `mask` only."""
    diff, static = eqx.partition(model, mask)

    def wrapped(d: Any, *a: Any) -> Any:
        return loss_fn(eqx.combine(d, static), *a)

    return eqx.filter_value_and_grad(wrapped, has_aux=has_aux)(diff, *args)


def opt_init(optimizer: optax.GradientTransformation, model: Any, mask: Any) -> Any:
    return optimizer.init(eqx.filter(model, mask))


def opt_step(
    optimizer: optax.GradientTransformation, model: _M, grads: Any, opt_state: Any, mask: Any
) -> tuple[_M, Any]:
    """One optimiser update of the `mask` leaves of `model` by `grads`."""
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, mask))
    return eqx.apply_updates(model, updates), opt_state


def check_optimizer(optimizer: Any, name: str, lr: float) -> optax.GradientTransformation:
    """`optimizer`, or Adam with learning rate `lr` (finite, > 0) when it is `None`."""
    if optimizer is None:
        check_scalar("lr", lr)
        check_positive("lr", lr, fix="pass a learning rate such as lr=1e-3")
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
    return (check_int("latent_dim", latent_dim, 1, "the size of one latent"),)


def check_count(name: str, value: Any) -> int:
    """`value` as an int >= 0 (`TypeError` for a non-int, `ValueError` below 0)."""
    return check_int(name, value, 0)


def draw_latents(key: PRNGKeyArray, n: int, shape: tuple[int, ...], dtype: Any) -> Array:
    """`n` standard normal latents."""
    return jr.normal(key, (n, *shape), dtype=dtype)


def float_dtype() -> Any:
    """The default float dtype (float64 when x64 is enabled)."""
    return jnp.zeros(()).dtype


class EMA(eqx.Module):
    r"""The state of a bias-corrected exponential moving average of model iterates:
    `average` (a model) and `count`, the number of iterates averaged so far."""

    average: Any
    count: Int[Array, ""]


def ema_init(model: PyTree) -> EMA:
    """The state of `ema_update`: the average (a copy of `model`, given no weight) and the
    number of iterates averaged so far (0)."""
    return EMA(model, jnp.zeros((), jnp.int32))


def ema_update(state: EMA, model: Any, decay: float, mask: Any = None) -> EMA:
    r"""Add the iterate $\theta_k$ to the bias-corrected exponential moving average

    $$\bar\theta_k = \frac{\sum_{j=1}^k d^{\,k-j}\,\theta_j}{\sum_{j=1}^k d^{\,k-j}}
    = \beta_k\bar\theta_{k-1} + (1 - \beta_k)\,\theta_k, \qquad
    \beta_k = \frac{d\,(1 - d^{\,k-1})}{1 - d^{\,k}},$$

    the plain average $m_k = d\,m_{k-1} + (1-d)\,\theta_k$ from $m_0 = 0$ divided by
    $1 - d^k$ (the correction of Adam, Kingma & Ba 2015, §3). Unlike the plain average started
    at the initial weights, it gives the initialisation no weight: after $k$ steps that one
    would still hold a share $d^k$ of it (37% after 1,000 steps at $d = 0.999$). On the
    trainable leaves (`mask`, default: `default_trainable`) only."""
    avg, k = state.average, state.count
    mask = trainable_mask(model) if mask is None else mask
    d = jnp.asarray(decay, float_dtype())
    beta = d * (1.0 - d**k) / (1.0 - d ** (k + 1))
    new = jax.tree.map(
        lambda a, b: (beta * a + (1.0 - beta) * b).astype(a.dtype),
        eqx.filter(avg, mask),
        eqx.filter(model, mask),
    )
    return EMA(eqx.combine(new, avg), k + 1)


def check_ema(ema: Any) -> float | None:
    """`ema` as a decay in [0, 1), or `None`."""
    if ema is None:
        return None
    if isinstance(ema, bool) or not isinstance(ema, int | float | np.floating):
        raise TypeError(f"`ema` must be a decay in [0, 1) such as 0.999, or None; got {ema!r}.")
    if not 0.0 <= float(ema) < 1.0:
        raise ValueError(f"`ema` must be a decay in [0, 1) such as 0.999, or None; got {ema!r}.")
    return float(ema)


def where_tree(pred: Any, new: _M, old: _M) -> _M:
    """`new` where the scalar `pred` holds, else `old`, on the array leaves."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b) if eqx.is_array(a) else a, new, old)
