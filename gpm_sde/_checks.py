"""Argument checks shared by the public constructors and entry points.

Checks run only on concrete values: under `jax.jit`, `jax.vmap` or `jax.grad` the arguments
are tracers and the checks are skipped (the caller checked them once, outside the trace).
Every error names the argument, says what was wrong, and says what to pass instead.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer


def is_concrete(*values: Any) -> bool:
    """True when no leaf of `values` is a JAX tracer, so its value can be inspected."""
    leaves = jax.tree_util.tree_leaves(values)
    return not any(isinstance(leaf, Tracer) for leaf in leaves)


def _as_numpy(value: Any) -> np.ndarray:
    return np.asarray(jax.device_get(value))


def check_finite(name: str, value: Any, fix: str = "pass finite values") -> None:
    """Raise `ValueError` if `value` is concrete and holds NaN or ±inf."""
    if value is None or not is_concrete(value):
        return
    arr = _as_numpy(value)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite, but it contains NaN or inf: {arr!r}; {fix}.")


def check_positive(name: str, value: Any, *, strict: bool = True, fix: str = "") -> None:
    """Raise `ValueError` unless the concrete `value` is finite and `> 0` (`>= 0` if not strict)."""
    if value is None or not is_concrete(value):
        return
    check_finite(name, value)
    arr = _as_numpy(value)
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
    arr = _as_numpy(t)
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
        arr = _as_numpy(value)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"`{name}` must be a real number, got {type(value).__name__} {value!r}."
        ) from err
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"`{name}` must be a real number, got dtype {arr.dtype} ({value!r}).")
    if arr.ndim != 0:
        raise ValueError(f"`{name}` must be a scalar, got an array of shape {arr.shape}.")


def check_callable(name: str, fn: Any, signature: str = "") -> None:
    """Raise `TypeError` unless `fn` is callable; `signature` says what to pass, e.g.
    `"(t, x) -> ∇log p_t(x)"`."""
    if not callable(fn):
        want = f"a callable `{signature}`" if signature else "a callable"
        raise TypeError(f"`{name}` must be {want}, got {type(fn).__name__} {fn!r}.")
