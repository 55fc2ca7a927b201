r"""The reverse-time family of a forward process (Anderson 1982; Song et al. 2021)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._checks import check_positive, is_concrete
from ..processes import AbstractLinearProcess
from ..schedules import Constant, Function, ReversedSchedule, Schedule, as_schedule
from ..scores import TimeReversedScore
from ._zero import is_literal_zero
from .diffusion import ScalarDiffusion
from .drift import LinearDrift, ScoreDrift
from .sde import SDE


def reverse(
    process: AbstractLinearProcess, score: Callable[..., Any], lam: Schedule | None = None
) -> SDE:
    r"""The reverse-time SDE family of `process`, in generation time $s = T - t$:

    $$dY_s = \Big[-f(T-s)\,Y_s + \tfrac12\big(g(T-s)^2 + \lambda(s)^2\big)\,
    \nabla\log p_{T-s}(Y_s)\Big]\,ds + \lambda(s)\,dW_s .$$

    For every $\lambda \ge 0$, $Y_s$ has the law $p_{T-s}$ of the forward process at $t = T - s$
    (DESIGN §1; Anderson 1982; Song et al. 2021, eq. 6 for $\lambda = g$ and eq. 13 for
    $\lambda = 0$; Zhang & Chen 2021 for the family). Run it from the prior at $s = 0$ to
    $s = T$ (or $T - \epsilon$) with [`simulate`][gpm_sde.simulate]: increasing time, as
    diffrax's stochastic solvers require.

    **Arguments:**

    - `process`: the forward process (provides $f$, $g$ and $T$).
    - `score`: the pointwise score `score(t, x)` of $p_t$ in **diffusion** time $t$, on one point.
    - `lam`: $\lambda(s)$, a float or callable of **generation** time $s$; `None` means
      $\lambda(s) = g(T - s)$ (the reverse SDE); `0` gives the probability-flow ODE (no
      diffusion term).

    **Returns:** an [`SDE`][gpm_sde.SDE] in generation time.
    """
    if not isinstance(process, AbstractLinearProcess):
        raise TypeError(
            f"`process` must be a forward process such as `vp()`, got {type(process).__name__}."
        )
    if not callable(score):
        raise TypeError(
            f"`score` must be a callable `(t, x) -> ∇log p_t(x)` on one point, got "
            f"{type(score).__name__}."
        )
    T = process.T
    f_rev = ReversedSchedule(Function(process.drift_coeff), T)
    g2_rev = ReversedSchedule(Function(process.diffusion_squared), T)
    rev_score = TimeReversedScore(score, T)
    if lam is None:
        weight = g2_rev  # ½(g² + λ²) with λ = g
        diffusion = ScalarDiffusion(ReversedSchedule(Function(process.diffusion), T))
    else:
        lam_s = as_schedule(lam, "lam")
        if isinstance(lam_s, Constant) and is_concrete(lam_s.value):
            check_positive("lam", lam_s.value, strict=False, fix="λ is a noise scale")
        weight = 0.5 * (g2_rev + lam_s**2)
        diffusion = None if is_literal_zero(lam) else ScalarDiffusion(lam_s)
    drift = LinearDrift(-f_rev) + ScoreDrift(weight, rev_score)
    return SDE(drift, diffusion)


def probability_flow(process: AbstractLinearProcess, score: Callable[..., Any]) -> SDE:
    r"""The probability-flow ODE of `process` in generation time $s = T - t$,

    $$\frac{dY_s}{ds} = -f(T-s)\,Y_s + \tfrac12 g(T-s)^2\,\nabla\log p_{T-s}(Y_s),$$

    the $\lambda = 0$ member of [`reverse`][gpm_sde.reverse] (Song et al. 2021, eq. 13). It has
    the marginals of the forward process and is deterministic, so it gives exact likelihoods.

    **Arguments:**

    - `process`: the forward process.
    - `score`: the pointwise score `score(t, x)` in diffusion time.
    """
    return reverse(process, score, lam=0.0)
