"""Argument checks and small helpers shared by the samplers."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array

from .._checks import (
    as_numpy,
    check_batch,
    check_finite,
    check_float_array,
    check_int,
    check_scalar,
    is_concrete,
)
from ..processes import AbstractLinearProcess


def check_process(process: Any) -> None:
    if not isinstance(process, AbstractLinearProcess):
        raise TypeError(
            f"`process` must be a forward process such as `gpm_sde.vp()`, got "
            f"{type(process).__name__}; for the discrete DDPM chain use `ddpm_ancestral` or "
            f"`ddim`."
        )


def check_end_time(process: AbstractLinearProcess, eps: Any, name: str = "eps") -> None:
    """`eps` (called `name` in messages) is the diffusion time where sampling stops:
    concrete, a real scalar, in [0, T)."""
    check_scalar(name, eps)
    check_finite(name, eps)
    if not is_concrete(eps):
        raise TypeError(
            f"`{name}` must be a concrete float (it fixes the time grid), not a traced value; "
            f"pass it as a Python float."
        )
    value = float(as_numpy(eps))
    if not 0.0 <= value < process.T:
        raise ValueError(
            f"`{name}` must lie in [0, T) = [0, {process.T}): sampling stops at diffusion time "
            f"t = {name} (generation time s = T - {name}); got {value}. Pass e.g. {name}=1e-3."
        )


def check_cloud(name: str, x: Any) -> None:
    """A starting cloud: a non-empty floating array `(n, *event)` of finite values."""
    check_batch(
        name,
        x,
        what="points (a cloud)",
        fix="draw it from the prior, e.g. `process.prior.sample(key, n, event_shape)`",
    )
    check_finite(name, x, fix="start from a finite cloud")


def start_cloud(
    prior: Any, key: Any, n: Any, event_shape: Any, x_init: Any, *, needs_noise: bool
) -> tuple[Array, Any]:
    """The initial cloud and the key of the sampler's noise.

    `key` splits into `(k_prior, k_noise)`; the prior is drawn from `k_prior` unless `x_init`
    is given, in which case `n` and `event_shape` are read from `x_init` (or must agree with
    it). Either way the noise uses `k_noise`, so passing `x_init = prior.sample(jr.split(key)[0],
    n, event_shape)` reproduces the run that draws the prior."""
    if key is None and (x_init is None or needs_noise):
        raise TypeError(
            "`key` is required: it draws the prior cloud (without `x_init`) and the sampler's "
            "noise; pass e.g. `jax.random.key(0)`."
        )
    if np.ndim(n) > 0:
        raise TypeError(
            f"`n` must be the number of points, got an array of shape {np.shape(n)}; to start "
            f"from a given cloud pass it as `x_init=` (the samplers' fourth argument is `n`)."
        )
    k_prior, k_noise = jr.split(key) if key is not None else (None, None)
    if x_init is None:
        if n is None or event_shape is None:
            raise TypeError(
                "pass `n` and `event_shape` (the prior is drawn), or a starting cloud `x_init` "
                "of shape (n, *event_shape)."
            )
        check_int("n", n, 1, "the number of points")
        shape = _event_shape(event_shape)
        return prior.sample(k_prior, int(n), shape), k_noise
    check_cloud("x_init", x_init)
    x = jnp.asarray(x_init)
    if n is not None and (isinstance(n, bool) or n != x.shape[0]):
        raise ValueError(
            f"`n` = {n!r} disagrees with `x_init`, a cloud of {x.shape[0]} points; omit `n` "
            f"when passing `x_init`."
        )
    if event_shape is not None and _event_shape(event_shape) != tuple(x.shape[1:]):
        raise ValueError(
            f"`event_shape` = {tuple(event_shape)} disagrees with `x_init` of shape "
            f"{tuple(x.shape)}; omit `event_shape` when passing `x_init`."
        )
    return x, k_noise


def _event_shape(event_shape: Any) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in event_shape)
    except TypeError as err:
        raise TypeError(
            f"`event_shape` must be a tuple of ints, the shape of one point, e.g. (2,), got "
            f"{event_shape!r}."
        ) from err
    if any(d < 1 for d in shape):
        raise ValueError(f"`event_shape` must hold positive sizes, got {shape}.")
    return shape


def generation_grid(
    process: AbstractLinearProcess, steps: Any, ts: Any, eps: Any, has_init: bool
) -> tuple[Array, float]:
    """The increasing generation-time grid `s` of a continuous sampler and its end diffusion
    time `eps`, from exactly one of `steps` (with `eps`, default 1e-3) and `ts`.

    With `steps` the grid is `jnp.linspace(0, T - eps, steps + 1)` (what `simulate` builds, and
    `schedules.time_grid(process, steps)`); `ts` must be concrete, strictly increasing, in
    `[0, T]`, and may start after 0 only from a given cloud (`x_init`): the prior is the law at
    `s = 0`."""
    T = float(process.T)
    if (steps is None) == (ts is None):
        raise TypeError(
            f"pass exactly one of `steps` (equal steps) and `ts` (an increasing grid of "
            f"generation times s = T - t, e.g. `gpm_sde.schedules.time_grid(process, steps, "
            f"'karras')`), got steps={steps!r} and ts={ts!r}."
        )
    if ts is None:
        check_int("steps", steps, 1, "the number of steps")
        e = 1e-3 if eps is None else eps
        check_end_time(process, e)
        return jnp.linspace(0.0, T - float(e), int(steps) + 1, dtype=float), float(e)
    check_float_array("ts", ts, 1, "(k,), increasing generation times s = T - t")
    if not is_concrete(ts):
        raise TypeError(
            "`ts` must be concrete (it fixes the grid), not a traced value; build it outside "
            "`jax.jit`, e.g. with `gpm_sde.schedules.time_grid`."
        )
    grid = np.asarray(as_numpy(ts), dtype=np.float64)
    check_finite("ts", grid, fix="pass a finite grid")
    if grid.shape[0] < 2 or not np.all(np.diff(grid) > 0):
        raise ValueError(
            f"`ts` must be a strictly increasing grid of at least two generation times "
            f"s = T - t (for a diffusion-time grid t, decreasing from T, pass `T - t`), got "
            f"{grid.tolist()}."
        )
    slack = 1e-9 * max(1.0, T)
    if grid[0] < -slack or grid[-1] > T + slack:
        raise ValueError(
            f"`ts` must lie in [0, T] = [0, {T}] (generation time s = T - t), got "
            f"{grid[0]} .. {grid[-1]}."
        )
    if grid[0] > slack and not has_init:
        raise ValueError(
            f"`ts` starts at s = {grid[0]} > 0, but the prior is the law at s = 0 (t = T): "
            f"start the grid at 0, or pass the cloud at diffusion time T - {grid[0]} as "
            f"`x_init`."
        )
    end = T - float(grid[-1])
    if eps is not None and not abs(float(as_numpy(eps)) - end) <= slack:
        raise ValueError(
            f"`eps` = {eps!r} disagrees with `ts`, which ends at diffusion time T - ts[-1] = "
            f"{end}; omit `eps` when passing `ts`."
        )
    return jnp.asarray(ts, dtype=float), max(end, 0.0)
