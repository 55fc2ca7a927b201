r"""Smoothed data scores $\nabla\log q_\sigma$ and their annealing along generation time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
from jaxtyping import Array, ArrayLike, Float

from ..distributions import GaussianMixture
from ..schedules import AbstractSchedule, Schedule, as_schedule
from ._cloud import AbstractTimeChangedScore


class SmoothedMixtureScore(eqx.Module):
    r"""The exact score of smoothed mixture data, $q_\sigma = q * \mathcal{N}(0, \sigma^2 I)$,
    as a $\sigma$-conditioned pointwise score `score(sigma, x)` (the NCSN target of
    Song & Ermon 2019)."""

    law: GaussianMixture

    def __call__(self, sigma: Float[ArrayLike, ""], x: Float[Array, " d"]) -> Float[Array, " d"]:
        return self.law.convolve(sigma).score(x)


class AnnealedScore(AbstractTimeChangedScore):
    r"""A $\sigma$-conditioned score annealed by a schedule: `(s, x) -> score(σ(s), x)`, the
    real-data score $\nabla\log q_{\sigma(s)}$ of this library's form of the DiffFlow SDE
    ([`diffflow`][gpm_sde.diffflow]; Zhang et al. 2023).

    A cloud score stays a cloud score (see
    [`AbstractTimeChangedScore`][gpm_sde.scores.AbstractTimeChangedScore]).

    **Arguments:**

    - `score`: a $\sigma$-conditioned score `score(sigma, x)`, pointwise — e.g.
      [`SmoothedMixtureScore`][gpm_sde.scores.SmoothedMixtureScore] or a network conditioned on
      $\sigma$ — or a cloud score.
    - `sigma`: the schedule $\sigma(s) \ge 0$ (float or callable).
    """

    score: Callable[..., Any]
    sigma: AbstractSchedule

    def __init__(self, score: Callable[..., Any], sigma: Schedule):
        self.score = score
        self.sigma = as_schedule(sigma)

    def time(self, s: Float[ArrayLike, ""]) -> Float[ArrayLike, ""]:
        r"""The noise level $\sigma(s)$ handed to the wrapped score."""
        return self.sigma(s)
