"""Test laws for the claims: random Gaussian mixtures and their time-independent scores."""

from __future__ import annotations

import equinox as eqx
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from gpm_sde import GaussianMixture


def random_mixture(rng: np.random.Generator, dim: int, n_components: int) -> GaussianMixture:
    r"""A random mixture in $\mathbb{R}^{d}$: Dirichlet(2) weights, means $\mathcal{N}(0, 2^2 I)$,
    covariances $A A^\top/d + 0.2 I$ with $A$ standard normal (full, well conditioned).

    Drawn with NumPy: building a handful of small laws eagerly in JAX would compile every op.
    """
    weights = rng.dirichlet(2.0 * np.ones(n_components))
    means = 2.0 * rng.standard_normal((n_components, dim))
    a = rng.standard_normal((n_components, dim, dim))
    covs = a @ np.swapaxes(a, 1, 2) / dim + 0.2 * np.eye(dim)
    return GaussianMixture(weights, means, covs)


class StaticScore(eqx.Module):
    r"""The score of a fixed law seen as a time-dependent score, `(s, x) -> ∇log p(x)`."""

    law: GaussianMixture

    def __call__(self, s: Float[ArrayLike, ""], x: Float[Array, " d"]) -> Float[Array, " d"]:
        return self.law.score(x)


def mixture_2d() -> GaussianMixture:
    """A fixed 2-D, 3-component mixture with full, distinct covariances and unequal weights."""
    return GaussianMixture(
        np.array([0.2, 0.5, 0.3]),
        np.array([[-2.0, 0.5], [1.5, -1.0], [0.5, 2.5]]),
        np.array(
            [
                [[0.30, 0.10], [0.10, 0.20]],
                [[0.50, -0.20], [-0.20, 0.40]],
                [[0.15, 0.00], [0.00, 0.60]],
            ]
        ),
    )


def coordinate_density(law: GaussianMixture, i: int, grid: np.ndarray) -> np.ndarray:
    r"""The density of coordinate $x_i$ on `grid`: $\sum_k w_k\,\mathcal{N}(\mu_{k,i},
    \Sigma_{k,ii})$, the exact marginal of a mixture."""
    w, mu = np.asarray(law.weights), np.asarray(law.means[:, i])
    var = np.asarray(law.covs[:, i, i])
    pdf = np.exp(-0.5 * (grid[:, None] - mu) ** 2 / var) / np.sqrt(2 * np.pi * var)
    return pdf @ w
