r"""Scores that see the whole cloud: mean-field estimates of $\nabla\log p_s$ from the particles."""

from __future__ import annotations

import abc

import equinox as eqx
from jaxtyping import Array, ArrayLike, Float


class AbstractCloudScore(eqx.Module):
    r"""A score estimated from the particle cloud itself: `score(s, y)` maps the cloud
    `y: (N, *event)` to the score of its own law at every particle, $(\nabla\log\hat p_s(y_i))_i$.

    [`ScoreDrift`][gpm_sde.ScoreDrift] calls it on the cloud directly instead of lifting it
    with `vmap`: interacting-particle (mean-field) dynamics need no special path (DESIGN §2).
    """

    @abc.abstractmethod
    def __call__(
        self, s: Float[ArrayLike, ""], y: Float[Array, " n *event"]
    ) -> Float[Array, " n *event"]:
        """The estimated score of the cloud's law at each of its particles."""
