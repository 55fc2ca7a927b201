"""Argument checks and small helpers shared by the samplers."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._checks import _as_numpy, check_finite, is_concrete
from ..processes import AbstractLinearProcess


def check_int(name: str, value: Any, minimum: int, what: str) -> None:
    """Raise unless `value` is a Python/NumPy int `>= minimum`."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"`{name}` must be an int >= {minimum} ({what}), got {value!r}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum} ({what}), got {value!r}.")


def check_process(process: Any) -> None:
    if not isinstance(process, AbstractLinearProcess):
        raise TypeError(
            f"`process` must be a forward process such as `gpm_sde.vp()`, got "
            f"{type(process).__name__}; for the discrete DDPM chain use `ddpm_ancestral` or "
            f"`ddim`."
        )


def check_callable(name: str, fn: Any, signature: str) -> None:
    if not callable(fn):
        raise TypeError(f"`{name}` must be a callable `{signature}` on one point, got {fn!r}.")


def check_end_time(process: AbstractLinearProcess, eps: Any) -> None:
    """`eps` is the diffusion time where sampling stops: concrete, in [0, T)."""
    check_finite("eps", eps)
    if not is_concrete(eps):
        raise TypeError(
            "`eps` must be a concrete float (it fixes the time grid), not a traced value; "
            "pass it as a Python float."
        )
    value = float(_as_numpy(eps))
    if not 0.0 <= value < process.T:
        raise ValueError(
            f"`eps` must lie in [0, T) = [0, {process.T}): sampling stops at diffusion time "
            f"t = eps (generation time s = T - eps); got {value}. Pass e.g. eps=1e-3."
        )


def check_cloud(name: str, x: Any) -> None:
    if getattr(x, "ndim", 0) < 1 or x.shape[0] == 0:
        raise ValueError(
            f"`{name}` must be a non-empty cloud of shape (N, *event), got shape "
            f"{getattr(x, 'shape', None)}; draw it from the prior, e.g. "
            f"`process.prior.sample(key, n, event_shape)`."
        )
    check_finite(name, x, fix="start from a finite cloud")
