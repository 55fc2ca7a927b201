r"""This library's form of the DiffFlow SDE (Zhang et al. 2023): GANs and diffusion at its ends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._checks import check_callable, check_nonnegative_schedule, is_literal_zero
from ..schedules import Schedule, as_schedule
from ..sde import SDE, AbstractDrift, LinearDrift, ScalarDiffusion, ScoreDrift


def _as_drift(f: AbstractDrift | Schedule | None) -> AbstractDrift | None:
    if f is None or isinstance(f, AbstractDrift):
        return f
    return LinearDrift(as_schedule(f, "f"))


def diffflow(
    real_score: Callable[..., Any],
    gen_score: Callable[..., Any],
    beta: Schedule,
    g: Schedule,
    f: AbstractDrift | Schedule | None = None,
) -> SDE:
    r"""This library's form of the DiffFlow SDE (Zhang et al. 2023), in generation time $s$:

    $$dx = \Big[f(s, x) + \beta(s)\,\nabla\log q_{\sigma(s)}(x)
    - \big(\beta(s) - \tfrac12 g(s)^2\big)\nabla\log p_s(x)\Big]\,ds + g(s)\,dW_s .$$

    Its law solves $\partial_s p = -\nabla\cdot\big(p\,[f + \beta\nabla\log(q_\sigma/p)]\big)$,
    which does not contain $g$: changing $g$ moves weight between the real-score and
    generated-score terms and leaves every marginal unchanged (it is
    [`reweight_noise`][gpm_sde.reweight_noise] applied to the $g = 0$ flow). $g = 0$ is the
    GAN end ([`gan_flow`][gpm_sde.gan_flow]), $g^2 = 2\beta$ the Langevin end
    ([`langevin_flow`][gpm_sde.langevin_flow]).

    The equation is reconstructed from the abstract of Zhang et al. 2023 (a drift made of
    weighted scores of the real and the generated data; weights that can be changed while the
    marginals stay invariant; GANs and score-based diffusion models as special cases; exact
    likelihood) and from the Fokker–Planck argument above, not copied from the paper's body:
    see the docs page Theory › DiffFlow, section "What is reconstructed".

    **Arguments:**

    - `real_score`: the annealed data score `(s, x) -> ∇log q_{σ(s)}(x)`, pointwise (e.g.
      [`AnnealedScore`][gpm_sde.scores.AnnealedScore]) or a cloud score.
    - `gen_score`: the score of the particles' own law $p_s$: pointwise `(s, x)`, or a cloud
      score such as [`KernelScore`][gpm_sde.scores.KernelScore].
    - `beta`: $\beta(s) \ge 0$; `g`: $g(s) \ge 0$ (floats or callables of $s$).
    - `f`: an extra drift: `None`, a schedule $a(s)$ meaning $f = a(s)\,x$, or any
      [`AbstractDrift`][gpm_sde.sde.AbstractDrift].
    """
    check_nonnegative_schedule("beta", beta)
    check_nonnegative_schedule("g", g)
    beta_s, g_s = as_schedule(beta), as_schedule(g)
    drift: AbstractDrift = ScoreDrift(
        beta_s, real_score, "`real_score` of `diffflow`"
    ) + ScoreDrift(-(beta_s - 0.5 * g_s**2), gen_score, "`gen_score` of `diffflow`")
    extra = _as_drift(f)
    if extra is not None:
        drift = extra + drift
    return SDE(drift, None if is_literal_zero(g) else ScalarDiffusion(g_s))


def gan_flow(
    real_score: Callable[..., Any],
    gen_score: Callable[..., Any],
    beta: Schedule,
    f: AbstractDrift | Schedule | None = None,
) -> SDE:
    r"""DiffFlow's GAN end, $g = 0$: the deterministic flow

    $$\frac{dx}{ds} = f + \beta(s)\big(\nabla\log q_{\sigma(s)} - \nabla\log p_s\big)(x)
    = f + \beta(s)\,\nabla_x\operatorname{logit} D^*_s(x),$$

    the gradient of the logit of the optimal vanilla-GAN discriminator
    $D^* = q_\sigma/(q_\sigma + p_s)$ (Goodfellow et al. 2014, Prop. 1). That the GAN dynamics
    are described by DiffFlow is stated in Zhang et al. 2023, abstract; that they are its member
    $g = 0$ is how this library's form of the DiffFlow SDE places them.
    """
    return diffflow(real_score, gen_score, beta, 0.0, f)


def langevin_flow(
    score: Callable[..., Any],
    beta: Schedule = 1.0,
    f: AbstractDrift | Schedule | None = None,
    *,
    label: str = "`score` of `langevin_flow`",
) -> SDE:
    r"""Overdamped (annealed) Langevin dynamics, DiffFlow's diffusion end $g^2 = 2\beta$:

    $$dx = \big[f(s, x) + \beta(s)\,\nabla\log q_s(x)\big]\,ds + \sqrt{2\beta(s)}\,dW_s .$$

    With $f = 0$ and $d\tau = \beta(s)\,ds$ this is $dx = \nabla\log q\,d\tau + \sqrt2\,dW_\tau$,
    whose stationary law is $q$ (Roberts & Tweedie 1996; Song & Ermon 2019, eq. 4 in the limit
    of a small step): $\beta \ge 0$ is a time change. One Euler–Maruyama step of length
    $\Delta s$ is the unadjusted Langevin update $x + h\nabla\log q(x) + \sqrt{2h}\,z$ with
    step $h = \beta(s)\Delta s$. In this library's form of the DiffFlow SDE
    ([`diffflow`][gpm_sde.diffflow]) $q_s = q_{\sigma(s)}$ is the data law smoothed at the level
    $\sigma(s)$ and the generated-score term vanishes; with $\beta$ and $\sigma$ piecewise
    constant it is annealed Langevin dynamics (NCSN, Song & Ermon 2019, Algorithm 1;
    [`annealed_langevin`][gpm_sde.samplers.annealed_langevin]).

    **Arguments:**

    - `score`: the score `(s, x) -> ∇log q_s(x)` in the SDE's own time $s$ (a
      time-independent score ignores `s`; an annealed data score is e.g.
      [`AnnealedScore`][gpm_sde.scores.AnnealedScore]): pointwise on one point, or a cloud
      score (called on the whole cloud).
    - `beta`: $\beta(s) \ge 0$, a float or callable of $s$; `1` is plain Langevin.
    - `f`: an extra drift: `None`, a schedule $a(s)$ meaning $f = a(s)\,x$, or any
      [`AbstractDrift`][gpm_sde.sde.AbstractDrift].
    - `label`: how error messages name `score`.

    **Returns:** an [`SDE`][gpm_sde.SDE]; run it with [`simulate`][gpm_sde.simulate].
    """
    check_callable("score", score, "(s, x) -> ∇log q_s(x)")
    check_nonnegative_schedule("beta", beta)
    beta_s = as_schedule(beta)
    drift: AbstractDrift = ScoreDrift(beta_s, score, label)
    extra = _as_drift(f)
    if extra is not None:
        drift = extra + drift
    return SDE(drift, ScalarDiffusion((2.0 * beta_s) ** 0.5))
