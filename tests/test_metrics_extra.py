"""`gpm_sde.metrics`: energy distance, exact Gaussian W₂, the Fréchet distance and the Sinkhorn
divergence.

Closed forms are checked to float64 round-off (rtol 1e-10, or 1e-8 where a matrix square root
is compared with scipy's Schur-based `sqrtm`). Sampled checks use 3 standard errors with fixed
keys, so the tests are deterministic; at 3 SE a correct estimator fails a given check with
probability ~0.3% over the choice of key.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.linalg
from scipy.special import gammaln
from scipy.stats import norm

from gpm_sde.metrics import (
    energy_distance,
    frechet_distance,
    gaussian_w2,
    gaussian_w2_squared,
    mmd,
    sinkhorn_divergence,
)

K_SE = 3.0


def _brute_energy(x, y):
    """The U-statistic of Székely & Rizzo 2013 with full distance matrices (independent code)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)

    def dist(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    n, m = len(x), len(y)
    return (
        2 * dist(x, y).mean() - dist(x, x).sum() / (n * (n - 1)) - dist(y, y).sum() / (m * (m - 1))
    )


def _abs_normal_mean(mu, s):
    """E|Z| for Z ~ N(μ, s²) (the folded normal mean)."""
    return s * np.sqrt(2 / np.pi) * np.exp(-(mu**2) / (2 * s**2)) + mu * (1 - 2 * norm.cdf(-mu / s))


@pytest.mark.parametrize("block_size", [5, 256])
def test_energy_distance_matches_brute_force(key, block_size):
    x = jr.normal(jr.fold_in(key, 1), (23, 3, 2))
    y = 0.4 + jr.normal(jr.fold_in(key, 2), (17, 3, 2))
    got = energy_distance(x, y, block_size=block_size)
    np.testing.assert_allclose(float(got), _brute_energy(x, y), rtol=1e-10)
    assert jnp.isfinite(jax.grad(lambda a: energy_distance(a, y))(x)).all()


def _repeat_energy(key, reps, n, m, delta, d):
    def one(k):
        kx, ky = jr.split(k)
        return energy_distance(jr.normal(kx, (n, d)), delta + jr.normal(ky, (m, d)))

    return np.asarray(jax.vmap(one)(jr.split(key, reps)))


def test_energy_distance_is_unbiased_under_the_null(key):
    """Mean over 400 pairs of N(0, I₂) samples (n = 40, m = 30) is 0 within 3 SE."""
    stats = _repeat_energy(key, 400, 40, 30, 0.0, 2)
    se = stats.std(ddof=1) / np.sqrt(len(stats))
    assert abs(stats.mean()) < K_SE * se, (stats.mean(), se)
    assert np.any(stats < 0)


def test_energy_distance_is_unbiased_for_shifted_gaussians(key):
    """N(0, 1) vs N(δ, 1) in 1-D: 𝓔 = 2 E|N(δ, 2)| - 2 E|N(0, 2)| in closed form (folded normal
    means). The mean over 400 pairs equals it within 3 SE and exceeds 0 by far more than 3 SE."""
    delta = 0.6
    stats = _repeat_energy(key, 400, 40, 30, delta, 1)
    se = stats.std(ddof=1) / np.sqrt(len(stats))
    exact = 2 * _abs_normal_mean(delta, np.sqrt(2)) - 2 * _abs_normal_mean(0.0, np.sqrt(2))
    assert abs(stats.mean() - exact) < K_SE * se, (stats.mean(), exact, se)
    assert stats.mean() > 10 * se


def _random_spd(key, d):
    a = jr.normal(key, (d, d))
    return a @ a.T / d + 0.1 * jnp.eye(d)


def test_gaussian_w2_closed_forms(key):
    d = 4
    k1, k2, k3, k4 = jr.split(key, 4)
    m1, m2 = jr.normal(k1, (d,)), jr.normal(k2, (d,))
    s = _random_spd(k3, d)
    # Equal covariances: |m1 - m2|.
    np.testing.assert_allclose(
        float(gaussian_w2(m1, s, m2, s)), float(jnp.linalg.norm(m1 - m2)), rtol=1e-10
    )
    assert float(gaussian_w2(m1, s, m1, s)) < 1e-6  # sqrt of round-off ~1e-16 · tr S
    # 1-D: ((m1 - m2)² + (σ1 - σ2)²)^{1/2}.
    got = gaussian_w2(jnp.array([0.3]), jnp.array([[4.0]]), jnp.array([-1.0]), jnp.array([[0.25]]))
    np.testing.assert_allclose(float(got), np.sqrt(1.3**2 + 1.5**2), rtol=1e-12)
    # Commuting covariances (shared eigenvectors): |Δm|² + Σ (√a_i - √b_i)².
    q, _ = jnp.linalg.qr(jr.normal(k4, (d, d)))
    a, b = jnp.array([0.5, 1.0, 2.0, 3.0]), jnp.array([2.0, 0.1, 2.0, 1.0])
    s1, s2 = (q * a) @ q.T, (q * b) @ q.T
    exact = float(jnp.sum((m1 - m2) ** 2) + jnp.sum((jnp.sqrt(a) - jnp.sqrt(b)) ** 2))
    np.testing.assert_allclose(float(gaussian_w2_squared(m1, s1, m2, s2)), exact, rtol=1e-10)


def test_gaussian_w2_general_and_symmetric(key):
    """Non-commuting covariances against scipy's `sqrtm` (independent code), and symmetry."""
    d = 5
    k1, k2, k3, k4 = jr.split(key, 4)
    m1, m2 = jr.normal(k1, (d,)), jr.normal(k2, (d,))
    s1, s2 = _random_spd(k3, d), _random_spd(k4, d)
    r2 = np.real(np.asarray(scipy.linalg.sqrtm(np.asarray(s2))))
    cross = np.real(np.asarray(scipy.linalg.sqrtm(r2 @ np.asarray(s1) @ r2)))
    exact = float(np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(cross))
    got = float(gaussian_w2_squared(m1, s1, m2, s2))
    np.testing.assert_allclose(got, exact, rtol=1e-8)
    np.testing.assert_allclose(float(gaussian_w2_squared(m2, s2, m1, s1)), got, rtol=1e-10)
    np.testing.assert_allclose(
        float(jax.jit(gaussian_w2)(m1, s1, m2, s2)), np.sqrt(got), rtol=1e-10
    )
    with pytest.raises(ValueError, match="`s2`"):
        gaussian_w2(m1, s1, m2, s2[:3, :3])


def test_frechet_distance_is_w2_squared_of_the_fits(key):
    x = jr.normal(jr.fold_in(key, 1), (300, 3))
    y = 0.5 + 2.0 * jr.normal(jr.fold_in(key, 2), (200, 3))
    xn, yn = np.asarray(x), np.asarray(y)
    exact = gaussian_w2_squared(xn.mean(0), np.cov(xn.T), yn.mean(0), np.cov(yn.T))
    np.testing.assert_allclose(float(frechet_distance(x, y)), float(exact), rtol=1e-10)


def test_frechet_distance_bias_for_the_same_gaussian(key):
    """Two n-samples of N(0, σ²) in 1-D: E FD = σ²[2/n + 2(1 - c₄(n)²)] exactly (the
    mean-difference term plus E(σ̂₁ - σ̂₂)² with E σ̂ = c₄ σ). The mean over 400 pairs is within
    3 SE of it; in 4-D, FD of two 4000-samples is small (< 0.02, against tr Σ = 4)."""
    n, sigma, reps = 50, 2.0, 400

    def one(k):
        kx, ky = jr.split(k)
        return frechet_distance(sigma * jr.normal(kx, (n, 1)), sigma * jr.normal(ky, (n, 1)))

    stats = np.asarray(jax.vmap(one)(jr.split(key, reps)))
    c4 = np.sqrt(2 / (n - 1)) * np.exp(gammaln(n / 2) - gammaln((n - 1) / 2))
    bias = sigma**2 * (2 / n + 2 * (1 - c4**2))
    se = stats.std(ddof=1) / np.sqrt(reps)
    assert abs(stats.mean() - bias) < K_SE * se, (stats.mean(), bias, se)
    fd = float(
        frechet_distance(
            jr.normal(jr.fold_in(key, 1), (4000, 4)), jr.normal(jr.fold_in(key, 2), (4000, 4))
        )
    )
    assert 0.0 <= fd < 0.02


def test_sinkhorn_divergence_zero_and_translation(key):
    """S_ε(μ, μ) = 0 and S_ε(μ, τ_a μ) = |a|² for every ε (see the docstring), up to the
    Sinkhorn tolerance: threshold 1e-4 on a cost of scale ~4 gives errors ≲ 1e-4·|a|²-ish,
    checked at 1e-4 absolute and 1e-4 relative. It increases with the shift, and two
    independent samples of the same law are much closer than a shifted one."""
    x = jr.normal(jr.fold_in(key, 1), (200, 2))
    default_eps = jax.jit(sinkhorn_divergence)  # one compilation for both default-ε calls
    assert abs(float(default_eps(x, x))) < 1e-4
    shifted = jax.jit(lambda a: sinkhorn_divergence(x, x + a, epsilon=0.1))
    values = []
    for t in (0.25, 0.5, 1.0, 2.0):
        a = jnp.array([t, -0.5 * t])
        s = float(shifted(a))
        np.testing.assert_allclose(s, float(a @ a), rtol=1e-4)
        values.append(s)
    assert np.all(np.diff(values) > 0)
    x2 = jr.normal(jr.fold_in(key, 2), (200, 2))
    same = float(default_eps(x, x2))
    assert 0.0 < same < values[1]
    with pytest.raises(ValueError, match="`epsilon`"):
        sinkhorn_divergence(x, x2, epsilon=0.0)


def test_mmd_biased_is_the_v_statistic():
    """`mmd(..., biased=True)` against the V-statistic written out with NumPy (Gretton et al.
    2012, eq. 5), to float64 round-off, and ≥ 0 for two samples of one law."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 2)), rng.normal(size=(30, 2)) + 0.3
    h = np.array([0.5, 1.0])

    def gram(a, b):
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.sum([np.exp(-d2 / (2 * hh**2)) for hh in h], axis=0)

    expected = gram(x, x).mean() + gram(y, y).mean() - 2 * gram(x, y).mean()
    got = float(mmd(jnp.asarray(x), jnp.asarray(y), jnp.asarray(h), biased=True))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    same = float(mmd(jnp.asarray(x), jnp.asarray(rng.normal(size=(40, 2))), biased=True))
    assert same >= 0.0
