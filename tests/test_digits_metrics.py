"""`gpm_sde.metrics.digits_*`: the shipped digits classifier, the digits-FD and class coverage.

The classifier was trained on the train split only (`benchmarks/train_digits_classifier.py`), so
its accuracy on the 359 test images is an honest held-out estimate; at the measured ~0.98 the
binomial standard error is sqrt(0.98 * 0.02 / 359) ≈ 0.0074, and the threshold 0.95 is ~4 SE
below. Round-off checks are in float64 (the features are computed in float32 and cast, so FD
round-off is that of float64 linear algebra on features of fixed float32 values).
"""

from __future__ import annotations

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gpm_sde.data import digits
from gpm_sde.metrics import (
    DigitsClassifier,
    digits_class_coverage,
    digits_fd,
    digits_features,
    digits_predict,
    frechet_distance,
    load_digits_classifier,
)

MIN_TEST_ACCURACY = 0.95


@pytest.fixture(scope="module")
def train():
    return digits("train")


@pytest.fixture(scope="module")
def test():
    return digits("test")


@pytest.fixture(scope="module")
def test_accuracy(test):
    x, y = test
    return float(jnp.mean(digits_predict(x) == y))


def test_shipped_classifier_loads_once_and_is_float32():
    model = load_digits_classifier()
    assert isinstance(model, DigitsClassifier)
    assert load_digits_classifier() is model  # the default checkpoint is cached
    leaves = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))
    assert leaves and all(leaf.dtype == jnp.float32 for leaf in leaves)
    # "keep it small": well under 200 kB of parameters.
    assert sum(leaf.size for leaf in leaves) * 4 < 200_000


def test_test_accuracy(test_accuracy):
    # Held-out accuracy: the checkpoint never saw the test split (see the module docstring).
    print(f"digits classifier test accuracy: {test_accuracy:.4f}")
    assert test_accuracy >= MIN_TEST_ACCURACY


def test_features_shape_dtype_and_batching(test):
    x = test[0][:300]
    f64 = digits_features(x)
    assert f64.shape == (300, 64) and f64.dtype == jnp.float64
    f32 = digits_features(x.astype(jnp.float32))
    assert f32.dtype == jnp.float32
    # Inputs are cast to float32 inside the network: the two agree up to float32 casting.
    np.testing.assert_allclose(np.asarray(f32), np.asarray(f64), rtol=0, atol=0)
    # Chunking (with a padded last chunk) does not change the result beyond float32 round-off.
    chunked = digits_features(x, batch_size=64)
    np.testing.assert_allclose(np.asarray(chunked), np.asarray(f64), rtol=1e-5, atol=1e-5)
    # One image at a time, through the module itself.
    model = load_digits_classifier()
    np.testing.assert_allclose(
        np.asarray(model.features(x[7])), np.asarray(f64[7]), rtol=1e-5, atol=1e-5
    )


def test_fd_train_vs_test_is_far_below_noise_and_missing_classes(train, test):
    (x_train, _), (x_test, y_test) = train, test
    fd_data = float(digits_fd(x_train, x_test))
    noise = jnp.clip(jax.random.normal(jax.random.key(0), x_test.shape), -1.0, 1.0)
    fd_noise = float(digits_fd(noise, x_test))
    print(f"digits-FD train vs test: {fd_data:.3f}; clipped noise vs test: {fd_noise:.1f}")
    # Train and test are two samples of the same law: their FD is only the finite-sample bias
    # (O(d²/n), here ~10 at n = 1438 vs 359, d = 64). Clipped Gaussian noise is no digit at
    # all; its features sit far from every class, so its FD is two orders of magnitude larger
    # (measured ~1100 vs ~10); a factor 20 leaves a wide margin.
    assert fd_noise > 20.0 * fd_data

    # Removing two classes changes the law (20% of the mass, two of the well-separated class
    # clusters in feature space) and must be seen for *every* pair of classes. The reduced set
    # is a subset of the reference (it shares 80% of its images with it), which only lowers
    # the finite-sample part of its FD, so this comparison is conservative. Measured: the
    # smallest over the 45 pairs is ~37 (classes 8 and 9), a ratio ~3.6; we require 2.5.
    f_test = digits_features(x_test)
    fd_removed = {}
    for a, b in itertools.combinations(range(10), 2):
        keep = (y_test != a) & (y_test != b)
        fd_removed[a, b] = float(frechet_distance(f_test[keep], f_test))
    worst = min(fd_removed, key=fd_removed.__getitem__)
    print(f"digits-FD test minus classes {worst} vs test: {fd_removed[worst]:.3f} (smallest)")
    assert fd_removed[worst] > 2.5 * fd_data
    # The public entry point agrees with features + frechet_distance.
    keep = (y_test != 3) & (y_test != 8)
    np.testing.assert_allclose(float(digits_fd(x_test[keep], x_test)), fd_removed[3, 8], rtol=1e-10)


def test_fd_self_is_zero_and_fd_is_symmetric(train, test):
    x_train, x_test = train[0], test[0]
    # Scale of the round-off: FD is a difference of traces of order tr(Σ) (~1e3 here).
    f = digits_features(x_test)
    scale = float(jnp.trace(jnp.cov(f.T)))
    assert abs(float(digits_fd(x_test, x_test))) <= 1e-10 * scale
    forward, backward = float(digits_fd(x_train, x_test)), float(digits_fd(x_test, x_train))
    assert abs(forward - backward) <= 1e-10 * scale


def test_class_coverage(test, test_accuracy):
    x, y = test
    cover = np.asarray(digits_class_coverage(x))
    pred = np.asarray(digits_predict(x))
    assert cover.shape == (10,)
    # Exactly the empirical frequencies of the predicted labels.
    np.testing.assert_array_equal(cover, np.bincount(pred, minlength=10) / len(pred))
    np.testing.assert_allclose(cover.sum(), 1.0, rtol=1e-12)
    true = np.bincount(np.asarray(y), minlength=10) / len(y)
    # Each misclassified image lowers one class count and raises another by one, so
    # |π_c - f_c| ≤ (#errors)/n = 1 - accuracy for every class c: an exact bound.
    assert np.max(np.abs(cover - true)) <= 1.0 - test_accuracy + 1e-12
    # And the quality check: with the shipped classifier's accuracy (≥ 0.97 measured, so the
    # bound above is ≤ 0.03), no class is over- or under-counted by more than 0.03.
    assert np.max(np.abs(cover - true)) <= 0.03


_GOOD = jnp.zeros((4, 1, 8, 8))


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (jnp.zeros((4, 64)), r"`x`.*\(n, 1, 8, 8\).*reshape\(-1, 1, 8, 8\)"),
        (jnp.zeros((4, 3, 8, 8)), r"`x`.*\(n, 1, 8, 8\)"),
        (jnp.zeros((4, 1, 8, 8), dtype=jnp.int32), r"`x`.*floating"),
        (_GOOD.at[1, 0, 2, 3].set(jnp.nan), r"`x`.*finite"),
        (jnp.zeros((0, 1, 8, 8)), r"`x`.*at least one image"),
        (_GOOD + 16.0, r"`x`.*\[-1, 1\]"),
    ],
)
@pytest.mark.parametrize("fn", [digits_features, digits_predict, digits_class_coverage])
def test_bad_images(fn, bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        fn(bad)


def test_bad_fd_arguments():
    with pytest.raises(ValueError, match=r"`y`.*\[-1, 1\]"):
        digits_fd(_GOOD, _GOOD * 0 + 100.0)
    with pytest.raises(ValueError, match=r"`x`.*at least 2 images"):
        digits_fd(_GOOD[:1], _GOOD)
    with pytest.raises((ValueError, TypeError), match=r"batch_size"):
        digits_features(_GOOD, batch_size=0)
    with pytest.raises(TypeError, match=r"classifier"):
        digits_features(_GOOD, classifier="inception")  # pyright: ignore[reportArgumentType]


def test_corrupted_or_foreign_checkpoint(tmp_path):
    garbage = tmp_path / "garbage.eqx"
    garbage.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(RuntimeError, match=r"garbage\.eqx.*train_digits_classifier"):
        load_digits_classifier(garbage)

    missing = tmp_path / "missing.eqx"
    with pytest.raises(RuntimeError, match=r"missing\.eqx"):
        load_digits_classifier(missing)

    # A valid checkpoint of another tree (more parameters than the classifier's): refused.
    other = tmp_path / "other.eqx"
    model = load_digits_classifier()
    eqx.tree_serialise_leaves(other, (model, jnp.zeros(3, jnp.float32)))
    with pytest.raises(RuntimeError, match=r"other\.eqx"):
        load_digits_classifier(other)

    # A truncated checkpoint: refused.
    shipped = tmp_path / "shipped.eqx"
    eqx.tree_serialise_leaves(shipped, model)
    truncated = tmp_path / "truncated.eqx"
    truncated.write_bytes(shipped.read_bytes()[:-1000])
    with pytest.raises(RuntimeError, match=r"truncated\.eqx"):
        load_digits_classifier(truncated)

    # And a round trip through a path gives the same network.
    reloaded = load_digits_classifier(shipped)
    x = digits("test")[0][:50]
    np.testing.assert_array_equal(
        np.asarray(digits_features(x, classifier=reloaded)), np.asarray(digits_features(x))
    )
