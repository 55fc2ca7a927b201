"""`simulate`: solve an SDE on a particle cloud with diffrax, forward in generation time."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from .._checks import (
    IntLike,
    check_batch,
    check_finite,
    check_float_array,
    check_int,
    check_key,
    is_concrete,
)
from ..sde import SDE
from ._brownian import GridBrownianPath
from ._fixed_grid import SavePlan, first_nonfinite, plan_saves, scan_solve


class NonFiniteSolutionError(FloatingPointError, RuntimeError):
    """[`simulate`][gpm_sde.simulate] produced NaN or inf. The message names the first
    non-finite saved time, the solver and the step size, and what to change. Raised when
    `simulate` runs eagerly; inside `jax.jit`/`jax.vmap` the same check raises equinox's
    runtime error (`eqx.error_if`), also a `RuntimeError`."""


def _levy_area(solver: diffrax.AbstractSolver) -> type:
    """The Brownian increment type (plain or with Lévy area) that `solver` needs."""
    minimal = getattr(solver, "minimal_levy_area", None)
    if minimal is None or minimal is diffrax.AbstractBrownianIncrement:
        return diffrax.BrownianIncrement
    if issubclass(diffrax.SpaceTimeLevyArea, minimal):
        return diffrax.SpaceTimeLevyArea
    return diffrax.SpaceTimeTimeLevyArea


def _resolve_grid(t0, t1, steps, ts, controller):
    """`(t0, t1, steps, ts)` from exactly one of `steps` (with `t1`, and `t0` defaulting to 0)
    and an explicit increasing grid `ts` (which fixes `t0`, `t1` and `steps`)."""
    if (steps is None) == (ts is None):
        raise TypeError(
            "simulate: pass exactly one of `steps` (equal steps from t0 to t1) and `ts` (an "
            f"explicit increasing grid), got steps={steps!r} and ts={ts!r}."
        )
    if ts is None:
        if t1 is None:
            raise TypeError("simulate: `t1` is required with `steps` (the end of the interval).")
        return (0.0 if t0 is None else t0), t1, steps, None
    if controller is not None:
        raise ValueError(
            "`ts` fixes the grid, so it takes no `stepsize_controller`; for adaptive steps pass "
            "`t0`, `t1` and `steps` (the initial step count)."
        )
    check_float_array("ts", ts, 1, "(k,), the grid's times")
    n = jnp.shape(ts)[0]
    if n < 2:
        raise ValueError(f"`ts` must hold at least two times (one step), got shape ({n},).")
    if not is_concrete(ts):
        return ts[0], ts[-1], n - 1, ts
    grid = np.asarray(jax.device_get(ts), dtype=np.float64)
    check_finite("ts", grid, fix="pass a finite grid")
    if not np.all(np.diff(grid) > 0):
        raise ValueError(
            f"`ts` must be strictly increasing (generation time runs forward; for a reverse "
            f"diffusion on a diffusion-time grid t pass `T - t`), got {grid.tolist()}."
        )
    for name, given, end in (("t0", t0, grid[0]), ("t1", t1, grid[-1])):
        if given is not None and is_concrete(given):
            slack = 1e-9 * max(1.0, abs(float(end)))
            if not abs(float(np.asarray(given)) - float(end)) <= slack:
                raise ValueError(
                    f"`{name}` = {float(np.asarray(given))} disagrees with the grid `ts`, which "
                    f"runs from {grid[0]} to {grid[-1]}; omit `{name}` when passing `ts`."
                )
    return ts[0], ts[-1], n - 1, ts


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _not_differentiable(x: Array, name: str) -> Array:
    """The identity, refusing a derivative with an error that names the argument `name`."""
    return x


@_not_differentiable.defjvp
def _not_differentiable_jvp(name, primals, tangents):
    raise ValueError(
        f"simulate: `{name}` cannot be differentiated for an SDE with noise: the Brownian path "
        f"is drawn on the time grid, so the samples have no derivative in the time interval "
        f"(W(s) is nowhere differentiable). Differentiate with respect to `y0` or the SDE's "
        f"parameters, or use an ODE (e.g. `probability_flow`), whose solution is "
        f"differentiable in `{name}`."
    )


def _check_time_range(sde: SDE, t0, t1, from_grid: bool) -> None:
    """Concrete `t0`, `t1` inside the SDE's `time_range` (a reverse diffusion: [0, T])."""
    if sde.time_range is None:
        return
    lo, hi = sde.time_range
    slack = 1e-9 * max(1.0, abs(lo), abs(hi))
    for name, value, outside in (
        ("t0", t0, lambda v: v < lo - slack),
        ("t1", t1, lambda v: v > hi + slack),
    ):
        if not is_concrete(value):
            continue
        v = float(np.asarray(jax.device_get(value)))
        if outside(v):
            which = (
                f"`ts` (its {'first' if name == 't0' else 'last'} time, {name} = {v})"
                if from_grid
                else f"`{name}` = {v}"
            )
            raise ValueError(
                f"simulate: {which} leaves [{lo}, {hi}], the time range of this SDE "
                f"(`sde.time_range`; a reverse diffusion of a process with horizon T runs over "
                f"s in [0, T] and calls its score at t = T - s): outside it the samples are "
                f"finite but wrong. Pass t0 >= {lo} and t1 <= {hi}, e.g. t1 = T - 1e-3."
            )


def _traced_time_range(sde: SDE, t0: Array, t1: Array) -> tuple[Array, Array]:
    """`t0`, `t1` with a runtime check (`eqx.error_if`) that they lie in `sde.time_range`,
    for times traced under `jax.jit`."""
    if sde.time_range is None or is_concrete(t0, t1):
        return t0, t1
    lo, hi = sde.time_range
    slack = 1e-9 * max(1.0, abs(lo), abs(hi))
    fix = (
        f"the time range of this SDE is [{lo}, {hi}] (`sde.time_range`, [0, T] for a "
        f"reverse diffusion)"
    )
    t0 = eqx.error_if(t0, t0 < lo - slack, f"simulate: `t0` < {lo}: {fix}; pass t0 >= {lo}.")
    t1 = eqx.error_if(t1, t1 > hi + slack, f"simulate: `t1` > {hi}: {fix}; pass t1 <= {hi}.")
    return t0, t1


def _check_simulate_args(sde, y0, key, t0, t1, steps, solver, saveat, controller) -> None:
    if not isinstance(sde, SDE):
        raise TypeError(
            f"`sde` must be a gpm_sde.SDE, got {type(sde).__name__}; build one with "
            f"`SDE(drift, diffusion)` or a transform such as `reverse(process, score)`."
        )
    check_batch("y0", y0, what="particles (a cloud)")
    check_int(
        "steps",
        steps,
        1,
        "the number of solver steps; a grid step index is an int32",
        below=2**31,
        example=100,
    )
    check_finite("t0", t0)
    check_finite("t1", t1)
    check_finite("y0", y0, fix="start from a finite cloud")
    if is_concrete(t0, t1) and not float(t1) > float(t0):
        raise ValueError(
            f"`t1` must be greater than `t0` (got t0={float(t0)}, t1={float(t1)}): every "
            f"dynamics runs forward in generation time s; for a reverse diffusion use "
            f"`reverse(process, score)`, which is already written in s = T - t (diffrax's "
            f"stochastic solvers are wrong backwards in time, diffrax issue 598)."
        )
    if is_concrete(t0, t1) and not np.isfinite(float(t1) - float(t0)):
        raise ValueError(
            f"`t1 - t0` must be finite, got t0={float(t0)}, t1={float(t1)}; use a time "
            f"interval of moderate length."
        )
    for name, value, kind in (
        ("solver", solver, diffrax.AbstractSolver),
        ("saveat", saveat, diffrax.SaveAt),
        ("stepsize_controller", controller, diffrax.AbstractStepSizeController),
    ):
        if value is not None and not isinstance(value, kind):
            raise TypeError(
                f"`{name}` must be None or a {kind.__module__.split('.')[0]}.{kind.__name__} "
                f"instance, got {value!r}."
            )
    check_key("key", key, optional=True, what="it drives the Brownian motion")
    ts = getattr(getattr(saveat, "subs", None), "ts", None)
    if ts is not None and is_concrete(ts, t0, t1):
        ts = np.asarray(jax.device_get(ts))
        # Save times rounded to their own dtype (e.g. float32 t1 = 0.999) may sit a few ulps
        # outside [t0, t1] given in float64: allow that round-off.
        eps = float(np.finfo(ts.dtype).eps) if np.issubdtype(ts.dtype, np.floating) else 0.0
        ts = ts.astype(np.float64)
        slack = max(1e-9, 4.0 * eps) * max(1.0, abs(float(t0)), abs(float(t1)))
        if (
            not np.all(np.isfinite(ts))
            or np.any(ts < float(t0) - slack)
            or np.any(ts > float(t1) + slack)
            or np.any(np.diff(ts) < 0)
        ):
            raise ValueError(
                f"`saveat` must save at finite, non-decreasing times `ts` in [t0, t1] = "
                f"[{float(t0)}, {float(t1)}], got ts = {ts.tolist()}."
            )


@eqx.filter_jit
def _solve_on_grid(
    sde: SDE,
    y0: Array,
    key: PRNGKeyArray | None,
    t0: Array,
    t1: Array,
    steps: int,
    solver: diffrax.AbstractSolver,
    plan: SavePlan,
    args: PyTree,
    meter: diffrax.AbstractProgressMeter,
    check: bool,
    grid: Array,
) -> diffrax.Solution:
    if sde.is_ode:
        terms = sde.terms()
    else:
        assert key is not None
        shape = jax.ShapeDtypeStruct(y0.shape, y0.dtype)
        path = GridBrownianPath(shape, key, t0, t1, steps, _levy_area(solver), ts=grid)
        terms = sde.terms(path)
    return scan_solve(
        terms, solver, t0, t1, steps, y0, args, plan, meter, check_finite=check, grid=grid
    )


_FIXES = (
    "Try smaller steps (a larger `steps`), a more stable solver (e.g. `diffrax.Heun()`, or "
    "an implicit one for a stiff drift), or an adaptive `stepsize_controller`; for a reverse "
    "diffusion, check the score near t = 0 (it grows like 1/σ(t)^2: stop at `t1 = T - eps`, "
    "e.g. eps = 1e-3). Pass `check_finite=False` to get the non-finite values back."
)


def _describe(solver, steps: int, t0, t1, controller, explicit: bool = False) -> str:
    """The solve, in words, from static (and, when concrete, numeric) information."""
    name = type(solver).__name__
    span = f" on [{float(t0):g}, {float(t1):g}]" if is_concrete(t0, t1) else ""
    if controller is None and explicit:
        return f"solver diffrax.{name}, {steps} steps of the given grid `ts`{span}"
    if controller is None:
        size = f" of Δs = {(float(t1) - float(t0)) / steps:.3g}" if is_concrete(t0, t1) else ""
        return f"solver diffrax.{name}, {steps} fixed steps{size}{span}"
    return f"solver diffrax.{name} with {type(controller).__name__}{span}"


def _on_multi_device_mesh(y: Array) -> bool:
    """Whether (the type of) `y` is laid out on a mesh of several devices."""
    typeof = getattr(jax, "typeof", None)
    mesh = getattr(getattr(typeof(y), "sharding", None), "mesh", None) if typeof else None
    shape = getattr(mesh, "shape", None)
    return bool(shape) and math.prod(shape.values()) > 1  # pyright: ignore[reportOptionalMemberAccess]


def _on_auto_axes(y0: Array) -> tuple[Array, Callable[[PyTree], PyTree] | None]:
    """`diffrax.diffeqsolve`'s internals are not written for explicit sharding (sharding in
    types, the default of `jax.make_mesh`): place a cloud laid out on a mesh with `Explicit`
    axes on the same devices with `Auto` axes (GSPMD partitions the solve), and return a
    function that puts the saved output back on the original mesh."""
    sharding = getattr(y0, "sharding", None)
    mesh = getattr(sharding, "mesh", None)
    if (
        not is_concrete(y0)
        or not isinstance(sharding, NamedSharding)
        or not isinstance(mesh, Mesh)
        or not getattr(mesh, "explicit_axes", ())
    ):
        return y0, None
    names = mesh.axis_names
    auto = Mesh(mesh.devices, names, axis_types=(AxisType.Auto,) * len(names))
    spec = tuple(sharding.spec) + (None,) * (y0.ndim - len(sharding.spec))

    def restore(ys: PyTree) -> PyTree:
        def place(a):
            same = a.ndim >= y0.ndim and a.shape[a.ndim - y0.ndim :] == y0.shape
            lead = (None,) * (a.ndim - y0.ndim) if same else ()
            return jax.device_put(a, NamedSharding(mesh, P(*lead, *spec) if same else P()))

        return jax.tree_util.tree_map(place, ys)

    return jax.device_put(y0, NamedSharding(auto, sharding.spec)), restore


def _in_cloud_dtype(sol: diffrax.Solution, dtype) -> diffrax.Solution:
    """The saved values in the cloud's `dtype` where the solve promoted them to the wider
    dtype of the times (a float32 cloud with float64 times)."""
    wide = jnp.result_type(dtype, jnp.result_type(float))
    if sol.ys is None or wide == dtype:
        return sol
    ys = jax.tree_util.tree_map(lambda a: a.astype(dtype) if a.dtype == wide else a, sol.ys)
    return eqx.tree_at(lambda s: s.ys, sol, ys)


def _check_solution(sol: diffrax.Solution, y0: Array, check: bool, what: str) -> diffrax.Solution:
    """Raise if the solution is non-finite (with `check`) or diffrax reports a failure."""
    bad = sol.stats.get("first_nonfinite") if check else None
    failed = sol.result != diffrax.RESULTS.successful
    if is_concrete(bad, failed):
        if bad is not None and int(bad):
            raise NonFiniteSolutionError(_nonfinite_message(sol, int(bad), what))
        if bool(failed):
            raise RuntimeError(
                f"simulate: diffrax.diffeqsolve failed: {diffrax.RESULTS[sol.result]} "
                f"({what}). An adaptive controller that runs out of steps usually meets a "
                f"drift that blows up (it rejects non-finite steps and shrinks the step): "
                f"try a fixed grid with more `steps` and `check_finite=True` to see where, a "
                f"more stable solver, or a larger `max_steps`."
            )
        return sol
    if _on_multi_device_mesh(y0):
        # A host callback raising inside a multi-device program leaves the other devices
        # waiting for it (an XLA rendezvous that aborts the process): inside `jax.jit` over a
        # sharded cloud the check is left to the caller (see `simulate`).
        return sol
    out = (sol.ts, sol.ys)
    if bad is not None:
        out = eqx.error_if(
            out,
            bad > 0,
            f"simulate: the solution is not finite (NaN or inf) ({what}). {_FIXES} Call "
            f"`simulate` outside `jax.jit` to be told the first non-finite saved time.",
        )
        failed = failed & (bad == 0)
    out = sol.result.error_if(out, failed)
    return eqx.tree_at(lambda s: (s.ts, s.ys), sol, out, is_leaf=lambda x: x is None)


def _nonfinite_message(sol: diffrax.Solution, bad: int, what: str) -> str:
    ts = np.asarray(jax.device_get(sol.ts)) if sol.ts is not None else np.zeros((0,))
    if bad <= ts.shape[0]:
        where = (
            f"the first non-finite saved state is at s = {ts[bad - 1]:.6g} (`sol.ts[{bad - 1}]`)"
        )
        earlier = (
            f"; the saved states before it are finite, so it blew up after s = {ts[bad - 2]:.6g}"
            if bad >= 2
            else ""
        )
    else:
        where = "the final state (at t1, not saved) is not finite"
        earlier = "; every saved state is finite"
    locate = (
        " To locate the first non-finite step, save every step "
        "(`saveat=diffrax.SaveAt(steps=True)`, or with `fn=` a statistic)."
    )
    return (
        f"simulate: the solution is not finite (NaN or inf): {where}{earlier}. This is "
        f"{what}. {_FIXES}{locate}"
    )


def simulate(
    sde: SDE,
    y0: Float[Array, " n *event"],
    key: PRNGKeyArray | None,
    *,
    t1: Float[ArrayLike, ""] | None = None,
    steps: IntLike | None = None,
    t0: Float[ArrayLike, ""] | None = None,
    ts: Float[ArrayLike, " k"] | None = None,
    solver: diffrax.AbstractSolver | None = None,
    saveat: diffrax.SaveAt | None = None,
    args: PyTree = None,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    max_steps: IntLike | None = None,
    progress: bool = False,
    check_finite: bool = True,
) -> diffrax.Solution:
    r"""Solve $dy = b(s, y)\,ds + G(s, y)\odot dW_s$ for $s \in [t_0, t_1]$ from the cloud `y0`.

    **Fixed grid** (default): `steps` equal steps of any diffrax solver, or the steps of an
    explicit increasing grid `ts` = $(s_0 < s_1 < \dots < s_N)$, driven by a `jax.lax.scan`
    (see `gpm_sde.solve.fixed_grid`), with the counter-based
    [`GridBrownianPath`][gpm_sde.solve.GridBrownianPath]: step $n$ draws an exact
    $\mathcal{N}(0, (s_{n+1} - s_n) I)$ increment (and the Lévy area the solver needs) from
    `key` and the step index $n$ (see `GridBrownianPath`). `steps` is the grid
    `jnp.linspace(t0, t1, steps + 1)`, so passing that array as `ts` (in the same dtype)
    gives bitwise the same solution.

    **Adaptive** (`stepsize_controller=diffrax.PIDController(...)`): `diffrax.diffeqsolve`
    with a `diffrax.VirtualBrownianTree` of tolerance $\Delta s / 16$, starting from
    $\Delta s = (t_1 - t_0)/$`steps`, at most `max_steps` steps (default `16 * steps`).

    **PRNG semantics.** The noise is a pure function of `key` (and, on the fixed grid, of the
    step index): the same key and arguments give bitwise-identical samples on the same machine;
    the particles of a cloud get independent noise. An ODE ignores `key` (pass `None`).

    **Time and dtype.** Time is carried in the widest float available,
    `jnp.result_type(float)`, whatever the cloud's dtype: float64 when `jax_enable_x64` is on,
    so a drift and its score see the exact grid times, and a reverse diffusion's score
    ([`reverse`][gpm_sde.reverse]) gets $t = T - s$ to float64 round-off even for a float32
    cloud. As in `diffrax.diffeqsolve`, the solver integrates in the wider of the cloud's and
    the time's dtypes; `sol.ys` comes back in the cloud's dtype, `sol.ts` in the time dtype.
    With x64 off, times are float32 and resolve $s$ only to $\operatorname{ulp}(s)$: a score
    in diffusion time sees $T - s$ with an absolute error up to $\operatorname{ulp}(T)/2$ near
    $s = T$ ($4.8\times10^{-7}$ at $T = 10$, so $t = 10^{-5}$ arrives as
    $9.54\times10^{-6}$). Enable x64 for exact times.

    **Score check.** Before solving, every score of the SDE is checked once against `y0`,
    from shapes alone ([`SDE.check_scores`][gpm_sde.sde.SDE.check_scores]): a score returning
    the wrong shape raises an error naming it (e.g. ``"`score` of `reverse`"``) instead of
    broadcasting silently.

    **Arguments:**

    - `sde`: the [`SDE`][gpm_sde.SDE], in generation time.
    - `y0`: the initial cloud `(N, *event)`.
    - `key`: PRNG key of the Brownian motion.
    - `t1`, `t0`: the time interval, `t1 > t0` (`t0` defaults to 0), inside the SDE's
      `time_range` when it has one (`[0, T]` for [`reverse`][gpm_sde.reverse]): outside it a
      `ValueError` on concrete times, equinox's runtime error under `jax.jit`. For an SDE with
      noise they cannot be differentiated (a `ValueError` naming them under `jax.grad`); an
      ODE's solution is differentiable in them.
    - `steps`: the number of grid steps (`>= 1`); the initial step count when adaptive.
    - `ts`: instead of `steps`, an explicit strictly increasing grid of at least two times
      (e.g. [`time_grid`][gpm_sde.schedules.time_grid]); then `t0 = ts[0]`, `t1 = ts[-1]`
      (pass `t0`/`t1` only if equal to these) and `steps = len(ts) - 1`. Pass exactly one of
      `steps` and `ts`; `ts` fixes the grid, so it takes no `stepsize_controller`.
    - `solver`: any diffrax solver; default `diffrax.Euler()` (Euler–Maruyama) for an SDE and
      `diffrax.Heun()` for an ODE.
    - `saveat`: a `diffrax.SaveAt`; default `SaveAt(t1=True)`. On the grid it may ask for `t0`,
      `t1`, `ts` (grid points are saved exactly, other times fall back to `diffeqsolve`'s
      interpolation), `steps` (every step, or every k-th with `steps=k`) and `fn` (save a
      statistic `fn(t, y, args)` instead of the cloud, so memory stays O(statistic)).
    - `args`: passed to the drift and diffusion.
    - `stepsize_controller`: `None` for the fixed grid, or a diffrax controller.
    - `max_steps`: the step budget when adaptive.
    - `progress`: show a tqdm progress bar (diffrax's `TqdmProgressMeter`).
    - `check_finite`: check that the output is finite (one reduction over the saved states
      and the final state, after the solve). If not, raise a
      [`NonFiniteSolutionError`][gpm_sde.solve.NonFiniteSolutionError] that names the first
      non-finite saved time, the solver and the step, and the fixes. Inside `jax.jit`,
      `jax.vmap` or `jax.grad` the check is an `eqx.error_if` (equinox's runtime error, a
      `RuntimeError` carrying the same advice), except for a cloud on a multi-device mesh,
      where a runtime error cannot be raised from inside the program: there, check
      `sol.stats["first_nonfinite"]` (0 when finite, else 1 + the index in `sol.ts`) yourself,
      or call `simulate` outside `jit`. `False` returns NaN and inf as they come.

    **Returns:** a `diffrax.Solution`; `sol.ys` is stacked over the save times. With
    `check_finite`, `sol.stats["first_nonfinite"]` is set as above.

    **Sharding.** A cloud placed over several devices along the particle axis (see
    [`shard_cloud`][gpm_sde.solve.shard_cloud]) is solved there: the output is sharded the
    same way and equals the single-device result to round-off (see `docs/scaling.md`).
    """
    t0, t1, steps, ts = _resolve_grid(t0, t1, steps, ts, stepsize_controller)
    _check_simulate_args(sde, y0, key, t0, t1, steps, solver, saveat, stepsize_controller)
    _check_time_range(sde, t0, t1, ts is not None)
    steps = int(steps)  # a NumPy integer too (checked above): a static step count
    if not isinstance(check_finite, bool):
        raise TypeError(f"`check_finite` must be a bool, got {check_finite!r}.")
    y0 = jnp.asarray(y0)
    if not sde.is_ode and key is None:
        raise ValueError("`key` is required for an SDE with noise; pass `jax.random.key(0)`.")
    if solver is None:
        solver = diffrax.Heun() if sde.is_ode else diffrax.Euler()
    if saveat is None:
        saveat = diffrax.SaveAt(t1=True)
    meter = diffrax.TqdmProgressMeter() if progress else diffrax.NoProgressMeter()
    dtype = y0.dtype
    # Times in the widest float (float64 with x64), whatever the cloud's dtype: a score in
    # diffusion time then gets t = T - s without float32 round-off.
    time_dtype = jnp.result_type(float)
    t0_arr = jnp.asarray(t0, dtype=time_dtype)
    t1_arr = jnp.asarray(t1, dtype=time_dtype)
    t0_arr, t1_arr = _traced_time_range(sde, t0_arr, t1_arr)
    if not sde.is_ode:
        t0_arr = _not_differentiable(t0_arr, "ts" if ts is not None else "t0")
        t1_arr = _not_differentiable(t1_arr, "ts" if ts is not None else "t1")
        if ts is not None:
            ts = _not_differentiable(jnp.asarray(ts, time_dtype), "ts")
    sde.check_scores(t0_arr, y0)  # once per solve, shapes only
    # diffrax's solvers integrate in the wider of the state's and the times' dtypes
    # (`diffeqsolve` promotes y0 itself): so does the fixed grid; the output comes back in
    # the cloud's dtype.
    if jnp.result_type(dtype, time_dtype) != dtype:
        y0 = y0.astype(jnp.result_type(dtype, time_dtype))
    explicit = ts is not None
    # The fixed grid: `steps` equal steps as `jnp.linspace`, or the given `ts`.
    grid = jnp.asarray(ts, t0_arr.dtype) if explicit else jnp.linspace(t0_arr, t1_arr, steps + 1)
    if stepsize_controller is None and is_concrete(t0, t1, saveat, ts):
        given = np.asarray(jax.device_get(ts), np.float64) if explicit else None
        plan = plan_saves(saveat, float(np.asarray(t0)), float(np.asarray(t1)), steps, given)
        if plan is not None:
            sol = _solve_on_grid(
                sde, y0, key, t0_arr, t1_arr, steps, solver, plan, args, meter, check_finite, grid
            )
            sol = _in_cloud_dtype(sol, dtype)
            what = _describe(solver, steps, t0, t1, None, explicit)
            return _check_solution(sol, y0, check_finite, what) if check_finite else sol
    if stepsize_controller is None:
        controller: diffrax.AbstractStepSizeController = diffrax.StepTo(ts=grid)
        budget = steps
    else:
        controller = stepsize_controller
        budget = 16 * steps
        if max_steps is not None:
            budget = check_int("max_steps", max_steps, 1, "the adaptive step budget", example=4096)
    if sde.is_ode:
        terms = sde.terms()
    else:
        assert key is not None
        brownian = diffrax.VirtualBrownianTree(
            t0_arr,
            t1_arr,
            tol=jnp.min(jnp.diff(grid)) / 16 if explicit else (t1_arr - t0_arr) / (16 * steps),
            shape=jax.ShapeDtypeStruct(y0.shape, y0.dtype),
            key=key,
            levy_area=_levy_area(solver),
        )
        terms = sde.terms(brownian)
    y0_auto, restore = _on_auto_axes(y0)
    sol = diffrax.diffeqsolve(
        terms,
        solver,
        t0_arr,
        t1_arr,
        dt0=None if stepsize_controller is None else (t1_arr - t0_arr) / steps,
        y0=y0_auto,
        args=args,
        saveat=saveat,
        stepsize_controller=controller,
        max_steps=budget,
        progress_meter=meter,
        throw=False,  # failures are raised below, with the non-finite check first
    )
    sol = _in_cloud_dtype(sol, dtype)
    if restore is not None:
        sol = eqx.tree_at(lambda s: s.ys, sol, restore(sol.ys))
    if check_finite:
        bad = first_nonfinite(sol.ts, sol.ys)
        sol = eqx.tree_at(lambda s: s.stats, sol, {**sol.stats, "first_nonfinite": bad})
    return _check_solution(
        sol,
        y0,
        check_finite,
        _describe(
            solver, steps, t0, t1, controller if stepsize_controller is not None else None, explicit
        ),
    )
