r"""Moment checks with standard errors: how many standard errors a sample is from a law."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float


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
