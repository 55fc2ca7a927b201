"""Exact marginal scores of mixture data pushed through a linear forward process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
from jaxtyping import Array, ArrayLike, Float

from ..distributions import GaussianMixture
from ..processes import AbstractLinearProcess


class MixtureMarginalScore(eqx.Module):
    r"""The exact score $\nabla_x \log p_t(x)$ of the marginal $p_t$ of a linear process
    started from mixture data $q = \sum_k w_k\mathcal{N}(\mu_k, \Sigma_k)$:

    $$p_t = \sum_k w_k\,\mathcal{N}\big(\alpha(t)\mu_k,\ \alpha(t)^2\Sigma_k + \sigma(t)^2 I\big)$$

    (DESIGN §1: a mixture pushed through a linear process stays a mixture). A pointwise score,
    callable as `score(t, x)` on one point `x: (d,)`, in diffusion time `t`.

    **Arguments:**

    - `process`: the forward process.
    - `law`: the data law at $t = 0$.
    """

    process: AbstractLinearProcess
    law: GaussianMixture

    def __call__(self, t: Float[ArrayLike, ""], x: Float[Array, " d"]) -> Float[Array, " d"]:
        return self.process.marginal(self.law, t).score(x)

    def log_prob(self, t: Float[ArrayLike, ""], x: Float[Array, " d"]) -> Float[Array, ""]:
        r"""The exact log-density $\log p_t(x)$ matching this score."""
        return self.process.marginal(self.law, t).log_prob(x)


class TimeReversedScore(eqx.Module):
    r"""A score in generation time from one in diffusion time:
    `TimeReversedScore(score, T)(s, x) = score(T - s, x)` (DESIGN §1, $s = T - t$)."""

    score: Callable[..., Any]
    T: float = eqx.field(static=True)

    def __call__(
        self, s: Float[ArrayLike, ""], x: Float[Array, "*event"]
    ) -> Float[Array, "*event"]:
        return self.score(self.T - s, x)
