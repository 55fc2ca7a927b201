r"""The kernel maximum mean discrepancy: an unbiased estimate of MMD² and its permutation test.

The kernel is a sum of Gaussian kernels over a few bandwidths,

$$k(a, b) = \sum_{h \in H} \exp\!\Big(-\frac{\|a - b\|^2}{2h^2}\Big),$$

characteristic (a sum of characteristic kernels), so $\mathrm{MMD}^2 = 0$ iff the two laws are
equal; summing over bandwidths keeps power at several length scales at once (Li, Swersky &
Zemel 2015, GMMN). Points of any event shape are flattened: the distance is the Euclidean norm
of all entries of a point.

The kernel matrix of the pooled cloud is never stored: it is computed in blocks of rows with
`jax.lax.map` and contracted at once with the assignment vectors, so memory is
$O(\text{block} \cdot N + N P)$ for $N$ pooled points and $P$ permutations, and
$10^4 \times 10^4$ clouds fit comfortably.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import IntLike, check_finite, check_float_array, check_int, check_positive

MEDIAN_SUBSAMPLE = 1000
"""The most points used by the median heuristic (see `median_heuristic_bandwidths`)."""

DEFAULT_SCALES = (0.5, 1.0, 2.0)
"""The default bandwidths, as multiples of the median pairwise distance."""

Bandwidths = Float[ArrayLike, " k"] | Sequence[float | int] | float | int


def _flatten_pair(x, y, names: tuple[str, str] = ("x", "y")) -> tuple[Array, Array]:
    """Check `x`, `y` (called `names` in messages): floating, at least 2 points each, the
    same event shape, finite when concrete; flatten each point: `(n, *event)` -> `(n, D)`, a
    common float dtype."""
    nx, ny = names
    check_float_array(nx, x)
    check_float_array(ny, y)
    x, y = jnp.asarray(x), jnp.asarray(y)
    for name, arr in ((nx, x), (ny, y)):
        if arr.ndim < 1 or arr.shape[0] < 2:
            raise ValueError(
                f"`{name}` must be a cloud of shape (n, *event) with n >= 2 points (the unbiased "
                f"estimator averages over pairs of distinct points), got shape {arr.shape}."
            )
        check_finite(name, arr, fix="drop or impute the non-finite points before measuring")
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(
            f"`{nx}` and `{ny}` must have the same event shape, got {nx}: {x.shape} (event "
            f"{x.shape[1:]}) and {ny}: {y.shape} (event {y.shape[1:]}); reshape one of them."
        )
    dtype = jnp.result_type(x, y)
    return x.reshape(x.shape[0], -1).astype(dtype), y.reshape(y.shape[0], -1).astype(dtype)


def _pooled(x: Array, y: Array) -> Array:
    # Distances are translation invariant; centring the pooled cloud reduces the round-off of
    # |a|² + |b|² - 2 a·b.
    z = jnp.concatenate([x, y], axis=0)
    return z - jnp.mean(z, axis=0)


def _sq_dists(a: Array, b: Array) -> Array:
    aa = jnp.sum(a * a, axis=1)
    bb = jnp.sum(b * b, axis=1)
    return jnp.maximum(aa[:, None] + bb[None, :] - 2.0 * (a @ b.T), 0.0)


@jax.jit
def _median_bandwidths(z: Array, scales: Array) -> Array:
    n = z.shape[0]
    m = min(n, MEDIAN_SUBSAMPLE)
    # A subsample that is a function of the pooled *set* only (sorted by the first coordinate,
    # then evenly spaced ranks), so that it is the same for every permutation of the pooled
    # cloud and the permutation test stays exact.
    order = jnp.argsort(z[:, 0])
    idx = np.round(np.linspace(0, n - 1, m)).astype(np.int64)
    sub = z[order[idx]]
    iu, ju = np.triu_indices(m, 1)
    dist = jnp.sqrt(_sq_dists(sub, sub)[iu, ju])
    med = jnp.median(dist)
    med = jnp.where(med > 0, med, jnp.ones_like(med))
    return med * scales


def _resolve_bandwidths(z: Array, bandwidths) -> Array:
    if bandwidths is None:
        return _median_bandwidths(z, jnp.asarray(DEFAULT_SCALES, dtype=z.dtype))
    h = jnp.atleast_1d(jnp.asarray(bandwidths, dtype=z.dtype))
    if h.ndim != 1 or h.shape[0] == 0:
        raise ValueError(
            f"`bandwidths` must be a non-empty 1-D list of kernel bandwidths, got shape "
            f"{h.shape}; pass e.g. bandwidths=(0.5, 1.0, 2.0), or None for the median heuristic."
        )
    check_positive("bandwidths", h, fix="pass kernel bandwidths h > 0, or None")
    return h


def median_heuristic_bandwidths(
    x: Float[Array, " n *event"],
    y: Float[Array, " m *event"],
    scales: Sequence[float] = DEFAULT_SCALES,
) -> Float[Array, " k"]:
    r"""The default bandwidths of [`mmd`][gpm_sde.metrics.mmd]: $h = c \cdot \operatorname{med}$
    for $c$ in `scales` (default $\{0.5, 1, 2\}$), with $\operatorname{med}$ the median
    Euclidean distance between distinct points of the pooled cloud $x \cup y$ (the median
    heuristic; Gretton et al. 2012, §8).

    With more than 1000 pooled points the median is taken over 1000 of them, evenly spaced
    in the order of their first coordinate: a stratified subsample that depends on the pooled
    set only, not on which cloud a point came from, so the permutation test that uses these
    bandwidths stays exact. A zero median (all points equal) is replaced by 1.
    """
    x2, y2 = _flatten_pair(x, y)
    return _median_bandwidths(_pooled(x2, y2), jnp.asarray(scales, dtype=x2.dtype))


def _kernel_matmul(z: Array, v: Array, bandwidths: Array, block_size: int) -> Array:
    r"""$K V$ with $K_{ij} = \sum_h \exp(-\|z_i - z_j\|^2 / 2h^2)$, by blocks of `block_size`
    rows: memory $O(\text{block} \cdot N)$, never the $N \times N$ matrix."""
    n, d = z.shape
    block = max(1, min(block_size, n))
    n_blocks = -(-n // block)
    zp = jnp.pad(z, ((0, n_blocks * block - n), (0, 0)))
    coefs = -0.5 / bandwidths**2

    def rows(zb: Array) -> Array:
        d2 = _sq_dists(zb, z)
        k = jnp.exp(coefs[0] * d2)
        for c in range(1, coefs.shape[0]):
            k = k + jnp.exp(coefs[c] * d2)
        return k @ v

    out = jax.lax.map(rows, zp.reshape(n_blocks, block, d))
    return out.reshape(n_blocks * block, v.shape[1])[:n]


@functools.partial(jax.jit, static_argnames=("n", "block_size", "biased"))
def _statistics(
    z: Array, assign: Array, n: int, bandwidths: Array, block_size: int, biased: bool = False
) -> Array:
    r"""MMD²_u (or MMD²_b if `biased`) for each column $a$ of `assign` (`(N, P)`, 1 for the
    points of $x$)."""
    m = z.shape[0] - n
    ones = jnp.ones((z.shape[0], 1), dtype=z.dtype)
    kv = _kernel_matmul(z, jnp.concatenate([ones, assign], axis=1), bandwidths, block_size)
    k1, ka = kv[:, :1], kv[:, 1:]
    diag = bandwidths.shape[0]  # k(a, a) = number of bandwidths
    a_k1 = jnp.sum(assign * k1, axis=0)  # aᵀK1
    a_ka = jnp.sum(assign * ka, axis=0)  # aᵀKa
    total = jnp.sum(k1)  # 1ᵀK1
    s_xx = a_ka - n * diag  # Σ_{i≠j} k(x_i, x_j)
    s_xy = a_k1 - a_ka  # Σ_{i,j} k(x_i, y_j)
    s_yy = total - a_k1 - s_xy - m * diag  # Σ_{i≠j} k(y_i, y_j)
    if biased:  # the V-statistic keeps the diagonal k(a, a) terms
        return (s_xx + n * diag) / n**2 + (s_yy + m * diag) / m**2 - 2.0 * s_xy / (n * m)
    return s_xx / (n * (n - 1)) + s_yy / (m * (m - 1)) - 2.0 * s_xy / (n * m)


def _check_block_size(block_size) -> int:
    return check_int(
        "block_size", block_size, 1, "rows of the kernel matrix per block", example=256
    )


def mmd(
    x: Float[Array, " n *event"],
    y: Float[Array, " m *event"],
    bandwidths: Bandwidths | None = None,
    *,
    block_size: IntLike = 256,
    biased: bool = False,
) -> Float[Array, ""]:
    r"""The unbiased estimate of the squared maximum mean discrepancy between the laws of the
    clouds `x` and `y` (Gretton et al. 2012, eq. 3 and Lemma 6):

    $$\mathrm{MMD}^2_u = \frac{1}{n(n-1)}\sum_{i \ne j} k(x_i, x_j)
    + \frac{1}{m(m-1)}\sum_{i \ne j} k(y_i, y_j) - \frac{2}{nm}\sum_{i, j} k(x_i, y_j),$$

    with $k$ the sum of Gaussian kernels of the module docstring. Its expectation is exactly
    $\mathrm{MMD}^2(p_x, p_y)$ for fixed bandwidths, so it can be negative when the laws are
    equal. With the default (data-dependent) bandwidths it is unbiased only up to the
    dependence of the bandwidths on the sample.

    Jittable and differentiable; the $(n+m)^2$ kernel matrix is computed in row blocks of
    `block_size` and never stored.

    **Arguments:**

    - `x`: a cloud `(n, *event)`, $n \ge 2$; `y`: a cloud `(m, *event)`, $m \ge 2$, with the
      same event shape (points are flattened).
    - `bandwidths`: the bandwidths $h$ (a float or a 1-D list); `None` gives
      [`median_heuristic_bandwidths`][gpm_sde.metrics.median_heuristic_bandwidths], the
      median pairwise distance of the pooled cloud times $\{0.5, 1, 2\}$.
    - `block_size`: rows of the kernel matrix per block.
    - `biased`: return instead the biased V-statistic (Gretton et al. 2012, eq. 5)
      $$\mathrm{MMD}^2_b = \frac{1}{n^2}\sum_{i, j} k(x_i, x_j) + \frac{1}{m^2}\sum_{i, j}
      k(y_i, y_j) - \frac{2}{nm}\sum_{i, j} k(x_i, y_j) \ge 0,$$
      the squared RKHS distance between the two empirical kernel mean embeddings; its
      expectation for equal laws is the positive $O(1/n + 1/m)$ bias, which makes
      "at most $c$ times the MMD of two samples of the data" a well-posed quality bar.

    **Returns:** the scalar $\mathrm{MMD}^2_u$ (or $\mathrm{MMD}^2_b$).
    """
    block_size = _check_block_size(block_size)
    x2, y2 = _flatten_pair(x, y)
    z = _pooled(x2, y2)
    h = _resolve_bandwidths(z, bandwidths)
    n = x2.shape[0]
    assign = jnp.concatenate([jnp.ones(n, z.dtype), jnp.zeros(y2.shape[0], z.dtype)])
    if not isinstance(biased, bool):
        raise TypeError(f"`biased` must be a bool, got {type(biased).__name__}.")
    return _statistics(z, assign[:, None], n, h, block_size, biased)[0]


def mmd_permutation_test(
    key: PRNGKeyArray,
    x: Float[Array, " n *event"],
    y: Float[Array, " m *event"],
    n_permutations: IntLike = 200,
    bandwidths: Bandwidths | None = None,
    *,
    block_size: IntLike = 256,
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    r"""The kernel two-sample test of $H_0: p_x = p_y$ (Gretton et al. 2012, §3 and §8),
    calibrated by permutations.

    The statistic is $\mathrm{MMD}^2_u$ of [`mmd`][gpm_sde.metrics.mmd]. Under $H_0$ the pooled
    cloud is exchangeable, so the statistics $T_1, \dots, T_B$ of $B$ random reassignments of
    the pooled points to two clouds of sizes $n$ and $m$ are draws of its null law given the
    pooled set. The p-value

    $$p = \frac{1 + \#\{b : T_b \ge T_{\text{obs}}\}}{1 + B}$$

    satisfies $P_{H_0}(p \le \alpha) \le \alpha$ for every $\alpha$, exactly at every sample size
    (Phipson & Smyth 2010; Lehmann & Romano 2005, §15.2). Reject $H_0$ at level $\alpha$ when
    $p \le \alpha$; the smallest attainable p-value is $1/(1 + B)$. The bandwidths are fixed
    once from the pooled set (the default median heuristic is permutation invariant), as
    exactness requires.

    All $B + 1$ statistics share one blocked pass over the pooled kernel matrix.

    **Arguments:**

    - `key`: PRNG key of the permutations.
    - `x`, `y`: the clouds `(n, *event)` and `(m, *event)`, $n, m \ge 2$.
    - `n_permutations`: $B \ge 1$.
    - `bandwidths`, `block_size`: as in [`mmd`][gpm_sde.metrics.mmd].

    **Returns:** `(statistic, p_value)`.
    """
    n_permutations = check_int(
        "n_permutations", n_permutations, 1, "the permutations drawn", example=200
    )
    block_size = _check_block_size(block_size)
    x2, y2 = _flatten_pair(x, y)
    z = _pooled(x2, y2)
    h = _resolve_bandwidths(z, bandwidths)
    n = x2.shape[0]
    observed = jnp.concatenate([jnp.ones(n, z.dtype), jnp.zeros(y2.shape[0], z.dtype)])
    keys = jr.split(key, int(n_permutations))
    permuted = jax.vmap(lambda k: jr.permutation(k, observed))(keys)
    assign = jnp.concatenate([observed[:, None], permuted.T], axis=1)
    stats = _statistics(z, assign, n, h, block_size)
    statistic = stats[0]
    exceed = jnp.sum(stats[1:] >= statistic)
    p_value = (1.0 + exceed) / (1.0 + n_permutations)
    return statistic, p_value.astype(z.dtype)
