"""Claim `sampler-orders` (texts in `sampler_orders.md`): the few-step samplers' exact output
laws converge to the data law at their orders in the number of score evaluations."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

import gpm_sde
from gpm_sde import metrics, samplers
from gpm_sde.scores import MixtureMarginalScore
from gpm_sde.verify import fit_order, sampler_gaussian_law, weak_error

from ..figures import Curve, CurvePanel, panel_row
from ..types import Claim, Measurement, table

SEED = 7
EPS = 0.002
MEAN = jnp.array([1.0, -0.5])
COV = jnp.array([[0.5, 0.2], [0.2, 0.3]])
BAND = 0.2
# (label, sampler, options, theoretical order in NFE)
SAMPLERS = (
    ("EDM Heun", samplers.edm_heun, {}, 2.0),
    ("EDM stochastic (S_churn = 10)", samplers.edm_stochastic, {"s_churn": 10.0}, 2.0),
    ("DPM-Solver++(2M)", samplers.dpm_solver_pp_2m, {}, 2.0),
    ("DPM-Solver++(2S)", samplers.dpm_solver_pp_2s, {}, 2.0),
    ("DDIM (Euler ancestral, η = 0)", samplers.euler_ancestral, {"eta": 0.0}, 1.0),
    ("Euler ancestral (η = 1)", samplers.euler_ancestral, {"eta": 1.0}, 1.0),
)
PROCESSES = (("EDM", gpm_sde.edm), ("VP", gpm_sde.vp))
HEADER = ["sampler", "process", "order", "W₂ at each N", "NFE", "fitted slope", "band"]
HEADER += ["\\|slope − order\\| / band"]


def exact_errors(process, sampler, options, steps):
    """W₂ of the exact output law (from the exact p_T, to t = EPS) to the exact p_EPS, and
    the NFE, for each number of steps."""
    law = gpm_sde.GaussianMixture(jnp.ones(1), MEAN[None], COV[None])
    score = MixtureMarginalScore(process, law)
    start, target = process.marginal(law, process.T), process.marginal(law, EPS)
    errors, nfes = [], []
    for n in steps:
        plan = samplers.sampler_plan(
            sampler, process, score, steps=n, eps=EPS, to_zero=False, **options
        )
        m, c = sampler_gaussian_law(plan, start.means[0], start.covs[0])
        errors.append(float(metrics.gaussian_w2(m, c, target.means[0], target.covs[0])))
        nfes.append(plan.nfe)
    return np.array(errors), np.array(nfes)


def run(fast: bool, out_dir: Path) -> Measurement:
    steps = (32, 64, 128) if fast else (32, 64, 128, 256)
    rng = np.random.default_rng(SEED)
    rows, ratios, panels = [], [], []
    for proc_name, make in PROCESSES:
        process, curves = make(), []
        for j, (label, sampler, options, order) in enumerate(SAMPLERS):
            errors, nfes = exact_errors(process, sampler, options, steps)
            # Exact errors: one "path" per NFE, so the bootstrap SE is 0 by construction.
            fit = fit_order(1.0 / nfes, errors[:, None], weak_error, rng, resamples=2)
            ratios.append(abs(fit.slope - order) / BAND)
            w2 = ", ".join(f"{e:.2e}" for e in errors)
            nfe = ", ".join(str(int(v)) for v in nfes)
            cells = [f"{fit.slope:.3f}", f"±{BAND:g}", f"{ratios[-1]:.2f}"]
            rows.append([label, proc_name, f"{order:g}", w2, nfe, *cells])
            curves.append(Curve(f"{label}: {fit.slope:.2f}", np.log2(nfes), errors, "o-", f"C{j}"))
        panels.append(CurvePanel(f"{proc_name} process", curves, xlabel="log₂ NFE", log_y=True))
    figure = panel_row(
        panels, "Exact W₂ to the data law against NFE", out_dir / "sampler-orders.png"
    )
    values = dict(steps=steps, eps=EPS, studies=table(HEADER, rows), band=BAND)
    return Measurement(max(ratios), 1.0, values, figure)


CLAIM = Claim.load(__file__, run)
