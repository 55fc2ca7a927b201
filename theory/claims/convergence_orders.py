r"""Claim `convergence-orders`: the solvers converge at their orders, in generation time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import diffrax
import jax.random as jr
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gpm_sde.verify import OrderFit, fit_order, strong_error, weak_error

from ..laws import GBM, SineDrift, step_sizes, strong_errors_gbm, strong_errors_reference
from ..types import Claim, Result, table

FINE = 1024
EM_STEPS = (8, 16, 32, 64, 128)
SRK_STEPS = (8, 16, 32, 64)
SEED = 1999
Z_TOLERANCE = 5.0


@dataclass(frozen=True)
class _Study:
    """One fitted order against the theory's."""

    label: str
    kind: str  # "strong" or "weak"
    problem: str
    tag: str  # a short plain-text name of the problem, for the figure
    order: float  # the theoretical order
    band: float  # the largest accepted |slope - order|
    fit: OrderFit

    @property
    def ratio(self) -> float:
        """|slope − order| / band: at most 1 when the study passes."""
        return abs(self.fit.slope - self.order) / self.band


def _studies(n: int) -> tuple[list[_Study], np.ndarray]:
    """All the studies, each on its own `n` Brownian paths drawn on `FINE` steps, and the
    z-scores of the weak-error estimates against Euler–Maruyama's exact weak errors."""
    key = jr.key(SEED)
    rng = np.random.default_rng(SEED)
    gbm_strong, gbm_weak, sine = GBM(mu=0.5, sigma=1.0), GBM(mu=1.0, sigma=0.5), SineDrift()
    h_em, h_srk = step_sizes(1.0, EM_STEPS), step_sizes(1.0, SRK_STEPS)
    diff, _ = strong_errors_gbm(gbm_strong, jr.fold_in(key, 0), n, EM_STEPS, FINE)
    _, sq = strong_errors_gbm(gbm_weak, jr.fold_in(key, 1), n, EM_STEPS, FINE)
    exact = np.array([gbm_weak.euler_second_moment(m) - gbm_weak.second_moment() for m in EM_STEPS])
    z_weak = (sq.mean(axis=1) - exact) / (sq.std(axis=1, ddof=1) / np.sqrt(n))
    studies = [
        _Study(
            "Euler–Maruyama",
            "strong",
            "GBM $dX = \\tfrac12 X ds + X dW$",
            "GBM",
            0.5,
            0.15,
            fit_order(h_em, diff, strong_error, rng),
        ),
        _Study(
            "Euler–Maruyama",
            "weak ($X^2$)",
            "GBM $dX = X ds + \\tfrac12 X dW$",
            "GBM",
            1.0,
            0.15,
            fit_order(h_em, sq, weak_error, rng),
        ),
    ]
    for i, (label, solver, order, band) in enumerate(
        [
            ("Euler–Maruyama", diffrax.Euler(), 1.0, 0.15),
            ("SRA1", diffrax.SRA1(), 1.5, 0.2),
            ("ShARK", diffrax.ShARK(), 1.5, 0.2),
        ]
    ):
        err = strong_errors_reference(sine, solver, jr.fold_in(key, 2 + i), n, SRK_STEPS, FINE)
        studies.append(
            _Study(
                label,
                "strong",
                "$dX = -\\sin X ds + 2 dW$ (additive)",
                "additive noise",
                order,
                band,
                fit_order(h_srk, err, strong_error, rng),
            )
        )
    return studies, z_weak


def _figure(studies: list[_Study], path: Path) -> Path:
    """Log-log error against step size, one panel per kind, with dashed reference slopes."""
    kinds = sorted({s.kind for s in studies}, key=lambda k: k != "strong")
    fig = Figure(figsize=(5.0 * len(kinds), 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(np.asarray(fig.subplots(1, len(kinds))))
    for ax, kind in zip(axes, kinds, strict=True):
        for study in (s for s in studies if s.kind == kind):
            h, err = study.fit.h, study.fit.error
            label = f"{study.label}, {study.tag}: slope {study.fit.slope:.2f}"
            line = ax.loglog(h, err, "o-", ms=4, label=label)[0]
            ref = err[-1] * (h / h[-1]) ** study.order
            ax.loglog(h, ref, "--", color=line.get_color(), lw=0.8, alpha=0.7)
        ax.set_xlabel("step size $h$")
        ax.set_ylabel("strong error $E|X_T - \\hat X_T|$" if kind == "strong" else "weak error")
        ax.set_title(f"{kind} order (dashed: theoretical slope)", fontsize=10)
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    return path


def run(fast: bool, out_dir: Path) -> Result:
    """Fit every order; pass when every slope is within its band."""
    n = 1000 if fast else 8000
    studies, z_weak = _studies(n)
    return Result(
        measured=max(*(s.ratio for s in studies), float(np.abs(z_weak).max()) / Z_TOLERANCE),
        tolerance=1.0,
        justification=_JUSTIFICATION,
        details=_details(studies, z_weak, n),
        figure=_figure(studies, out_dir / "convergence-orders.png"),
    )


def _details(studies: list[_Study], z_weak: np.ndarray, n: int) -> str:
    """The setting, then one row per study, then the check of the weak errors themselves."""
    rows = [
        [
            s.label,
            s.kind,
            s.problem,
            f"{s.order:g}",
            f"{s.fit.slope:.3f}",
            f"{s.fit.se:.3f}",
            f"[{s.fit.ci[0]:.3f}, {s.fit.ci[1]:.3f}]",
            f"±{s.band:g}",
            f"{s.ratio:.2f}",
        ]
        for s in studies
    ]
    header = [
        "solver",
        "order",
        "problem",
        "theory",
        "fitted slope",
        "bootstrap SE",
        "95% bootstrap CI",
        "band",
        "\\|slope − theory\\| / band",
    ]
    return "\n\n".join(
        [
            f"{n} Brownian paths per study, each drawn once on {FINE} steps of $[0, 1]$ with its "
            "space-time Lévy area (`gpm_sde.verify.FineBrownianPath`); every coarser grid "
            "sums the fine increments exactly, so all step sizes see the same path. The solves "
            "are `gpm_sde.verify.solve_on_path`: fixed steps of the solver (`diffrax.StepTo`) "
            f"on the library's `SDE.terms`. Euler–Maruyama on {EM_STEPS} steps, the others on "
            f"{SRK_STEPS}. "
            "Strong error: the mean of $|X_T - \\hat X_T|$ against the exact GBM solution on the "
            "path, or against the same solver on the fine grid. Weak error: $|\\mathbb{E}\\hat "
            "X_T^2 - \\mathbb{E}X_T^2|$ estimated as the mean of $\\hat X_T^2 - X_T^2$ (common "
            "random numbers). The slope is the least-squares fit of log error on log $h$; its "
            "SE and CI come from 400 bootstrap resamples of the paths.",
            table(header, rows),
            "**The weak errors themselves.** Each step's factor $1 + \\mu h + \\sigma\\Delta W$ is "
            "independent, so Euler–Maruyama's $\\mathbb{E}\\hat X_T^2 = x_0^2((1 + \\mu h)^2 + "
            "\\sigma^2 h)^n$ exactly. The estimated weak errors are within "
            f"{np.abs(z_weak).max():.2f} SE of these exact values (one z per step size: "
            f"{', '.join(f'{z:.2f}' for z in z_weak)}; tolerance 5): the solver is "
            "Euler–Maruyama in law, not only in order.",
        ]
    )


_JUSTIFICATION = (
    "Measured = the largest |fitted slope − theoretical order| / band, and the largest |z| of "
    "the weak errors against their exact values / 5 (SE from the sample; five z-scores, so a "
    "false alarm has probability ≤ 3e-6), against 1. The "
    "Monte-Carlo error of a slope is its bootstrap SE (resampling whole paths, so the "
    "correlation between step sizes sharing a path is kept), about 0.01–0.03 at this N; "
    "over six seeds the test-size slopes (N = 4000) ranged 0.464–0.499 (EM strong), "
    "0.947–0.982 (EM weak), 1.498–1.529 (SRA1) and 1.490–1.506 (ShARK), consistent with it. "
    "The bands are wider than that on purpose: what limits them is the pre-asymptotic bias "
    "of a slope fitted over a finite range of step sizes (for EM's weak error it is known "
    "exactly: the exact Euler errors $x_0^2((1 + \\mu h)^2 + \\sigma^2 h)^n - "
    "x_0^2 e^{(2\\mu + \\sigma^2)T}$ have slope 0.935 over these steps, not 1). ±0.15 for "
    "orders ½ and 1, ±0.2 for 1.5, where an order-1.5 scheme's $O(h^2)$ deterministic error "
    "bends the line at coarse steps. A wrong order is far outside: EM has strong order 1 "
    "with additive noise but ½ with multiplicative noise, and SRA1/ShARK would show 1 if "
    "they ignored the Lévy area. The reference solution on the fine grid (1024 steps) has "
    "error ≈ (64/1024)^1.5 ≈ 1.6% of the finest coarse error: a bias below 0.01 in slope."
)


CLAIM = Claim(
    name="convergence-orders",
    statement=(
        "Euler–Maruyama converges with strong order ½ and weak order 1 for multiplicative "
        "noise, and strong order 1 for additive noise; SRA1 and ShARK converge with strong "
        "order 3/2 for additive noise: the error at step $h$ is $\\propto h^{p}$."
    ),
    source=(
        "Kloeden & Platen 1992, §10.2 and §14.1; Rößler 2010 (SRA1); Foster, dos Reis "
        "& Strange 2023 (ShARK)"
    ),
    method=(
        "On Brownian paths shared across step sizes (drawn on a fine grid with their Lévy "
        "area), measure the strong error $\\mathbb{E}|X_T - \\hat X_T|$ of Euler–Maruyama on "
        "geometric Brownian motion (exact solution), its weak error in $\\mathbb{E}X_T^2$, and "
        "the strong errors of Euler–Maruyama, SRA1 and ShARK on $dX = -\\sin X ds + 2 dW$ "
        "(reference: the same solver at the fine step); fit the slope of log error on log "
        "step size and compare with the order."
    ),
    run=run,
)
