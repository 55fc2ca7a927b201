r"""Drift terms $b(s, y)$ acting on a whole particle cloud `y: (N, *event)`.

Terms are small final modules that compose with `+` and with scalar schedules `*`:
`LinearDrift(f) + ScoreDrift(0.5 * g**2, score)` is $f(s)\,y + \tfrac12 g(s)^2 \nabla\log p_s(y)$.
Each is callable as `drift(s, y, args)`, diffrax's vector-field signature, and returns the
dtype of the cloud (a float64 schedule does not promote a float32 cloud).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PyTree

from ..schedules import AbstractSchedule, Schedule, as_schedule
from ..scores import check_score, on_cloud

Cloud = Float[Array, " n *event"]


class AbstractDrift(eqx.Module):
    """A drift $b(s, y)$ on a particle cloud `y: (N, *event)`, returning the same shape."""

    @abc.abstractmethod
    def __call__(self, s: Float[ArrayLike, ""], y: Cloud, args: PyTree = None) -> Cloud:
        """The drift at generation time `s` for the cloud `y`."""

    def __add__(self, other: AbstractDrift) -> AbstractDrift:
        if not isinstance(other, AbstractDrift):
            return NotImplemented
        return SumDrift((self, other))

    def __mul__(self, scale: Schedule) -> AbstractDrift:
        return ScaledDrift(as_schedule(scale), self)

    __rmul__ = __mul__


class LinearDrift(AbstractDrift):
    r"""$b(s, y) = c(s)\, y$: the drift of a linear process ($c = f$ forward, $c = -f(T-s)$
    in reverse).

    **Arguments:**

    - `coeff`: the schedule $c(s)$ (float or callable).
    """

    coeff: AbstractSchedule

    def __init__(self, coeff: Schedule):
        self.coeff = as_schedule(coeff)

    def __call__(self, s, y, args=None):
        return jnp.asarray(self.coeff(s), dtype=y.dtype) * y


class ScoreDrift(AbstractDrift):
    r"""$b(s, y_i) = w(s)\, \nabla \log p_s(y_i)$ for every particle $y_i$ of the cloud.

    The score is evaluated with [`on_cloud`][gpm_sde.scores.on_cloud]: a pointwise score
    `score(s, x)` (one point `x: (*event,)`) is lifted to the cloud with `jax.vmap` over the
    particle axis; a cloud score ([`is_cloud_score`][gpm_sde.scores.is_cloud_score], e.g. the
    mean-field [`KernelScore`][gpm_sde.scores.KernelScore], or a time change of one) is
    called on the whole cloud. The result is cast to the cloud's dtype.

    [`check`][gpm_sde.sde.ScoreDrift.check] verifies the score's output shape and dtype from
    shapes alone; [`simulate`][gpm_sde.simulate] calls it once per solve.

    **Arguments:**

    - `weight`: the schedule $w(s)$ (float or callable).
    - `score`: a pointwise score `(s, x) -> ∇log p_s(x)` in generation time, or a cloud score.
    - `label`: how error messages name the score, e.g. ``"`score` of `reverse`"`` (the
      transforms set it to their own argument).
    """

    weight: AbstractSchedule
    score: Callable[..., Any]
    label: str = eqx.field(static=True)

    def __init__(
        self, weight: Schedule, score: Callable[..., Any], label: str = "`score` of `ScoreDrift`"
    ):
        if not callable(score):  # `label` names the argument, e.g. "`score` of `reverse`"
            raise TypeError(
                f"{label} must be a pointwise score `(s, x) -> ∇log p_s(x)` on one point or a "
                f"cloud score (`gpm_sde.scores.AbstractCloudScore`), got {type(score).__name__}."
            )
        self.weight = as_schedule(weight)
        self.score = score
        self.label = label

    def __call__(self, s, y, args=None):
        scores = on_cloud(self.score, s, y)
        return (jnp.asarray(self.weight(s), dtype=y.dtype) * scores).astype(y.dtype)

    def check(
        self,
        s: Float[ArrayLike, ""] | jax.ShapeDtypeStruct,
        y: Cloud | jax.ShapeDtypeStruct,
    ) -> None:
        """Raise a `ValueError`/`TypeError` naming this term's score (its `label`) unless the
        score maps the cloud `y` to the expected shape: `event` on one point for a pointwise
        score, the cloud's `(N, *event)` for a cloud score (see
        [`check_score`][gpm_sde.scores.check_score]). Shapes only (`jax.eval_shape`): nothing
        is computed, and it works under `jax.jit`."""
        check_score(self.score, s, y, name=self.label)


class SumDrift(AbstractDrift):
    """$b = \\sum_i b_i$, the sum of drift terms."""

    terms: tuple[AbstractDrift, ...]

    def __init__(self, terms: tuple[AbstractDrift, ...]):
        flat: list[AbstractDrift] = []
        for term in terms:
            flat.extend(term.terms if isinstance(term, SumDrift) else (term,))
        self.terms = tuple(flat)

    def __call__(self, s, y, args=None):
        out = self.terms[0](s, y, args)
        for term in self.terms[1:]:
            out = out + term(s, y, args)
        return out


class ScaledDrift(AbstractDrift):
    r"""$b(s, y) = c(s)\, b_0(s, y)$, a drift scaled by a schedule."""

    scale: AbstractSchedule
    drift: AbstractDrift

    def __call__(self, s, y, args=None):
        return jnp.asarray(self.scale(s), dtype=y.dtype) * self.drift(s, y, args)


class FunctionDrift(AbstractDrift):
    r"""Any user function `fn(s, y, args)` on the whole cloud, seen as a drift term.

    Use it for interacting (mean-field) particles, where the drift of one particle depends on
    the others.
    """

    fn: Callable[..., Any]

    def __call__(self, s, y, args=None):
        return jnp.asarray(self.fn(s, y, args), dtype=y.dtype)
