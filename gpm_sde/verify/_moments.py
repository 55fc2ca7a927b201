r"""Moment checks with standard errors: how many standard errors a sample is from a law, or
from another sample, and how often such a check raises a false alarm."""

from __future__ import annotations

import math

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._checks import check_float_array


def _cloud(name: str, samples) -> Array:
    check_float_array(name, samples, 2, "(n, d)")
    x = jnp.asarray(samples)
    if x.shape[0] < 2:
        raise ValueError(f"`{name}` needs at least 2 samples to estimate a standard error, got 1.")
    return x


def mean_z_scores(samples: Float[Array, "n d"], mean: Float[ArrayLike, " d"]) -> Float[Array, " d"]:
    r"""$z_i = (\bar x_i - m_i) / \widehat{\mathrm{SE}}_i$ with $\widehat{\mathrm{SE}}_i =
    \hat s_i / \sqrt{n}$, the sample standard deviation over $\sqrt n$ (central limit theorem)."""
    n = samples.shape[0]
    se = jnp.std(samples, axis=0, ddof=1) / jnp.sqrt(n)
    return (jnp.mean(samples, axis=0) - jnp.asarray(mean)) / se


def covariance_z_scores(
    samples: Float[Array, "n d"], cov: Float[ArrayLike, "d d"]
) -> Float[Array, "d d"]:
    r"""$z_{ij} = (\hat\Sigma_{ij} - \Sigma_{ij}) / \widehat{\mathrm{SE}}_{ij}$ for the sample
    covariance, with the standard error estimated from the fourth moments of the sample:
    $\widehat{\mathrm{SE}}_{ij}^2 = \widehat{\mathrm{Var}}\big[(x_i - \bar x_i)(x_j - \bar x_j)\big]
    / n$ (delta method; valid for any law with finite fourth moments, not only Gaussians)."""
    n = samples.shape[0]
    centred = samples - jnp.mean(samples, axis=0)
    products = centred[:, :, None] * centred[:, None, :]
    sample_cov = jnp.sum(products, axis=0) / (n - 1)
    se = jnp.std(products, axis=0, ddof=1) / jnp.sqrt(n)
    return (sample_cov - jnp.asarray(cov)) / se


def max_moment_z_score(
    samples: Float[Array, "n d"], mean: Float[ArrayLike, " d"], cov: Float[ArrayLike, "d d"]
) -> float:
    """The largest |z| over the mean entries and the (upper-triangular) covariance entries."""
    zm = jnp.max(jnp.abs(mean_z_scores(samples, mean)))
    zc = jnp.abs(covariance_z_scores(samples, cov))
    zc = jnp.max(jnp.where(jnp.triu(jnp.ones_like(zc)) > 0, zc, 0.0))
    return float(jnp.maximum(zm, zc))


def sample_moments(
    samples: Float[ArrayLike, "n d"],
) -> tuple[Float[Array, " k"], Float[Array, " k"]]:
    r"""The sample mean and the upper-triangular sample covariance entries of `samples`,
    stacked into one vector of $k = d + d(d+1)/2$ moments, with their standard errors:
    $\hat s_i/\sqrt n$ for a mean, and the standard deviation of the centred products
    $(x_i - \bar x_i)(x_j - \bar x_j)$ over $\sqrt n$ for a covariance entry (as in
    [`covariance_z_scores`][gpm_sde.verify.covariance_z_scores]).

    **Returns:** `(moments, standard_errors)`, both `(k,)`, the order of
    [`moment_vector`][gpm_sde.verify.moment_vector].
    """
    x = _cloud("samples", samples)
    n, d = x.shape
    iu = jnp.triu_indices(d)
    centred = x - jnp.mean(x, axis=0)
    products = (centred[:, :, None] * centred[:, None, :])[:, iu[0], iu[1]]
    moments = jnp.concatenate([jnp.mean(x, axis=0), jnp.sum(products, axis=0) / (n - 1)])
    se = jnp.concatenate([jnp.std(x, axis=0, ddof=1), jnp.std(products, axis=0, ddof=1)])
    return moments, se / jnp.sqrt(n)


def moment_vector(mean: Float[ArrayLike, " d"], cov: Float[ArrayLike, "d d"]) -> Float[Array, " k"]:
    r"""`mean` and the upper-triangular entries of `cov` (row by row), stacked: the exact
    moments in the order of [`sample_moments`][gpm_sde.verify.sample_moments]."""
    check_float_array("mean", mean, 1, "(d,)")
    check_float_array("cov", cov, 2, "(d, d)")
    m, c = jnp.asarray(mean), jnp.asarray(cov)
    if c.shape != (m.shape[0], m.shape[0]):
        raise ValueError(
            f"`cov` must have shape {(m.shape[0],) * 2} to match `mean`, got {c.shape}."
        )
    iu = jnp.triu_indices(m.shape[0])
    return jnp.concatenate([m, c[iu]])


def moment_z_scores(
    samples: Float[ArrayLike, "n d"], mean: Float[ArrayLike, " d"], cov: Float[ArrayLike, "d d"]
) -> Float[Array, " k"]:
    r"""One-sample z-scores of the mean and upper-triangular covariance entries of `samples`
    against the exact `mean` and `cov`: $z = (\hat\theta - \theta)/\widehat{\mathrm{SE}}$, each
    $\approx\mathcal{N}(0, 1)$ when the sample is drawn from a law with these moments (central
    limit theorem). Order as in [`sample_moments`][gpm_sde.verify.sample_moments]."""
    values, se = sample_moments(samples)
    return (values - moment_vector(mean, cov)) / se


def two_sample_z_scores(
    a: Float[ArrayLike, "n d"], b: Float[ArrayLike, "m d"]
) -> Float[Array, " k"]:
    r"""Two-sample z-scores of the moments of two independent clouds,

    $$z = \frac{\hat\theta_a - \hat\theta_b}{\sqrt{\widehat{\mathrm{SE}}_a^2
    + \widehat{\mathrm{SE}}_b^2}},$$

    each $\approx\mathcal{N}(0, 1)$ when both clouds have the same mean and covariance (the
    difference of two independent asymptotically normal estimates). Order as in
    [`sample_moments`][gpm_sde.verify.sample_moments]."""
    va, sa = sample_moments(a)
    vb, sb = sample_moments(b)
    if va.shape != vb.shape:
        raise ValueError(
            f"`a` and `b` must have the same dimension d, got {jnp.shape(a)} and {jnp.shape(b)}."
        )
    return (va - vb) / jnp.sqrt(sa**2 + sb**2)


def false_alarm_bound(n_scores: int, threshold: float | int) -> float:
    r"""The probability that at least one of `n_scores` standard-normal z-scores exceeds
    `threshold` in absolute value, bounded by the union bound:

    $$P\Big(\max_{i \le n}|z_i| > k\Big) \le n\,P(|Z| > k) = n\,\operatorname{erfc}(k/\sqrt2),$$

    whatever the dependence between the $z_i$. It is the false-rejection rate of the test
    "every $|z_i| \le k$" (e.g. $k = 5$: $5.7\times10^{-7}$ per score)."""
    if isinstance(n_scores, bool) or not isinstance(n_scores, int) or n_scores < 1:
        raise ValueError(f"`n_scores` must be a positive int, got {n_scores!r}.")
    if not threshold > 0:
        raise ValueError(f"`threshold` must be > 0, got {threshold!r}.")
    return min(1.0, n_scores * math.erfc(threshold / math.sqrt(2.0)))
