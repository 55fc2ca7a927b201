r"""Scores that see the whole cloud, and the one helper that evaluates any score on a cloud."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PyTree


class AbstractCloudScore(eqx.Module):
    r"""A score estimated from the particle cloud itself: `score(s, y)` maps the cloud
    `y: (N, *event)` to the score of its own law at every particle, $(\nabla\log\hat p_s(y_i))_i$.

    [`ScoreDrift`][gpm_sde.ScoreDrift], every SDE transform and every sampler call it on the
    cloud directly instead of lifting it with `vmap` (see
    [`on_cloud`][gpm_sde.scores.on_cloud]): interacting-particle (mean-field) dynamics need no
    special path. A wrapper that changes only the time argument (e.g. the generation-time
    reversal $s \mapsto T - s$) is an
    [`AbstractTimeChangedScore`][gpm_sde.scores.AbstractTimeChangedScore]: it is a cloud score
    exactly when the score it wraps is one (see
    [`is_cloud_score`][gpm_sde.scores.is_cloud_score]).
    """

    per_point: ClassVar[bool] = False
    """`True` for a cloud score whose value at one particle depends on that particle alone
    (e.g. a network written on a batch, called once on the cloud for speed); `False` (the
    default) for a mean-field estimate that couples the particles. Per-particle densities
    (e.g. [`log_likelihood`][gpm_sde.log_likelihood]) accept only the former."""

    @abc.abstractmethod
    def __call__(
        self, s: Float[ArrayLike, ""], y: Float[Array, " n *event"]
    ) -> Float[Array, " n *event"]:
        """The estimated score of the cloud's law at each of its particles."""


class AbstractTimeChangedScore(eqx.Module):
    r"""A score evaluated at a changed time: `wrapper(s, x) = score(τ(s), x)`, i.e.
    $\nabla\log p_{\tau(s)}(x)$.

    The wrapper passes its second argument through untouched, so it acts on whatever the
    wrapped `score` acts on: on one point `x: (*event,)` when `score` is pointwise, on the
    whole cloud `y: (N, *event)` when `score` is a cloud score.
    [`is_cloud_score`][gpm_sde.scores.is_cloud_score] (and so
    [`on_cloud`][gpm_sde.scores.on_cloud], every drift, transform and sampler) follows the
    wrapped score: wrapping never turns a mean-field estimate into a one-point one.

    Subclasses hold the field `score` and define `time(s)`, e.g.
    [`TimeReversedScore`][gpm_sde.scores.TimeReversedScore] ($\tau(s) = T - s$, Anderson 1982;
    Song et al. 2021) and [`AnnealedScore`][gpm_sde.scores.AnnealedScore] ($\tau = \sigma(s)$).
    """

    score: eqx.AbstractVar[Callable[..., Any]]

    @abc.abstractmethod
    def time(self, s: Float[ArrayLike, ""]) -> Float[ArrayLike, ""]:
        r"""The time $\tau(s)$ handed to the wrapped score."""

    def __call__(self, s: Float[ArrayLike, ""], x: Float[Array, "*shape"]) -> PyTree:
        r"""$\nabla\log p_{\tau(s)}$ at the point (or, for a wrapped cloud score, every particle
        of the cloud) `x`: what the wrapped score returns, unchecked here (shapes are checked
        once per solve by [`check_score`][gpm_sde.scores.check_score])."""
        return self.score(self.time(s), x)


def is_cloud_score(score: Any) -> bool:
    """Whether `score` acts on the whole cloud rather than on one point: an
    [`AbstractCloudScore`][gpm_sde.scores.AbstractCloudScore], or an
    [`AbstractTimeChangedScore`][gpm_sde.scores.AbstractTimeChangedScore] wrapping one (at any
    depth)."""
    while isinstance(score, AbstractTimeChangedScore):
        score = score.score
    return isinstance(score, AbstractCloudScore)


def couples_particles(score: Any) -> bool:
    """Whether `score` is a cloud score whose value at one particle depends on the others (a
    mean-field estimate), looking through time-changing wrappers; a batched per-particle
    score ([`from_batched`][gpm_sde.scores.from_batched]) does not couple them."""
    while isinstance(score, AbstractTimeChangedScore):
        score = score.score
    return isinstance(score, AbstractCloudScore) and not score.per_point


def on_cloud(score: Callable[..., Any], t: Any, y: Array) -> Array:
    r"""Evaluate `score` at time `t` on every particle of the cloud `y: (N, *event)`:
    $(\nabla\log p_t(y_i))_{i=1}^N$.

    A pointwise score `score(t, x)` on one point is lifted with `jax.vmap` over the particle
    axis (one `t` for all points); a cloud score
    ([`AbstractCloudScore`][gpm_sde.scores.AbstractCloudScore], or a time change of one: see
    [`is_cloud_score`][gpm_sde.scores.is_cloud_score]) is called on the whole cloud, so a
    mean-field estimate sees every particle. This is the only place where a score meets a
    cloud: drifts, transforms and samplers all go through it.

    **Arguments:**

    - `score`: a pointwise score `(t, x) -> ∇log p_t(x)` or a cloud score `(t, y) -> (N, *event)`.
    - `t`: the time (or noise level) passed to the score, shared by all particles.
    - `y`: the cloud `(N, *event)`.

    **Returns:** an array of the cloud's shape.
    """
    if is_cloud_score(score):
        return score(t, y)
    return jax.vmap(score, in_axes=(None, 0))(t, y)


def _struct(a: Any) -> jax.ShapeDtypeStruct:
    if isinstance(a, jax.ShapeDtypeStruct):
        return a
    return jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a))


def _describe(a: jax.ShapeDtypeStruct) -> str:
    return f"{tuple(a.shape)} {jnp.dtype(a.dtype).name}"


def check_score(
    score: Callable[..., Any],
    t: Float[ArrayLike, ""] | jax.ShapeDtypeStruct,
    y: Float[Array, " n *event"] | jax.ShapeDtypeStruct,
    *,
    name: str = "`score`",
) -> None:
    r"""Check that `score` can be evaluated on the cloud `y: (N, *event)` at time `t`, as
    [`on_cloud`][gpm_sde.scores.on_cloud] does, and returns one real floating array of the
    expected shape:

    - a pointwise score, called as `score(t, x)` on one point `x: event`, must return `event`
      (the score $\nabla\log p_t(x)$ of that point);
    - a cloud score ([`is_cloud_score`][gpm_sde.scores.is_cloud_score]), called as
      `score(t, y)` on the whole cloud, must return `(N, *event)`.

    Any real floating dtype is accepted (drifts cast the result to the cloud's dtype).

    Only shapes and dtypes are traced (`jax.eval_shape`): nothing is computed, and the check
    works inside `jax.jit`. [`simulate`][gpm_sde.simulate] runs it once per solve on every
    score of the SDE (see [`SDE.check_scores`][gpm_sde.sde.SDE.check_scores]).

    **Arguments:**

    - `score`: the score to check.
    - `t`: a time of the dtype the solver will pass (its value is not used).
    - `y`: the cloud, or a `jax.ShapeDtypeStruct` of it.
    - `name`: how the error message names the score, e.g. ``"`score` of `reverse`"``.

    **Raises:** `ValueError` for a wrong output shape (or a call that fails with a
    `ValueError`/`IndexError`); `TypeError` for an output that is not one real floating array
    (or a call that fails with a `TypeError`). The message says what the score was called
    with, what it returned, what was expected and what to pass.
    """
    t_s, y_s = _struct(t), _struct(y)
    if len(y_s.shape) < 1:
        raise ValueError(f"`y` must be a cloud of shape (N, *event), got shape {y_s.shape}.")
    cloud = is_cloud_score(score)
    if cloud:
        arg = y_s
        called = f"`score(t, y)` on the whole cloud y: {_describe(y_s)}"
        inner, wrappers = score, []
        while isinstance(inner, AbstractTimeChangedScore):
            wrappers.append(type(inner).__name__)
            inner = inner.score
        kind = type(inner).__name__ + "".join(f" in {w}" for w in reversed(wrappers))
        contract = (
            f"a cloud score ({kind}, an AbstractCloudScore) must map the cloud "
            f"y: {tuple(y_s.shape)} to the score of its law at every particle, "
            f"shape {tuple(y_s.shape)}"
        )
        hint = (
            "If your function acts on one point, do not make it an AbstractCloudScore: a "
            "pointwise `score(t, x)` is lifted to the cloud with `jax.vmap`."
        )
    else:
        arg = jax.ShapeDtypeStruct(tuple(y_s.shape[1:]), y_s.dtype)
        called = f"`score(t, x)` on one point x: {_describe(arg)}"
        contract = (
            f"a pointwise score must map a scalar time t and one point x: {tuple(arg.shape)} "
            f"to ∇log p_t(x), shape {tuple(arg.shape)}, and is called as `score(t, x)`, time "
            f"first"
        )
        hint = (
            "If your function works on a batch (e.g. a network `f(x, t)` on x: (B, *event) and "
            't: (B,)), wrap it with `gpm_sde.scores.from_batched(f, order="x,t")` (or '
            'order="t,x"); if its arguments are (x, t), swap them; if it estimates the score '
            "from the whole cloud, make it a `gpm_sde.scores.AbstractCloudScore`."
        )
    where = f"{name} was called as {called} at t: {_describe(t_s)}"
    try:
        out = jax.eval_shape(score, t_s, arg)
    except (TypeError, ValueError, IndexError) as err:
        kind = TypeError if isinstance(err, TypeError) else ValueError
        raise kind(
            f"{where} and raised {type(err).__name__}: {err}\nExpected: {contract}. {hint} "
            f"If the score is right, the cloud is not: its points must have the event shape "
            f"the score was written for (check `y0` of `simulate`, or `x_init`, `n` and "
            f"`event_shape` of a sampler; the cloud here has points of shape "
            f"{tuple(y_s.shape[1:])})."
        ) from err
    if not isinstance(out, jax.ShapeDtypeStruct):
        raise TypeError(
            f"{where} and returned {type(out).__name__} (a pytree of "
            f"{len(jax.tree_util.tree_leaves(out))} arrays), not one array. Expected: "
            f"{contract}. {hint}"
        )
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise TypeError(
            f"{where} and returned dtype {jnp.dtype(out.dtype).name}: a score must be a real "
            f"floating array (the cloud is {jnp.dtype(y_s.dtype).name}). Expected: {contract}."
        )
    if tuple(out.shape) != tuple(arg.shape):
        raise ValueError(
            f"{where} and returned shape {tuple(out.shape)}, expected {tuple(arg.shape)}: "
            f"{contract}. {hint}"
        )
