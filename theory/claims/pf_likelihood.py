"""Claim `pf-likelihood` (texts in `pf_likelihood.md`): the probability-flow likelihood with
exact scores is exact."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import equinox as eqx
import jax
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float

from gpm_sde import GaussianMixture, MixtureMarginalScore, log_likelihood
from gpm_sde.processes import AbstractLinearProcess, subvp, ve, vp

from ..laws import mixture_2d, random_mixture
from ..types import Claim, Measurement, table

EXACT_PRIOR_TOLERANCE = 1e-3
GAP_SDS = 5.0
ISSUE_BOUND = 1e-2  # the issue's bound for the default prior, reported against the errors
RTOL = ATOL = 1e-6
EPS = 1e-5
SEED = 2021
LOG_LIKELIHOOD = partial(log_likelihood, eps=EPS, rtol=RTOL, atol=ATOL)


class _ScaledScore(eqx.Module):
    """The control: a score off by a constant factor, `c * score(t, x)`."""

    score: MixtureMarginalScore
    c: float

    def __call__(self, t: Float[Array, ""], x: Float[Array, " d"]) -> Float[Array, " d"]:
        return self.c * self.score(t, x)


@eqx.filter_jit
def _log_probs(law: GaussianMixture, x: Float[Array, "n d"], process: AbstractLinearProcess):
    r"""$\log q(x)$ (the data at $t = 0$) and $\log p_\epsilon(x)$, exactly."""
    at_eps = process.marginal(law, EPS)
    return jax.vmap(law.log_prob)(x), jax.vmap(at_eps.log_prob)(x)


def gap_scale(process: AbstractLinearProcess, law: GaussianMixture) -> float:
    r"""$\alpha(T)\,|\mathbb{E}_q x| / \sigma(T)$: the spread, over data points, of the prior gap
    $\log\pi(x_T) - \log p_T(x_T) = -\alpha(T)\,\mathbb{E}_q[x]\cdot x_T/\sigma(T)^2 +
    O(\alpha^2)$ (expand each component's exponent to first order in $\alpha$), with
    $x_T \sim p_T \approx \mathcal{N}(0, \sigma(T)^2 I)$."""
    T = float(process.T)
    mean_norm = float(np.linalg.norm(np.asarray(law.mean())))
    return float(process.alpha(T)) * mean_norm / float(process.sigma(T))


def run(fast: bool, out_dir: Path) -> Measurement:
    """Both priors for VP and sub-VP, the exact prior for VE, on a 2-D and a 3-D mixture."""
    n = 16 if fast else 256
    laws = {"2-D, 3 comp.": mixture_2d()}
    if not fast:
        laws["3-D, 4 comp. (random)"] = random_mixture(np.random.default_rng(SEED), 3, 4)
    processes = {"VP": (vp(), True), "sub-VP": (subvp(), True), "VE": (ve(), False)}
    rows, exact, default, over = [], [], [], []
    for i, (law_name, law) in enumerate(laws.items()):
        x = law.sample(jr.fold_in(jr.key(SEED), i), n)
        for process_name, (process, with_default) in processes.items():
            score = MixtureMarginalScore(process, law)
            log_q, log_p_eps = (np.asarray(v) for v in _log_probs(law, x, process))
            ll = LOG_LIKELIHOOD(process, score, x, prior=process.marginal(law, process.T))
            exact.append(np.abs(np.asarray(ll) - log_p_eps).max())
            cells = ["—"] * 4
            if with_default:
                err = np.asarray(LOG_LIKELIHOOD(process, score, x)) - log_q
                worst, scale = np.abs(err).max(), gap_scale(process, law)
                tolerance = GAP_SDS * scale + EXACT_PRIOR_TOLERANCE
                default.append(worst / tolerance)
                cells = [f"{v:.2e}" for v in (worst, np.sqrt(np.mean(err**2)), scale, tolerance)]
                if worst > ISSUE_BOUND:
                    over.append(f"{law_name} {process_name} ({worst:.2e})")
            rows.append([law_name, process_name, f"{exact[-1]:.2e}", *cells])
    # The control: a score 0.9 times the exact one (VP, 2-D law).
    law, process = mixture_2d(), vp()
    x = law.sample(jr.key(SEED), n)
    wrong = _ScaledScore(MixtureMarginalScore(process, law), 0.9)
    ll = np.asarray(LOG_LIKELIHOOD(process, wrong, x))
    control = float(np.abs(ll - np.asarray(_log_probs(law, x, process)[0])).max())
    issue = (
        f"Every default-prior error is within the issue's {ISSUE_BOUND:g} nats."
        if not over
        else "The issue's bound of 1e-2 nats for the default prior holds only for data whose "
        f"mean is small: the largest errors over these points exceed it for {', '.join(over)}, "
        "as the gap scale predicts (the largest |z| of a few hundred normal draws is about 3)."
    )
    header = ["law", "process", "(b) exact prior: max", "(a) default prior: max", "(a) RMS"]
    header += ["gap scale", "(a) tolerance"]
    default_ratio, exact_ratio = max(default), max(exact) / EXACT_PRIOR_TOLERANCE
    values = dict(
        default=default_ratio, exact=exact_ratio, n=n, rtol=RTOL, eps=EPS,
        cases=table(header, rows), issue=issue, control=control,
    )  # fmt: skip
    return Measurement(float(max(default_ratio, exact_ratio)), 1.0, values)


CLAIM = Claim.load(__file__, run)
