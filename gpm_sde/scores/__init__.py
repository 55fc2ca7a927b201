r"""Scores $\nabla_x \log p_t(x)$: exact ones for mixture data, and time reversal.

A *pointwise score* is a callable `score(t, x)` on one point `x: (*event,)`.
"""

from .exact import (
    MixtureMarginalScore as MixtureMarginalScore,
    TimeReversedScore as TimeReversedScore,
)
