r"""Claim `pf-likelihood`: the probability-flow likelihood with exact scores is exact."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

import gpm_sde
from gpm_sde import AbstractLinearProcess, GaussianMixture, MixtureMarginalScore, subvp, ve, vp

from ..laws import mixture_2d, random_mixture
from ..types import Claim, Result, table

EXACT_PRIOR_TOLERANCE = 1e-3
GAP_SDS = 5.0
ISSUE_BOUND = 1e-2
"""The issue's bound for the default prior, reported against the measured errors."""
RTOL = ATOL = 1e-6
EPS = 1e-5
SEED = 2021


class _ScaledScore(eqx.Module):
    """The control: a score off by a constant factor, `c * score(t, x)`."""

    score: MixtureMarginalScore
    c: float

    def __call__(self, t: Float[Array, ""], x: Float[Array, " d"]) -> Float[Array, " d"]:
        return self.c * self.score(t, x)


@eqx.filter_jit
def _log_probs(
    law: GaussianMixture, x: Float[Array, "n d"], process: AbstractLinearProcess
) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
    r"""$\log q(x)$ (the data at $t = 0$) and $\log p_\epsilon(x)$, exactly."""
    at_eps = process.marginal(law, EPS)
    return jax.vmap(law.log_prob)(x), jax.vmap(at_eps.log_prob)(x)


@eqx.filter_jit
def _sample(law: GaussianMixture, key: PRNGKeyArray, n: int) -> Float[Array, "n d"]:
    """`n` draws of the data law."""
    return law.sample(key, n)


def gap_scale(process: AbstractLinearProcess, law: GaussianMixture) -> float:
    r"""$\alpha(T)\,|\mathbb{E}_q x| / \sigma(T)$: the spread, over data points, of the prior gap
    $\log\pi(x_T) - \log p_T(x_T) = -\alpha(T)\,\mathbb{E}_q[x]\cdot x_T/\sigma(T)^2 +
    O(\alpha^2)$ (expand each component's exponent to first order in $\alpha$), with
    $x_T \sim p_T \approx \mathcal{N}(0, \sigma(T)^2 I)$."""
    T = float(process.T)
    mean_norm = float(np.linalg.norm(np.asarray(law.mean())))
    return float(process.alpha(T)) * mean_norm / float(process.sigma(T))


@dataclass(frozen=True)
class _Case:
    """One law and process: the errors, nats, over the points."""

    law: str
    process: str
    exact_prior: float  # max |log-lik with the exact p_T as prior − log p_ε(x)|
    default_max: float | None  # max |log-lik with the default prior − log q(x)|; None: not run
    default_rms: float | None  # its root mean square over the points
    default_tolerance: float | None  # GAP_SDS × gap_scale + EXACT_PRIOR_TOLERANCE


def _check(
    law_name: str,
    law: GaussianMixture,
    process_name: str,
    process: AbstractLinearProcess,
    x: Float[Array, "n d"],
    with_default: bool,
) -> _Case:
    """Both priors for one law and process."""
    score = MixtureMarginalScore(process, law)
    log_q, log_p_eps = (np.asarray(v) for v in _log_probs(law, x, process))
    ll_exact = np.asarray(
        gpm_sde.log_likelihood(
            process, score, x, eps=EPS, rtol=RTOL, atol=ATOL, prior=process.marginal(law, process.T)
        )
    )
    exact = float(np.abs(ll_exact - log_p_eps).max())
    if not with_default:
        return _Case(law_name, process_name, exact, None, None, None)
    ll_default = np.asarray(
        gpm_sde.log_likelihood(process, score, x, eps=EPS, rtol=RTOL, atol=ATOL)
    )
    err = ll_default - log_q
    tolerance = GAP_SDS * gap_scale(process, law) + EXACT_PRIOR_TOLERANCE
    return _Case(
        law_name,
        process_name,
        exact,
        float(np.abs(err).max()),
        float(np.sqrt(np.mean(err**2))),
        tolerance,
    )


def run(fast: bool, out_dir: Path) -> Result:
    """Both priors for VP and sub-VP, the exact prior for VE, on a 2-D and a 3-D mixture."""
    del out_dir
    n = 16 if fast else 256
    laws = {"2-D, 3 comp.": mixture_2d()}
    if not fast:
        laws["3-D, 4 comp. (random)"] = random_mixture(np.random.default_rng(SEED), 3, 4)
    processes = {"VP": (vp(), True), "sub-VP": (subvp(), True), "VE": (ve(), False)}
    cases = []
    for i, (law_name, law) in enumerate(laws.items()):
        x = _sample(law, jax.random.fold_in(jax.random.key(SEED), i), n)
        for process_name, (process, with_default) in processes.items():
            cases.append(_check(law_name, law, process_name, process, x, with_default))
    default = max(
        c.default_max / c.default_tolerance
        for c in cases
        if c.default_max is not None and c.default_tolerance is not None
    )
    exact = max(c.exact_prior for c in cases) / EXACT_PRIOR_TOLERANCE
    return Result(
        measured=max(default, exact),
        tolerance=1.0,
        justification=_JUSTIFICATION,
        details=_details(cases, default, exact, _control(n), n),
    )


def _control(n: int) -> float:
    """The largest error, nats, when the score is 0.9 times the exact one (VP, 2-D law)."""
    law, process = mixture_2d(), vp()
    x = _sample(law, jax.random.key(SEED), n)
    wrong = _ScaledScore(MixtureMarginalScore(process, law), 0.9)
    ll = np.asarray(gpm_sde.log_likelihood(process, wrong, x, eps=EPS, rtol=RTOL, atol=ATOL))
    return float(np.abs(ll - np.asarray(_log_probs(law, x, process)[0])).max())


def _details(cases: list[_Case], default: float, exact: float, control: float, n: int) -> str:
    """The summary, then one row per law and process, then the issue's bound and the control."""

    def fmt(v: float | None) -> str:
        return "—" if v is None else f"{v:.2e}"

    summary = table(
        ["part", "measured / tolerance"],
        [
            ["(a) default prior: max error / (5 × gap scale + 1e-3)", f"{default:.2f}"],
            ["(b) exact $p_T$ as prior: max error / 1e-3", f"{exact:.2f}"],
        ],
    )
    rows = [
        [
            c.law,
            c.process,
            fmt(c.exact_prior),
            fmt(c.default_max),
            fmt(c.default_rms),
            fmt(
                None
                if c.default_tolerance is None
                else (c.default_tolerance - EXACT_PRIOR_TOLERANCE) / GAP_SDS
            ),
            fmt(c.default_tolerance),
        ]
        for c in cases
    ]
    defaults = [c for c in cases if c.default_max is not None]
    over = [c for c in defaults if c.default_max is not None and c.default_max > ISSUE_BOUND]
    issue = (
        f"Every default-prior error is within the issue's {ISSUE_BOUND:g} nats."
        if not over
        else "The issue's bound of 1e-2 nats for the default prior holds only for data whose "
        "mean is small: the largest errors over these points exceed it for "
        + ", ".join(f"{c.law} {c.process} ({fmt(c.default_max)})" for c in over)
        + ", as the gap scale predicts (the largest |z| of a few hundred normal draws is "
        "about 3)."
    )
    return "\n\n".join(
        [
            summary,
            f"{n} points $x \\sim q$ per law; `log_likelihood` with `MixtureMarginalScore`, "
            f"exact trace, Tsit5 with rtol = atol = {RTOL:g}, $\\epsilon$ = {EPS:g}. (b): error "
            "against $\\log p_\\epsilon(x)$ with `prior = process.marginal(law, T)`. (a): error "
            "against $\\log q(x)$ with the default prior; its tolerance is 5 gap scales "
            "$\\alpha(T)|\\mathbb{E}_q x|/\\sigma(T)$ plus the 1e-3 of (b). The RMS error "
            "over the points matches the gap scale, as the first-order theory says it should.",
            table(
                [
                    "law",
                    "process",
                    "(b) exact prior: max",
                    "(a) default prior: max",
                    "(a) RMS",
                    "gap scale",
                    "(a) tolerance",
                ],
                rows,
            ),
            issue,
            f"**Control.** A score 0.9 times the exact one (VP, 2-D law) is off by "
            f"{control:.2f} nats: the check sees a 10% score error.",
        ]
    )


_JUSTIFICATION = (
    "Measured = max((a), (b)) against 1, so the claim passes exactly when both parts do. The "
    "method has two errors and nothing random (the trace is exact): the adaptive solver's and "
    "the prior's. **(b)** With the exact $p_T$ as prior the only error is the solver's, "
    "controlled by rtol = atol = 1e-6 on the state and the accumulated divergence, so some "
    "1e-6 to 1e-5 nats are expected; 1e-3 leaves room, while a 10% score error moves the "
    "result by more than 0.1 nats (the control). **(a)** The default prior $\\pi = "
    "\\mathcal{N}(0, \\sigma(T)^2 I)$ ignores the data's trace in $p_T$. The error is then the "
    "prior gap $\\log\\pi(x_T) - \\log p_T(x_T)$ at the flow's end point $x_T$ (the difference "
    "of the two priors' log-likelihoods of a point is that gap, exactly), and to first order in "
    "$\\alpha(T) \\approx "
    "0.0066$ (VP, sub-VP) it is $-\\alpha(T)\\,\\mathbb{E}_q[x]\\cdot x_T/\\sigma(T)^2$: "
    "across data points a centred normal of standard deviation $\\alpha(T)|\\mathbb{E}_q "
    "x|/\\sigma(T)$, the gap scale. Five gap scales bound the largest of a few hundred such "
    "draws (a union bound: ≤ 256 × 5.7e-7 ≈ 1.5e-4 false alarms), and the 1e-3 of (b) "
    "covers the solver and the $O(\\alpha^2)$ terms (≈ 4e-5 × |x_T|²). The start time "
    "$\\epsilon$ = 1e-5 adds $\\sigma(\\epsilon)^2 \\approx 10^{-6}$ of smoothing, of order "
    "1e-6 nats against $\\log q$."
)


CLAIM = Claim(
    name="pf-likelihood",
    statement=(
        "Along the probability-flow ODE, $\\log p_\\epsilon(x) = \\log p_T(x_T) + "
        "\\int_\\epsilon^T \\nabla\\cdot v(t, x_t)\\,dt$: with exact scores and the exact "
        "terminal law as prior, `log_likelihood` returns the exact log-density of mixture data "
        "to 1e-3 nats (VP, sub-VP, VE); with the default prior (VP, sub-VP) its error is the "
        "prior gap, of size $\\alpha(T)|\\mathbb{E}_q x|/\\sigma(T)$ (0.004 nats for the "
        "2-D law)."
    ),
    source="Song et al. 2021, §4.3 and app. D.2 (eq. 39); Chen et al. 2018, thm. 1",
    method=(
        "Draw points from a 2-D three-component mixture (and, in full mode, a random 3-D "
        "four-component one), run `log_likelihood` with `MixtureMarginalScore` and the exact "
        "trace, and compare with the mixture's closed-form log-density: (b) with the exact "
        "$p_T$ as prior against $\\log p_\\epsilon(x)$, which isolates the ODE integration; "
        "(a) with the default prior against $\\log q(x)$, within five gap scales."
    ),
    run=run,
)
