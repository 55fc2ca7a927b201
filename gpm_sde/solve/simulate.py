"""`simulate`: solve an SDE on a particle cloud with diffrax, forward in generation time."""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from .._checks import check_finite, check_float_array, is_concrete
from ..sde import SDE
from .brownian import GridBrownianPath
from .fixed_grid import SavePlan, plan_saves, scan_solve


def _levy_area(solver: diffrax.AbstractSolver) -> type:
    """The Brownian increment type (plain or with Lévy area) that `solver` needs."""
    minimal = getattr(solver, "minimal_levy_area", None)
    if minimal is None or minimal is diffrax.AbstractBrownianIncrement:
        return diffrax.BrownianIncrement
    if issubclass(diffrax.SpaceTimeLevyArea, minimal):
        return diffrax.SpaceTimeLevyArea
    return diffrax.SpaceTimeTimeLevyArea


def _check_simulate_args(sde, y0, t0, t1, steps) -> None:
    if not isinstance(sde, SDE):
        raise TypeError(
            f"`sde` must be a gpm_sde.SDE, got {type(sde).__name__}; build one with "
            f"`SDE(drift, diffusion)` or a transform such as `reverse(process, score)`."
        )
    check_float_array("y0", y0)
    if jnp.ndim(y0) < 1 or jnp.shape(y0)[0] == 0:
        raise ValueError(
            f"`y0` must be a non-empty particle cloud of shape (N, *event) with N >= 1, got "
            f"shape {jnp.shape(y0)}."
        )
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(f"`steps` must be an int >= 1 (the number of solver steps), got {steps!r}.")
    if steps < 1:
        raise ValueError(
            f"`steps` must be an int >= 1 (the number of solver steps), got {steps!r}."
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
) -> diffrax.Solution:
    if sde.is_ode:
        terms = sde.terms()
    else:
        assert key is not None
        shape = jax.ShapeDtypeStruct(y0.shape, y0.dtype)
        terms = sde.terms(GridBrownianPath(shape, key, t0, t1, steps, _levy_area(solver)))
    return scan_solve(terms, solver, t0, t1, steps, y0, args, plan, meter)


def simulate(
    sde: SDE,
    y0: Float[Array, " n *event"],
    key: PRNGKeyArray | None,
    *,
    t1: Float[ArrayLike, ""],
    steps: int,
    t0: Float[ArrayLike, ""] = 0.0,
    solver: diffrax.AbstractSolver | None = None,
    saveat: diffrax.SaveAt | None = None,
    args: PyTree = None,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    max_steps: int | None = None,
    progress: bool = False,
) -> diffrax.Solution:
    r"""Solve $dy = b(s, y)\,ds + G(s, y)\odot dW_s$ for $s \in [t_0, t_1]$ from the cloud `y0`.

    **Fixed grid** (default): `steps` equal steps of any diffrax solver, driven by a
    `jax.lax.scan` (see `gpm_sde.solve.fixed_grid`), with the counter-based
    [`GridBrownianPath`][gpm_sde.solve.GridBrownianPath]: step $n$ draws an exact
    $\mathcal{N}(0, \Delta s\, I)$ increment (and the Lévy area the solver needs) from
    `key` and the step index $n$ (see `GridBrownianPath`).

    **Adaptive** (`stepsize_controller=diffrax.PIDController(...)`): `diffrax.diffeqsolve`
    with a `diffrax.VirtualBrownianTree` of tolerance $\Delta s / 16$, starting from
    $\Delta s = (t_1 - t_0)/$`steps`, at most `max_steps` steps (default `16 * steps`).

    **PRNG semantics.** The noise is a pure function of `key` (and, on the fixed grid, of the
    step index): the same key and arguments give bitwise-identical samples on the same machine;
    the particles of a cloud get independent noise. An ODE ignores `key` (pass `None`).

    **Arguments:**

    - `sde`: the [`SDE`][gpm_sde.SDE], in generation time.
    - `y0`: the initial cloud `(N, *event)`.
    - `key`: PRNG key of the Brownian motion.
    - `t1`, `t0`: the time interval, `t1 > t0`.
    - `steps`: the number of grid steps (`>= 1`); the initial step count when adaptive.
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

    **Returns:** a `diffrax.Solution`; `sol.ys` is stacked over the save times.
    """
    _check_simulate_args(sde, y0, t0, t1, steps)
    y0 = jnp.asarray(y0)
    if not sde.is_ode and key is None:
        raise ValueError("`key` is required for an SDE with noise; pass `jax.random.key(0)`.")
    if solver is None:
        solver = diffrax.Heun() if sde.is_ode else diffrax.Euler()
    if saveat is None:
        saveat = diffrax.SaveAt(t1=True)
    meter = diffrax.TqdmProgressMeter() if progress else diffrax.NoProgressMeter()
    dtype = y0.dtype
    t0_arr = jnp.asarray(t0, dtype=dtype)
    t1_arr = jnp.asarray(t1, dtype=dtype)
    if stepsize_controller is None and is_concrete(t0, t1, saveat):
        plan = plan_saves(saveat, float(np.asarray(t0)), float(np.asarray(t1)), steps)
        if plan is not None:
            return _solve_on_grid(sde, y0, key, t0_arr, t1_arr, steps, solver, plan, args, meter)
    if stepsize_controller is None:
        controller: diffrax.AbstractStepSizeController = diffrax.StepTo(
            ts=jnp.linspace(t0_arr, t1_arr, steps + 1)
        )
        budget = steps
    else:
        controller = stepsize_controller
        budget = 16 * steps if max_steps is None else max_steps
    if sde.is_ode:
        terms = sde.terms()
    else:
        assert key is not None
        brownian = diffrax.VirtualBrownianTree(
            t0_arr,
            t1_arr,
            tol=(t1_arr - t0_arr) / (16 * steps),
            shape=jax.ShapeDtypeStruct(y0.shape, dtype),
            key=key,
            levy_area=_levy_area(solver),
        )
        terms = sde.terms(brownian)
    return diffrax.diffeqsolve(
        terms,
        solver,
        t0_arr,
        t1_arr,
        dt0=None if stepsize_controller is None else (t1_arr - t0_arr) / steps,
        y0=y0,
        args=args,
        saveat=saveat,
        stepsize_controller=controller,
        max_steps=budget,
        progress_meter=meter,
    )
