"""Argument checks and small helpers shared by the networks."""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
from jaxtyping import Array

from .._checks import check_int


def check_size(name: str, value: Any, *, even: bool = False, minimum: int = 1) -> int:
    """Return `value` as an int, or raise naming the argument, the bad value and a fix:
    `TypeError` for a non-int (or a bool), `ValueError` below `minimum` or odd when `even`."""
    value = check_int(name, value, minimum, example=max(minimum, 2) * 16)
    if even and value % 2:
        raise ValueError(
            f"`{name}` must be even (half sines, half cosines), got {value}; pass {value + 1}."
        )
    return int(value)


def check_channels(name: str, value: Any, length: int) -> tuple[int, ...]:
    """Return `value` as a tuple of `length` positive ints, or raise with a fix: `TypeError`
    unless it is a sequence of ints, `ValueError` for the wrong length or a width < 1."""
    example = (32, 64, 64)[:length] if length <= 3 else (32,) * length
    rule = f"`{name}` must be {length} positive ints (one width per resolution)"
    try:
        channels = tuple(value)
    except TypeError as err:
        raise TypeError(
            f"{rule}, got {type(value).__name__} {value!r}; pass e.g. {name}={example}."
        ) from err
    if len(channels) != length:
        raise ValueError(f"{rule}, got {value!r}; pass e.g. {name}={example}.")
    return tuple(
        check_int(f"{name}[{i}]", c, 1, example=example[i]) for i, c in enumerate(channels)
    )


def num_groups(channels: int, max_groups: int = 8) -> int:
    """The largest divisor of `channels` that is at most `max_groups` (for `GroupNorm`)."""
    return max(g for g in range(1, max_groups + 1) if channels % g == 0)


def as_scalar_time(t: Any) -> Array:
    """A scalar time/noise level as a float array; reject anything with more than one value."""
    t = jnp.asarray(t)
    if t.ndim != 0:
        raise ValueError(
            f"`t` must be a scalar (one time for one point; vmap the network over a batch), "
            f"got shape {t.shape}."
        )
    return t.astype(jnp.result_type(float, t))


def check_event(name: str, x: Any, shape: tuple[int, ...], what: str) -> None:
    """Raise if the point `x` does not have `shape`."""
    if tuple(jnp.shape(x)) != shape:
        raise ValueError(
            f"`{name}` must be one point of shape {shape} ({what}), got shape {jnp.shape(x)}; "
            f"vmap the network over a batch, e.g. `jax.vmap(net, in_axes=(0, 0))(t, x)`."
        )


TWO_PI = 2.0 * math.pi
