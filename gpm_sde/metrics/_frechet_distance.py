r"""The Fréchet distance between two clouds of features: the FID formula.

Fit a Gaussian to each cloud by its sample mean and covariance and take the squared
2-Wasserstein distance between the fits (Heusel et al. 2017, eq. 6, after Dowson & Landau
1982):

$$\mathrm{FD}(x, y) = \|\hat m_x - \hat m_y\|^2 + \operatorname{tr}\Big(\hat\Sigma_x + \hat\Sigma_y
- 2\big(\hat\Sigma_y^{1/2}\hat\Sigma_x\hat\Sigma_y^{1/2}\big)^{1/2}\Big).$$

On Inception features this is the FID; on the features of any fixed network it is that
network's Fréchet distance.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float

from ._gaussian_w2 import gaussian_w2_squared
from ._mmd import _flatten_pair


def frechet_distance(
    features_x: Float[Array, "n d"],
    features_y: Float[Array, "m d"],
) -> Float[Array, ""]:
    r"""The Fréchet distance of the module docstring between two clouds of features, with the
    unbiased sample covariances ($1/(n-1)$, as `numpy.cov` and the reference FID code).

    It is **squared** (a squared $W_2$, like the FID) and, as an estimate of the distance
    between the underlying laws, **biased upwards**: two $n$-samples of the same law are at
    $\mathrm{FD} > 0$. For two $n$-samples of $\mathcal{N}(m, \sigma^2)$ in 1-D its expectation
    is exactly $\sigma^2\big[2/n + 2(1 - c_4(n)^2)\big]$, with
    $c_4(n) = \sqrt{2/(n-1)}\,\Gamma(n/2)/\Gamma((n-1)/2)$ the bias factor of the sample
    standard deviation; the bias is $O(d^2/n)$ in general (Chong & Forsyth 2020). Compare FDs
    only at equal sample sizes.

    **Arguments:**

    - `features_x`: `(n, *event)`, $n \ge 2$; `features_y`: `(m, *event)`, $m \ge 2$, with the
      same event shape (points are flattened to $\mathbb{R}^d$).

    **Returns:** the scalar $\mathrm{FD}$.
    """
    x, y = _flatten_pair(features_x, features_y, ("features_x", "features_y"))
    mx, my = jnp.mean(x, axis=0), jnp.mean(y, axis=0)
    cx = (x - mx).T @ (x - mx) / (x.shape[0] - 1)
    cy = (y - my).T @ (y - my) / (y.shape[0] - 1)
    return gaussian_w2_squared(mx, cx, my, cy)
