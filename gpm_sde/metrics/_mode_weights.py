r"""Mode coverage of a cloud on a mixture: the share of points nearest each mode centre.

The standard mode-collapse diagnostic on 2-D mixtures (Metz et al. 2017; Srivastava et al.
2017, VEEGAN §5.1): each point belongs to its nearest centre $\mu_k$,

$$\hat w_k = \frac1n\sum_{i=1}^n \mathbb{1}\Big[k = \operatorname*{arg\,min}_j
\|x_i - \mu_j\|^2\Big], \qquad \sum_k \hat w_k = 1,$$

and a generator that matches the mixture has $\hat w_k \to$ the mass of the $k$-th Voronoi
cell, which is the mixture weight $\pi_k$ when the components are well separated (GPM's five
Gaussians: by symmetry every cell has mass exactly $0.2$). A dropped mode shows as
$\hat w_k \approx 0$. Each $\hat w_k$ of an i.i.d. sample has standard error
$\sqrt{w_k(1-w_k)/n}$.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._checks import check_finite, check_float_array


def mode_weights(x: ArrayLike, means: ArrayLike) -> Float[Array, " k"]:
    r"""The share of the points of `x` nearest each of the `k` centres `means`:
    $\hat w_k = \frac1n \#\{i : k = \arg\min_j \|x_i - \mu_j\|^2\}$ (Metz et al. 2017;
    Srivastava et al. 2017, §5.1); ties go to the lower index.

    **Arguments:**

    - `x`: the cloud, `(n, d)`.
    - `means`: the centres $\mu_k$, `(k, d)`, e.g. `GaussianMixture.means`.

    **Returns:** the `(k,)` shares. They sum to 1 when every point is finite; a point with a
    NaN or infinite coordinate belongs to no mode, so the shares of a diverged sample sum to
    less than 1 rather than piling onto one mode.
    """
    check_float_array("x", x, 2, "(n, d)")
    check_float_array("means", means, 2, "(k, d): one centre per row")
    xs, mu = jnp.asarray(x), jnp.asarray(means)
    if xs.shape[1] != mu.shape[1]:
        raise ValueError(
            f"`x` has points of dimension {xs.shape[1]} but `means` has centres of dimension "
            f"{mu.shape[1]}; pass centres in the space of the points."
        )
    if xs.shape[0] < 1 or mu.shape[0] < 1:
        raise ValueError(
            f"`x` and `means` need at least one row each, got shapes {xs.shape} and {mu.shape}."
        )
    check_finite("means", mu)
    d2 = jnp.sum((xs[:, None, :] - mu[None, :, :]) ** 2, axis=-1)
    nearest = jnp.argmin(d2, axis=1)
    finite = jnp.all(jnp.isfinite(xs), axis=1).astype(xs.dtype)
    counts = jnp.zeros(mu.shape[0], xs.dtype).at[nearest].add(finite)
    return counts / xs.shape[0]
