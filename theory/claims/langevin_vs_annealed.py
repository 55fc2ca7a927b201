"""Claim `langevin-vs-annealed` (texts in `langevin_vs_annealed.md`): Langevin dynamics with the
exact score gets the weights of separated modes wrong; annealed Langevin recovers them."""

from __future__ import annotations

from pathlib import Path

import diffrax
import equinox as eqx
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from gpm_sde import GaussianMixture, simulate
from gpm_sde.flows import langevin_flow
from gpm_sde.samplers import annealed_langevin, geometric_sigmas
from gpm_sde.scores import SmoothedMixtureScore

from ..figures import CloudPanel, panel_row
from ..laws import StaticScore
from ..types import Claim, Measurement, Parts, table

SEED = 2019_0712
WEIGHT = 0.2  # of the mode at (−5, −5); the other, at (5, 5), has 0.8
BOX = 8.0  # initial points uniform on [−8, 8]², as in Song & Ermon's Figure 3
SIGMA_MAX, SIGMA_MIN, LEVELS = 20.0, 1.0, 10
EPS = 0.1  # the step ε: of Langevin dynamics, and of the last annealing level
Z_TOLERANCE = 5.0
FAIL_MARGIN = 10.0  # Langevin 'fails' when its weight error exceeds this many binomial SE
LAW = GaussianMixture(
    np.array([WEIGHT, 1.0 - WEIGHT]),
    np.array([[-5.0, -5.0], [5.0, 5.0]]),
    np.stack([np.eye(2), np.eye(2)]),
)


@eqx.filter_jit
def _langevin(x0: Float[Array, "m 2"], key: PRNGKeyArray, steps: int) -> Array:
    r"""`steps` steps $x \leftarrow x + \tfrac{\epsilon}{2}\nabla\log q(x) + \sqrt\epsilon z$:
    Euler–Maruyama of `langevin_flow` (rate 1) with time step $\epsilon/2$."""
    sde = langevin_flow(StaticScore(LAW))
    sol = simulate(sde, x0, key, t1=0.5 * EPS * steps, steps=steps, solver=diffrax.Euler())
    assert sol.ys is not None
    return sol.ys[-1]


@eqx.filter_jit
def _annealed(x0: Float[Array, "m 2"], key: PRNGKeyArray, per_level: int) -> Array:
    sigmas = geometric_sigmas(SIGMA_MAX, SIGMA_MIN, LEVELS)
    score = SmoothedMixtureScore(LAW)
    return annealed_langevin(score, sigmas, key, x_init=x0, steps_per_level=per_level, eps=EPS).x


def run(fast: bool, out_dir: Path) -> Measurement:
    m, per_level = (2000, 300) if fast else (5000, 1000)
    key = jr.key(SEED)
    x0 = jr.uniform(jr.fold_in(key, 0), (m, 2), minval=-BOX, maxval=BOX)
    steps = LEVELS * per_level
    clouds = {
        "exact": np.asarray(eqx.filter_jit(LAW.sample)(jr.fold_in(key, 3), m)),
        "Langevin": np.asarray(_langevin(x0, jr.fold_in(key, 1), steps)),
        "annealed": np.asarray(_annealed(x0, jr.fold_in(key, 2), per_level)),
    }
    # The weight of the light mode: the share of points on its side of x₁ + x₂ = 0.
    weights = {name: float(np.mean(x.sum(axis=1) < 0.0)) for name, x in clouds.items()}
    se = np.sqrt(WEIGHT * (1.0 - WEIGHT) / m)
    z = {name: (w - WEIGHT) / se for name, w in weights.items()}
    parts = Parts()
    parts.add("(a) annealed: \\|z\\|", abs(z["annealed"]), Z_TOLERANCE, ".2f")
    parts.add("(b) Langevin fails: 10 / \\|z\\|", FAIL_MARGIN / abs(z["Langevin"]), 1.0, ".2f")
    rows = [[k, f"{w:.4f}", f"{w - WEIGHT:+.4f}", f"{z[k]:+.1f}"] for k, w in weights.items()]
    sigmas = np.asarray(geometric_sigmas(SIGMA_MAX, SIGMA_MIN, LEVELS))
    values = dict(
        parts=parts.table(), m=m, box=BOX, start=float(np.mean(np.asarray(x0).sum(axis=1) < 0.0)),
        steps=steps, eps=EPS, levels=LEVELS, sigma_max=SIGMA_MAX, sigma_min=SIGMA_MIN,
        sigmas=", ".join(f"{s:.2f}" for s in sigmas), per_level=per_level, se=se, weight=WEIGHT,
        weights=table(["sampler", "weight of the light mode", "error", "z"], rows),
    )  # fmt: skip
    titles = {
        "exact": "exact samples of q",
        "Langevin": "Langevin dynamics",
        "annealed": f"annealed Langevin (law q_σ, σ = {SIGMA_MIN:g})",
    }
    extent = (-BOX - 1.0, BOX + 1.0, -BOX - 1.0, BOX + 1.0)
    panels = [
        CloudPanel(f"{titles[k]}\nweight of (−5, −5): {weights[k]:.3f}", x, LAW, extent)
        for k, x in clouds.items()
    ]
    figure = panel_row(
        panels,
        "Mixture 0.2/0.8 of two separated modes: exact, Langevin and annealed Langevin from "
        "uniform initial points (Song & Ermon 2019, Fig. 3)",
        out_dir / "langevin-vs-annealed.png",
    )
    return Measurement(parts.ratio, 1.0, values, figure)


CLAIM = Claim.load(__file__, run)
