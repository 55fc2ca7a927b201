r"""Regularisers of the discriminator: the R1 and interpolation gradient penalties, and the
weight clipping of WGAN."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import check_batch, check_positive

_M = TypeVar("_M")


def _input_grads(discriminator: Callable[..., Any], x: Array) -> Array:
    """$\\nabla_x D$ at every point of the batch, flattened to `(n, size)`."""
    grads = jax.vmap(jax.grad(lambda z: discriminator(z)))(x)
    return jnp.reshape(grads, (x.shape[0], -1))


def r1_penalty(
    discriminator: Callable[..., Any],
    x_real: Float[Array, " n *event"],
    *,
    gamma: float = 10.0,
) -> Float[Array, ""]:
    r"""The R1 gradient penalty on real data (Mescheder et al. 2018, eq. 9):

    $$R_1 = \frac{\gamma}{2}\,\mathbb{E}_{x \sim p}\big\|\nabla_x D(x)\big\|^2 ,$$

    added to the discriminator loss. Differentiable in the discriminator's parameters (double
    backpropagation).

    **Arguments:**

    - `discriminator`: `D(x) -> scalar` on one point; for a time-conditioned discriminator pass
      `lambda x: D(s, x)`.
    - `x_real`: a batch of real points `(n, *event)`.
    - `gamma`: $\gamma \ge 0$.
    """
    check_batch("x_real", x_real, min_ndim=2)
    check_positive("gamma", gamma, strict=False, fix="pass e.g. gamma=10.0")
    grads = _input_grads(discriminator, x_real)
    return 0.5 * gamma * jnp.mean(jnp.sum(grads**2, axis=1))


def _safe_norm(v: Array) -> Array:
    # ‖v‖ per row, with a zero (not NaN) gradient where v = 0.
    sq = jnp.sum(v**2, axis=1)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def gradient_penalty(
    discriminator: Callable[..., Any],
    x_real: Float[Array, " n *event"],
    x_fake: Float[Array, " n *event"],
    key: PRNGKeyArray,
    *,
    lam: float = 10.0,
) -> Float[Array, ""]:
    r"""The WGAN-GP interpolation penalty (Gulrajani et al. 2017, eq. 3 and Algorithm 1):

    $$\lambda\,\mathbb{E}_{\hat x}\big(\|\nabla_{\hat x} D(\hat x)\|_2 - 1\big)^2,\qquad
    \hat x = \epsilon x + (1 - \epsilon)\tilde x,\quad \epsilon \sim \mathcal{U}[0, 1],$$

    one $\epsilon$ per pair (`jax.random.uniform(key, (n,))`) of a real point $x$ and a
    generated point $\tilde x$. The norm is over all event axes. Added to the critic loss of
    [`WassersteinGAN`][gpm_sde.losses.WassersteinGAN]; differentiable in the critic's
    parameters.

    **Arguments:**

    - `discriminator`: `D(x) -> scalar` on one point (`lambda x: D(s, x)` if time-conditioned).
    - `x_real`, `x_fake`: batches of the same shape `(n, *event)`.
    - `key`: PRNG key for $\epsilon$.
    - `lam`: $\lambda \ge 0$ (10 in Gulrajani et al.).
    """
    check_batch("x_real", x_real, min_ndim=2)
    check_batch("x_fake", x_fake, min_ndim=2)
    if jnp.shape(x_real) != jnp.shape(x_fake):
        raise ValueError(
            f"`x_real` and `x_fake` must have the same shape (one interpolate per pair), got "
            f"{jnp.shape(x_real)} and {jnp.shape(x_fake)}; draw as many generated as real points."
        )
    check_positive("lam", lam, strict=False, fix="pass e.g. lam=10.0")
    n = x_real.shape[0]
    eps = jr.uniform(key, (n,), dtype=x_real.dtype)
    eps = jnp.reshape(eps, (n,) + (1,) * (x_real.ndim - 1))
    x_hat = eps * x_real + (1.0 - eps) * x_fake
    norms = _safe_norm(_input_grads(discriminator, x_hat))
    return lam * jnp.mean((norms - 1.0) ** 2)


_LAYERS = (eqx.nn.Linear, eqx.nn.Conv, eqx.nn.ConvTranspose)


def clip_weights(model: _M, c: float = 0.01) -> _M:
    r"""Weight clipping for the WGAN critic (Arjovsky et al. 2017, Algorithm 1,
    $w \leftarrow \operatorname{clip}(w, -c, c)$, $c = 0.01$): a new model whose
    `eqx.nn.Linear`, `eqx.nn.Conv*` and `eqx.nn.ConvTranspose*` weights and biases lie in
    $[-c, c]$. Other arrays (the fixed Fourier frequencies of a time embedding, normalisation
    parameters) are left as they are: clipping them would not bound the critic's Lipschitz
    constant any further and would destroy the embedding.

    **Arguments:**

    - `model`: any pytree holding equinox layers, e.g. an
      [`MLPDiscriminator`][gpm_sde.nn.MLPDiscriminator].
    - `c`: the clipping bound, $c > 0$.
    """
    check_positive("c", c, fix="pass the clipping bound, e.g. c=0.01 (Arjovsky et al. 2017)")

    def clip_layer(node: Any) -> Any:
        if not isinstance(node, _LAYERS):
            return node
        return jax.tree_util.tree_map(
            lambda leaf: jnp.clip(leaf, -c, c) if eqx.is_inexact_array(leaf) else leaf, node
        )

    return jax.tree_util.tree_map(clip_layer, model, is_leaf=lambda n: isinstance(n, _LAYERS))
