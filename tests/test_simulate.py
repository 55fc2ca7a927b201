"""`simulate` and its grid Brownian path: laws, determinism, solvers, bad input.

Sampled checks use 5 standard errors estimated from the sample (`gpm_sde.verify`).
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

import gpm_sde
from gpm_sde.sde import SDE, FunctionDrift, LinearDrift, ScalarDiffusion
from gpm_sde.solve import GridBrownianPath
from gpm_sde.verify import max_moment_z_score, mean_z_scores


def _ou(theta=1.5, sigma=0.8):
    return SDE(LinearDrift(-theta), ScalarDiffusion(sigma))


def test_ou_marginals(key):
    """dY = -θY ds + σ dW from Y_0 = y0: mean e^{-θs} y0, variance σ²(1 - e^{-2θs})/(2θ).
    Euler's weak error O(θ dt) = 1.5e-3 relative is far below the 5-SE band at N = 20000."""
    theta, sigma, n = 1.5, 0.8, 20_000
    y0 = jnp.tile(jnp.array([[1.0, -2.0]]), (n, 1))
    ts = jnp.array([0.25, 1.0, 2.0])
    sol = gpm_sde.simulate(
        _ou(theta, sigma), y0, key, t1=2.0, steps=2000, saveat=diffrax.SaveAt(ts=ts)
    )
    assert sol.ys is not None and sol.ys.shape == (3, n, 2)
    for s, ys in zip(ts, sol.ys, strict=True):
        mean = jnp.exp(-theta * s) * y0[0]
        var = sigma**2 * (1 - jnp.exp(-2 * theta * s)) / (2 * theta)
        assert max_moment_z_score(ys, mean, var * jnp.eye(2)) < 5.0, float(s)


def test_same_key_same_samples_different_key_different(key):
    y0 = jnp.zeros((100, 2))
    a = gpm_sde.simulate(_ou(), y0, key, t1=1.0, steps=50).ys
    b = gpm_sde.simulate(_ou(), y0, key, t1=1.0, steps=50).ys
    c = gpm_sde.simulate(_ou(), y0, jr.fold_in(key, 1), t1=1.0, steps=50).ys
    assert a is not None and b is not None and c is not None
    assert jnp.array_equal(a, b)
    assert not jnp.allclose(a, c)


def test_grid_brownian_increments(key):
    """Increments over grid steps are N(0, Δs) and independent across steps; the Lévy area H
    has variance Δs/12 (Foster et al. 2020). 5-SE checks on 50000 draws."""
    n, steps = 50_000, 4
    path = GridBrownianPath(
        jax.ShapeDtypeStruct((n,), jnp.float64), key, 0.0, 2.0, steps, diffrax.SpaceTimeLevyArea
    )
    dt = 0.5
    incs = [path.increment(jnp.asarray(i), dt) for i in range(steps)]
    assert all(isinstance(inc, diffrax.SpaceTimeLevyArea) for inc in incs)
    w = jnp.stack([inc.W for inc in incs], axis=1)  # (n, steps)
    h = jnp.stack([inc.H for inc in incs], axis=1)  # pyright: ignore[reportAttributeAccessIssue]
    assert max_moment_z_score(w, jnp.zeros(steps), dt * jnp.eye(steps)) < 5.0
    assert max_moment_z_score(h, jnp.zeros(steps), dt / 12 * jnp.eye(steps)) < 5.0
    # The same step queried twice gives the same increment (a path, not fresh noise).
    assert jnp.array_equal(path.evaluate(0.5, 1.0), incs[1].W)  # pyright: ignore[reportArgumentType]


@pytest.mark.parametrize(
    "solver", [diffrax.Euler(), diffrax.Heun(), diffrax.SRA1(), diffrax.ShARK(), diffrax.SEA()]
)
def test_solvers_reach_ou_stationary_law(solver, key):
    theta, sigma, n = 1.0, 1.0, 8000
    y0 = jnp.zeros((n, 1))
    sol = gpm_sde.simulate(_ou(theta, sigma), y0, key, t1=4.0, steps=400, solver=solver)
    assert sol.ys is not None
    var = sigma**2 * (1 - jnp.exp(-2 * theta * 4.0)) / (2 * theta)
    assert max_moment_z_score(sol.ys[0], jnp.zeros(1), var * jnp.eye(1)) < 5.0


def test_ode_default_solver_is_accurate(key):
    """For an ODE, dy/ds = -y, Heun on 100 steps has global error ~ (Δs)²/6 ≈ 1.7e-5."""
    y0 = jr.normal(key, (10, 2))
    sol = gpm_sde.simulate(SDE(LinearDrift(-1.0)), y0, None, t1=1.0, steps=100)
    assert sol.ys is not None
    assert jnp.allclose(sol.ys[0], jnp.exp(-1.0) * y0, rtol=5e-5)


def test_mean_field_drift(key):
    """An interacting drift b(y_i) = mean(y) - y_i contracts every particle to the (conserved)
    cloud mean: y_i(s) = m + (y_i(0) - m) e^{-s}."""
    y0 = jr.normal(key, (50, 2))
    drift = FunctionDrift(lambda s, y, args: jnp.mean(y, axis=0) - y)
    sol = gpm_sde.simulate(SDE(drift), y0, None, t1=1.0, steps=200)
    assert sol.ys is not None
    m = y0.mean(0)
    assert jnp.allclose(sol.ys[0], m + (y0 - m) * jnp.exp(-1.0), rtol=1e-5, atol=1e-6)


def test_reverse_vp_recovers_data(mixture_2d, key):
    """Reverse VP SDE with the exact score, from the prior to s = T - 1e-3, lands on the data
    law: moments within 5 SE at N = 4000 (σ(1e-3) ≈ 0.01 smoothing is < 0.1 SE)."""
    p = gpm_sde.vp()
    score = gpm_sde.MixtureMarginalScore(p, mixture_2d)
    y0 = p.prior.sample(jr.fold_in(key, 1), 4000, (2,))
    sol = gpm_sde.simulate(
        gpm_sde.reverse(p, score), y0, jr.fold_in(key, 2), t1=p.T - 1e-3, steps=1000
    )
    assert sol.ys is not None
    z = max_moment_z_score(sol.ys[0], mixture_2d.mean(), mixture_2d.covariance())
    assert z < 5.0, z


def test_float32_cloud_stays_float32(key):
    y0 = jnp.zeros((10, 2), dtype=jnp.float32)
    sol = gpm_sde.simulate(_ou(), y0, key, t1=1.0, steps=10)
    assert sol.ys is not None and sol.ys.dtype == jnp.float32
    assert jnp.all(jnp.isfinite(sol.ys))
    assert jnp.abs(mean_z_scores(sol.ys[0], jnp.zeros(2))).max() < 5.0


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"steps": 0}, ValueError, r"steps.*>= 1"),
        ({"steps": 2.5}, TypeError, r"steps"),
        ({"t1": 0.0}, ValueError, r"t1.*greater than.*generation time"),
        ({"t1": -1.0}, ValueError, r"issue 598"),
        ({"t1": float("nan")}, ValueError, r"t1.*finite"),
        ({"y0": jnp.zeros((0, 2))}, ValueError, r"y0.*non-empty"),
        ({"y0": jnp.zeros((3, 2), dtype=jnp.int32)}, TypeError, r"y0.*floating|parameter 'y0'"),
        ({"y0": jnp.full((3, 2), jnp.nan)}, ValueError, r"y0.*finite"),
        ({"key": None}, ValueError, r"key.*required"),
        ({"sde": "ou"}, TypeError, r"sde.*SDE"),
    ],
)
def test_bad_simulate_arguments(kwargs, exc, match, key):
    args = {"sde": _ou(), "y0": jnp.zeros((3, 2)), "key": key, "t1": 1.0, "steps": 10} | kwargs
    with pytest.raises(exc, match=match):
        gpm_sde.simulate(args.pop("sde"), args.pop("y0"), args.pop("key"), **args)
