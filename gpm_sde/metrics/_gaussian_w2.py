r"""The exact 2-Wasserstein distance between two Gaussian laws.

For $P = \mathcal{N}(m_1, \Sigma_1)$ and $Q = \mathcal{N}(m_2, \Sigma_2)$ on $\mathbb{R}^d$
(Dowson & Landau 1982; Olkin & Pukelsheim 1982; Givens & Shortt 1984),

$$W_2^2(P, Q) = \|m_1 - m_2\|^2 + \operatorname{tr}\Big(\Sigma_1 + \Sigma_2
- 2\big(\Sigma_2^{1/2}\Sigma_1\Sigma_2^{1/2}\big)^{1/2}\Big).$$

The trace of the square root is the sum of the square roots of the eigenvalues of the
symmetric positive semi-definite $\Sigma_2^{1/2}\Sigma_1\Sigma_2^{1/2}$, so only symmetric
eigendecompositions (`eigh`) are needed: no general `sqrtm`, no complex round-off.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._checks import check_finite, check_float_array

# The arguments are annotated loosely (`ArrayLike`) so that the checks below, which name the
# argument and the fix, run before any runtime type checker; the docstrings give the shapes.


def _psd_sqrt(s: Array) -> Array:
    """Symmetric square root of a symmetric PSD matrix via `eigh`, negative round-off clipped."""
    lam, v = jnp.linalg.eigh(s)
    return (v * jnp.sqrt(jnp.maximum(lam, 0.0))) @ v.T


def _sym(s: Array) -> Array:
    return 0.5 * (s + s.T)


def _check_gaussian(mean_name: str, cov_name: str, mean, cov) -> tuple[Array, Array]:
    check_float_array(mean_name, mean, 1, "(d,)")
    check_float_array(cov_name, cov, 2, "(d, d)")
    m, s = jnp.asarray(mean), jnp.asarray(cov)
    d = m.shape[0]
    if s.shape != (d, d):
        raise ValueError(
            f"`{cov_name}` must have shape (d, d) = {(d, d)} to match `{mean_name}` of shape "
            f"{m.shape}, got {s.shape}."
        )
    check_finite(mean_name, m)
    check_finite(cov_name, s)
    return m, s


def gaussian_w2_squared(
    m1: ArrayLike,
    s1: ArrayLike,
    m2: ArrayLike,
    s2: ArrayLike,
) -> Float[Array, ""]:
    r"""$W_2^2\big(\mathcal{N}(m_1, \Sigma_1), \mathcal{N}(m_2, \Sigma_2)\big)$, the squared
    distance of [`gaussian_w2`][gpm_sde.metrics.gaussian_w2] (the module's formula), clipped
    at 0 against round-off. This is the Fréchet distance of
    [`frechet_distance`][gpm_sde.metrics.frechet_distance]."""
    m1, s1 = _check_gaussian("m1", "s1", m1, s1)
    m2, s2 = _check_gaussian("m2", "s2", m2, s2)
    if m1.shape != m2.shape:
        raise ValueError(
            f"`m1` and `m2` must have the same dimension d, got {m1.shape} and {m2.shape}."
        )
    dtype = jnp.result_type(m1, s1, m2, s2)
    m1, s1, m2, s2 = (a.astype(dtype) for a in (m1, s1, m2, s2))
    s1, s2 = _sym(s1), _sym(s2)
    r2 = _psd_sqrt(s2)
    cross = jnp.sum(jnp.sqrt(jnp.maximum(jnp.linalg.eigvalsh(_sym(r2 @ s1 @ r2)), 0.0)))
    diff = m1 - m2
    w2 = diff @ diff + jnp.trace(s1) + jnp.trace(s2) - 2.0 * cross
    return jnp.maximum(w2, 0.0)


def gaussian_w2(
    m1: ArrayLike,
    s1: ArrayLike,
    m2: ArrayLike,
    s2: ArrayLike,
) -> Float[Array, ""]:
    r"""The exact 2-Wasserstein distance $W_2\big(\mathcal{N}(m_1, \Sigma_1),
    \mathcal{N}(m_2, \Sigma_2)\big)$ (Dowson & Landau 1982), the square root of the module's
    formula. Special cases: equal covariances give $\|m_1 - m_2\|$; commuting covariances give
    $\big(\|m_1 - m_2\|^2 + \|\Sigma_1^{1/2} - \Sigma_2^{1/2}\|_F^2\big)^{1/2}$, in 1-D
    $\big((m_1 - m_2)^2 + (\sigma_1 - \sigma_2)^2\big)^{1/2}$.

    **Arguments:**

    - `m1`, `m2`: means `(d,)`.
    - `s1`, `s2`: symmetric positive semi-definite covariances `(d, d)` (symmetrised as
      $(\Sigma + \Sigma^\top)/2$ against round-off).

    **Returns:** the scalar $W_2$ (use
    [`gaussian_w2_squared`][gpm_sde.metrics.gaussian_w2_squared] for $W_2^2$). Jittable; its
    gradient is finite wherever the eigenvalues involved are positive and $W_2 > 0$.
    """
    return jnp.sqrt(gaussian_w2_squared(m1, s1, m2, s2))
