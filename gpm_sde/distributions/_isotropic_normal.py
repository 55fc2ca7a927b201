r"""The isotropic Gaussian $\mathcal{N}(0, s^2 I)$ on any event shape: the prior of a process."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import IntLike, check_positive


class IsotropicNormal(eqx.Module):
    r"""The centred isotropic Gaussian $\mathcal{N}(0, s^2 I)$ on points of any event shape.

    It is the prior (the law at $t = T$) of a forward process. Unlike
    [`GaussianMixture`][gpm_sde.GaussianMixture] it stores no covariance, so it serves images
    as well as points.

    **Arguments:**

    - `std`: the standard deviation $s > 0$.
    """

    std: Float[Array, ""]

    def __init__(self, std: Float[ArrayLike, ""]):
        check_positive("std", std, fix="pass the prior's standard deviation")
        self.std = jnp.asarray(std, dtype=float)

    def log_prob(self, x: Float[Array, "*event"]) -> Float[Array, ""]:
        r"""$\log \mathcal{N}(x; 0, s^2 I) = -\tfrac{D}{2}\log(2\pi s^2) - \|x\|^2 / (2 s^2)$,
        with $D$ the number of entries of `x` (one point)."""
        size = x.size
        return -0.5 * size * jnp.log(2.0 * jnp.pi * self.std**2) - 0.5 * jnp.sum(x**2) / self.std**2

    def score(self, x: Float[Array, "*event"]) -> Float[Array, "*event"]:
        r"""$\nabla_x \log \mathcal{N}(x; 0, s^2 I) = -x / s^2$ (one point)."""
        return -x / self.std**2

    def sample(
        self, key: PRNGKeyArray, n: IntLike, event_shape: tuple[int, ...]
    ) -> Float[Array, " n *event"]:
        """Draw `n` points of shape `event_shape`: a cloud `(n, *event_shape)`."""
        if n < 0:
            raise ValueError(f"`n` must be a non-negative int (the number of samples), got {n!r}.")
        return self.std * jr.normal(key, (int(n), *event_shape), dtype=self.std.dtype)
