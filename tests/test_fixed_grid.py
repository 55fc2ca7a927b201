"""The fixed-grid loop that `simulate` runs (`gpm_sde.solve._fixed_grid.scan_solve`, a
`lax.scan` over diffrax solver steps) is `diffrax.diffeqsolve` on the same grid.

Both sides get the same terms (the SDE's own `sde.terms(path)`), the same solver, the same
grid (`diffrax.StepTo(ts)` for diffeqsolve, `grid=ts` for the scan) and the same Brownian path
(one `GridBrownianPath` on that grid, so both draw the identical increment for each step), and
save at the same grid times. Cases: the reverse VP SDE of a score that is nonlinear in x (a
`ScoreDrift`) with Euler (Euler–Maruyama: the scan's fused step, `simulate`'s default) and
Heun (the scan calls `solver.step`), and its probability-flow ODE with Heun; a non-uniform
grid; saves at three interior times and the end. `simulate` on that grid and key is checked
to give the same states (it runs this loop). Cost: one diffeqsolve and one scan compilation
per case (a few seconds each on one core).

**Tolerance.** The arithmetic of a step is diffrax's own on both sides; what differs is only
the floating-point order of operations: the scan's Euler–Maruyama step adds `b Δs + G ΔW` as
one expression where diffrax sums them through `MultiTerm.vf_prod`, and diffeqsolve returns a
saved state through its dense interpolant at the step's end, `y_a + 1·(y_b − y_a)`. Each costs
at most a few float64 ulps per step (measured: ≤ 3 ulps of the cloud's scale after 24 steps);
`RTOL = 1e-13`, about 450 ulps, bounds that with room, while a change of solver, step or noise
moves the result by orders of magnitude more (a step's local error alone is ~1e-3 here).
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gpm_sde
from gpm_sde.solve import GridBrownianPath
from gpm_sde.solve._fixed_grid import plan_saves, scan_solve

RTOL = 1e-13
N, STEPS, EPS = 8, 24, 1e-3
SAVE_AT = (5, 12, 19, STEPS)  # grid indices of the saved states


def _grid(T: float) -> np.ndarray:
    """A non-uniform (quadratic) grid on [0, T - EPS]."""
    return (T - EPS) * np.linspace(0.0, 1.0, STEPS + 1) ** 2


def _rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(a)))


def _score(t, x):
    """The score of p(x) ∝ exp(-|x|²/2) ∏ cosh(x_i)^(1/2): nonlinear in x."""
    return -x + 0.5 * jnp.tanh(x)


@pytest.mark.parametrize(
    ("kind", "solver"),
    [("sde", diffrax.Euler()), ("sde", diffrax.Heun()), ("ode", diffrax.Heun())],
    ids=["sde-euler", "sde-heun", "ode-heun"],
)
def test_scan_solve_is_diffeqsolve_on_the_same_grid(kind, solver):
    vp = gpm_sde.vp()
    y0 = jr.normal(jr.key(3), (N, 2))
    sde = gpm_sde.reverse(vp, _score) if kind == "sde" else gpm_sde.probability_flow(vp, _score)
    grid = _grid(vp.T)
    ts = jnp.asarray(grid)
    t0, t1 = ts[0], ts[-1]
    key = jr.key(7)
    path = GridBrownianPath(jax.ShapeDtypeStruct(y0.shape, y0.dtype), key, t0, t1, STEPS, ts=ts)
    terms = sde.terms() if sde.is_ode else sde.terms(path)
    save_ts = ts[jnp.asarray(SAVE_AT)]
    saveat = diffrax.SaveAt(ts=save_ts)

    plan = plan_saves(saveat, float(t0), float(t1), STEPS, grid=grid)
    assert plan is not None and plan.ts_indices == SAVE_AT
    scanned = eqx.filter_jit(scan_solve)(
        terms, solver, t0, t1, STEPS, y0, None, plan, diffrax.NoProgressMeter(), grid=ts
    )
    reference = diffrax.diffeqsolve(
        terms,
        solver,
        t0,
        t1,
        dt0=None,
        y0=y0,
        saveat=saveat,
        stepsize_controller=diffrax.StepTo(ts=ts),
        max_steps=STEPS,
    )
    assert scanned.ys is not None and reference.ys is not None and scanned.ts is not None
    assert reference.stats["num_steps"] == STEPS
    np.testing.assert_array_equal(np.asarray(scanned.ts), np.asarray(save_ts))
    assert scanned.ys.shape == reference.ys.shape == (len(SAVE_AT), N, 2)
    assert _rel(reference.ys, scanned.ys) <= RTOL, _rel(reference.ys, scanned.ys)

    if kind == "sde" and isinstance(solver, diffrax.Euler):
        # `simulate` on that grid runs this loop with this path (the same key): the same states.
        sol = gpm_sde.simulate(sde, y0, key, ts=ts, solver=solver, saveat=saveat)
        assert sol.ys is not None
        assert _rel(reference.ys, sol.ys) <= RTOL, _rel(reference.ys, sol.ys)
