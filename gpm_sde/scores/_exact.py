"""Exact marginal scores of mixture data pushed through a linear forward process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
from jaxtyping import Array, ArrayLike, Float

from .._checks import check_time_range
from ..distributions import GaussianMixture
from ..processes import AbstractLinearProcess
from ._cloud import AbstractTimeChangedScore


class MixtureMarginalScore(eqx.Module):
    r"""The exact score $\nabla_x \log p_t(x)$ of the marginal $p_t$ of a linear process
    started from mixture data $q = \sum_k w_k\mathcal{N}(\mu_k, \Sigma_k)$:

    $$p_t = \sum_k w_k\,\mathcal{N}\big(\alpha(t)\mu_k,\ \alpha(t)^2\Sigma_k + \sigma(t)^2 I\big)$$

    (a mixture pushed through a linear process stays a mixture). A pointwise score,
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


class TimeReversedScore(AbstractTimeChangedScore):
    r"""A score in generation time from one in diffusion time, $s = T - t$:

    $$\texttt{TimeReversedScore(score, T)}(s, x) = \nabla\log p_{T-s}(x)
    = \texttt{score}(T - s, x),$$

    the score term of the reverse-time SDE (Anderson 1982; Song et al. 2021, eq. 6). A cloud
    score stays a cloud score: wrapping a [`KernelScore`][gpm_sde.scores.KernelScore] gives a
    score called on the whole cloud (see
    [`AbstractTimeChangedScore`][gpm_sde.scores.AbstractTimeChangedScore]).

    **Time resolution.** $T - s$ is computed in the dtype of $s$: pass $s$ in float64 (as
    [`simulate`][gpm_sde.simulate] does when `jax_enable_x64` is on) to hand the score the
    diffusion time without float32 round-off. In float32, near $s = T$ the score sees $t$ only
    to within $\operatorname{ulp}(T)/2$ ($4.8\times10^{-7}$ at $T = 10$).

    **Arguments:**

    - `score`: the score `score(t, x)` in diffusion time, pointwise or a cloud score.
    - `T`: the time horizon.
    """

    score: Callable[..., Any]
    T: float = eqx.field(static=True)

    def time(self, s: Float[ArrayLike, ""]) -> Float[ArrayLike, ""]:
        """The diffusion time $t = T - s$. A concrete `s` outside $[0, T]$ raises a
        `ValueError` naming `s` (inside a solve `s` is traced: there
        [`simulate`][gpm_sde.simulate] enforces the range of the reverse SDE)."""
        check_time_range("s", s, 0.0, self.T, "a time-reversed score (s = T - t)")
        return self.T - s
