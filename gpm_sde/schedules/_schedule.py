"""The schedule classes: scalar functions of time that compose with `+`, `*`, `**`."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jax.core import Tracer
from jaxtyping import Array, ArrayLike, Float

Schedule = float | ArrayLike | Callable[..., Any]
"""A float (or scalar array), or a callable `s -> float`."""


class AbstractSchedule(eqx.Module):
    """A scalar function of time, `c(s)`, that composes with `+`, `-`, `*` and `**`."""

    @abc.abstractmethod
    def __call__(self, s: Float[ArrayLike, ""]) -> Float[Array, ""]:
        """The value at time `s`."""

    def __add__(self, other: Schedule) -> AbstractSchedule:
        return Sum(self, as_schedule(other))

    def __radd__(self, other: Schedule) -> AbstractSchedule:
        return Sum(as_schedule(other), self)

    def __sub__(self, other: Schedule) -> AbstractSchedule:
        return Sum(self, Product(Constant(-1.0), as_schedule(other)))

    def __rsub__(self, other: Schedule) -> AbstractSchedule:
        return Sum(as_schedule(other), Product(Constant(-1.0), self))

    def __neg__(self) -> AbstractSchedule:
        return Product(Constant(-1.0), self)

    def __mul__(self, other: Schedule) -> AbstractSchedule:
        return Product(self, as_schedule(other))

    def __rmul__(self, other: Schedule) -> AbstractSchedule:
        return Product(as_schedule(other), self)

    def __pow__(self, power: float | int) -> AbstractSchedule:
        return Power(self, power)


class Constant(AbstractSchedule):
    """The constant schedule $c(s) = $ `value`."""

    value: Float[Array, ""]

    def __init__(self, value: Float[ArrayLike, ""]):
        self.value = jnp.asarray(value, dtype=jnp.result_type(float, value))

    def __call__(self, s):
        return self.value


class Function(AbstractSchedule):
    """A user callable `fn(s)` seen as a schedule (a bound method of a module stays a pytree)."""

    fn: Callable[..., Any]

    def __call__(self, s):
        return jnp.asarray(self.fn(s))


class Sum(AbstractSchedule):
    """$c(s) = a(s) + b(s)$."""

    a: AbstractSchedule
    b: AbstractSchedule

    def __call__(self, s):
        return self.a(s) + self.b(s)


class Product(AbstractSchedule):
    """$c(s) = a(s)\\,b(s)$."""

    a: AbstractSchedule
    b: AbstractSchedule

    def __call__(self, s):
        return self.a(s) * self.b(s)


class Power(AbstractSchedule):
    """$c(s) = a(s)^p$ for a fixed exponent `p`."""

    a: AbstractSchedule
    power: float | int = eqx.field(static=True)

    def __call__(self, s):
        return self.a(s) ** self.power


class ReversedSchedule(AbstractSchedule):
    r"""A schedule in generation time, $c(s) = a(T - s)$."""

    a: AbstractSchedule
    T: float = eqx.field(static=True)

    def __call__(self, s):
        return self.a(self.T - s)


def as_schedule(value: Schedule, name: str | None = None) -> AbstractSchedule:
    """Wrap a float, array scalar or callable `s -> float` as an
    [`AbstractSchedule`][gpm_sde.schedules.AbstractSchedule].

    With `name` (the user's argument, e.g. `"beta"`), errors name it, and a concrete constant
    is checked: finite and at most $m^{1/4}$ in magnitude, $m$ the largest float (1.2e77 in
    float64), so that its square and its products with scores stay finite."""
    label = f"`{name}`" if name else "a schedule"
    if isinstance(value, AbstractSchedule):
        return value
    if callable(value):
        return Function(value)
    try:
        arr = jnp.asarray(value)
    except (TypeError, ValueError) as err:  # e.g. None, a string, a ragged list
        raise TypeError(
            f"{label} must be a float or a callable `s -> float`, got "
            f"{type(value).__name__}; pass e.g. `1.0` or `lambda s: 1.0 - s`."
        ) from err
    if arr.ndim != 0:
        raise ValueError(
            f"{label} must be scalar-valued, got an array of shape {arr.shape}; pass a "
            f"float or a callable `s -> float`."
        )
    constant = Constant(arr)
    if name is not None and not isinstance(constant.value, Tracer):
        big = float(jnp.finfo(constant.value.dtype).max) ** 0.25
        v = float(constant.value)
        if not abs(v) <= big:
            raise ValueError(
                f"{label} must be finite and at most {big:.3g} in magnitude (its square and "
                f"its products with scores must stay finite), got {v!r}."
            )
    return constant
