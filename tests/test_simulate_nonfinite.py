"""`simulate` reports a solve that blows up (NaN or inf) instead of returning it as samples:
eagerly with `NonFiniteSolutionError`, inside `jax.jit`/`jax.vmap` with equinox's runtime
error; `check_finite=False` returns the non-finite values.

The blow-up: dy = y³ ds + 0.1 dW from y0 = 3 explodes at s = 1/(2·9) ≈ 0.056 (the ODE
y' = y³ has y(s) = y0/sqrt(1 − 2 y0² s)); Euler with Δs = 0.05 roughly cubes the state each
step (3, 4.4, 8.5, 39, 3e3, 1e9, 1e26, 7e76, 1.4e229) and overflows to inf at step 9, s = 0.45.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import gpm_sde
from gpm_sde.sde import SDE, FunctionDrift, LinearDrift, ScalarDiffusion
from gpm_sde.solve import NonFiniteSolutionError

MESSAGE = r"not finite \(NaN or inf\).*diffrax\.Euler.*smaller steps.*check_finite=False"


def _cubic():
    return SDE(FunctionDrift(lambda s, y, args: y**3), ScalarDiffusion(0.1))


def _y0():
    return jnp.full((16, 2), 3.0)


def test_blow_up_raises_with_the_first_nonfinite_time(key):
    with pytest.raises(NonFiniteSolutionError, match=MESSAGE) as info:
        gpm_sde.simulate(_cubic(), _y0(), key, t1=1.0, steps=20)
    assert "s = 1 (`sol.ts[0]`)" in str(info.value)
    assert "score near t = 0" in str(info.value)
    # Saving on the grid locates it: the state at s = 0.4 is finite, the one at 0.5 not.
    ts = jnp.linspace(0.0, 1.0, 11)
    with pytest.raises(NonFiniteSolutionError, match=r"s = 0\.5 .*blew up after s = 0\.4"):
        gpm_sde.simulate(_cubic(), _y0(), key, t1=1.0, steps=20, saveat=diffrax.SaveAt(ts=ts))
    # The error is also a RuntimeError (what equinox raises under jit) and a
    # FloatingPointError (as gpm_sde.train's TrainingDiverged).
    assert issubclass(NonFiniteSolutionError, RuntimeError)
    assert issubclass(NonFiniteSolutionError, FloatingPointError)


def test_blow_up_of_an_unsaved_final_state_or_a_statistic(key):
    """Saving a statistic that hides the NaN (a count) or only an early time still raises:
    the final state is checked too."""
    count = diffrax.SaveAt(t1=True, fn=lambda t, y, args: jnp.sum(jnp.abs(y) > 1e300))
    with pytest.raises(NonFiniteSolutionError, match="final state"):
        gpm_sde.simulate(_cubic(), _y0(), key, t1=1.0, steps=20, saveat=count)
    early = diffrax.SaveAt(ts=jnp.array([0.0]))
    with pytest.raises(NonFiniteSolutionError, match="final state"):
        gpm_sde.simulate(_cubic(), _y0(), key, t1=1.0, steps=20, saveat=early)


def test_blow_up_raises_under_jit_and_vmap(key):
    with pytest.raises(RuntimeError, match=MESSAGE):
        jax.jit(lambda y: gpm_sde.simulate(_cubic(), y, key, t1=1.0, steps=20).ys)(_y0())
    with pytest.raises(eqx.EquinoxRuntimeError, match=MESSAGE):
        eqx.filter_jit(lambda y: gpm_sde.simulate(_cubic(), y, key, t1=1.0, steps=20).ys)(_y0())
    keys = jax.random.split(key, 3)
    with pytest.raises(RuntimeError, match=MESSAGE):
        jax.vmap(lambda k: gpm_sde.simulate(_cubic(), _y0(), k, t1=1.0, steps=20).ys)(keys)


def test_check_finite_false_returns_the_nans(key):
    sol = gpm_sde.simulate(_cubic(), _y0(), key, t1=1.0, steps=20, check_finite=False)
    assert sol.ys is not None and not bool(jnp.all(jnp.isfinite(sol.ys)))
    assert "first_nonfinite" not in sol.stats
    out = jax.jit(
        lambda y: gpm_sde.simulate(_cubic(), y, key, t1=1.0, steps=20, check_finite=False).ys
    )(_y0())
    assert not bool(jnp.all(jnp.isfinite(out)))


def test_finite_solve_reports_zero(key):
    sol = gpm_sde.simulate(
        SDE(LinearDrift(-1.0), ScalarDiffusion(1.0)), _y0(), key, t1=1.0, steps=5
    )
    assert int(sol.stats["first_nonfinite"]) == 0


def test_off_grid_saves_and_adaptive_steps(key):
    """The diffeqsolve paths: off-grid save times (interpolation) raise the same error; an
    adaptive controller, which rejects non-finite steps, runs out of steps and says why."""
    off_grid = diffrax.SaveAt(ts=jnp.array([0.013, 1.0]))
    with pytest.raises(NonFiniteSolutionError, match=r"s = 1 \(`sol\.ts\[1\]`\)"):
        gpm_sde.simulate(_cubic(), _y0(), key, t1=1.0, steps=20, saveat=off_grid)
    sol = gpm_sde.simulate(
        _cubic(), _y0(), key, t1=1.0, steps=20, saveat=off_grid, check_finite=False
    )
    assert sol.ys is not None and not bool(jnp.all(jnp.isfinite(sol.ys[1])))
    with pytest.raises(RuntimeError, match=r"maximum number of solver steps.*blows up"):
        gpm_sde.simulate(
            _cubic(),
            _y0(),
            key,
            t1=1.0,
            steps=20,
            solver=diffrax.Heun(),
            stepsize_controller=diffrax.PIDController(rtol=1e-3, atol=1e-3),
        )


def test_check_finite_must_be_a_bool(key):
    with pytest.raises(TypeError, match="check_finite"):
        gpm_sde.simulate(_cubic(), _y0(), key, t1=1.0, steps=2, check_finite=1)  # pyright: ignore[reportArgumentType]
