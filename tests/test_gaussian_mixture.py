"""GaussianMixture: density, score, sampling and exact pushforward.

Tolerances: derivative checks use central differences with step h, whose truncation error is
O(h²·|∂³ log p|) ≈ 1e-9 at h = 1e-5 plus round-off ≈ 1e-16/h ≈ 1e-11 in float64; sampled
checks use 5 standard errors estimated from the sample (see `gpm_sde.verify`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings, strategies as st

import gpm_sde
from gpm_sde.verify import max_moment_z_score


@st.composite
def mixtures(draw, max_dim: int = 3, max_k: int = 3):
    d = draw(st.integers(1, max_dim))
    k = draw(st.integers(1, max_k))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(k))
    means = rng.normal(scale=2.0, size=(k, d))
    a = rng.normal(size=(k, d, d))
    covs = a @ np.swapaxes(a, 1, 2) / d + 0.2 * np.eye(d)
    return gpm_sde.GaussianMixture(jnp.asarray(weights), jnp.asarray(means), jnp.asarray(covs))


@jax.jit
def _score_fd_and_grad(law, x):
    """The closed-form score, its central differences (step h = 1e-5) and reverse-mode autodiff
    of `log_prob`, in one compiled function (one compile per (dim, components) shape, at most 9,
    instead of eager dispatch and a fresh `jax.grad` trace for every hypothesis example)."""
    h = 1e-5
    fd = jax.vmap(lambda e: (law.log_prob(x + h * e) - law.log_prob(x - h * e)) / (2 * h))(
        jnp.eye(x.shape[0], dtype=x.dtype)
    )
    return law.score(x), fd, jax.grad(law.log_prob)(x)


@given(mixtures(), st.integers(0, 2**31 - 1))
@settings(max_examples=20)
def test_score_is_gradient_of_log_prob(law, seed):
    x = jnp.asarray(np.random.default_rng(seed).normal(scale=2.0, size=law.dim))
    score, fd, grad = _score_fd_and_grad(law, x)
    assert jnp.allclose(score, fd, rtol=1e-6, atol=1e-6), (score, fd)
    # The closed-form score also equals reverse-mode autodiff to round-off.
    assert jnp.allclose(score, grad, rtol=1e-10, atol=1e-10)


# Compiled once per (dim, components) shape: eager dispatch compiles every primitive per shape.
_log_prob = jax.jit(lambda law, x: law.log_prob(x))


@given(mixtures(), st.integers(0, 2**31 - 1))
@settings(max_examples=20)
def test_log_prob_matches_scipy(law, seed):
    x = np.random.default_rng(seed).normal(scale=2.0, size=law.dim)
    ref = np.log(
        sum(
            float(w) * scipy.stats.multivariate_normal(np.asarray(m), np.asarray(c)).pdf(x)  # pyright: ignore[reportArgumentType]
            for w, m, c in zip(law.weights, law.means, law.covs, strict=True)
        )
    )
    assert np.isclose(float(_log_prob(law, jnp.asarray(x))), ref, rtol=1e-10, atol=1e-10)


def test_sample_moments_and_weights(mixture_2d, key):
    n = 200_000
    x, comp = mixture_2d.sample_with_components(key, n)
    assert x.shape == (n, 2)
    z = max_moment_z_score(x, mixture_2d.mean(), mixture_2d.covariance())
    assert z < 5.0, z
    freq = jnp.bincount(comp, length=3) / n
    se = jnp.sqrt(mixture_2d.weights * (1 - mixture_2d.weights) / n)  # binomial SE
    assert jnp.all(jnp.abs(freq - mixture_2d.weights) < 5 * se), (freq, mixture_2d.weights)


def test_mean_and_covariance_by_quadrature():
    # 1-D: compare the closed-form moments against trapezoid integrals of exp(log_prob).
    law = gpm_sde.GaussianMixture(
        jnp.array([0.25, 0.75]), jnp.array([[-1.0], [2.0]]), jnp.array([[[0.5]], [[0.2]]])
    )
    grid = jnp.linspace(-12.0, 14.0, 20001)
    dens = jnp.exp(jax.vmap(law.log_prob)(grid[:, None]))
    mass = jnp.trapezoid(dens, grid)
    m = jnp.trapezoid(grid * dens, grid)
    v = jnp.trapezoid((grid - m) ** 2 * dens, grid)
    assert jnp.isclose(mass, 1.0, atol=1e-10)
    assert jnp.isclose(law.mean()[0], m, atol=1e-9)
    assert jnp.isclose(law.covariance()[0, 0], v, atol=1e-9)


def test_convolve_equals_numerical_convolution():
    # p * N(0, σ²) at a few points, by quadrature of ∫ p(y) N(x - y; 0, σ²) dy.
    law = gpm_sde.GaussianMixture(
        jnp.array([0.4, 0.6]), jnp.array([[-1.5], [1.0]]), jnp.array([[[0.3]], [[0.1]]])
    )
    sigma = 0.7
    smoothed = law.convolve(sigma)
    y = jnp.linspace(-10.0, 10.0, 40001)
    p = jnp.exp(jax.vmap(law.log_prob)(y[:, None]))
    for x in (-2.0, 0.0, 0.3, 2.5):
        kernel = jnp.exp(-0.5 * (x - y) ** 2 / sigma**2) / jnp.sqrt(2 * jnp.pi * sigma**2)
        ref = jnp.trapezoid(p * kernel, y)
        assert jnp.isclose(jnp.exp(smoothed.log_prob(jnp.array([x]))), ref, rtol=1e-8), x


def test_affine_pushforward_matches_samples(mixture_2d, key):
    alpha, sigma = 0.6, 0.8
    n = 200_000
    k1, k2 = jr.split(key)
    x = mixture_2d.sample(k1, n)
    y = alpha * x + sigma * jr.normal(k2, x.shape)
    law = mixture_2d.affine(alpha, sigma)
    assert max_moment_z_score(y, law.mean(), law.covariance()) < 5.0
    # Moments of the pushforward follow from linearity: an independent algebraic check.
    assert jnp.allclose(law.mean(), alpha * mixture_2d.mean(), atol=1e-12)
    assert jnp.allclose(
        law.covariance(), alpha**2 * mixture_2d.covariance() + sigma**2 * jnp.eye(2), atol=1e-12
    )


def test_methods_vmap_and_jit(mixture_2d, key):
    x = mixture_2d.sample(key, 7)
    lp = jax.jit(jax.vmap(mixture_2d.log_prob))(x)
    sc = jax.vmap(mixture_2d.score)(x)
    assert lp.shape == (7,) and sc.shape == (7, 2)
    assert jnp.allclose(lp, jnp.array([mixture_2d.log_prob(xi) for xi in x]), atol=1e-12)


@pytest.mark.parametrize(
    ("weights", "means", "covs", "match"),
    [
        ([0.5, 0.6], [[0.0], [1.0]], [[[1.0]], [[1.0]]], "weights.*sum to 1"),
        ([1.5, -0.5], [[0.0], [1.0]], [[[1.0]], [[1.0]]], "weights.*>= 0"),
        ([0.5, 0.5], [[0.0], [np.nan]], [[[1.0]], [[1.0]]], "means.*finite"),
        ([0.5, 0.5], [[0.0], [1.0]], [[[1.0]], [[-1.0]]], "covs.*positive definite"),
        ([1.0], [[0.0, 0.0]], [[[1.0, 0.5], [0.0, 1.0]]], "covs.*symmetric"),
        ([1.0], [[0.0, 0.0]], [[[1.0]]], "covs.*shape"),
        ([0.5, 0.5], [[0.0, 0.0]], [[[1.0, 0.0], [0.0, 1.0]]], "weights.*shape"),
        ([1.0], [0.0, 0.0], [[[1.0, 0.0], [0.0, 1.0]]], "means.*dimension"),
    ],
)
def test_bad_input(weights, means, covs, match):
    with pytest.raises(ValueError, match=match):
        gpm_sde.GaussianMixture(jnp.asarray(weights), jnp.asarray(means), jnp.asarray(covs))


def test_integer_input_is_rejected():
    with pytest.raises(TypeError, match=r"means.*floating"):
        gpm_sde.GaussianMixture(jnp.array([1.0]), jnp.array([[0, 0]]), jnp.eye(2)[None])
