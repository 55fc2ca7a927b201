"""`gpm_sde.data`: the toy mixtures have the stated parameters, the samplers are keyed and land
on their supports, and the digits split is fixed, disjoint, stratified and deterministic.

Geometric checks on noise-free samples are exact up to float64 round-off (tolerance 1e-10 on
quantities of order 1-10). Frequency checks use 3 binomial standard errors with fixed keys.
"""

from __future__ import annotations

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gpm_sde
from gpm_sde.data import (
    DIGITS_SIZES,
    checkerboard,
    digits,
    digits_split,
    eight_gaussians,
    five_gaussians,
    grid_gaussians,
    swiss_roll,
    two_moons,
)

K_SE = 3.0


def _assert_isotropic_equal_weights(law, k, std):
    assert isinstance(law, gpm_sde.GaussianMixture)
    assert law.n_components == k and law.dim == 2
    np.testing.assert_allclose(np.asarray(law.weights), np.full(k, 1.0 / k), rtol=1e-12)
    np.testing.assert_allclose(
        np.asarray(law.covs), np.broadcast_to(std**2 * np.eye(2), (k, 2, 2)), rtol=1e-12
    )


def test_five_gaussians_is_gpms_toy():
    law = five_gaussians()
    _assert_isotropic_equal_weights(law, 5, 0.5)
    means = np.asarray(law.means)
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), 3.0, rtol=1e-12)
    angles = np.mod(np.arctan2(means[:, 1], means[:, 0]), 2 * np.pi)
    np.testing.assert_allclose(np.sort(angles), 2 * np.pi * np.arange(5) / 5, atol=1e-12)
    np.testing.assert_allclose(np.asarray(law.mean()), 0.0, atol=1e-12)


def test_eight_gaussians():
    law = eight_gaussians()
    _assert_isotropic_equal_weights(law, 8, 0.02)
    means = np.asarray(law.means)
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), 2.0, rtol=1e-12)
    # Gulrajani et al.'s centres: (±1, 0), (0, ±1), (±1, ±1)/√2, times 2.
    expected = 2.0 * np.array(
        [[1, 0], [-1, 0], [0, 1], [0, -1]]
        + [[a / np.sqrt(2), b / np.sqrt(2)] for a in (1, -1) for b in (1, -1)]
    )
    for c in expected:
        assert np.min(np.linalg.norm(means - c, axis=1)) < 1e-12
    _assert_isotropic_equal_weights(eight_gaussians(radius=1.0, std=0.1), 8, 0.1)


def test_grid_gaussians():
    law = grid_gaussians()
    _assert_isotropic_equal_weights(law, 25, 0.05)
    means = np.asarray(law.means)
    grid = np.array([[a, b] for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)], float)
    np.testing.assert_allclose(means, grid, atol=1e-12)
    law3 = grid_gaussians(n=3, spacing=1.5, std=0.2)
    _assert_isotropic_equal_weights(law3, 9, 0.2)
    np.testing.assert_allclose(np.unique(np.asarray(law3.means)), [-1.5, 0.0, 1.5], atol=1e-12)


@pytest.mark.parametrize(
    "bad",
    [
        lambda: five_gaussians(std=0.0),
        lambda: grid_gaussians(n=0),
        lambda: eight_gaussians(radius=-1.0),
    ],
)
def test_mixture_arguments_are_checked(bad):
    with pytest.raises(ValueError, match=r"`(std|n|radius)`"):
        bad()


SAMPLERS = [two_moons, swiss_roll, checkerboard]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_samplers_are_keyed_and_shaped(key, sampler):
    a = sampler(key, 257)
    assert a.shape == (257, 2)
    assert bool(jnp.all(jnp.isfinite(a)))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(sampler(key, 257)))
    assert not np.allclose(np.asarray(a), np.asarray(sampler(jr.fold_in(key, 1), 257)))
    assert sampler(key, 0).shape == (0, 2)
    with pytest.raises(ValueError, match="`n`"):
        sampler(key, -1)


def test_two_moons_lie_on_the_two_arcs(key):
    """Noise-free points lie on the upper half of the unit circle about (0, 0) or the lower
    half of the unit circle about (1, ½), each moon with frequency ½ within 3 binomial SE."""
    n = 4000
    x = np.asarray(two_moons(key, n, noise=0.0))
    upper = (np.abs(np.linalg.norm(x, axis=1) - 1) < 1e-10) & (x[:, 1] >= -1e-12)
    lower = (np.abs(np.linalg.norm(x - [1.0, 0.5], axis=1) - 1) < 1e-10) & (x[:, 1] <= 0.5 + 1e-12)
    assert np.all(upper | lower)
    assert abs(upper.mean() - 0.5) < K_SE * np.sqrt(0.25 / n)
    # With noise, the noise is exactly the difference from the noise-free draw of the same key.
    eps = (np.asarray(two_moons(key, n, noise=0.1)) - x) / 0.1
    assert abs(eps.std() - 1.0) < K_SE * np.sqrt(0.5 / (2 * n))


def test_swiss_roll_lies_on_the_spiral(key):
    """Noise-free points are c·(t cos t, t sin t) with t ∈ [3π/2, 9π/2]; with noise the
    difference from the noise-free draw of the same key has std c·noise (within 3 SE, the SE of
    a sample std being ≈ std/√(2N) for N Gaussian entries)."""
    n, c = 4000, 0.2
    x = np.asarray(swiss_roll(key, n, noise=0.0, scale=c)) / c
    t = np.linalg.norm(x, axis=1)
    assert np.all((t >= 1.5 * np.pi - 1e-10) & (t <= 4.5 * np.pi + 1e-10))
    np.testing.assert_allclose(x, np.stack([t * np.cos(t), t * np.sin(t)], 1), atol=1e-10)
    resid = np.asarray(swiss_roll(key, n, noise=0.5, scale=c)) - c * x
    assert abs(resid.std() - c * 0.5) < K_SE * c * 0.5 / np.sqrt(2 * 2 * n)


def test_checkerboard_points_are_on_black_squares(key):
    """Every point is in a black square (i + j even) of the 4×4 board of side 2 on [-4, 4]²,
    and each of the 8 black squares gets 1/8 of the points within 3 binomial SE."""
    n = 8000
    x = np.asarray(checkerboard(key, n))
    assert np.all((x >= -4.0) & (x < 4.0))
    ij = np.floor(x / 2.0 + 2.0).astype(int)
    assert np.all((ij.sum(axis=1) % 2) == 0)
    counts = np.bincount(ij[:, 0] * 4 + ij[:, 1], minlength=16)
    black = counts[[i * 4 + j for i in range(4) for j in range(4) if (i + j) % 2 == 0]]
    assert counts.sum() == black.sum()
    p = 1 / 8
    assert np.all(np.abs(black / n - p) < K_SE * np.sqrt(p * (1 - p) / n)), black
    # An odd board: 5 × 5 squares of side 1 has 13 black squares.
    y = np.asarray(checkerboard(key, 2000, n_squares=5, side=1.0))
    ij = np.floor(y + 2.5).astype(int)
    assert np.all((ij >= 0) & (ij < 5)) and np.all(ij.sum(axis=1) % 2 == 0)
    assert len(np.unique(ij[:, 0] * 5 + ij[:, 1])) == 13


def test_digits_split():
    x_all, y_all = digits("all")
    assert x_all.shape == (1797, 1, 8, 8) and y_all.shape == (1797,)
    assert float(x_all.min()) == -1.0 and float(x_all.max()) == 1.0
    x_tr, y_tr = digits("train")
    x_te, y_te = digits("test")
    assert x_tr.shape == (DIGITS_SIZES["train"], 1, 8, 8) == (1438, 1, 8, 8)
    assert x_te.shape == (DIGITS_SIZES["test"], 1, 8, 8) == (359, 1, 8, 8)
    assert y_tr.dtype == jnp.int32
    # Pixel values are v/8 - 1 for integers v in [0, 16].
    v = (np.asarray(x_all) + 1.0) * 8.0
    np.testing.assert_allclose(v, np.round(v), atol=1e-12)
    # Disjoint and covering, and each split is the full data at its indices.
    idx = digits_split()
    tr, te = idx["train"], idx["test"]
    assert np.intersect1d(tr, te).size == 0
    np.testing.assert_array_equal(np.union1d(tr, te), np.arange(1797))
    np.testing.assert_array_equal(np.asarray(x_tr), np.asarray(x_all)[tr])
    np.testing.assert_array_equal(np.asarray(y_te), np.asarray(y_all)[te])
    for y in (y_tr, y_te):
        assert set(np.unique(np.asarray(y)).tolist()) == set(range(10))
    # Stratified: each class's test share is round(0.2 n_c).
    counts = np.bincount(np.asarray(y_all))
    np.testing.assert_array_equal(np.bincount(np.asarray(y_te)), np.round(0.2 * counts))
    # Deterministic: the same split on every call; another seed gives another split.
    np.testing.assert_array_equal(np.asarray(digits("test")[0]), np.asarray(x_te))
    assert not np.array_equal(np.asarray(digits("test", seed=1)[1]), np.asarray(y_te))


def test_digits_arguments_are_checked():
    with pytest.raises(ValueError, match="`split`"):
        digits("validation")
    with pytest.raises(ValueError, match="`seed`"):
        digits("train", seed=-1)
