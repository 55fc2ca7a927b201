"""`simulate` options: every diffrax solver, SaveAt on and off the grid, statistics, adaptive
steps, progress meter, use under jit.

Sampled checks: 5 standard errors estimated from the sample; deterministic checks: float64.
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

import gpm_sde
from gpm_sde.sde import SDE, LinearDrift, ScalarDiffusion
from gpm_sde.verify import max_moment_z_score

THETA, SIGMA = 1.0, 1.0


def _ou():
    return SDE(LinearDrift(-THETA), ScalarDiffusion(SIGMA))


def _ou_var(s):
    return SIGMA**2 * (1 - jnp.exp(-2 * THETA * s)) / (2 * THETA)


@pytest.mark.parametrize(
    "solver",
    [
        diffrax.Euler(),
        diffrax.Heun(),
        diffrax.EulerHeun(),
        diffrax.SEA(),
        diffrax.SRA1(),
        diffrax.ShARK(),
        diffrax.SPaRK(),
        diffrax.ReversibleHeun(),
    ],
    ids=lambda s: type(s).__name__,
)
def test_every_sde_solver_on_the_grid(solver, key):
    """From y0 = 0, the OU law at s = 2: N(0, σ²(1 - e^{-4})/2) within 5 SE, N = 4000."""
    y0 = jnp.zeros((4000, 1))
    sol = gpm_sde.simulate(_ou(), y0, key, t1=2.0, steps=200, solver=solver)
    assert sol.ys is not None
    assert max_moment_z_score(sol.ys[0], jnp.zeros(1), _ou_var(2.0) * jnp.eye(1)) < 5.0


@pytest.mark.parametrize(
    "solver", [diffrax.Tsit5(), diffrax.Dopri5(), diffrax.Heun()], ids=lambda s: type(s).__name__
)
def test_ode_solvers(solver, key):
    """dy/ds = -y: fixed grid of 50 steps, error ≤ 1e-4 for these 2nd–5th order methods."""
    y0 = jr.normal(key, (5, 3))
    sol = gpm_sde.simulate(SDE(LinearDrift(-1.0)), y0, None, t1=1.0, steps=50, solver=solver)
    assert sol.ys is not None
    assert jnp.allclose(sol.ys[0], jnp.exp(-1.0) * y0, rtol=1e-4)


def test_saveat_grid_times_and_t0(key):
    y0 = jnp.ones((3000, 1))
    ts = jnp.array([0.5, 1.0, 1.5])
    sol = gpm_sde.simulate(
        _ou(), y0, key, t1=2.0, steps=400, saveat=diffrax.SaveAt(t0=True, ts=ts, t1=True)
    )
    assert sol.ts is not None and sol.ys is not None
    assert jnp.allclose(sol.ts, jnp.array([0.0, 0.5, 1.0, 1.5, 2.0]))
    assert jnp.array_equal(sol.ys[0], y0)
    for s, ys in zip(sol.ts[1:], sol.ys[1:], strict=True):
        mean = jnp.exp(-THETA * s) * jnp.ones(1)
        assert max_moment_z_score(ys, mean, _ou_var(s) * jnp.eye(1)) < 5.0


def test_saveat_off_grid_falls_back_to_interpolation(key):
    """ts off the grid are interpolated by diffeqsolve on the same grid: the ODE solution at
    s = 0.123 (grid step 0.01) agrees with e^{-s} y0 to the interpolation's accuracy."""
    y0 = jnp.ones((4, 2))
    sol = gpm_sde.simulate(
        SDE(LinearDrift(-1.0)),
        y0,
        None,
        t1=1.0,
        steps=100,
        solver=diffrax.Tsit5(),
        saveat=diffrax.SaveAt(ts=jnp.array([0.123, 0.5])),
    )
    assert sol.ys is not None
    assert jnp.allclose(sol.ys[0], jnp.exp(-0.123) * y0, rtol=1e-6)
    assert jnp.allclose(sol.ys[1], jnp.exp(-0.5) * y0, rtol=1e-6)


def test_saveat_steps_and_statistics(key):
    """`SaveAt(steps=k, fn=...)` keeps only a statistic every k steps: memory O(statistic)."""
    n, steps = 20_000, 100
    y0 = jnp.zeros((n, 2))

    def second_moment(t, y, args):
        return jnp.mean(y**2, axis=0)

    sol = gpm_sde.simulate(
        _ou(), y0, key, t1=1.0, steps=steps, saveat=diffrax.SaveAt(steps=10, fn=second_moment)
    )
    assert sol.ts is not None and sol.ys is not None
    assert sol.ys.shape == (10, 2)
    assert jnp.allclose(sol.ts, jnp.linspace(0.1, 1.0, 10))
    # E[y²] = Var; SE of a mean of y² ≈ √2 Var / √n for Gaussian y.
    var = _ou_var(sol.ts)[:, None]
    assert jnp.all(jnp.abs(sol.ys - var) < 5 * jnp.sqrt(2.0) * var / jnp.sqrt(n))
    every = gpm_sde.simulate(_ou(), y0[:5], key, t1=1.0, steps=7, saveat=diffrax.SaveAt(steps=True))
    assert every.ys is not None and every.ys.shape == (7, 5, 2)


def test_adaptive_steps(key):
    """PID-controlled Heun on the OU process with a VirtualBrownianTree: right law."""
    y0 = jnp.zeros((2000, 1))
    sol = gpm_sde.simulate(
        _ou(),
        y0,
        key,
        t1=2.0,
        steps=50,
        solver=diffrax.Heun(),
        stepsize_controller=diffrax.PIDController(rtol=1e-3, atol=1e-3),
    )
    assert sol.ys is not None and int(sol.stats["num_steps"]) > 0
    assert max_moment_z_score(sol.ys[0], jnp.zeros(1), _ou_var(2.0) * jnp.eye(1)) < 5.0


def test_adaptive_ode_is_accurate(key):
    y0 = jr.normal(key, (4, 2))
    sol = gpm_sde.simulate(
        SDE(LinearDrift(-1.0)),
        y0,
        None,
        t1=3.0,
        steps=4,
        solver=diffrax.Tsit5(),
        stepsize_controller=diffrax.PIDController(rtol=1e-9, atol=1e-9),
    )
    assert sol.ys is not None
    assert jnp.allclose(sol.ys[0], jnp.exp(-3.0) * y0, rtol=1e-7)


def test_progress_meter(key, capsys):
    sol = gpm_sde.simulate(_ou(), jnp.zeros((3, 1)), key, t1=1.0, steps=40, progress=True)
    assert sol.ys is not None
    assert "100.00%" in capsys.readouterr().err


def test_under_jit_and_vmap_over_keys(key):
    """simulate composes with jax transformations: inside jit (traced t1 uses diffeqsolve on
    the same grid) and vmapped over keys."""
    y0 = jnp.zeros((500, 1))

    @jax.jit
    def final(k, t1):
        return gpm_sde.simulate(_ou(), y0, k, t1=t1, steps=100).ys

    out = final(key, 1.0)
    assert (
        out is not None and max_moment_z_score(out[0], jnp.zeros(1), _ou_var(1.0) * jnp.eye(1)) < 5
    )
    keys = jr.split(key, 3)
    outs = jax.vmap(lambda k: gpm_sde.simulate(_ou(), y0, k, t1=1.0, steps=20).ys)(keys)
    assert outs is not None and outs.shape == (3, 1, 500, 1)
    assert not jnp.allclose(outs[0], outs[1])


def test_gradient_through_simulate(key):
    """The grid Brownian path supports reverse-mode autodiff: with the noise held fixed by the
    key, d/dθ of the mean final particle equals its central finite difference (float64,
    δ = 1e-5: truncation O(δ²) ≈ 1e-10)."""
    y0 = jnp.ones((10, 1))

    def mean_final(theta):
        sde = SDE(LinearDrift(-theta), ScalarDiffusion(1.0))
        ys = gpm_sde.simulate(sde, y0, key, t1=1.0, steps=200).ys
        assert ys is not None
        return jnp.mean(ys[0])

    grad = jax.grad(mean_final)(1.0)
    delta = 1e-5
    fd = (mean_final(1.0 + delta) - mean_final(1.0 - delta)) / (2 * delta)
    assert jnp.isclose(grad, fd, rtol=1e-7), (grad, fd)


def test_inside_jit_with_python_end_times(key):
    """Python floats for t0/t1 stay concrete inside an outer jit: the fixed grid is used."""
    y0 = jnp.zeros((300, 1))

    @jax.jit
    def final(k):
        return gpm_sde.simulate(_ou(), y0, k, t1=1.0, steps=100).ys

    out = final(key)
    assert out is not None
    assert max_moment_z_score(out[0], jnp.zeros(1), _ou_var(1.0) * jnp.eye(1)) < 5


def test_save_times_rounded_to_float32_are_accepted_but_far_ones_are_not():
    """`ts` in float32 may exceed a float64 `t1` by round-off (0.999 → 0.99900001): that is
    accepted; a time truly past `t1` is still an error naming `saveat`."""
    sde = gpm_sde.SDE(gpm_sde.LinearDrift(-1.0), gpm_sde.ScalarDiffusion(1.0))
    y0 = jnp.zeros((4, 1))
    ts = jnp.asarray([0.4995, 0.999], dtype=jnp.float32)
    assert float(ts[-1]) > 0.999
    sol = gpm_sde.simulate(
        sde, y0, jax.random.key(0), t1=0.999, steps=10, saveat=diffrax.SaveAt(ts=ts)
    )
    assert sol.ys is not None and sol.ys.shape == (2, 4, 1)
    with pytest.raises(ValueError, match=r"`saveat`"):
        gpm_sde.simulate(
            sde,
            y0,
            jax.random.key(0),
            t1=0.999,
            steps=10,
            saveat=diffrax.SaveAt(ts=jnp.asarray([0.5, 1.5])),
        )
