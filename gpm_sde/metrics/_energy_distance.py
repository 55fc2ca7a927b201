r"""The energy distance between two clouds, by its unbiased U-statistic.

For laws $P, Q$ on $\mathbb{R}^D$ with finite first moments (Székely & Rizzo 2013, eq. 2.1),

$$\mathcal{E}(P, Q) = 2\,\mathbb{E}\|X - Y\| - \mathbb{E}\|X - X'\| - \mathbb{E}\|Y - Y'\|
\ \ge 0, \qquad X, X' \sim P,\ Y, Y' \sim Q \text{ independent},$$

with equality iff $P = Q$. It is the squared MMD of the distance-induced kernel
$k(a, b) = \|a\| + \|b\| - \|a - b\|$ (Sejdinovic et al. 2013), and needs no bandwidth.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import IntLike
from ._mmd import _check_block_size, _flatten_pair, _pooled


def _safe_norm(d2: Array) -> Array:
    # sqrt with a finite gradient at 0 (coincident points contribute 0 to the gradient).
    pos = d2 > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, d2, 1.0)), 0.0)


def _distance_sums(z: Array, n: int, block_size: int) -> tuple[Array, Array, Array]:
    r"""$\sum_{i \ne j}\|x_i - x_j\|$, $\sum_{i,j}\|x_i - y_j\|$, $\sum_{i \ne j}\|y_i - y_j\|$
    for the pooled cloud `z` $= (x, y)$, by row blocks: memory $O(\text{block} \cdot N)$."""
    total = z.shape[0]
    n_blocks = -(-total // block_size)
    pad = n_blocks * block_size - total
    zp = jnp.concatenate([z, jnp.zeros((pad, z.shape[1]), z.dtype)], axis=0)
    rows = jnp.arange(n_blocks * block_size).reshape(n_blocks, block_size)
    in_x = (jnp.arange(total) < n).astype(z.dtype)
    zz = jnp.sum(z * z, axis=1)
    cols = jnp.arange(total)

    def block(r: Array) -> Array:
        a = zp[r]
        d2 = jnp.sum(a * a, axis=1)[:, None] + zz[None, :] - 2.0 * (a @ z.T)
        # Exact zeros on the diagonal (round-off would leave ~sqrt(eps)|z| there) and for the
        # padding rows.
        keep = (r[:, None] != cols[None, :]) & (r[:, None] < total)
        dist = jnp.where(keep, _safe_norm(jnp.maximum(d2, 0.0)), 0.0)
        row_x = (r < n).astype(z.dtype)
        to_x = dist @ in_x  # Σ_j∈x ‖z_r − x_j‖ per row
        to_all = jnp.sum(dist, axis=1)
        return jnp.stack(
            [
                jnp.sum(row_x * to_x),  # x–x
                jnp.sum(row_x * (to_all - to_x)),  # x–y
                jnp.sum((1.0 - row_x) * (r < total) * (to_all - to_x)),  # y–y
            ]
        )

    sums = jnp.sum(jax.lax.map(block, rows), axis=0)
    return sums[0], sums[1], sums[2]


def energy_distance(
    x: Float[Array, " n *event"],
    y: Float[Array, " m *event"],
    *,
    block_size: IntLike = 256,
) -> Float[Array, ""]:
    r"""The unbiased estimate of the energy distance $\mathcal{E}(P, Q)$ of the module docstring
    between the laws of the clouds `x` and `y` (Székely & Rizzo 2013, §2; its U-statistic form),

    $$\hat{\mathcal{E}}_u = \frac{2}{nm}\sum_{i, j}\|x_i - y_j\|
    - \frac{1}{n(n-1)}\sum_{i \ne j}\|x_i - x_j\| - \frac{1}{m(m-1)}\sum_{i \ne j}\|y_i - y_j\|.$$

    Each term is an unbiased estimate of its expectation, so
    $\mathbb{E}\,\hat{\mathcal{E}}_u = \mathcal{E}(P, Q)$ exactly; it can be negative when the
    laws are equal. (The V-statistic, which averages over $i = j$ too, is biased upwards.)

    Jittable and differentiable; the $(n+m)^2$ distance matrix is computed in row blocks of
    `block_size` and never stored.

    **Arguments:**

    - `x`: a cloud `(n, *event)`, $n \ge 2$; `y`: a cloud `(m, *event)`, $m \ge 2$, with the
      same event shape (points are flattened; the norm is Euclidean over all entries).
    - `block_size`: rows of the distance matrix per block.

    **Returns:** the scalar $\hat{\mathcal{E}}_u$ (in units of distance, not squared).
    """
    block_size = _check_block_size(block_size)
    x2, y2 = _flatten_pair(x, y)
    n, m = x2.shape[0], y2.shape[0]
    s_xx, s_xy, s_yy = _distance_sums(_pooled(x2, y2), n, block_size)
    return 2.0 * s_xy / (n * m) - s_xx / (n * (n - 1)) - s_yy / (m * (m - 1))
