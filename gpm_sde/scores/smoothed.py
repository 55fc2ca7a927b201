r"""Smoothed data scores $\nabla\log q_\sigma$ and their annealing along generation time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
from jaxtyping import Array, ArrayLike, Float

from ..distributions import GaussianMixture
from ..schedules import AbstractSchedule, Schedule, as_schedule


class SmoothedMixtureScore(eqx.Module):
    r"""The exact score of smoothed mixture data, $q_\sigma = q * \mathcal{N}(0, \sigma^2 I)$,
    as a $\sigma$-conditioned pointwise score `score(sigma, x)` (DESIGN §1; the NCSN target of
    Song & Ermon 2019)."""

    law: GaussianMixture

    def __call__(self, sigma: Float[ArrayLike, ""], x: Float[Array, " d"]) -> Float[Array, " d"]:
        return self.law.convolve(sigma).score(x)


class AnnealedScore(eqx.Module):
    r"""A $\sigma$-conditioned score annealed by a schedule: `(s, x) -> score(σ(s), x)`, the
    real-data score $\nabla\log q_{\sigma(s)}$ of DiffFlow (Zhang et al. 2023, eq. 9).

    **Arguments:**

    - `score`: a $\sigma$-conditioned pointwise score `score(sigma, x)` — e.g.
      [`SmoothedMixtureScore`][gpm_sde.scores.SmoothedMixtureScore] or a network conditioned on
      $\sigma$.
    - `sigma`: the schedule $\sigma(s) \ge 0$ (float or callable).
    """

    score: Callable[..., Any]
    sigma: AbstractSchedule

    def __init__(self, score: Callable[..., Any], sigma: Schedule):
        self.score = score
        self.sigma = as_schedule(sigma)

    def __call__(
        self, s: Float[ArrayLike, ""], x: Float[Array, "*event"]
    ) -> Float[Array, "*event"]:
        return self.score(self.sigma(s), x)
