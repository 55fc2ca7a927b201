r"""Claim `diffflow-likelihood` (texts in `diffflow_likelihood.md`): DiffFlow's likelihood along
its $g = 0$ flow is exact in the Gaussian case."""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from gpm_sde import SDE, GaussianMixture, diffflow, flow_log_likelihood
from gpm_sde.flows import GaussianDiffFlow, gaussian_diffflow
from gpm_sde.scores import AnnealedScore, SmoothedMixtureScore

from ..laws import DIFFFLOW_T as T, gaussian, gaussian_problem
from ..types import Claim, Measurement, table

RTOL = 1e-8  # rtol = atol of `flow_log_likelihood`'s adaptive solver
COARSE = 1e-6  # a coarser one, run to show that the error follows the solver's tolerance
MOMENT_RTOL = 1e-10  # the moment ODE's, behind the exact generated score and the reference
TOLERANCE = 1e-6  # nats: 100 × RTOL (see the justification)
SEED = 2023_0601
CHECK_TIMES = (T / 3, 2 * T / 3, T)
HARD_RADIUS = 4.0  # Mahalanobis radius of the hard points, along the principal axes of p_{s₁}


class _ScaledScore(eqx.Module):
    """`c * score(s, x)`: `c = 1` for the claim, `c = 0.9` for the control. `c` is an array,
    so both share one compiled solve."""

    score: GaussianDiffFlow
    c: Float[Array, ""]

    def __call__(self, s: Float[Array, ""], x: Float[Array, " d"]) -> Float[Array, " d"]:
        return self.c * self.score(s, x)


@eqx.filter_jit
def _points(law: GaussianMixture, key: PRNGKeyArray, n: int) -> Float[Array, "m d"]:
    """`n` draws of $p_{s_1}$, then the four points at Mahalanobis radius `HARD_RADIUS` along
    its principal axes (far in the tails, where the density is about $e^{-8}$ of the mode's)."""
    w, v = jnp.linalg.eigh(law.covs[0])
    axes = (v * jnp.sqrt(w)).T
    hard = law.means[0] + HARD_RADIUS * jnp.concatenate([axes, -axes])
    return jnp.concatenate([law.sample(key, n), hard])


@eqx.filter_jit
def _reference(law: GaussianMixture, x: Float[Array, "m d"]) -> Float[Array, " m"]:
    return jax.vmap(law.log_prob)(x)


def _errors(sde: SDE, start: GaussianMixture, flow: GaussianDiffFlow, n: int, tol: float) -> list:
    """Per check time: (max error over the drawn points, over the hard points, the largest
    |log p| among them), nats."""
    out = []
    for i, s1 in enumerate(CHECK_TIMES):
        law = flow.law(s1)
        x = _points(law, jr.fold_in(jr.key(SEED), i), n)
        ll = np.asarray(flow_log_likelihood(sde, start, x, s1=s1, rtol=tol, atol=tol))
        ref = np.asarray(_reference(law, x))
        err = np.abs(ll - ref)
        out.append((float(err[:n].max()), float(err[n:].max()), float(np.abs(ref).max())))
    return out


def run(fast: bool, out_dir: Path) -> Measurement:
    n = 16 if fast else 256
    problem, text = gaussian_problem(SEED)
    m, s0, mu0, sigma0, beta, sigma, a = problem
    flow = gaussian_diffflow(*problem, t1=T, rtol=MOMENT_RTOL)
    real = AnnealedScore(SmoothedMixtureScore(gaussian(m, s0)), sigma)
    # DiffFlow at g = 0, ẋ = ax + β(∇log q_σ(s) − c∇log p_s): c = 1, and 0.9 for the control
    sde, scaled = (
        diffflow(real, _ScaledScore(flow, jnp.asarray(c)), beta, 0.0, f=a) for c in (1.0, 0.9)
    )
    start = gaussian(mu0, sigma0)
    fine = _errors(sde, start, flow, n, RTOL)
    coarse = _errors(sde, start, flow, n, COARSE)
    control = _errors(scaled, start, flow, n, RTOL)
    rows = [
        [
            f"{s1:.3g}",
            f"{f[0]:.1e}",
            f"{f[1]:.1e}",
            f"{max(c[:2]):.1e}",
            f"{max(k[:2]):.2f}",
            f"{f[2]:.1f}",
        ]
        for s1, f, c, k in zip(CHECK_TIMES, fine, coarse, control, strict=True)
    ]
    header = [
        "$s_1$",
        f"drawn: max error (tol {RTOL:g})",
        f"hard: max error (tol {RTOL:g})",
        f"max error (tol {COARSE:g})",
        "control: 0.9 × generated score",
        "largest \\|log p\\|",
    ]
    values = dict(
        **text, n=n, radius=HARD_RADIUS, rtol=RTOL, coarse=COARSE, cases=table(header, rows),
    )  # fmt: skip
    return Measurement(max(max(e[:2]) for e in fine), TOLERANCE, values)


CLAIM = Claim.load(__file__, run)
