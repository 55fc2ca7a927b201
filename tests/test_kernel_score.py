"""The mean-field kernel score: the blocked online-softmax computation, bandwidth rules,
consistency, and argument checks.

Tolerances. The blocked code forms squared distances as |x|² + |y|² − 2x·y, the naive
reference as |x − y|²; in float64 the two logits differ by ~1e-16·(|x|² + |y|²)/h² ≈ 1e-14 for
the clouds below (|x| ≲ 5, h ≥ 0.4), so the scores agree to ~1e-13 relative: we assert 1e-10.
The consistency check is statistical and is stated where it is made.
"""

from __future__ import annotations

import itertools
import math
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.stats

from gpm_sde.scores import KernelScore, kde_bandwidth, kernel_score_blocked

RTOL = 1e-10


def _naive_score(queries, points, h):
    """∇log p̂ at each query for p̂ = (1/n) Σ_j N(x_j, h² I), all pairs at once, with the
    differences formed directly (independent of the blocked expansion)."""
    q = np.asarray(queries, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    diff = p[None, :, :] - q[:, None, :]  # (m, n, D): x_j − x
    logits = -np.sum(diff**2, axis=-1) / (2.0 * h**2)
    w = np.exp(logits - logits.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    return np.einsum("mn,mnd->md", w, diff) / h**2


def _log_kde(x, points, h):
    """log p̂(x) for one query, the function whose gradient the kernel score is."""
    d = points.shape[1]
    sq = jnp.sum((x[None, :] - points) ** 2, axis=1)
    return (
        jax.nn.logsumexp(-sq / (2.0 * h**2))
        - jnp.log(points.shape[0])
        - 0.5 * d * jnp.log(2.0 * jnp.pi * h**2)
    )


# The autodiff reference, one compiled program per shape (op by op, every primitive of the
# gradient compiles anew for each shape).
_auto_score = jax.jit(jax.vmap(jax.grad(_log_kde), in_axes=(0, None, None)))


def _assert_close(got, want):
    got, want = np.asarray(got), np.asarray(want)
    scale = np.max(np.abs(want))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale)


@pytest.mark.parametrize(
    ("n", "event", "block"),
    [
        (64, (2,), 16),  # block divides N
        (37, (2,), 8),  # odd N, block does not divide N
        (50, (2,), 7),  # odd block
        (5, (2,), 1024),  # block larger than N (clipped to the next power of two)
        (33, (2, 3), 4),  # event shape (N, 2, 3): points are flattened to R^6
        (1, (2,), 8),  # a single particle: its own kernel, score 0
    ],
)
def test_kernel_score_equals_naive_and_autodiff(n, event, block, key):
    y = 1.5 * jr.normal(key, (n, *event))
    h = 0.6
    got = KernelScore(bandwidth=h, block=block)(0.0, y)
    assert got.shape == y.shape and got.dtype == y.dtype
    flat = y.reshape(n, -1)
    _assert_close(got.reshape(n, -1), _naive_score(flat, flat, h))
    auto = _auto_score(flat, flat, h)
    _assert_close(got.reshape(n, -1), auto)


@pytest.mark.parametrize(("m", "n", "block"), [(13, 29, 4), (40, 7, 16), (8, 8, 8)])
def test_blocked_queries_differ_from_points(m, n, block, key):
    kq, kp = jr.split(key)
    queries = 2.0 * jr.normal(kq, (m, 3))
    points = jr.normal(kp, (n, 3))
    h = 0.4
    got = kernel_score_blocked(queries, points, h, block)
    _assert_close(got, _naive_score(queries, points, h))
    auto = _auto_score(queries, points, h)
    _assert_close(got, auto)


def test_far_query_does_not_underflow(key):
    """A query 40 bandwidths from every point: exp(−‖x − x_j‖²/2h²) underflows to 0 for all j,
    but the running log-sum-exp keeps the softmax finite and exact (score ≈ (x̄_near − x)/h²)."""
    points = jr.normal(key, (20, 2))
    q = jnp.array([[20.0, 0.0]])
    h = 0.5
    got = kernel_score_blocked(q, points, h, 8)
    assert bool(jnp.all(jnp.isfinite(got)))
    _assert_close(got, _naive_score(q, points, h))


@pytest.mark.parametrize("event", [(2,), (2, 3)])
@pytest.mark.parametrize("rule", ["scott", "silverman"])
def test_bandwidth_rules(rule, event, key):
    """h = σ̂ · factor, σ̂ the mean per-coordinate sample standard deviation (ddof = 1), and the
    factor is scipy's (`gaussian_kde.scotts_factor` / `silverman_factor`, independent code):
    Scott n^{-1/(d+4)}, Silverman (n(d+2)/4)^{-1/(d+4)}."""
    n = 301
    scales = jnp.arange(1.0, 1.0 + math.prod(event)).reshape(event)
    y = scales * jr.normal(key, (n, *event))
    flat = np.asarray(y).reshape(n, -1)
    d = flat.shape[1]
    scipy_factor = float(scipy.stats.gaussian_kde(flat.T, bw_method=rule).factor)  # pyright: ignore[reportArgumentType]
    spread = np.mean(np.std(flat, axis=0, ddof=1))
    expected = spread * scipy_factor
    np.testing.assert_allclose(float(kde_bandwidth(y, rule)), expected, rtol=1e-12)
    # Closed forms, written out once more.
    factor = n ** (-1 / (d + 4)) if rule == "scott" else (n * (d + 2) / 4) ** (-1 / (d + 4))
    np.testing.assert_allclose(scipy_factor, factor, rtol=1e-12)
    ks = KernelScore(bandwidth=rule)
    np.testing.assert_allclose(float(ks.bandwidth_for(y)), expected, rtol=1e-12)
    # The rule-based score is the naive score at that bandwidth.
    _assert_close(ks(0.0, y).reshape(n, -1), _naive_score(flat, flat, expected))


@jax.jit
def _scott_score(queries, pts):
    return kernel_score_blocked(queries, pts, kde_bandwidth(pts, "scott"), 512)


def test_kde_score_converges_to_gaussian_score(key):
    """For data N(m, C) in 2-D the Scott-bandwidth KDE score at fixed query points tends to the
    true score −C⁻¹(x − m). Its squared bias is O(h⁴) and its variance O(1/(N h^{d+2})); with
    h ∝ N^{-1/6} both are O(N^{-1/3}), so the RMS error falls like N^{-1/6}: by (64)^{-1/6} = 0.5
    from N = 300 to N = 19200. Averaged over 4 clouds per N the decrease is monotone; we assert
    monotone and a total drop of at least 30% (expected 50%)."""
    m = jnp.array([1.0, -0.5])
    c = jnp.array([[1.0, 0.4], [0.4, 0.5]])
    chol = jnp.linalg.cholesky(c)
    queries = m + jr.normal(jr.fold_in(key, 99), (300, 2)) @ chol.T
    exact = -jnp.linalg.solve(c, (queries - m).T).T
    errors = []
    for n in (300, 1200, 4800, 19200):
        rms = []
        for rep in range(4):
            pts = m + jr.normal(jr.fold_in(key, 10 * n + rep), (n, 2)) @ chol.T
            est = _scott_score(queries, pts)
            rms.append(float(jnp.sqrt(jnp.mean(jnp.sum((est - exact) ** 2, axis=1)))))
        errors.append(float(np.mean(rms)))
    assert all(b < a for a, b in itertools.pairwise(errors)), errors
    assert errors[-1] < 0.7 * errors[0], errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bandwidth": 0.0}, "bandwidth"),
        ({"bandwidth": -0.3}, "bandwidth"),
        ({"bandwidth": float("nan")}, "bandwidth"),
        ({"bandwidth": 0.5, "block": 0}, "block"),
        ({"bandwidth": 0.5, "block": -4}, "block"),
    ],
)
def test_bad_kernel_score_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KernelScore(**kwargs)


# Wrong *types* are caught first by the jaxtyping/beartype hooks that pytest installs (a
# `TypeError` naming the parameter); without them the constructor's own check fires (a
# `TypeError` for a non-int `block`, including a bool).
WRONG_TYPE = (TypeError, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bandwidth": "gaussian"}, "bandwidth"),
        ({"bandwidth": 0.5, "block": 2.5}, "block"),
        ({"bandwidth": 0.5, "block": True}, "block"),
    ],
)
def test_wrong_type_kernel_score_arguments(kwargs, match):
    with pytest.raises(WRONG_TYPE, match=match):
        KernelScore(**kwargs)


def test_bad_blocked_arguments(key):
    y = jr.normal(key, (10, 2))
    with pytest.raises(WRONG_TYPE, match=r"rule|bandwidth"):
        kde_bandwidth(y, "normal")  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="block"):
        kernel_score_blocked(y, y, 0.5, 0)
    with pytest.raises(ValueError, match="`h`"):
        kernel_score_blocked(y, y, -0.5, 4)


def test_float32_cloud_stays_float32(key):
    y = jr.normal(key, (100, 2), dtype=jnp.float32)
    out = KernelScore(bandwidth="scott", block=32)(0.0, y)
    assert out.dtype == jnp.float32
    ref = _naive_score(y, y, float(kde_bandwidth(y.astype(jnp.float64), "scott")))
    # float32 round-off on logits of size ~|x|²/h² ≈ 100: relative error ~1e-5.
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())


@pytest.mark.slow
def test_hundred_thousand_particles_2d(key):
    """N = 10⁵ in 2-D, float32, one call. The blocked computation holds one block × block tile
    of logits at a time (here 1024² floats = 4 MiB), never the N × N matrix (40 GB in float32).
    About 30 s on a shared 2-core CPU, hence `slow`. Checked against the naive score on a
    subset of query rows (all N points)."""
    n = 100_000
    y = jr.normal(key, (n, 2), dtype=jnp.float32)
    ks = KernelScore(bandwidth="scott", block=1024)
    start = time.perf_counter()
    out = ks(0.0, y).block_until_ready()
    elapsed = time.perf_counter() - start
    assert out.shape == (n, 2) and out.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(out)))
    h = float(ks.bandwidth_for(y))
    rows = np.arange(0, n, 997)
    ref = _naive_score(np.asarray(y)[rows], np.asarray(y), h)
    np.testing.assert_allclose(np.asarray(out)[rows], ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())
    print(f"N = 1e5 kernel score: {elapsed:.1f} s")


def test_default_block_follows_platform_and_n():
    """The measured defaults (see `default_block`): 1024 on a CPU, 4096 then 8192 on a GPU,
    capped at the next power of two >= N; `block=None` uses it, and the score does not depend
    on the tile size beyond round-off."""
    from gpm_sde.scores import default_block

    assert default_block(30_000, "cpu") == 1024 and default_block(10**6, "cpu") == 1024
    assert default_block(30_000, "gpu") == 4096 and default_block(300_000, "gpu") == 8192
    assert default_block(100, "cpu") == 128 and default_block(1, "gpu") == 1
    assert default_block(30_000, "tpu") == 1024
    with pytest.raises(ValueError, match="n"):
        default_block(0)
    y = jax.random.normal(jax.random.key(3), (300, 2))
    auto = KernelScore(0.3)(0.0, y)
    assert KernelScore(0.3).block is None
    np.testing.assert_allclose(auto, KernelScore(0.3, block=16)(0.0, y), rtol=1e-12, atol=1e-12)
