"""Gaussian mixtures with full covariances: the exact laws that make the theory checkable."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import (
    IntLike,
    as_numpy,
    check_finite,
    check_float_array,
    check_int,
    check_positive,
    is_concrete,
)


class GaussianMixture(eqx.Module):
    r"""A mixture of $K$ Gaussians in $\mathbb{R}^d$ with full covariances,

    $$p(x) = \sum_{k=1}^K w_k\, \mathcal{N}(x;\ \mu_k, \Sigma_k).$$

    Every marginal of a linear forward process started from a mixture is again a mixture:
    see [`GaussianMixture.affine`][gpm_sde.GaussianMixture.affine]. Its score is
    therefore exact at every time, which is what the library's tests and `theory/` rely on.

    Methods act on **one point** `x: (d,)`; lift them to a cloud with `jax.vmap`.

    **Arguments:**

    - `weights`: `(K,)` non-negative mixture weights summing to 1.
    - `means`: `(K, d)` component means $\mu_k$.
    - `covs`: `(K, d, d)` symmetric positive-definite covariances $\Sigma_k$.
    """

    weights: Float[Array, " k"]
    means: Float[Array, "k d"]
    covs: Float[Array, "k d d"]

    def __init__(
        self,
        weights: ArrayLike,
        means: ArrayLike,
        covs: ArrayLike,
    ):
        # Arguments are annotated loosely so that the checks below, which name the argument
        # and the fix, run before any runtime type checker; the fields carry the shapes.
        check_float_array("weights", weights, 1, "(K,)")
        check_float_array("means", means, 2, "(K, d)")
        check_float_array("covs", covs, 3, "(K, d, d)")
        for name, value in (("weights", weights), ("means", means), ("covs", covs)):
            if jnp.finfo(jnp.asarray(value).dtype).bits < 32:
                raise TypeError(
                    f"`{name}` must be float32 or float64, got {jnp.asarray(value).dtype} (JAX's "
                    f"Cholesky factorisation has no half-precision kernel); cast it first."
                )
        weights_arr = jnp.asarray(weights)
        means_arr = jnp.asarray(means)
        covs_arr = jnp.asarray(covs)
        k, d = means_arr.shape
        if weights_arr.shape != (k,):
            raise ValueError(
                f"`weights` must have shape (K,) = ({k},) to match `means` of shape {(k, d)}, "
                f"got {weights_arr.shape}."
            )
        if covs_arr.shape != (k, d, d):
            raise ValueError(
                f"`covs` must have shape (K, d, d) = {(k, d, d)} to match `means`, "
                f"got {covs_arr.shape}."
            )
        if k == 0 or d == 0:
            raise ValueError(
                f"a mixture needs at least one component in at least one dimension; `means` "
                f"has shape {(k, d)}."
            )
        _check_mixture_values(weights_arr, means_arr, covs_arr)
        self.weights = weights_arr
        self.means = means_arr
        self.covs = covs_arr

    @property
    def dim(self) -> int:
        """The dimension $d$ of the space."""
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        """The number of components $K$."""
        return self.means.shape[0]

    def _precisions_and_log_dets(self) -> tuple[Float[Array, "k d d"], Float[Array, " k"]]:
        # Σ_k^{-1} and log det Σ_k through the Cholesky factor L_k L_k^T = Σ_k. They do not
        # depend on x, so under `jax.vmap` over points they are computed once, and the
        # per-point work is a batched matrix-vector product.
        chol = jnp.linalg.cholesky(self.covs)
        eye = jnp.eye(self.dim, dtype=self.covs.dtype)
        precisions = jax.vmap(lambda lk: jax.scipy.linalg.cho_solve((lk, True), eye))(chol)
        log_dets = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)), axis=1)
        return precisions, log_dets

    def _component_log_probs_and_precision_diffs(
        self, x: Float[Array, " d"]
    ) -> tuple[Float[Array, " k"], Float[Array, "k d"]]:
        # log w_k + log N(x; μ_k, Σ_k), and Σ_k^{-1}(x - μ_k).
        precisions, log_dets = self._precisions_and_log_dets()
        diff = x[None, :] - self.means
        precision_diff = jnp.einsum("kij,kj->ki", precisions, diff)
        quad = jnp.sum(diff * precision_diff, axis=1)
        log_norm = -0.5 * (self.dim * jnp.log(2.0 * jnp.pi) + log_dets)
        return jnp.log(self.weights) + log_norm - 0.5 * quad, precision_diff

    def _component_log_probs(self, x: Float[Array, " d"]) -> Float[Array, " k"]:
        return self._component_log_probs_and_precision_diffs(x)[0]

    def log_prob(self, x: Float[Array, " d"]) -> Float[Array, ""]:
        r"""Log-density at one point,

        $$\log p(x) = \operatorname{logsumexp}_k
        \big[\log w_k + \log\mathcal{N}(x;\mu_k,\Sigma_k)\big].$$
        """
        return jax.nn.logsumexp(self._component_log_probs(x))

    def responsibilities(self, x: Float[Array, " d"]) -> Float[Array, " k"]:
        r"""Posterior component probabilities $r_k(x) = w_k \mathcal{N}(x;\mu_k,\Sigma_k)/p(x)$."""
        return jax.nn.softmax(self._component_log_probs(x))

    def score(self, x: Float[Array, " d"]) -> Float[Array, " d"]:
        r"""Exact score at one point,

        $$\nabla_x \log p(x) = -\sum_k r_k(x)\, \Sigma_k^{-1}(x - \mu_k),$$

        with the responsibilities $r_k$ of
        [`GaussianMixture.responsibilities`][gpm_sde.GaussianMixture.responsibilities].
        """
        log_probs, precision_diff = self._component_log_probs_and_precision_diffs(x)
        r = jax.nn.softmax(log_probs)
        return -jnp.sum(r[:, None] * precision_diff, axis=0)

    def sample(self, key: PRNGKeyArray, n: IntLike) -> Float[Array, "n d"]:
        r"""Draw `n` points: $k \sim \mathrm{Cat}(w)$, then $x = \mu_k + L_k \varepsilon$ with
        $L_k L_k^\top = \Sigma_k$ and $\varepsilon \sim \mathcal{N}(0, I)$."""
        n = check_int("n", n, 0, "the number of samples", example=1000)
        k_key, e_key = jr.split(key)
        comp = jr.categorical(k_key, jnp.log(self.weights), shape=(n,))
        eps = jr.normal(e_key, (n, self.dim), dtype=self.means.dtype)
        chol = jnp.linalg.cholesky(self.covs)
        return self.means[comp] + jnp.einsum("nij,nj->ni", chol[comp], eps)

    def sample_with_components(
        self, key: PRNGKeyArray, n: IntLike
    ) -> tuple[Float[Array, "n d"], Array]:
        """Like [`sample`][gpm_sde.GaussianMixture.sample], also returning the component index
        of each point (the same draws for the same key)."""
        k_key, _ = jr.split(key)
        comp = jr.categorical(k_key, jnp.log(self.weights), shape=(int(n),))
        return self.sample(key, n), comp

    def mean(self) -> Float[Array, " d"]:
        r"""Mean $\sum_k w_k \mu_k$."""
        return self.weights @ self.means

    def covariance(self) -> Float[Array, "d d"]:
        r"""Covariance by the law of total variance,
        $\sum_k w_k\big(\Sigma_k + \mu_k\mu_k^\top\big) - m m^\top$ with $m$ the mean."""
        m = self.mean()
        second = jnp.einsum("k,kij->ij", self.weights, self.covs) + jnp.einsum(
            "k,ki,kj->ij", self.weights, self.means, self.means
        )
        return second - jnp.outer(m, m)

    def affine(self, alpha: Float[ArrayLike, ""], sigma: Float[ArrayLike, ""]) -> GaussianMixture:
        r"""Exact law of $\alpha x + \sigma \varepsilon$ for $x \sim p$,
        $\varepsilon \sim \mathcal{N}(0, I)$ independent:

        $$\sum_k w_k\, \mathcal{N}\big(\alpha\mu_k,\ \alpha^2\Sigma_k + \sigma^2 I\big).$$

        This is the marginal $x_t = \alpha(t)x_0 + \sigma(t)\varepsilon$ of every linear forward
        process (Song et al. 2021, eq. 29 and appendix B).
        """
        alpha = jnp.asarray(alpha, dtype=self.means.dtype)
        sigma = jnp.asarray(sigma, dtype=self.means.dtype)
        eye = jnp.eye(self.dim, dtype=self.covs.dtype)
        return GaussianMixture(
            self.weights, alpha * self.means, alpha**2 * self.covs + sigma**2 * eye
        )

    def convolve(self, sigma: Float[ArrayLike, ""]) -> GaussianMixture:
        r"""Exact smoothed law $p * \mathcal{N}(0, \sigma^2 I)$, i.e. `affine(1, sigma)`: the
        smoothed data $q_\sigma$ of DiffFlow."""
        return self.affine(1.0, sigma)


def _check_mixture_values(weights: Array, means: Array, covs: Array) -> None:
    if not is_concrete(weights, means, covs):
        return
    check_finite("weights", weights)
    check_finite("means", means)
    check_finite("covs", covs)
    check_positive("weights", weights, strict=False, fix="pass probabilities")
    w = as_numpy(weights)
    total = float(w.sum())
    if abs(total - 1.0) > 1e-5:
        raise ValueError(
            f"`weights` must sum to 1, they sum to {total}; pass `weights / weights.sum()`."
        )
    c = as_numpy(covs).astype(np.float64)
    if not np.allclose(c, np.swapaxes(c, 1, 2), rtol=1e-6, atol=1e-8 * max(1.0, np.abs(c).max())):
        raise ValueError(
            "`covs` must be symmetric; pass `(covs + covs.swapaxes(1, 2)) / 2` if the asymmetry "
            "is round-off."
        )
    eig = np.linalg.eigvalsh(c)
    eig_min = eig.min(axis=1)
    bad = np.nonzero(eig_min <= 0)[0]
    if bad.size:
        raise ValueError(
            f"`covs` must be positive definite, but component(s) {bad.tolist()} have smallest "
            f"eigenvalue(s) {eig_min[bad].tolist()}; add a small ridge, e.g. `covs + 1e-6 * "
            f"jnp.eye(d)`."
        )
    # The Cholesky factor, the precision and the quadratic form must stay normal floats of
    # the mixture's dtype (XLA flushes subnormals to zero): eigenvalues within sqrt(tiny) and
    # sqrt(max).
    info = np.finfo(covs.dtype)
    lo, hi = float(np.sqrt(info.tiny)), float(np.sqrt(info.max))
    bad = np.nonzero((eig_min < lo) | (eig.max(axis=1) > hi))[0]
    if bad.size:
        raise ValueError(
            f"`covs` must have eigenvalues in [{lo:.3g}, {hi:.3g}] ({covs.dtype} range), but "
            f"component(s) {bad.tolist()} have eigenvalues {eig[bad].tolist()}; rescale the "
            f"data, or add a small ridge."
        )
