r"""The reverse-time family of a forward process (Anderson 1982; Song et al. 2021)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._checks import check_callable, check_nonnegative_schedule, is_literal_zero
from ..processes import AbstractLinearProcess
from ..schedules import Function, ReversedSchedule, Schedule, as_schedule
from ..scores import TimeReversedScore
from ._diffusion import ScalarDiffusion
from ._drift import LinearDrift, ScoreDrift
from ._sde import SDE


def reverse(
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    lam: Schedule | None = None,
    *,
    label: str = "`score` of `reverse`",
) -> SDE:
    r"""The reverse-time SDE family of `process`, in generation time $s = T - t$:

    $$dY_s = \Big[-f(T-s)\,Y_s + \tfrac12\big(g(T-s)^2 + \lambda(s)^2\big)\,
    \nabla\log p_{T-s}(Y_s)\Big]\,ds + \lambda(s)\,dW_s .$$

    For every $\lambda \ge 0$, $Y_s$ has the law $p_{T-s}$ of the forward process at $t = T - s$
    (Anderson 1982; Song et al. 2021, eq. 6 for $\lambda = g$ and eq. 13 for
    $\lambda = 0$; Zhang & Chen 2021 for the family). Run it from the prior at $s = 0$ to
    $s = T$ (or $T - \epsilon$) with [`simulate`][gpm_sde.simulate]: increasing time, as
    diffrax's stochastic solvers require.

    **Arguments:**

    - `process`: the forward process (provides $f$, $g$ and $T$).
    - `score`: the score of $p_t$ in **diffusion** time $t$: pointwise, `score(t, x)` on one
      point, or a cloud score ([`AbstractCloudScore`][gpm_sde.scores.AbstractCloudScore], e.g.
      [`KernelScore`][gpm_sde.scores.KernelScore]), which keeps acting on the whole cloud. It
      is wrapped in a [`TimeReversedScore`][gpm_sde.scores.TimeReversedScore].
    - `lam`: $\lambda(s)$, a float or callable of **generation** time $s$; `None` means
      $\lambda(s) = g(T - s)$ (the reverse SDE); `0` gives the probability-flow ODE (no
      diffusion term).
    - `label`: how error messages name `score`; the samplers built on `reverse` pass their
      own name.

    **Returns:** an [`SDE`][gpm_sde.SDE] in generation time, defined for $s \in [0, T]$
    (its `time_range`). [`simulate`][gpm_sde.simulate] checks, once per solve, that `score`
    returns the expected shape (see [`SDE.check_scores`][gpm_sde.sde.SDE.check_scores]) and
    refuses `t0 < 0` or `t1 > T` (outside, the score would be called at a diffusion time
    outside $[0, T]$ and the samples would be finite but wrong).

    **Time resolution.** The score receives $t = T - s$ computed in the dtype of the solver's
    time $s$. [`simulate`][gpm_sde.simulate] carries time in float64 when `jax_enable_x64` is
    on (whatever the cloud's dtype), so the score sees $t$ to float64 round-off: within
    $\operatorname{ulp}(T)/2 = 8.9\times10^{-16}$ at $T = 10$, e.g. $t = 10^{-5}$ to
    $10^{-10}$ relative. With x64 off, times are float32 and near $s = T$ the score sees $t$
    only to within $\operatorname{ulp}(T)/2$: $T - (T - 10^{-5})$ is $9.54\times10^{-6}$ at
    $T = 10$ (4.6 % off), and $t$ values closer than $\operatorname{ulp}(T)$
    ($9.5\times10^{-7}$ at $T = 10$, $1.2\times10^{-7}$ at $T = 1$) cannot be told apart.
    Enable x64 (`jax.config.update("jax_enable_x64", True)`) for exact times.
    """
    if not isinstance(process, AbstractLinearProcess):
        raise TypeError(
            f"`process` must be a forward process such as `vp()`, got {type(process).__name__}."
        )
    check_callable(
        "score",
        score,
        "(t, x) -> ∇log p_t(x)",
        fix="pass a score on one point, or a cloud score (`gpm_sde.scores.AbstractCloudScore`)",
    )
    T = process.T
    f_rev = ReversedSchedule(Function(process.drift_coeff), T)
    g2_rev = ReversedSchedule(Function(process.diffusion_squared), T)
    rev_score = TimeReversedScore(score, T)
    if lam is None:
        weight = g2_rev  # ½(g² + λ²) with λ = g
        diffusion = ScalarDiffusion(ReversedSchedule(Function(process.diffusion), T))
    else:
        check_nonnegative_schedule("lam", lam, fix="λ is a noise scale")
        lam_s = as_schedule(lam, "lam")
        weight = 0.5 * (g2_rev + lam_s**2)
        diffusion = None if is_literal_zero(lam) else ScalarDiffusion(lam_s)
    drift = LinearDrift(-f_rev) + ScoreDrift(weight, rev_score, label)
    return SDE(drift, diffusion, time_range=(0.0, float(T)))


def probability_flow(
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    *,
    label: str = "`score` of `probability_flow`",
) -> SDE:
    r"""The probability-flow ODE of `process` in generation time $s = T - t$,

    $$\frac{dY_s}{ds} = -f(T-s)\,Y_s + \tfrac12 g(T-s)^2\,\nabla\log p_{T-s}(Y_s),$$

    the $\lambda = 0$ member of [`reverse`][gpm_sde.reverse] (Song et al. 2021, eq. 13). It has
    the marginals of the forward process and is deterministic, so it gives exact likelihoods.

    **Arguments:**

    - `process`: the forward process.
    - `score`: the score `score(t, x)` in diffusion time, pointwise or a cloud score (as in
      [`reverse`][gpm_sde.reverse], whose time resolution it shares).
    - `label`: how error messages name `score`.
    """
    return reverse(process, score, lam=0.0, label=label)
