r"""The Int-PM surrogate loss of generative particle models (Franceschi et al. 2023)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ..sde import AbstractDrift


def int_pm_loss(
    generator: Callable[..., Any],
    field: AbstractDrift | Callable[..., Any],
    z: Float[Array, " n *latent"],
    s: Float[ArrayLike, ""] = 0.0,
) -> Float[Array, ""]:
    r"""The Int-PM surrogate loss that moves a generator along a field (Franceschi et al. 2023,
    eq. 8 and Algorithm 1):

    $$\mathcal{L}(\theta) = \mathbb{E}_z\big\langle g_\theta(z),\
    \mathrm{sg}\big[-\nabla h(g_\theta(z))\big]\big\rangle,$$

    whose gradient $-\mathbb{E}_z[J_\theta g_\theta(z)^\top \nabla h]$ makes a gradient step
    $\theta \leftarrow \theta - \eta\nabla\mathcal{L}$ move the outputs by
    $\eta\,J J^\top\nabla h$ to first order: along the field, projected by the neural tangent
    kernel. `sg` is `jax.lax.stop_gradient`.

    **Arguments:**

    - `generator`: `z -> x` on one latent (vmapped over `z`), e.g. an `eqx.Module`.
    - `field`: the field on the cloud of generated points, `field(s, y, args)`.
    - `z`: a batch of latents `(n, *latent)`; `s`: the time passed to the field.
    """
    x = jax.vmap(generator)(z)
    direction = jax.lax.stop_gradient(field(s, x, None))
    return jnp.sum(x * -direction) / x.shape[0]
