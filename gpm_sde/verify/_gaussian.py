r"""Gaussian laws in closed form for verification: the Kullback–Leibler divergence of two
Gaussians, and the exact moments of the Euler–Maruyama chain of an affine SDE, whose
difference from the exact moments is the time step's bias, computed without sampling.

The exact laws themselves come from the library: `process.marginal(law, t)` for a linear
process ([`AbstractLinearProcess`][gpm_sde.AbstractLinearProcess]),
[`GaussianDiffFlow.law(s)`][gpm_sde.flows.GaussianDiffFlow.law] for DiffFlow with Gaussian data
(its moment ODE), and [`gaussian_w2`][gpm_sde.metrics.gaussian_w2] for the Wasserstein
distance between two Gaussians.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._checks import check_float_array
from ..processes import AbstractLinearProcess


def gaussian_kl(
    m0: Float[ArrayLike, " d"],
    c0: Float[ArrayLike, "d d"],
    m1: Float[ArrayLike, " d"],
    c1: Float[ArrayLike, "d d"],
) -> Float[Array, ""]:
    r"""The Kullback–Leibler divergence of two Gaussians on $\mathbb{R}^d$, the expectation under
    $x \sim \mathcal{N}(m_0, C_0)$ of the difference of the two log-densities: the quadratic
    form $(x - m_1)^\top C_1^{-1}(x - m_1)$ has mean $\operatorname{tr}(C_1^{-1}C_0) +
    (m_1 - m_0)^\top C_1^{-1}(m_1 - m_0)$ and $(x - m_0)^\top C_0^{-1}(x - m_0)$ has mean $d$, so

    $$\mathrm{KL}\big(\mathcal{N}(m_0, C_0)\,\|\,\mathcal{N}(m_1, C_1)\big) = \tfrac12\Big[
    \operatorname{tr}(C_1^{-1}C_0) + (m_1 - m_0)^\top C_1^{-1}(m_1 - m_0) - d
    + \log\det C_1 - \log\det C_0\Big].$$

    **Arguments:** the means `m0`, `m1` `(d,)` and the positive definite covariances `c0`,
    `c1` `(d, d)`.
    """
    for name, value, ndim, hint in (
        ("m0", m0, 1, "(d,)"),
        ("c0", c0, 2, "(d, d)"),
        ("m1", m1, 1, "(d,)"),
        ("c1", c1, 2, "(d, d)"),
    ):
        check_float_array(name, value, ndim, hint)
    m0, c0, m1, c1 = (jnp.asarray(v) for v in (m0, c0, m1, c1))
    d = m0.shape[0]
    for name, c in (("c0", c0), ("c1", c1)):
        if c.shape != (d, d):
            raise ValueError(f"`{name}` must have shape {(d, d)} to match `m0`, got {c.shape}.")
    if m1.shape != (d,):
        raise ValueError(f"`m1` must have shape {(d,)} to match `m0`, got {m1.shape}.")
    diff = m1 - m0
    trace = jnp.trace(jnp.linalg.solve(c1, c0))
    quad = diff @ jnp.linalg.solve(c1, diff)
    logdet = jnp.linalg.slogdet(c1)[1] - jnp.linalg.slogdet(c0)[1]
    return 0.5 * (trace + quad - d + logdet)


def euler_maruyama_moments(
    h: Float[ArrayLike, " N"],
    drift_matrix: Float[ArrayLike, "N d d"],
    drift_offset: Float[ArrayLike, "N d"],
    diffusion_squared: Float[ArrayLike, " N"],
    mean0: Float[ArrayLike, " d"],
    cov0: Float[ArrayLike, "d d"],
) -> tuple[Float[Array, "m d"], Float[Array, "m d d"]]:
    r"""The exact mean and covariance of the Euler–Maruyama chain of the affine SDE
    $dx = (A(s)x + c(s))\,ds + g(s)\,dW$: step $n$ of the scheme, of size
    $h_n$, maps $x \mapsto x + h_n(A_n x + c_n) + g_n\sqrt{h_n}\,\xi$ with
    $\xi \sim \mathcal{N}(0, I)$ independent of $x$; the map is affine, so it propagates the
    first two moments exactly:

    $$m_{n+1} = (I + h_nA_n)\,m_n + h_nc_n, \qquad
    C_{n+1} = (I + h_nA_n)\,C_n\,(I + h_nA_n)^\top + g_n^2 h_n\, I .$$

    Compared with the exact moments of the SDE, this is the scheme's weak bias, exactly: no
    sampling. The coefficients are those at the left end of each step.

    **Arguments:**

    - `h`: the step sizes $h_n$ `(N,)`.
    - `drift_matrix`, `drift_offset`: $A_n$ `(N, d, d)` and $c_n$ `(N, d)`.
    - `diffusion_squared`: $g_n^2$ `(N,)`.
    - `mean0`, `cov0`: the moments of the start `(d,)`, `(d, d)`.

    **Returns:** `(means, covs)` at the $N + 1$ grid points, `(N + 1, d)` and `(N + 1, d, d)`.
    """
    check_float_array("h", h, 1, "(N,)")
    check_float_array("drift_matrix", drift_matrix, 3, "(N, d, d)")
    check_float_array("drift_offset", drift_offset, 2, "(N, d)")
    check_float_array("diffusion_squared", diffusion_squared, 1, "(N,)")
    check_float_array("mean0", mean0, 1, "(d,)")
    check_float_array("cov0", cov0, 2, "(d, d)")
    h, a, c, g2, m, cov = (
        jnp.asarray(v) for v in (h, drift_matrix, drift_offset, diffusion_squared, mean0, cov0)
    )
    n, d = h.shape[0], m.shape[0]
    for name, arr, shape in (
        ("drift_matrix", a, (n, d, d)),
        ("drift_offset", c, (n, d)),
        ("diffusion_squared", g2, (n,)),
        ("cov0", cov, (d, d)),
    ):
        if arr.shape != shape:
            raise ValueError(
                f"`{name}` must have shape {shape} (N = len(h), d = len(mean0)), got {arr.shape}."
            )
    eye = jnp.eye(d, dtype=m.dtype)

    def step(state, coeffs):
        mean, cov = state
        hn, an, cn, g2n = coeffs
        k = eye + hn * an
        new = (k @ mean + hn * cn, k @ cov @ k.T + g2n * hn * eye)
        return new, new

    _, (means, covs) = jax.lax.scan(step, (m, cov), (h, a, c, g2))
    return jnp.concatenate([m[None], means]), jnp.concatenate([cov[None], covs])


def linear_process_euler_moments(
    process: AbstractLinearProcess,
    ts: Float[ArrayLike, " m"],
    mean0: Float[ArrayLike, " d"],
    cov0: Float[ArrayLike, "d d"],
) -> tuple[Float[Array, "m d"], Float[Array, "m d d"]]:
    r"""[`euler_maruyama_moments`][gpm_sde.verify.euler_maruyama_moments] of the forward SDE
    $dx = f(t)x\,dt + g(t)\,dW$ of a linear `process` on the grid `ts`:

    $$m_{n+1} = (1 + f_n h_n)\,m_n, \qquad C_{n+1} = (1 + f_n h_n)^2 C_n + g_n^2 h_n\, I,$$

    to compare with the exact marginal `process.marginal(law, t)`: the difference is
    Euler–Maruyama's bias at the grid's step.

    **Arguments:** the process, the increasing grid `ts` `(N + 1,)`, and the moments of the
    start `mean0` `(d,)`, `cov0` `(d, d)`. **Returns:** `(means, covs)` at every point of `ts`.
    """
    check_float_array("ts", ts, 1, "(N + 1,)")
    check_float_array("mean0", mean0, 1, "(d,)")
    grid = jnp.asarray(ts)
    if grid.shape[0] < 2:
        raise ValueError(f"`ts` must hold at least 2 times, got shape {grid.shape}.")
    d = jnp.shape(mean0)[0]
    left = grid[:-1]
    f = process.drift_coeff(left)
    eye = jnp.eye(d, dtype=grid.dtype)
    return euler_maruyama_moments(
        jnp.diff(grid),
        f[:, None, None] * eye,
        jnp.zeros((left.shape[0], d), grid.dtype),
        process.diffusion_squared(left),
        mean0,
        cov0,
    )
