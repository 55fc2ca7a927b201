"""Fixed-grid solves: diffrax solver steps driven by `jax.lax.scan`.

`diffrax.diffeqsolve` pays, at every step, for its general machinery (a `while_loop` with
checkpointing, step-size control, dense output and event handling). On a fixed grid none of it
is needed, so here the same diffrax solver's `step` is called from a `lax.scan` over the grid,
with the counter-based [`GridBrownianPath`][gpm_sde.solve.GridBrownianPath]. The arithmetic of
a step is exactly diffrax's; only the loop around it differs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree


class SavePlan(eqx.Module):
    """What to save, resolved against the grid: static indices and flags."""

    t0: bool = eqx.field(static=True)
    t1: bool = eqx.field(static=True)
    ts_indices: tuple[int, ...] = eqx.field(static=True)
    every: int = eqx.field(static=True)
    fn: Callable[..., Any] = eqx.field(static=True)


def _sub_saveat(saveat: diffrax.SaveAt) -> diffrax.SubSaveAt:
    subs = saveat.subs
    if not isinstance(subs, diffrax.SubSaveAt):
        raise ValueError(
            "`saveat` with several `SubSaveAt`s is not supported on the fixed grid; pass one "
            "`diffrax.SaveAt(...)` with any of t0, t1, ts, steps, fn."
        )
    if saveat.dense or saveat.solver_state or saveat.controller_state or saveat.made_jump:
        raise ValueError(
            "`saveat` may not ask for dense output or solver/controller state on the fixed grid; "
            "pass `adaptive=True` to `simulate` to get diffrax's full `SaveAt`."
        )
    return subs


def plan_saves(
    saveat: diffrax.SaveAt, t0: float, t1: float, steps: int, grid: np.ndarray | None = None
) -> SavePlan | None:
    """Resolve `saveat` on the grid $t_0 + n (t_1 - t_0)/\\text{steps}$, or on the explicit
    increasing `grid` of `steps + 1` times; `None` when some `ts` is not a grid point (the
    caller then falls back to `diffeqsolve`, which interpolates)."""
    sub = _sub_saveat(saveat)
    indices: tuple[int, ...] = ()
    if sub.ts is not None:
        ts = np.asarray(jax.device_get(sub.ts), dtype=np.float64)
        if grid is None:
            pos = (ts - t0) / (t1 - t0) * steps
        else:  # the position in units of the local step, by linear interpolation
            g = np.asarray(grid, dtype=np.float64)
            pos = np.interp(ts, g, np.arange(g.shape[0], dtype=np.float64), left=-1, right=-1)
        idx = np.rint(pos).astype(np.int64)
        if np.any(np.abs(pos - idx) > 1e-6) or np.any(idx < 0) or np.any(idx > steps):
            return None
        if np.any(np.diff(idx) < 0):
            raise ValueError("`saveat.ts` must be non-decreasing.")
        indices = tuple(int(i) for i in idx)
    every = int(sub.steps)
    if every and indices:
        raise ValueError("`saveat` may ask for `ts` or `steps`, not both.")
    return SavePlan(bool(sub.t0), bool(sub.t1), indices, every, sub.fn)


_SAVE_Y = diffrax.SaveAt(t1=True).subs.fn  # diffrax's default `fn`: save the state itself


def first_nonfinite(ts: Array | None, ys: PyTree, y_final: Array | None = None) -> Array:
    """`1 + i` for the first saved entry `i` (along `ts`) of `ys` with a NaN or inf in a
    floating leaf, `len(ts) + 1` when only `y_final` (the final state, if given) has one, and
    `0` when everything is finite. An `int32` scalar, computed in one pass over the output."""
    n_saved = 0 if ts is None else ts.shape[0]
    ok = jnp.ones((n_saved,), dtype=bool)
    for leaf in jax.tree_util.tree_leaves(ys):
        if n_saved and jnp.issubdtype(leaf.dtype, jnp.inexact):
            ok = ok & jnp.all(jnp.isfinite(leaf), axis=tuple(range(1, leaf.ndim)))
    if y_final is not None:
        ok = jnp.concatenate([ok, jnp.all(jnp.isfinite(y_final))[None]])
    if ok.shape[0] == 0:
        return jnp.zeros((), dtype=jnp.int32)
    return jnp.where(jnp.all(ok), 0, jnp.argmin(ok) + 1).astype(jnp.int32)


def _is_euler_sde(solver: diffrax.AbstractSolver, terms: diffrax.AbstractTerm) -> bool:
    """`diffrax.Euler` on `MultiTerm(ODETerm, ControlTerm)`: the default SDE solve."""
    return (
        type(solver) is diffrax.Euler
        and isinstance(terms, diffrax.MultiTerm)
        and len(terms.terms) == 2
        and isinstance(terms.terms[0], diffrax.ODETerm)
        and isinstance(terms.terms[1], diffrax.ControlTerm)
    )


def _euler_maruyama_step(
    terms: diffrax.MultiTerm, ta: Array, tb: Array, y: Array, args: PyTree
) -> Array:
    r"""$y + b(t_a, y)\,(t_b - t_a) + G(t_a, y)\,\Delta W$: exactly `diffrax.Euler().step` on
    these terms, written with the terms' own `vf` and `contr` but summed as one expression
    (`MultiTerm.vf_prod` sums the products first, which XLA fuses less well: about 6% slower at
    N = 10^5 on CPU, `benchmarks/solver_overhead.py`)."""
    drift, noise = terms.terms
    dw = noise.contr(ta, tb)
    return y + drift.vf(ta, y, args) * (tb - ta) + noise.prod(noise.vf(ta, y, args), dw)


def scan_solve(
    terms: diffrax.AbstractTerm,
    solver: diffrax.AbstractSolver,
    t0: Array,
    t1: Array,
    steps: int,
    y0: Array,
    args: PyTree,
    plan: SavePlan,
    progress_meter: diffrax.AbstractProgressMeter,
    *,
    check_finite: bool = False,
    grid: Array | None = None,
) -> diffrax.Solution:
    """Run `solver.step` over the uniform grid of `steps` steps with `lax.scan`, or over the
    explicit increasing `grid` of `steps + 1` times (from `t0` to `t1`) when given.

    With `check_finite`, `stats["first_nonfinite"]` locates the first saved state holding NaN
    or inf (see `first_nonfinite`; the final state is checked too when it is not saved as is).
    It is one reduction over the saved output, after the loop: the steps are untouched.
    """
    dt = (t1 - t0) / steps

    def time(n):
        return t0 + n * dt if grid is None else grid[n]

    solver_state = solver.init(terms, t0, time(1), y0, args)
    meter_state = progress_meter.init()

    euler_sde = _is_euler_sde(solver, terms)

    def step(carry, n):
        y, state, meter = carry
        ta, tb = time(n), jnp.where(n + 1 == steps, t1, time(n + 1))
        if euler_sde:
            y = _euler_maruyama_step(terms, ta, tb, y, args)  # pyright: ignore[reportArgumentType]
        else:
            y, _, _, state, _ = solver.step(terms, ta, tb, y, args, state, made_jump=False)
        meter = progress_meter.step(meter, (n + 1) / steps)
        return (y, state, meter), tb

    def run(carry, start: int, stop: int, save_each: int = 0):
        """Steps start..stop-1; with `save_each`, also every save_each-th (t, fn(t, y))."""
        if stop <= start:
            return carry, None
        if not save_each:
            carry, _ = jax.lax.scan(step, carry, jnp.arange(start, stop))
            return carry, None

        def block(carry, n0):
            carry, times = jax.lax.scan(step, carry, n0 + jnp.arange(save_each))
            return carry, (times[-1], plan.fn(times[-1], carry[0], args))

        n_blocks = (stop - start) // save_each
        carry, saved = jax.lax.scan(block, carry, start + save_each * jnp.arange(n_blocks))
        carry, _ = run(carry, start + save_each * n_blocks, stop)
        return carry, saved

    saved_ts: list[Array] = []
    saved_ys: list[PyTree] = []

    def keep(t, y):
        saved_ts.append(jnp.reshape(t, (1,)))
        saved_ys.append(jax.tree_util.tree_map(lambda a: a[None], plan.fn(t, y, args)))

    carry = (y0, solver_state, meter_state)
    if plan.t0:
        keep(t0, y0)
    if plan.every:
        carry, (times, ys) = run(carry, 0, steps, plan.every)  # pyright: ignore[reportGeneralTypeIssues]
        saved_ts.append(times)
        saved_ys.append(ys)
    else:
        done = 0
        for idx in plan.ts_indices:
            carry, _ = run(carry, done, idx)
            done = max(done, idx)
            keep(time(idx) if idx < steps else t1, carry[0])
        carry, _ = run(carry, done, steps)
    y_final, _, meter_state = carry
    if plan.t1:
        keep(t1, y_final)
    progress_meter.close(meter_state)
    ts = jnp.concatenate(saved_ts) if saved_ts else None
    ys = jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *saved_ys) if saved_ys else None
    stats = {"num_steps": jnp.asarray(steps)}
    if check_finite:
        final_saved = plan.t1 and plan.fn is _SAVE_Y
        stats["first_nonfinite"] = first_nonfinite(ts, ys, None if final_saved else y_final)
    return diffrax.Solution(
        t0=t0,
        t1=t1,
        ts=ts,
        ys=ys,
        interpolation=None,
        stats=stats,
        result=diffrax.RESULTS.successful,
        solver_state=None,
        controller_state=None,
        made_jump=None,
        event_mask=None,
    )
