r"""One-dimensional Gaussian mixtures and quadrature on the line, for the learning-theory claims.

The densities and distribution functions here are written out in NumPy from the mixture's
weights, means and variances: they are the **independent references** against which the
library's losses are checked, so they do not call the library's `log_prob` or `score`. On a
uniform grid the trapezoid rule integrates smooth, Gaussian-tailed integrands to round-off
(its error decays like $e^{-2\pi^2 s^2/h^2}$ for a Gaussian of width $s$ and step $h$), which
is what lets the claims state round-off tolerances for divergences computed by quadrature.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from gpm_sde import GaussianMixture


def mixture_1d(
    weights: Sequence[float], means: Sequence[float], stds: Sequence[float]
) -> GaussianMixture:
    r"""$\sum_k w_k\,\mathcal{N}(\mu_k, s_k^2)$ on the line, as a
    [`GaussianMixture`][gpm_sde.GaussianMixture] with $d = 1$."""
    w = np.asarray(weights, dtype=float)
    mu = np.asarray(means, dtype=float)[:, None]
    var = np.asarray(stds, dtype=float)[:, None, None] ** 2
    return GaussianMixture(w / w.sum(), mu, var)


def _parts(law: GaussianMixture) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w = np.asarray(law.weights, dtype=float)
    mu = np.asarray(law.means, dtype=float)[:, 0]
    sd = np.sqrt(np.asarray(law.covs, dtype=float)[:, 0, 0])
    return w, mu, sd


def pdf(law: GaussianMixture, x: np.ndarray) -> np.ndarray:
    r"""The density $\sum_k w_k\,e^{-(x - \mu_k)^2/2s_k^2}/\sqrt{2\pi}s_k$ at the points `x`."""
    w, mu, sd = _parts(law)
    z = (np.asarray(x, dtype=float)[..., None] - mu) / sd
    return np.exp(-0.5 * z**2) / (np.sqrt(2 * np.pi) * sd) @ w


def log_pdf(law: GaussianMixture, x: np.ndarray) -> np.ndarray:
    r"""$\log$ of [`pdf`][theory.line_laws.pdf], by a log-sum-exp (finite far in the tails)."""
    w, mu, sd = _parts(law)
    z = (np.asarray(x, dtype=float)[..., None] - mu) / sd
    terms = np.log(w) - 0.5 * z**2 - np.log(np.sqrt(2 * np.pi) * sd)
    top = terms.max(axis=-1)
    return top + np.log(np.exp(terms - top[..., None]).sum(axis=-1))


def cdf(law: GaussianMixture, x: np.ndarray) -> np.ndarray:
    r"""The distribution function $\sum_k w_k\,\Phi((x - \mu_k)/s_k)$ at the points `x`."""
    w, mu, sd = _parts(law)
    z = (np.asarray(x, dtype=float)[..., None] - mu) / sd
    return np.asarray(ndtr(jnp.asarray(z))) @ w


def line_grid(laws: Sequence[GaussianMixture], points: int, width: float = 12.0) -> np.ndarray:
    r"""A uniform grid covering every component of `laws` to `width` standard deviations."""
    lo = min(float((m - width * s).min()) for _, m, s in map(_parts, laws))
    hi = max(float((m + width * s).max()) for _, m, s in map(_parts, laws))
    return np.linspace(lo, hi, points)


def trapezoid(values: np.ndarray, x: np.ndarray) -> float:
    """$\\int$ `values` $dx$ by the trapezoid rule on the grid `x` (last axis)."""
    return float(np.trapezoid(values, x))
