"""`gpm_sde.verify`: each check against an independent closed form, cheaply."""

from __future__ import annotations

import math

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gpm_sde
from gpm_sde import SDE, LinearDrift, ScalarDiffusion
from gpm_sde.verify import (
    FineBrownianPath,
    euler_maruyama_moments,
    false_alarm_bound,
    fit_order,
    fokker_planck_rhs,
    gaussian_kl,
    linear_process_euler_moments,
    moment_vector,
    moment_z_scores,
    sample_moments,
    solve_on_path,
    strong_error,
    two_sample_z_scores,
    weak_error,
)

# --- moment z-scores ---------------------------------------------------------------------


def test_moment_z_scores_by_hand():
    """Three points in 1-D: mean 1, variance 1, products of the centred values (1, 0, 1)."""
    x = jnp.array([[0.0], [1.0], [2.0]])
    values, se = sample_moments(x)
    np.testing.assert_allclose(values, [1.0, 1.0])
    # SE of the mean: std 1 / √3; SE of the variance: std(1, 0, 1) / √3 = √(1/3) / √3.
    np.testing.assert_allclose(se, [1 / math.sqrt(3), math.sqrt(1 / 3) / math.sqrt(3)])
    z = moment_z_scores(x, jnp.array([0.5]), jnp.array([[2.0]]))
    np.testing.assert_allclose(z, [0.5 * math.sqrt(3), -3.0])


def test_moment_vector_order():
    cov = jnp.array([[1.0, 2.0, 3.0], [2.0, 4.0, 5.0], [3.0, 5.0, 6.0]])
    np.testing.assert_array_equal(
        moment_vector(jnp.array([7.0, 8.0, 9.0]), cov), [7, 8, 9, 1, 2, 3, 4, 5, 6]
    )


def test_z_scores_are_calibrated(key):
    """Under the null, |z| > 1.96 for 5% of the mean z-scores (CLT), in both tests: 2000
    replicates, binomial SE 0.5%, band ±2%; a shifted law is rejected."""
    reps, n = 2000, 400
    k1, k2 = jr.split(key)
    a = jr.normal(k1, (reps, n, 1))
    b = 3.0 + 2.0 * jr.normal(k2, (reps, n, 1))
    one = jax.vmap(lambda x: moment_z_scores(x, jnp.zeros(1), jnp.eye(1)))(a)
    two = jax.vmap(lambda x, y: two_sample_z_scores(x, (y - 3.0) / 2.0))(a, b)
    for z in (one[:, 0], two[:, 0]):
        assert abs(float(jnp.mean(jnp.abs(z) > 1.959964)) - 0.05) < 0.02
    shifted = two_sample_z_scores(a[0], b[0] / 2.0)  # means 0 and 1.5, n = 400
    assert abs(float(shifted[0])) > 10.0


def test_two_sample_z_by_hand(key):
    a = jr.normal(key, (50, 1))
    b = 1.0 + jr.normal(jr.fold_in(key, 1), (80, 1))
    na, nb = np.asarray(a[:, 0]), np.asarray(b[:, 0])
    expected = (na.mean() - nb.mean()) / math.sqrt(na.var(ddof=1) / 50 + nb.var(ddof=1) / 80)
    np.testing.assert_allclose(two_sample_z_scores(a, b)[0], expected, rtol=1e-10)


def test_false_alarm_bound():
    np.testing.assert_allclose(false_alarm_bound(1, 1.959963984540054), 0.05, rtol=1e-9)
    np.testing.assert_allclose(false_alarm_bound(10, 5.0), 10 * 5.733031437583878e-07, rtol=1e-9)
    assert false_alarm_bound(100, 0.1) == 1.0
    with pytest.raises(ValueError, match="n_scores"):
        false_alarm_bound(0, 5.0)
    with pytest.raises(ValueError, match="threshold"):
        false_alarm_bound(3, -1.0)


def test_moment_errors_name_the_argument():
    # A wrong rank is caught by the annotations (a TypeError naming the argument).
    with pytest.raises(TypeError, match="samples"):
        sample_moments(jnp.zeros(5))
    with pytest.raises(ValueError, match="needs at least 2"):
        sample_moments(jnp.zeros((1, 2)))
    with pytest.raises((TypeError, ValueError), match="cov"):
        moment_vector(jnp.zeros(2), jnp.zeros((3, 3)))


def _increment(path: FineBrownianPath, a: float, b: float) -> jax.Array:
    w = path.evaluate(a, b)
    assert isinstance(w, jax.Array)
    return w


# --- convergence orders ------------------------------------------------------------------


def test_fit_order_recovers_the_slope():
    """Errors C h^p with multiplicative noise: the fitted slope is p within a few SE."""
    rng = np.random.default_rng(0)
    h = np.array([0.1, 0.05, 0.025, 0.0125])
    per_path = 3.0 * h[:, None] ** 1.5 * rng.uniform(0.5, 1.5, (4, 2000))
    fit = fit_order(h, per_path, strong_error, rng)
    assert abs(fit.slope - 1.5) < 5 * fit.se + 1e-3
    assert fit.se < 0.02 and fit.ci[0] < fit.slope < fit.ci[1]
    np.testing.assert_allclose(fit.error, per_path.mean(axis=1))
    exact = fit_order(h, np.repeat(2.0 * h[:, None] ** 2, 3, axis=1), weak_error, rng)
    assert exact.slope == pytest.approx(2.0, abs=1e-12) and exact.se < 1e-12
    with pytest.raises((TypeError, ValueError), match="per_path"):
        fit_order(h, per_path[:3], strong_error, rng)
    with pytest.raises(ValueError, match="`h`"):
        fit_order(np.ones(4), per_path, strong_error, rng)


def test_fine_path_coarse_queries_are_sums(key):
    """A coarse increment is the sum of the fine ones; the space-time Lévy area of [0, T] has
    variance T/12 (Foster et al. 2020), by 5 SE over 4000 paths."""
    path = FineBrownianPath(jax.ShapeDtypeStruct((4000,), jnp.float64), key, 0.0, 2.0, 64)
    fine = [_increment(path, i / 32, (i + 1) / 32) for i in range(64)]
    np.testing.assert_allclose(
        _increment(path, 0.0, 2.0), jnp.sum(jnp.stack(fine), axis=0), atol=1e-12
    )
    area = path.evaluate(0.0, 2.0, use_levy=True)
    assert isinstance(area, diffrax.SpaceTimeLevyArea)
    var = float(jnp.var(area.H))
    assert abs(var - 2.0 / 12) < 5 * (2.0 / 12) * math.sqrt(2 / 4000)
    with pytest.raises(ValueError, match="steps"):
        FineBrownianPath(jax.ShapeDtypeStruct((2,), jnp.float64), key, 0.0, 1.0, 0)


def test_solve_on_path_is_euler_on_the_path(key):
    """Euler–Maruyama for dX = μX ds + σX dW on 8 steps of a 256-step path is the product
    Π (1 + μh + σΔW) over the coarse increments (strong orders: `tests/test_convergence.py`)."""
    mu, sigma, n = 0.5, 1.0, 200
    sde = SDE(LinearDrift(mu), lambda s, y, args: sigma * y)
    path = FineBrownianPath(jax.ShapeDtypeStruct((n,), jnp.float64), key, 0.0, 1.0, 256)
    y0 = jnp.ones(n)
    x = solve_on_path(sde, path, y0, 8, diffrax.Euler())
    expected = jnp.prod(
        jnp.stack([1 + mu / 8 + sigma * _increment(path, i / 8, (i + 1) / 8) for i in range(8)]),
        axis=0,
    )
    np.testing.assert_allclose(x, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="divide"):
        solve_on_path(sde, path, y0, 3, diffrax.Euler())


# --- Gaussian laws -----------------------------------------------------------------------


def test_gaussian_kl_closed_forms():
    """1-D: log(s1/s0) + (s0² + (m0 - m1)²)/(2 s1²) - ½; a diagonal law is a sum of those."""

    def kl1(m0, s0, m1, s1):
        return math.log(s1 / s0) + (s0**2 + (m0 - m1) ** 2) / (2 * s1**2) - 0.5

    got = gaussian_kl(
        jnp.array([0.3, -1.0]),
        jnp.diag(jnp.array([0.5, 2.0]) ** 2),
        jnp.array([1.0, 0.0]),
        jnp.diag(jnp.array([1.5, 0.7]) ** 2),
    )
    np.testing.assert_allclose(got, kl1(0.3, 0.5, 1.0, 1.5) + kl1(-1.0, 2.0, 0.0, 0.7), rtol=1e-12)
    c = jnp.array([[2.0, 0.5], [0.5, 1.0]])
    np.testing.assert_allclose(gaussian_kl(jnp.ones(2), c, jnp.ones(2), c), 0.0, atol=1e-14)
    with pytest.raises((TypeError, ValueError), match="c1"):
        gaussian_kl(jnp.ones(2), c, jnp.ones(2), jnp.eye(3))


def test_euler_moments_scalar_closed_form():
    """dx = (a x + c) ds + g dW on N equal steps: m_N = k^N m_0 + h c Σ k^j and
    C_N = k^{2N} C_0 + g² h Σ k^{2j}, k = 1 + h a."""
    n, h, a, c, g2 = 10, 0.1, -0.7, 0.4, 1.3
    means, covs = euler_maruyama_moments(
        jnp.full(n, h),
        jnp.full((n, 1, 1), a),
        jnp.full((n, 1), c),
        jnp.full(n, g2),
        jnp.array([2.0]),
        jnp.array([[0.5]]),
    )
    k = 1 + h * a
    assert means.shape == (n + 1, 1) and covs.shape == (n + 1, 1, 1)
    np.testing.assert_allclose(
        means[-1, 0], k**n * 2.0 + h * c * sum(k**j for j in range(n)), rtol=1e-12
    )
    np.testing.assert_allclose(
        covs[-1, 0, 0],
        k ** (2 * n) * 0.5 + g2 * h * sum(k ** (2 * j) for j in range(n)),
        rtol=1e-12,
    )
    np.testing.assert_allclose(means[0], [2.0])
    with pytest.raises((TypeError, ValueError), match="drift_offset"):
        euler_maruyama_moments(
            jnp.full(n, h),
            jnp.full((n, 1, 1), a),
            jnp.zeros((n, 2)),
            jnp.full(n, g2),
            jnp.array([2.0]),
            jnp.array([[0.5]]),
        )


def test_linear_process_euler_bias_is_first_order(mixture_2d):
    """The Euler chain of VP tends to the exact marginal with a bias O(h): halving h halves it."""
    process = gpm_sde.vp()
    m0, c0 = jnp.array([1.0, -2.0]), jnp.array([[0.5, 0.1], [0.1, 0.3]])
    start = gpm_sde.GaussianMixture(jnp.ones(1), m0[None], c0[None])
    exact = process.marginal(start, 0.8)
    biases = []
    for steps in (100, 200):
        means, covs = linear_process_euler_moments(
            process, jnp.linspace(0.0, 0.8, steps + 1), m0, c0
        )
        biases.append(
            float(
                jnp.max(jnp.abs(covs[-1] - exact.covariance()))
                + jnp.max(jnp.abs(means[-1] - exact.mean()))
            )
        )
    assert biases[0] < 0.05
    assert 1.8 < biases[0] / biases[1] < 2.2


def test_fokker_planck_rhs_of_ou():
    """dx = -x ds + √2 dW on N(0, v): ∂_s p = p·(x²/v - 1)·(v - 1)/v... computed as the time
    derivative of the exact law v(s) = 1 + (v0 - 1)e^{-2s}: dv/ds = -2(v - 1)."""
    sde = SDE(LinearDrift(-1.0), ScalarDiffusion(math.sqrt(2.0)))
    v = 2.5
    x = jnp.array([0.7])

    def log_p(z, var=v):
        return -0.5 * jnp.sum(z**2) / var - 0.5 * jnp.log(2 * jnp.pi * var)

    dv = -2.0 * (v - 1.0)
    dp = jnp.exp(log_p(x)) * (0.5 * float(x[0]) ** 2 / v**2 - 0.5 / v) * dv
    np.testing.assert_allclose(fokker_planck_rhs(sde, log_p, 0.0, x), dp, rtol=1e-12)
    np.testing.assert_allclose(
        fokker_planck_rhs(sde, lambda z: log_p(z, 1.0), 0.0, x), 0.0, atol=1e-15
    )
