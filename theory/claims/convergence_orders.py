"""Claim `convergence-orders` (texts in `convergence_orders.md`): the solvers converge at their
orders, in generation time."""

from __future__ import annotations

from pathlib import Path

import diffrax
import jax.random as jr
import numpy as np

from gpm_sde.verify import fit_order, strong_error, weak_error

from ..figures import Curve, CurvePanel, panel_row
from ..laws import GBM, SineDrift, step_sizes, strong_errors_gbm, strong_errors_reference
from ..types import Claim, Measurement, table

FINE = 1024
EM_STEPS = (8, 16, 32, 64, 128)
SRK_STEPS = (8, 16, 32, 64)
SEED = 1999
Z_TOLERANCE = 5.0
GBM_STRONG, GBM_WEAK = GBM(mu=0.5, sigma=1.0), GBM(mu=1.0, sigma=0.5)
GBM_TEX = ("GBM $dX = \\tfrac12 X ds + X dW$", "GBM $dX = X ds + \\tfrac12 X dW$")
SINE = SineDrift()
ADDITIVE = "$dX = -\\sin X ds + 2 dW$ (additive)"
SCHEMES = (  # on the additive-noise problem: (solver name, solver, order, band)
    ("Euler–Maruyama", diffrax.Euler(), 1.0, 0.15),
    ("SRA1", diffrax.SRA1(), 1.5, 0.2),
    ("ShARK", diffrax.ShARK(), 1.5, 0.2),
)
HEADER = ["solver", "order", "problem", "theory", "fitted slope", "bootstrap SE"]
HEADER += ["95% bootstrap CI", "band", "\\|slope − theory\\| / band"]


def run(fast: bool, out_dir: Path) -> Measurement:
    n = 1000 if fast else 8000
    key, rng = jr.key(SEED), np.random.default_rng(SEED)
    h_em, h_srk = step_sizes(1.0, EM_STEPS), step_sizes(1.0, SRK_STEPS)
    diff, _ = strong_errors_gbm(GBM_STRONG, jr.fold_in(key, 0), n, EM_STEPS, FINE)
    _, sq = strong_errors_gbm(GBM_WEAK, jr.fold_in(key, 1), n, EM_STEPS, FINE)
    # Euler–Maruyama's exact weak errors, against which the estimated ones are z-scored.
    exact = np.array([GBM_WEAK.euler_second_moment(m) - GBM_WEAK.second_moment() for m in EM_STEPS])
    z_weak = (sq.mean(axis=1) - exact) / (sq.std(axis=1, ddof=1) / np.sqrt(n))
    fit_strong = fit_order(h_em, diff, strong_error, rng)
    fit_weak = fit_order(h_em, sq, weak_error, rng)
    # (solver, kind, problem, figure tag, theoretical order, band, fit)
    studies = [
        ("Euler–Maruyama", "strong", GBM_TEX[0], "GBM", 0.5, 0.15, fit_strong),
        ("Euler–Maruyama", "weak ($X^2$)", GBM_TEX[1], "GBM", 1.0, 0.15, fit_weak),
    ]
    for i, (label, solver, order, band) in enumerate(SCHEMES):
        err = strong_errors_reference(SINE, solver, jr.fold_in(key, 2 + i), n, SRK_STEPS, FINE)
        fit = fit_order(h_srk, err, strong_error, rng)
        studies.append((label, "strong", ADDITIVE, "additive noise", order, band, fit))
    ratios, rows = [], []
    for label, kind, problem, _, order, band, fit in studies:
        ratios.append(abs(fit.slope - order) / band)
        ci = f"[{fit.ci[0]:.3f}, {fit.ci[1]:.3f}]"
        cells = [f"{fit.slope:.3f}", f"{fit.se:.3f}", ci, f"±{band:g}", f"{ratios[-1]:.2f}"]
        rows.append([label, kind, problem, f"{order:g}", *cells])
    values = dict(
        n=n, fine=FINE, em_steps=EM_STEPS, srk_steps=SRK_STEPS, studies=table(HEADER, rows),
        z_max=np.abs(z_weak).max(), z_weak=", ".join(f"{z:.2f}" for z in z_weak),
    )  # fmt: skip
    panels = []
    for kind in ("strong", "weak ($X^2$)"):
        curves = []
        for j, (label, _, _, tag, order, _, fit) in enumerate(s for s in studies if s[1] == kind):
            log_h, color = np.log2(fit.h), f"C{j}"
            curves.append(
                Curve(f"{label}, {tag}: slope {fit.slope:.2f}", log_h, fit.error, "o-", color)
            )
            reference = fit.error[-1] * (fit.h / fit.h[-1]) ** order
            curves.append(Curve("", log_h, reference, "--", color))
        title = f"{kind} order (dashed: theoretical slope)"
        panels.append(CurvePanel(title, curves, xlabel="log₂ step size h", log_y=True))
    figure = panel_row(
        panels, "Convergence orders: error against step size", out_dir / "convergence-orders.png"
    )
    measured = max(*ratios, float(np.abs(z_weak).max()) / Z_TOLERANCE)
    return Measurement(measured, 1.0, values, figure)


CLAIM = Claim.load(__file__, run)
