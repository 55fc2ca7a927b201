"""Argument checks shared by the public constructors and entry points: the one home of the
generic checks (counts, callables, keys, arrays and clouds, schedules, literal zeros), on which
every package builds its domain-specific ones.

**One rule for the exception type.** `TypeError` when the argument has the wrong type (not
callable, not an int, a bool where an int is expected, not an array, an integer array where a
floating one is expected, not a PRNG key); `ValueError` when the type is right but the value
is wrong (negative, out of range, wrong shape, not finite). Every error names the argument,
says what was wrong, and says what to pass instead.

Checks of values run only on concrete values: under `jax.jit`, `jax.vmap` or `jax.grad` the
arguments are tracers and the checks are skipped (the caller checked them once, outside the
trace).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

_INT_TYPES = (int, np.integer)

IntLike = int | np.integer
"""The annotation of a count: a Python int or a NumPy integer (`np.int64(10)`), which every
count accepts (`check_int` returns it as a Python int)."""


def is_concrete(*values: Any) -> bool:
    """True when no leaf of `values` is a JAX tracer, so its value can be inspected."""
    leaves = jax.tree_util.tree_leaves(values)
    return not any(isinstance(leaf, Tracer) for leaf in leaves)


def as_numpy(value: Any) -> np.ndarray:
    """A concrete value (array, scalar or JAX array) as a NumPy array on the host."""
    return np.asarray(jax.device_get(value))


def check_finite(name: str, value: Any, fix: str = "pass finite values") -> None:
    """Raise `ValueError` if `value` is concrete and holds NaN or ±inf."""
    if value is None or not is_concrete(value):
        return
    if isinstance(value, jax.Array) and not value.is_fully_addressable:
        # A global array of a multi-process run: no process can read it whole. One jitted
        # reduction gives every process the same (replicated) answer, so all raise together.
        if not bool(jax.jit(lambda a: jnp.all(jnp.isfinite(a)))(value)):
            raise ValueError(
                f"`{name}` must be finite, but it contains NaN or inf (a global array of "
                f"shape {value.shape} over {value.sharding.num_devices} devices); {fix}."
            )
        return
    arr = as_numpy(value)
    if arr.dtype.kind not in "fc":
        return  # an integer or boolean array is finite
    bad = ~np.isfinite(arr)
    if np.any(bad):
        if arr.size <= 8:
            what = f"it contains NaN or inf: {arr!r}"
        else:
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            what = (
                f"{int(bad.sum())} of its {arr.size} values (shape {arr.shape}) are NaN or inf, "
                f"the first at index {first} ({arr[first]!r})"
            )
        raise ValueError(f"`{name}` must be finite, but {what}; {fix}.")


def check_positive(name: str, value: Any, *, strict: bool = True, fix: str = "") -> None:
    """Raise `ValueError` unless the concrete `value` is finite and `> 0` (`>= 0` if not strict)."""
    if value is None or not is_concrete(value):
        return
    check_finite(name, value)
    arr = as_numpy(value)
    bad = arr <= 0 if strict else arr < 0
    if np.any(bad):
        relation = "> 0" if strict else ">= 0"
        hint = f"; {fix}" if fix else ""
        raise ValueError(f"`{name}` must be {relation}, got {arr!r}{hint}.")


def check_time_range(name: str, t: Any, t_min: float, t_max: float, what: str) -> None:
    """Raise `ValueError` if a concrete time `t` leaves `[t_min, t_max]`."""
    if not is_concrete(t):
        return
    check_finite(name, t)
    arr = as_numpy(t)
    # Round-off slack: a time computed as `T - s` may land a few ulps outside.
    slack = 1e-6 * max(1.0, abs(t_max))
    if np.any(arr < t_min - slack) or np.any(arr > t_max + slack):
        raise ValueError(
            f"`{name}` must lie in [{t_min}, {t_max}], the time range of {what}, got {arr!r}; "
            f"pass a time in that range (generation time s runs over the same interval)."
        )


def check_float_array(name: str, value: Any, ndim: int | None = None, shape_hint: str = "") -> None:
    """Raise `TypeError`/`ValueError` unless `value` is a floating array of rank `ndim`."""
    try:
        arr = jnp.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"`{name}` must be a floating-point array, got {type(value).__name__} {value!r}."
        ) from err
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        raise TypeError(
            f"`{name}` must be a floating-point array, got dtype {arr.dtype}; "
            f"cast it first, e.g. `jnp.asarray({name}, dtype=float)`."
        )
    if ndim is not None and arr.ndim != ndim:
        hint = f" {shape_hint}" if shape_hint else ""
        raise ValueError(f"`{name}` must have {ndim} dimension(s){hint}, got shape {arr.shape}.")


def check_scalar(name: str, value: Any) -> None:
    """Raise `TypeError` unless `value` is a real number (a Python or NumPy int or float, or a
    0-d real array), `ValueError` if it is an array of another shape. Tracers pass (their
    values are checked once, outside the trace)."""
    if isinstance(value, Tracer):
        return
    if value is None or isinstance(value, bool | str | bytes):
        raise TypeError(f"`{name}` must be a real number, got {type(value).__name__} {value!r}.")
    try:
        arr = as_numpy(value)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"`{name}` must be a real number, got {type(value).__name__} {value!r}."
        ) from err
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"`{name}` must be a real number, got dtype {arr.dtype} ({value!r}).")
    if arr.ndim != 0:
        raise ValueError(f"`{name}` must be a scalar, got an array of shape {arr.shape}.")


def check_callable(name: str, fn: Any, signature: str = "", fix: str = "") -> None:
    """Raise `TypeError` unless `fn` is callable; `signature` says what to pass, e.g.
    `"(t, x) -> ∇log p_t(x)"`, and `fix` adds a hint."""
    if not callable(fn):
        want = f"a callable `{signature}`" if signature else "a callable"
        hint = f"; {fix}" if fix else ""
        raise TypeError(f"`{name}` must be {want}, got {type(fn).__name__} {fn!r}{hint}.")


def check_int(
    name: str,
    value: Any,
    minimum: int = 0,
    what: str = "",
    *,
    below: int | None = None,
    example: Any = None,
) -> int:
    """Return `value` as a Python int: `TypeError` unless it is a Python or NumPy int (a bool
    is not), `ValueError` unless `minimum <= value` (and `value < below` when given).

    `what` says what the count is (e.g. `"the number of points"`), `example` a value to pass."""
    rule = f"an int >= {minimum}" + (f" and < {below}" if below is not None else "")
    about = f" ({what})" if what else ""
    fix = f"; pass e.g. `{name}={example}`" if example is not None else ""
    if isinstance(value, bool) or not isinstance(value, _INT_TYPES):
        raise TypeError(
            f"`{name}` must be {rule}{about}, got {type(value).__name__} {value!r}"
            f"{fix or f'; pass a Python int such as `{name}={max(minimum, 1)}`'}."
        )
    if value < minimum or (below is not None and value >= below):
        raise ValueError(f"`{name}` must be {rule}{about}, got {value!r}{fix}.")
    return int(value)


def check_key(name: str, key: Any, *, optional: bool = False, what: str = "") -> None:
    """Raise unless `key` is one PRNG key: a typed key of shape `()` (`jax.random.key(0)`) or
    one raw `uint32` key of shape `(2,)` (`jax.random.PRNGKey(0)`); `None` passes when
    `optional`. `TypeError` for anything that is not a key (or a missing required key),
    `ValueError` for an array of several keys."""
    about = f" ({what})" if what else ""
    if key is None:
        if optional:
            return
        raise TypeError(f"`{name}` is required{about}; pass e.g. `{name}=jax.random.key(0)`.")
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape != ():
            raise ValueError(
                f"`{name}` must be one PRNG key{about}, got a key array of shape {shape}; to "
                f"draw several times, `jax.vmap` over the keys."
            )
        return
    if dtype == jnp.uint32 and shape is not None and len(shape) == 1:
        return
    none = " (or None)" if optional else ""
    raise TypeError(
        f"`{name}` must be a PRNG key such as `jax.random.key(0)`{none}{about}, got "
        f"{type(key).__name__} {key!r}."
    )


def check_batch(
    name: str,
    value: Any,
    *,
    min_ndim: int = 1,
    what: str = "points",
    fix: str = "",
) -> None:
    """Raise `TypeError` unless `value` is a floating-point array, `ValueError` unless it is a
    non-empty batch (a cloud) of shape `(n, *event)` with `n >= 1` and at least `min_ndim`
    dimensions (`min_ndim=2`: every point has at least one axis)."""
    check_float_array(name, value)
    shape = jnp.shape(value)
    if len(shape) < min_ndim or shape[0] == 0:
        if not fix and min_ndim >= 2:
            fix = f"for one point pass `{name}[None]`"
        hint = f"; {fix}" if fix else ""
        raise ValueError(
            f"`{name}` must be a non-empty batch of {what} of shape (N, *event), got shape "
            f"{shape}{hint}."
        )


def check_nonnegative_schedule(name: str, value: Any, fix: str = "") -> None:
    """Raise unless `value` is a schedule (a float or a callable of time): `TypeError` for
    anything else, `ValueError` if it is a concrete constant that is negative or not finite.
    A callable is not evaluated."""
    from .schedules import Constant, as_schedule  # deferred: `schedules` imports this module

    sched = as_schedule(value, name)
    if isinstance(sched, Constant) and is_concrete(sched.value):
        check_positive(name, sched.value, strict=False, fix=fix)


def is_literal_zero(value: Any) -> bool:
    """True for a Python or NumPy number equal to 0 (never for a callable or a traced array):
    a transform given a literal zero schedule can return an ODE."""
    return isinstance(value, int | float) and not isinstance(value, bool) and bool(value == 0)
