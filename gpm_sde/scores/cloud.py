r"""Scores that see the whole cloud, and the one helper that evaluates any score on a cloud."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
from jaxtyping import Array, ArrayLike, Float


class AbstractCloudScore(eqx.Module):
    r"""A score estimated from the particle cloud itself: `score(s, y)` maps the cloud
    `y: (N, *event)` to the score of its own law at every particle, $(\nabla\log\hat p_s(y_i))_i$.

    [`ScoreDrift`][gpm_sde.ScoreDrift], every SDE transform and every sampler call it on the
    cloud directly instead of lifting it with `vmap` (see
    [`on_cloud`][gpm_sde.scores.on_cloud]): interacting-particle (mean-field) dynamics need no
    special path. A wrapper that changes only the time argument (e.g. the generation-time
    reversal $s \mapsto T - s$) stays a cloud score by subclassing this class.
    """

    @abc.abstractmethod
    def __call__(
        self, s: Float[ArrayLike, ""], y: Float[Array, " n *event"]
    ) -> Float[Array, " n *event"]:
        """The estimated score of the cloud's law at each of its particles."""


def is_cloud_score(score: Any) -> bool:
    """Whether `score` acts on the whole cloud (an
    [`AbstractCloudScore`][gpm_sde.scores.AbstractCloudScore]) rather than on one point."""
    return isinstance(score, AbstractCloudScore)


def on_cloud(score: Callable[..., Any], t: Any, y: Array) -> Array:
    r"""Evaluate `score` at time `t` on every particle of the cloud `y: (N, *event)`:
    $(\nabla\log p_t(y_i))_{i=1}^N$.

    A pointwise score `score(t, x)` on one point is lifted with `jax.vmap` over the particle
    axis (one `t` for all points); a cloud score
    ([`AbstractCloudScore`][gpm_sde.scores.AbstractCloudScore]) is called on the whole cloud,
    so a mean-field estimate sees every particle. This is the only place where a score meets a
    cloud: drifts, transforms and samplers all go through it.

    **Arguments:**

    - `score`: a pointwise score `(t, x) -> ∇log p_t(x)` or a cloud score `(t, y) -> (N, *event)`.
    - `t`: the time (or noise level) passed to the score, shared by all particles.
    - `y`: the cloud `(N, *event)`.

    **Returns:** an array of the cloud's shape.
    """
    if is_cloud_score(score):
        return score(t, y)
    return jax.vmap(score, in_axes=(None, 0))(t, y)
