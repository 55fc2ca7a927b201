"""Random affine schedules $c(s) = c_0 + c_1 s$ for the claims, drawn with NumPy."""

from __future__ import annotations

import numpy as np
from jaxtyping import Array, Float

from gpm_sde.schedules import AbstractSchedule, Constant, Function


def _time(s: Float[Array, ""]) -> Float[Array, ""]:
    """The identity schedule $s \\mapsto s$."""
    return s


def affine(c0: float, c1: float) -> AbstractSchedule:
    """The schedule $c_0 + c_1 s$."""
    return Constant(c0) + Constant(c1) * Function(_time)


def random_affine(
    rng: np.random.Generator, lo: float, hi: float, t1: float = 1.0
) -> tuple[AbstractSchedule, tuple[float, float]]:
    r"""An affine schedule whose values at $s = 0$ and $s = t_1$ are drawn uniformly from
    $[\text{lo}, \text{hi}]$, so it stays in that interval on $[0, t_1]$; returned with its two
    end values."""
    v0, v1 = rng.uniform(lo, hi, 2)
    return affine(float(v0), float((v1 - v0) / t1)), (float(v0), float(v1))
