"""Claim `diffflow-invariance-exact` (texts in `diffflow_invariance_exact.md`): DiffFlow's
Fokker–Planck right-hand side does not depend on the noise $g$."""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from gpm_sde import SDE, LinearDrift, ScalarDiffusion, ScoreDrift, diffflow
from gpm_sde.scores import AnnealedScore, SmoothedMixtureScore
from gpm_sde.verify import fokker_planck_rhs

from ..fitting import map_points
from ..laws import StaticScore, random_affine, random_mixture
from ..types import Claim, Measurement, table

TOLERANCE = 1e-8
SEED = 20230309
RANGES = {"β": (0.2, 2.0), "σ": (0.05, 1.5), "a": (-1.0, 1.0), "g₁": (0.0, 2.0), "g₂": (0.0, 2.0)}


@eqx.filter_jit
def _relative_gaps(case: tuple, key: PRNGKeyArray, n: int) -> tuple:
    r"""At `n` points $s \sim U(0, 1)$, $x \sim p * \mathcal{N}(0, 0.5^2 I)$: the relative gap
    between the Fokker–Planck right-hand sides of `diffflow` at $g_1$ and $g_2$ (real score
    $\nabla\log q_{\sigma(s)}$, generated score $\nabla\log p$), and the control's: the $g_2$
    flow with $\beta - g_2^2$ in place of $\beta - \tfrac12 g_2^2$ (mapped in chunks: each
    point has its own $\sigma(s)$, see `theory.fitting.map_points`)."""
    q, p, beta, sigma, a, g1, g2 = case
    s_key, x_key = jr.split(key)
    s = jr.uniform(s_key, (n,))
    xs = p.convolve(0.5).sample(x_key, n)
    real = AnnealedScore(SmoothedMixtureScore(q), sigma)
    gen = StaticScore(p)
    one, two = (diffflow(real, gen, beta, g, f=a) for g in (g1, g2))
    transport = LinearDrift(a) + ScoreDrift(beta, real)
    wrong = SDE(transport + ScoreDrift(-(beta - g2**2), gen), ScalarDiffusion(g2))

    def at(si, x):
        rhs1, rhs2, bad = (fokker_planck_rhs(sde, p.log_prob, si, x) for sde in (one, two, wrong))
        # The size of the terms: |∇·(p(f + β∇log q_σ))| + (β + max g²)|Δp|, since
        # ∇·(p∇log p) = Δp carries the generated-score and the noise terms.
        laplacian = jnp.abs(jnp.trace(jax.hessian(lambda z: jnp.exp(p.log_prob(z)))(x)))
        g_max2 = jnp.maximum(jnp.asarray(g1(si) if callable(g1) else g1) ** 2, g2(si) ** 2)
        size = jnp.abs(fokker_planck_rhs(SDE(transport), p.log_prob, si, x))
        scale = size + (beta(si) + g_max2) * laplacian + 1e-300
        return jnp.abs(rhs1 - rhs2) / scale, jnp.abs(bad - rhs1) / scale

    return map_points(at, s, xs)


def run(fast: bool, out_dir: Path) -> Measurement:
    draws, points = (1, 8) if fast else (6, 64)
    rows, gaps, controls = [], [], []
    for dim in (1, 2, 3):
        for draw in range(draws):
            rng = np.random.default_rng([SEED, dim, draw])
            schedules = [random_affine(rng, lo, hi) for lo, hi in RANGES.values()]
            ends = [f"{v0:.2f} → {v1:.2f}" for _, (v0, v1) in schedules]
            beta, sigma, a, g1, g2 = (schedule for schedule, _ in schedules)
            if (dim + draw) % 2 == 0:  # every other case at the GAN end
                g1, ends[3] = 0.0, "0"
            laws = random_mixture(rng, dim, 3), random_mixture(rng, dim, 2)
            case = (*laws, beta, sigma, a, g1, g2)
            key = jr.key(int(rng.integers(2**31)))
            gap, ctrl = (np.asarray(v) for v in _relative_gaps(case, key, points))
            gaps.append(float(gap.max()))
            controls.append(ctrl)
            rows.append([str(dim), str(draw), *ends, f"{gap.max():.2e}", f"{np.median(ctrl):.2e}"])
    control = float(np.median(np.concatenate(controls)))
    ends_header = [f"{name}(0) → {name}(1)" for name in RANGES]
    header = ["d", "draw", *ends_header, "max rel. gap", "control: median rel. gap"]
    values = dict(
        n_cases=len(gaps), points=points, cases=table(header, rows), control=control,
        control_ratio=control / TOLERANCE,
    )  # fmt: skip
    return Measurement(max(gaps), TOLERANCE, values)


CLAIM = Claim.load(__file__, run)
