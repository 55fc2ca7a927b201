r"""Closed forms for Gaussian laws: random covariances, KL divergence, Wasserstein-2, moments.

Shared by the DiffFlow claims, whose Gaussian cases have every law in closed form (DESIGN §1,
the moment ODE). Everything is NumPy float64: these are references, not code under test.
"""

from __future__ import annotations

import numpy as np

from gpm_sde import GaussianMixture


def random_spd(rng: np.random.Generator, dim: int, ridge: float = 0.2) -> np.ndarray:
    r"""A random covariance $A A^\top/d + r I$ with $A$ standard normal and ridge $r$."""
    a = rng.standard_normal((dim, dim))
    return a @ a.T / dim + ridge * np.eye(dim)


def gaussian(mean: np.ndarray, cov: np.ndarray) -> GaussianMixture:
    r"""$\mathcal{N}(m, S)$ as a one-component [`GaussianMixture`][gpm_sde.GaussianMixture]."""
    return GaussianMixture(np.ones(1), np.asarray(mean)[None], np.asarray(cov)[None])


def sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (by `eigh`)."""
    w, v = np.linalg.eigh(0.5 * (a + a.T))
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def kl_gaussians(m0: np.ndarray, c0: np.ndarray, m1: np.ndarray, c1: np.ndarray) -> float:
    r"""$\mathrm{KL}(\mathcal{N}(m_0, C_0)\,\|\,\mathcal{N}(m_1, C_1)) = \tfrac12\big[
    \operatorname{tr}(C_1^{-1}C_0) + (m_1 - m_0)^\top C_1^{-1}(m_1 - m_0) - d
    + \log\det C_1 - \log\det C_0\big]$."""
    d = len(m0)
    p1 = np.linalg.inv(c1)
    diff = m1 - m0
    logdet = np.linalg.slogdet(c1)[1] - np.linalg.slogdet(c0)[1]
    return 0.5 * float(np.trace(p1 @ c0) + diff @ p1 @ diff - d + logdet)


def w2_gaussians(m0: np.ndarray, c0: np.ndarray, m1: np.ndarray, c1: np.ndarray) -> float:
    r"""$W_2(\mathcal{N}(m_0, C_0), \mathcal{N}(m_1, C_1))$, from
    $W_2^2 = \|m_0 - m_1\|^2 + \operatorname{tr}\big(C_0 + C_1
    - 2(C_1^{1/2} C_0 C_1^{1/2})^{1/2}\big)$ (Dowson & Landau 1982; Givens & Shortt 1984)."""
    r1 = sqrtm_psd(c1)
    cross = sqrtm_psd(r1 @ c0 @ r1)
    w2sq = float(np.sum((m0 - m1) ** 2) + np.trace(c0 + c1 - 2.0 * cross))
    return float(np.sqrt(max(w2sq, 0.0)))


def moments_with_se(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""The sample mean and upper-triangular sample covariance entries of `samples` `(n, d)`,
    stacked, with their standard errors (std / √n for a mean; the std of the centred products
    $(x_i - \bar x_i)(x_j - \bar x_j)$ / √n for a covariance entry, as in `gpm_sde.verify`)."""
    n, d = samples.shape
    centred = samples - samples.mean(axis=0)
    products = centred[:, :, None] * centred[:, None, :]
    iu = np.triu_indices(d)
    values = np.concatenate([samples.mean(axis=0), (products.sum(axis=0) / (n - 1))[iu]])
    se = np.concatenate([samples.std(axis=0, ddof=1), products.std(axis=0, ddof=1)[iu]])
    return values, se / np.sqrt(n)


def exact_moments(mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """`mean` and the upper-triangular entries of `cov`, stacked as in `moments_with_se`."""
    return np.concatenate([mean, cov[np.triu_indices(len(mean))]])


def two_sample_z(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    r"""$z = (\hat\theta_a - \hat\theta_b)/\sqrt{\mathrm{SE}_a^2 + \mathrm{SE}_b^2}$ for the
    moments of `moments_with_se` of two independent clouds."""
    va, sa = moments_with_se(a)
    vb, sb = moments_with_se(b)
    return (va - vb) / np.sqrt(sa**2 + sb**2)


def one_sample_z(samples: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """z-scores of the moments of `samples` against the exact `mean` and `cov`."""
    values, se = moments_with_se(samples)
    return (values - exact_moments(mean, cov)) / se
