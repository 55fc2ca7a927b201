r"""The debiased Sinkhorn divergence between two clouds, computed by ott-jax.

For entropic optimal transport with the squared Euclidean cost $c(a, b) = \|a - b\|^2$,

$$\mathrm{OT}_\varepsilon(\mu, \nu) = \min_{\pi \in \Pi(\mu, \nu)} \int c\, d\pi
+ \varepsilon\, \mathrm{KL}(\pi \,\|\, \mu \otimes \nu),$$

the Sinkhorn divergence (Genevay, Peyré & Cuturi 2018; Feydy et al. 2019, eq. 4)

$$S_\varepsilon(\mu, \nu) = \mathrm{OT}_\varepsilon(\mu, \nu)
- \tfrac12\mathrm{OT}_\varepsilon(\mu, \mu) - \tfrac12\mathrm{OT}_\varepsilon(\nu, \nu)$$

is non-negative, zero iff $\mu = \nu$, tends to $W_2^2(\mu, \nu)$ as $\varepsilon \to 0$ and to
the energy-distance-like MMD as $\varepsilon \to \infty$. The Sinkhorn iterations are ott-jax's
(Cuturi et al. 2022), not re-implemented here.
"""

from __future__ import annotations

import warnings

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import IntLike, check_int, check_positive, is_concrete
from .._optional import require
from ._mmd import _flatten_pair


def sinkhorn_divergence(
    x: Float[Array, " n *event"],
    y: Float[Array, " m *event"],
    epsilon: float | None = None,
    *,
    threshold: float = 1e-4,
    max_iterations: IntLike = 2000,
    check_convergence: bool = True,
) -> Float[Array, ""]:
    r"""The Sinkhorn divergence $S_\varepsilon$ of the module docstring between the empirical
    measures of `x` and `y` (uniform weights), by
    `ott.tools.sinkhorn_divergence.sinkhorn_divergence` on `ott.geometry.pointcloud.PointCloud`
    (cost $\|a - b\|^2$, not halved).

    A translation is seen exactly: $S_\varepsilon(\mu, \tau_a\mu) = \|a\|^2$ for every
    $\varepsilon$, since the cost's cross term $-2\langle a, b - a'\rangle$ integrates to the same
    constant under every coupling of $\mu$ with its translate. Like every plug-in estimate it is
    biased upwards between two samples of the same law.

    **Arguments:**

    - `x`: a cloud `(n, *event)`; `y`: a cloud `(m, *event)` with the same event shape (points
      are flattened), each with at least 2 points.
    - `epsilon`: the entropic regularisation $\varepsilon > 0$, in units of the cost (squared
      distance). `None` uses ott-jax's default, $0.05$ times the standard deviation of the
      cost matrix of $(x, y)$: scale-free, but then $S_\varepsilon$ is not comparable across
      pairs of clouds; pass a fixed value to compare.
    - `threshold`: Sinkhorn stops when the marginal error falls below it; the divergence is
      accurate to about this order (relative to the cost's scale).
    - `max_iterations`: the most Sinkhorn iterations per OT problem.
    - `check_convergence`: refuse a value from Sinkhorn iterations that did not converge (the
      marginal error still above `threshold` after `max_iterations` in any of the three OT
      problems): such a value is finite but wrong (e.g. 17.2 instead of the exact 18 for a
      translate at $\varepsilon = 10^{-3}$ after 10 iterations). Raises a `RuntimeError` that
      names `max_iterations`, `epsilon` and `threshold`; inside `jax.jit` the same check is an
      `eqx.error_if` (equinox's runtime error). `False` returns the unconverged value.

    **Returns:** the scalar $S_\varepsilon$. Jittable and differentiable (ott-jax's implicit
    differentiation).

    **Memory and time.** Each of the three OT problems materialises its cost matrix: $nm$,
    $n^2$ and $m^2$ floats ($8\times10^8$ bytes for $n = m = 10^4$ in float64), and every
    Sinkhorn iteration costs $O(nm)$. For large clouds subsample, or use
    [`sliced_wasserstein`][gpm_sde.metrics.sliced_wasserstein] or
    [`energy_distance`][gpm_sde.metrics.energy_distance] (blocked, $O(n)$ memory).
    """
    with warnings.catch_warnings():
        # ott-jax imports jaxopt, which warns on import that it is unmaintained; that
        # warning is about ott-jax's dependency, not about this call.
        warnings.filterwarnings("ignore", "JAXopt is no longer maintained", DeprecationWarning)
        pointcloud = require("ott.geometry.pointcloud", "`sinkhorn_divergence`")
        ott_sd = require("ott.tools.sinkhorn_divergence", "`sinkhorn_divergence`")
    x2, y2 = _flatten_pair(x, y)
    if epsilon is not None:
        check_positive("epsilon", epsilon, fix="pass an entropic regularisation > 0, or None")
    check_positive("threshold", threshold, fix="pass a convergence tolerance, e.g. 1e-4")
    check_int("max_iterations", max_iterations, 1, "Sinkhorn iterations", example=2000)
    if not isinstance(check_convergence, bool):
        raise TypeError(f"`check_convergence` must be a bool, got {check_convergence!r}.")
    value, out = ott_sd.sinkhorn_divergence(
        pointcloud.PointCloud,
        x2,
        y2,
        epsilon=epsilon,
        solve_kwargs={"threshold": threshold, "max_iterations": max_iterations},
    )
    value = jnp.asarray(value)
    if not check_convergence:
        return value
    converged = jnp.all(jnp.stack([jnp.asarray(c) for c in out.converged]))
    message = (
        f"sinkhorn_divergence: the Sinkhorn iterations did not converge (marginal error above "
        f"`threshold` = {threshold!r} after `max_iterations` = {max_iterations!r}), so the "
        f"divergence would be wrong. Raise `max_iterations`, or a larger `epsilon` (now "
        f"{epsilon!r}; small values need many iterations), or a larger `threshold`; pass "
        f"`check_convergence=False` to get the unconverged value."
    )
    if is_concrete(converged):
        if not bool(converged):
            raise RuntimeError(message)
        return value
    return eqx.error_if(value, ~converged, message)
