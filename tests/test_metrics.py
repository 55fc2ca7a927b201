"""`gpm_sde.metrics`: the unbiased MMD², its permutation test, and sliced Wasserstein.

Sampled checks use 3 standard errors (stated at each comparison), with fixed keys, so the
tests are deterministic; at 3 SE a correct estimator fails a given check with probability
~0.3% over the choice of key.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from gpm_sde.metrics import (
    median_heuristic_bandwidths,
    mmd,
    mmd_permutation_test,
    sliced_wasserstein,
)

K_SE = 3.0
BANDWIDTHS = jnp.array([0.5, 1.0, 2.0])


def _brute_mmd(x, y, h):
    """MMD²_u of Gretton et al. 2012, eq. 3, with full kernel matrices (independent code)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)

    def gram(a, b):
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.sum([np.exp(-d2 / (2 * hh**2)) for hh in np.asarray(h)], axis=0)

    n, m = len(x), len(y)
    kxx, kyy, kxy = gram(x, x), gram(y, y), gram(x, y)
    return (
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.mean()
    )


def _exact_gaussian_mmd2(delta, d, h):
    r"""MMD² between N(0, I_d) and N(δ, I_d) for k = Σ_h exp(-|a-b|²/2h²): with a - b ~
    N(μ, 2I), E exp(-|a-b|²/2h²) = (h²/(h²+2))^{d/2} exp(-|μ|²/(2(h²+2)))."""
    h2 = np.asarray(h) ** 2
    c = (h2 / (h2 + 2.0)) ** (d / 2)
    return float(np.sum(c * (2.0 - 2.0 * np.exp(-np.sum(delta**2) / (2 * (h2 + 2.0))))))


@pytest.mark.parametrize("block_size", [7, 256])
def test_mmd_matches_brute_force_any_event_shape(key, block_size):
    x = jr.normal(jr.fold_in(key, 1), (23, 3, 2))
    y = 0.3 + jr.normal(jr.fold_in(key, 2), (17, 3, 2))
    got = mmd(x, y, BANDWIDTHS, block_size=block_size)
    np.testing.assert_allclose(float(got), _brute_mmd(x, y, BANDWIDTHS), rtol=1e-10)
    # The default bandwidths are the median heuristic; a scalar bandwidth is one kernel.
    h = median_heuristic_bandwidths(x, y)
    np.testing.assert_allclose(float(mmd(x, y)), _brute_mmd(x, y, h), rtol=1e-10)
    np.testing.assert_allclose(float(mmd(x, y, 1.0)), _brute_mmd(x, y, [1.0]), rtol=1e-10)


def test_median_heuristic_is_the_pooled_median_distance(key):
    x = jr.normal(jr.fold_in(key, 1), (40, 2))
    y = 2.0 + jr.normal(jr.fold_in(key, 2), (30, 2))
    z = np.concatenate([np.asarray(x), np.asarray(y)])
    d = np.sqrt(((z[:, None] - z[None]) ** 2).sum(-1))[np.triu_indices(len(z), 1)]
    np.testing.assert_allclose(
        np.asarray(median_heuristic_bandwidths(x, y)), np.median(d) * np.array([0.5, 1, 2])
    )


def _repeat_mmd(key, reps, n, m, delta):
    def one(k):
        kx, ky = jr.split(k)
        x = jr.normal(kx, (n, 2))
        y = delta + jr.normal(ky, (m, 2))
        return mmd(x, y, BANDWIDTHS)

    return np.asarray(jax.vmap(one)(jr.split(key, reps)))


def test_mmd_is_unbiased_under_the_null(key):
    """Mean of MMD²_u over 400 independent pairs of N(0, I) samples is 0 within 3 SE."""
    stats = _repeat_mmd(key, 400, 40, 30, jnp.zeros(2))
    se = stats.std(ddof=1) / np.sqrt(len(stats))
    assert abs(stats.mean()) < K_SE * se, (stats.mean(), se)
    assert np.any(stats < 0)  # unbiased at 0 means it must sometimes be negative


def test_mmd_is_unbiased_for_different_laws(key):
    """N(0, I) vs N(δ, I): the mean over 400 pairs equals the closed-form MMD² within 3 SE,
    and is positive by far more than 3 SE."""
    delta = jnp.array([0.5, 0.0])
    stats = _repeat_mmd(key, 400, 40, 30, delta)
    se = stats.std(ddof=1) / np.sqrt(len(stats))
    exact = _exact_gaussian_mmd2(np.asarray(delta), 2, BANDWIDTHS)
    assert abs(stats.mean() - exact) < K_SE * se, (stats.mean(), exact, se)
    assert stats.mean() > 10 * se


def test_permutation_test_is_calibrated_under_the_null(key):
    """200 null repetitions (n = m = 30, B = 99 permutations, default data-dependent bandwidths):
    P(p ≤ 0.05) = 5/100 exactly for this B, so the rejection rate lies within 3 binomial SEs
    (sqrt(0.05·0.95/200) ≈ 0.015) of 0.05, and the mean p-value within 3 SE of its null mean
    (B + 2)/(2(B + 1)) (p uniform on {1, ..., B+1}/(B+1); SE = sd/sqrt(200))."""
    reps, b = 200, 99

    def one(k):
        kx, ky, kp = jr.split(k, 3)
        x = jr.normal(kx, (30, 2))
        y = jr.normal(ky, (30, 2))
        return mmd_permutation_test(kp, x, y, n_permutations=b)[1]

    p = np.asarray(jax.jit(jax.vmap(one))(jr.split(key, reps)))
    rate, alpha = np.mean(p <= 0.05), 0.05
    assert abs(rate - alpha) < K_SE * np.sqrt(alpha * (1 - alpha) / reps), rate
    grid = np.arange(1, b + 2) / (b + 1)
    assert abs(p.mean() - grid.mean()) < K_SE * grid.std() / np.sqrt(reps), p.mean()


def test_permutation_test_rejects_a_shifted_law(key):
    x = jr.normal(jr.fold_in(key, 1), (200, 2))
    y = jnp.array([0.7, 0.0]) + jr.normal(jr.fold_in(key, 2), (150, 2))
    stat, p = mmd_permutation_test(jr.fold_in(key, 3), x, y, n_permutations=200)
    assert float(p) == pytest.approx(1 / 201)
    np.testing.assert_allclose(float(stat), float(mmd(x, y)), rtol=1e-12)


def test_mmd_jit_and_float32(key):
    x = jr.normal(jr.fold_in(key, 1), (64, 2), dtype=jnp.float32)
    y = jr.normal(jr.fold_in(key, 2), (48, 2), dtype=jnp.float32)
    got = jax.jit(mmd)(x, y)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(float(got), float(mmd(x, y)), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("m", [0.5, -2.0])
def test_sliced_wasserstein_1d_shift(key, m):
    """In 1-D, SW₂ = W₂ and W₂(N(0,1), N(m,1)) = |m|. For two n-samples the estimate moves
    with the difference of sample means, SE sqrt(2/n), plus a bias O(log log n / (n|m|)) far
    below it; the same law gives O(n^{-1/2}) (measured mean ≈ 0.024 at n = 10⁴, sd 0.005)."""
    n = 10_000
    x = jr.normal(jr.fold_in(key, 1), (n, 1))
    y = m + jr.normal(jr.fold_in(key, 2), (n, 1))
    y0 = jr.normal(jr.fold_in(key, 3), (n, 1))
    se = np.sqrt(2.0 / n)
    sw = float(sliced_wasserstein(x, y, key=jr.fold_in(key, 4), n_projections=8))
    assert abs(sw - abs(m)) < K_SE * se, (sw, se)
    assert float(sliced_wasserstein(x, y0, key=jr.fold_in(key, 4))) < 4 * se


def test_sliced_wasserstein_in_d_dimensions(key):
    r"""N(0, I_d) vs N(m, I_d): each projection is a 1-D shift θ·m, so SW₂² = E(θ·m)² =
    |m|²/d. SE: Monte Carlo over L directions, |m|² sqrt(2(d-1)/(d²(d+2)) / L), plus the
    sample-mean term ≈ 2|m| sqrt(2/n)/d; compared within 3 SE of both combined."""
    d, n, n_proj = 4, 2000, 1000
    m = jnp.array([2.0, 0.0, 0.0, 0.0])
    x = jr.normal(jr.fold_in(key, 1), (n, d))
    y = m + jr.normal(jr.fold_in(key, 2), (n, d))
    sw2 = float(sliced_wasserstein(x, y, key=jr.fold_in(key, 3), n_projections=n_proj)) ** 2
    m2 = float(jnp.sum(m**2))
    se_mc = m2 * np.sqrt(2 * (d - 1) / (d**2 * (d + 2)) / n_proj)
    se_sample = 2 * np.sqrt(m2) * np.sqrt(2 / n) / d
    assert abs(sw2 - m2 / d) < K_SE * np.hypot(se_mc, se_sample), sw2


@pytest.mark.parametrize(
    ("fn", "kwargs", "match"),
    [
        (mmd, {"x": jnp.zeros((1, 2))}, r"`x`.*n >= 2"),
        (mmd, {"y": jnp.zeros((5, 3))}, r"same event shape|y"),
        (mmd, {"bandwidths": (1.0, -1.0)}, r"bandwidths.*> 0"),
        (mmd, {"block_size": 0}, r"block_size"),
        (mmd_permutation_test, {"n_permutations": 0}, r"n_permutations.*>= 1"),
        (sliced_wasserstein, {"y": jnp.zeros((4, 2))}, r"same shape|y"),
        (sliced_wasserstein, {"p": 0.5}, r"`p` must be >= 1"),
    ],
)
def test_bad_arguments(fn, kwargs, match, key):
    args = {"x": jnp.zeros((5, 2)), "y": jnp.ones((5, 2))} | kwargs
    if fn is mmd:
        call = lambda: mmd(**args)  # noqa: E731
    elif fn is sliced_wasserstein:
        call = lambda: sliced_wasserstein(key=key, **args)  # noqa: E731
    else:
        call = lambda: fn(key, **args)  # noqa: E731
    with pytest.raises((ValueError, TypeError), match=match):
        call()
