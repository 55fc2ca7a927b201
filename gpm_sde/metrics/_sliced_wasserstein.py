r"""The sliced Wasserstein distance: 1-D optimal transport along random directions."""

from __future__ import annotations

import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import IntLike, check_finite, check_float_array, check_int, check_positive


def sliced_wasserstein(
    x: Float[Array, " n *event"],
    y: Float[Array, " n *event"],
    *,
    key: PRNGKeyArray | None = None,
    n_projections: IntLike = 128,
    p: float | int = 2.0,
) -> Float[Array, ""]:
    r"""The Monte Carlo sliced $p$-Wasserstein distance between two clouds of equal size
    (Bonneel, Rabin, Peyré & Pfister 2015, eq. 2; Rabin et al. 2011):

    $$\mathrm{SW}_p(\mu, \nu) = \Big(\mathbb{E}_{\theta \sim \mathcal{U}(S^{D-1})}
    W_p^p(\theta_\#\mu, \theta_\#\nu)\Big)^{1/p}
    \approx \Big(\frac{1}{L}\sum_{l=1}^{L} \frac{1}{n}\sum_{i=1}^{n}
    \big|\langle\theta_l, x\rangle_{(i)} - \langle\theta_l, y\rangle_{(i)}\big|^p\Big)^{1/p},$$

    with $L$ = `n_projections` directions uniform on the sphere and $(i)$ the $i$-th order
    statistic. For two empirical measures with the **same number** $n$ of equally weighted
    atoms, the optimal 1-D coupling matches sorted projections, so each $W_p^p$ is exact; this is
    why `x` and `y` must have the same size (subsample the larger one otherwise). Points of any
    event shape are flattened to $\mathbb{R}^D$.

    As an estimate of the distance between the underlying laws it is biased upwards: two
    $n$-samples of the same law are at $\mathrm{SW}_p > 0$, of order $n^{-1/2}$ (up to
    logarithms) for Gaussian laws. In one dimension $\theta = \pm 1$ and $\mathrm{SW}_p = W_p$.

    **Arguments:**

    - `x`, `y`: clouds `(n, *event)` of the same shape.
    - `key`: PRNG key of the directions; default `jax.random.key(0)`, so that the metric is a
      deterministic function of the clouds (the same directions for every call).
    - `n_projections`: $L \ge 1$.
    - `p`: the order $p \ge 1$.

    **Returns:** the scalar $\mathrm{SW}_p$ (not its $p$-th power).
    """
    check_float_array("x", x)
    check_float_array("y", y)
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim < 1 or x.shape != y.shape or x.shape[0] == 0:
        raise ValueError(
            f"`x` and `y` must be non-empty clouds of the same shape (n, *event): sorting "
            f"matches projections one to one only for equal sizes; got x: {x.shape}, "
            f"y: {y.shape}; subsample the larger cloud to the size of the smaller."
        )
    check_finite("x", x, fix="drop or impute the non-finite points before measuring")
    check_finite("y", y, fix="drop or impute the non-finite points before measuring")
    check_int("n_projections", n_projections, 1, "random directions", example=128)
    check_positive("p", p, fix="pass an order p >= 1, e.g. p=2")
    if float(p) < 1.0:
        raise ValueError(f"`p` must be >= 1 (SW_p is a distance for p >= 1), got {p}.")
    dtype = jnp.result_type(x, y)
    n = x.shape[0]
    xf = x.reshape(n, -1).astype(dtype)
    yf = y.reshape(n, -1).astype(dtype)
    key = jr.key(0) if key is None else key
    theta = jr.normal(key, (int(n_projections), xf.shape[1]), dtype=dtype)
    theta = theta / jnp.linalg.norm(theta, axis=1, keepdims=True)
    px = jnp.sort(xf @ theta.T, axis=0)
    py = jnp.sort(yf @ theta.T, axis=0)
    wpp = jnp.mean(jnp.abs(px - py) ** p, axis=0)  # W_p^p per direction
    return jnp.mean(wpp) ** (1.0 / p)
