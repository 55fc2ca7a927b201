r"""Variational bounds on $\log p_\theta(x)$ for a latent-variable model with a Gaussian
encoder: the evidence lower bound (ELBO) with the reparameterisation trick, its β-weighted
form, and the importance-weighted bound (IWAE)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import check_callable, check_int, check_key, check_scalar

_LOG_2PI = math.log(2.0 * math.pi)


def _check_models(encoder: Any, decoder: Any) -> None:
    check_callable("encoder", encoder, "x -> (mean, log_std)", "e.g. `nn.GaussianEncoder`")
    if not callable(getattr(decoder, "log_prob", None)):
        raise TypeError(
            f"`decoder` must have a method `log_prob(z, x)` (log p(x | z) of one point), e.g. "
            f"`gpm_sde.nn.GaussianDecoder` or `BernoulliDecoder`; got {type(decoder).__name__}."
        )


def _reduce(values: Array, reduction: str) -> Array:
    if reduction == "mean":
        return jnp.mean(values)
    if reduction == "sum":
        return jnp.sum(values)
    if reduction == "none":
        return values
    raise ValueError(f"`reduction` must be 'mean', 'sum' or 'none', got {reduction!r}.")


def _normal_log_prob(z: Array, mean: Array, log_std: Array) -> Array:
    """log N(z; mean, diag exp(2 log_std)), summed over the last axis."""
    r = (z - mean) * jnp.exp(-log_std)
    return -jnp.sum(0.5 * r**2 + log_std + 0.5 * _LOG_2PI, axis=-1)


def gaussian_kl(mean: Float[Array, "*n k"], log_std: Float[Array, "*n k"]) -> Float[Array, "*n"]:
    r"""The KL divergence of a diagonal Gaussian from the standard normal prior (Kingma &
    Welling 2014, App. B):

    $$\mathrm{KL}\big(\mathcal{N}(\mu, \operatorname{diag}\sigma^2)\,\|\,\mathcal{N}(0, I)
    \big) = \tfrac12\sum_j\big(\mu_j^2 + \sigma_j^2 - 1 - 2\log\sigma_j\big),$$

    summed over the last axis.

    **Arguments:**

    - `mean`: $\mu$, `(..., k)`.
    - `log_std`: $\log\sigma$, the same shape.
    """
    mean, log_std = jnp.asarray(mean), jnp.asarray(log_std)
    return 0.5 * jnp.sum(mean**2 + jnp.exp(2.0 * log_std) - 1.0 - 2.0 * log_std, axis=-1)


def _log_weights(
    encoder: Callable, decoder: Any, x: Array, eps: Array
) -> tuple[Array, Array, Array, Array]:
    """For one point and draws `eps: (s, k)`: log p(x|z), log p(z), log q(z|x) per draw, and
    the analytic KL of q from the prior."""
    mean, log_std = encoder(x)
    z = mean + jnp.exp(log_std) * eps  # the reparameterisation, Kingma & Welling eq. 10
    log_lik = jax.vmap(lambda zi: decoder.log_prob(zi, x))(z)
    zeros = jnp.zeros_like(mean)
    log_prior = _normal_log_prob(z, zeros, zeros)
    log_q = _normal_log_prob(z, mean, log_std)
    return log_lik, log_prior, log_q, gaussian_kl(mean, log_std)


def _draws(key: PRNGKeyArray, encoder: Callable, x: Array, n: int) -> Array:
    mean, _ = jax.eval_shape(encoder, x[0])
    return jr.normal(key, (x.shape[0], n, *mean.shape), mean.dtype)


def elbo(
    encoder: Callable[[Array], tuple[Array, Array]],
    decoder: Any,
    x: Float[ArrayLike, " n *shape"],
    key: PRNGKeyArray,
    *,
    beta: float = 1.0,
    n_samples: int = 1,
    kl: str = "analytic",
    reduction: str = "mean",
) -> Float[Array, ""] | Float[Array, " n"]:
    r"""The evidence lower bound of a VAE, estimated with the reparameterisation trick
    (Kingma & Welling 2014, eq. 3 and the SGVB estimators of eqs. 6–7), with a β weight on
    the KL term (β-VAE, Higgins et al. 2017; β = 1 is the ELBO):

    $$\mathcal{L}_\beta(x) = \mathbb{E}_{q_\phi(z \mid x)}\log p_\theta(x \mid z)
    - \beta\,\mathrm{KL}\big(q_\phi(z \mid x)\,\|\,p(z)\big)
    \;\le\; \log p_\theta(x)\quad(\beta = 1),$$

    with $p(z) = \mathcal{N}(0, I)$, $z^{(l)} = \mu_\phi(x) + \sigma_\phi(x)\odot
    \varepsilon^{(l)}$ for `n_samples` draws $\varepsilon^{(l)} \sim \mathcal{N}(0, I)$.
    The gap is exactly $\log p_\theta(x) - \mathcal{L}_1(x) = \mathrm{KL}(q_\phi(z \mid x)\,\|
    \,p_\theta(z \mid x))$ (their eq. 1), zero when the encoder is the exact posterior.

    - `kl="analytic"`: the KL in closed form ([`gaussian_kl`][gpm_sde.losses.gaussian_kl];
      their eq. 7, estimator B), the usual lower-variance choice.
    - `kl="sample"`: $\frac1L\sum_l[\log p_\theta(x \mid z^{(l)}) + \log p(z^{(l)}) -
      \log q_\phi(z^{(l)} \mid x)]$ (eq. 6, estimator A, for β = 1; for β ≠ 1 the KL part,
      $\log q - \log p$, is weighted by β). With the exact posterior as encoder every draw
      equals $\log p_\theta(x)$: an estimator of zero variance.

    **Arguments:**

    - `encoder`: `encoder(x) -> (mean, log_std)` on one point, e.g. a
      [`GaussianEncoder`][gpm_sde.nn.GaussianEncoder].
    - `decoder`: a module with `decoder.log_prob(z, x)` $= \log p_\theta(x \mid z)$ on one
      point, e.g. [`GaussianDecoder`][gpm_sde.nn.GaussianDecoder] or
      [`BernoulliDecoder`][gpm_sde.nn.BernoulliDecoder].
    - `x`: a batch of points `(n, *shape)`.
    - `key`: PRNG key of the draws.
    - `beta`: the weight β ≥ 0 of the KL term.
    - `n_samples`: draws of $z$ per point ($L$).
    - `kl`: `"analytic"` or `"sample"`, as above.
    - `reduction`: `"mean"` (default) or `"sum"` over the batch, or `"none"` for one value
      per point.

    Returns the bound in nats (to maximise; train on `-elbo(...)`).
    """
    _check_models(encoder, decoder)
    check_key("key", key, what="the PRNG key of the draws of z")
    check_scalar("beta", beta)
    n_samples = check_int("n_samples", n_samples, 1, "draws of z per point")
    if kl not in ("analytic", "sample"):
        raise ValueError(f"`kl` must be 'analytic' or 'sample', got {kl!r}.")
    x = jnp.asarray(x)

    def one(xi: Array, eps: Array) -> Array:
        log_lik, log_prior, log_q, kl_exact = _log_weights(encoder, decoder, xi, eps)
        divergence = kl_exact if kl == "analytic" else jnp.mean(log_q - log_prior)
        return jnp.mean(log_lik) - beta * divergence

    values = jax.vmap(one)(x, _draws(key, encoder, x, n_samples))
    return _reduce(values, reduction)


def iwae_bound(
    encoder: Callable[[Array], tuple[Array, Array]],
    decoder: Any,
    x: Float[ArrayLike, " n *shape"],
    key: PRNGKeyArray,
    *,
    k: int,
    reduction: str = "mean",
) -> Float[Array, ""] | Float[Array, " n"]:
    r"""The importance-weighted bound of Burda et al. 2016 (IWAE, eq. 8), estimated with one
    draw of $K$ samples per point:

    $$\mathcal{L}_K(x) = \mathbb{E}_{z_1..z_K \sim q_\phi(z \mid x)}\log\frac1K\sum_{k=1}^K
    \frac{p_\theta(x \mid z_k)\,p(z_k)}{q_\phi(z_k \mid x)},$$

    computed with `logsumexp`. $\mathcal{L}_1$ is the ELBO; $\mathcal{L}_K \le
    \mathcal{L}_{K+1} \le \log p_\theta(x)$ and $\mathcal{L}_K \to \log p_\theta(x)$ as
    $K \to \infty$ when the weights are bounded (their Theorem 1), so a large $K$ gives a
    likelihood estimate in nats; [`bits_per_dim`][gpm_sde.bits_per_dim] converts it to bits
    per dimension.

    **Arguments:**

    - `encoder`: `encoder(x) -> (mean, log_std)` on one point (the proposal $q_\phi$).
    - `decoder`: a module with `decoder.log_prob(z, x)`.
    - `x`: a batch of points `(n, *shape)`.
    - `key`: PRNG key of the draws.
    - `k`: $K \ge 1$, the number of importance samples per point.
    - `reduction`: `"mean"` (default), `"sum"` or `"none"` (one value per point).

    Returns the bound in nats.
    """
    _check_models(encoder, decoder)
    check_key("key", key, what="the PRNG key of the importance samples")
    k = check_int("k", k, 1, "importance samples per point")
    x = jnp.asarray(x)

    def one(xi: Array, eps: Array) -> Array:
        log_lik, log_prior, log_q, _ = _log_weights(encoder, decoder, xi, eps)
        return jax.nn.logsumexp(log_lik + log_prior - log_q) - math.log(k)

    values = jax.vmap(one)(x, _draws(key, encoder, x, k))
    return _reduce(values, reduction)
