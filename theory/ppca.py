r"""Probabilistic PCA (Tipping & Bishop 1999), the linear-Gaussian latent model whose
likelihood, posterior and maximum-likelihood fit are closed forms: the reference of the ELBO
and IWAE claims.

$x = Wz + \mu + \sigma\epsilon$, $z \sim \mathcal{N}(0, I_k)$: $p(x) = \mathcal{N}(\mu, C)$,
$C = WW^\top + \sigma^2 I$ (their eq. 3); $p(z \mid x) = \mathcal{N}(M^{-1}W^\top(x - \mu),
\sigma^2M^{-1})$, $M = W^\top W + \sigma^2 I$ (eq. 6); the maximum-likelihood fit is
$\sigma^2_{\rm ML}$ = the mean of the $d - k$ smallest eigenvalues of the sample covariance
and $W_{\rm ML} = U_k(\Lambda_k - \sigma^2_{\rm ML} I)^{1/2}$ (eqs. 7–8, with $R = I$).
The library's `GaussianEncoder`/`GaussianDecoder` with `depth=0` are affine, so they can hold
this model exactly; everything here is NumPy, independent of the library's losses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from gpm_sde import losses, nn

LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class PPCA:
    """The model $x = Wz + \\mu + \\sigma\\epsilon$ with `w: (d, k)`."""

    w: np.ndarray
    mu: np.ndarray
    sigma: float

    @property
    def d(self) -> int:
        return self.w.shape[0]

    @property
    def k(self) -> int:
        return self.w.shape[1]

    def log_p(self, x: np.ndarray) -> np.ndarray:
        """$\\log\\mathcal{N}(x; \\mu, WW^\\top + \\sigma^2 I)$ per point."""
        c = self.w @ self.w.T + self.sigma**2 * np.eye(self.d)
        r = x - self.mu
        quad = np.einsum("ni,ij,nj->n", r, np.linalg.inv(c), r)
        return -0.5 * (quad + np.linalg.slogdet(c)[1] + self.d * LOG_2PI)

    def posterior(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`(A, b, cov)`: $p(z \\mid x) = \\mathcal{N}(Ax + b, \\mathrm{cov})$."""
        m = self.w.T @ self.w + self.sigma**2 * np.eye(self.k)
        a = np.linalg.solve(m, self.w.T)
        return a, -a @ self.mu, self.sigma**2 * np.linalg.inv(m)

    def sample(self, seed: int, n: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((n, self.k))
        return z @ self.w.T + self.mu + self.sigma * rng.standard_normal((n, self.d))

    def decoder(self) -> nn.GaussianDecoder:
        """The library decoder holding exactly this model."""
        dec = nn.GaussianDecoder(self.k, self.d, 8, 0, key=jr.key(0), log_std=math.log(self.sigma))
        where = lambda m: (m.mlp.layers[0].weight, m.mlp.layers[0].bias)  # noqa: E731
        return eqx.tree_at(where, dec, (jnp.asarray(self.w), jnp.asarray(self.mu)))


def ml_fit(x: np.ndarray, k: int) -> PPCA:
    """The closed-form maximum-likelihood PPCA of the sample `x` (Tipping & Bishop eqs. 7–8)."""
    mu = x.mean(0)
    lam, u = np.linalg.eigh(np.cov(x.T, bias=True))
    lam, u = lam[::-1], u[:, ::-1]
    s2 = float(lam[k:].mean())
    return PPCA(u[:, :k] * np.sqrt(lam[:k] - s2), mu, math.sqrt(s2))


def affine_encoder(a: np.ndarray, b: np.ndarray, log_std: np.ndarray) -> nn.GaussianEncoder:
    """The library encoder with mean $Ax + b$ and a constant `log_std`."""
    k, d = a.shape
    enc = nn.GaussianEncoder(d, k, 8, 0, key=jr.key(1))
    weight = jnp.asarray(np.concatenate([a, np.zeros((k, d))]))
    bias = jnp.asarray(np.concatenate([b, log_std]))
    where = lambda m: (m.mlp.layers[0].weight, m.mlp.layers[0].bias)  # noqa: E731
    return eqx.tree_at(where, enc, (weight, bias))


def exact_elbo(encoder, decoder: nn.GaussianDecoder, x: np.ndarray) -> np.ndarray:
    """The ELBO's expectation per point for an affine (`depth=0`) Gaussian decoder with a
    shared scale and any Gaussian encoder: the closed-form expected log-likelihood
    $\\log\\mathcal{N}(x; Wm + b, \\sigma^2 I) - \\operatorname{tr}(WSW^\\top)/2\\sigma^2$
    ($q = \\mathcal{N}(m, S)$, $S$ diagonal) minus the library's analytic KL."""
    layer = decoder.mlp.layers[0]
    w, b = np.asarray(layer.weight), np.asarray(layer.bias)
    log_s = float(decoder.log_std)
    mean, log_std = jax.vmap(encoder)(jnp.asarray(x))
    m, s2 = np.asarray(mean), np.exp(2 * np.asarray(log_std))
    d = w.shape[0]
    r = x - m @ w.T - b
    ell = -0.5 * np.sum(r**2, 1) * math.exp(-2 * log_s) - d * log_s - 0.5 * d * LOG_2PI
    ell = ell - 0.5 * np.einsum("ij,nj->n", w**2, s2) * math.exp(-2 * log_s)
    return ell - np.asarray(losses.gaussian_kl(mean, log_std))


def kl_gauss(m0: np.ndarray, s0: np.ndarray, m1: np.ndarray, s1: np.ndarray) -> np.ndarray:
    """$\\mathrm{KL}(\\mathcal{N}(m_0, S_0)\\|\\mathcal{N}(m_1, S_1))$ per row of `m0`, `m1`
    with fixed covariances `s0`, `s1`."""
    k = s1.shape[0]
    s1_inv = np.linalg.inv(s1)
    diff = m1 - m0
    return 0.5 * (
        np.trace(s1_inv @ s0)
        + np.einsum("ni,ij,nj->n", diff, s1_inv, diff)
        - k
        + np.linalg.slogdet(s1)[1]
        - np.linalg.slogdet(s0)[1]
    )


def orthogonal_columns(seed: int, d: int, scales: tuple[float, ...]) -> np.ndarray:
    """$W = Q\\,\\mathrm{diag}(\\text{scales})$ with orthonormal columns $Q$: the posterior
    covariance $\\sigma^2 M^{-1}$ is then diagonal (the form of the ML solution with $R = I$)."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, len(scales))))
    return q * np.asarray(scales)
