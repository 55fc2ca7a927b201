"""Claim `generator-identity` (texts in `generator_identity.md`): `reweight_noise` changes the
noise and keeps the marginals."""

from __future__ import annotations

import itertools
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from gpm_sde import SDE, GaussianMixture, LinearDrift, ScalarDiffusion, ScoreDrift, reweight_noise
from gpm_sde.schedules import AbstractSchedule, Constant, Schedule, as_schedule
from gpm_sde.verify import fokker_planck_rhs

from ..laws import StaticScore, affine, random_mixture
from ..types import Claim, Measurement, table

TOLERANCE = 1e-8
SEED = 20230101


@eqx.filter_jit
def _relative_errors(
    law: GaussianMixture, sde: SDE, g: AbstractSchedule, lam: Schedule, key: PRNGKeyArray, n: int
) -> tuple:
    r"""Relative differences of the Fokker–Planck right-hand sides at `n` points $s \sim U(0, 1)$,
    $x \sim p * \mathcal{N}(0, 0.5^2 I)$: `reweight_noise` and the control without ½ vs the SDE."""
    s_key, x_key = jr.split(key)
    score = StaticScore(law)
    new_sde = reweight_noise(sde, score, lam)
    lam_s = as_schedule(lam)
    wrong = SDE(sde.drift + ScoreDrift(lam_s**2 - g**2, score), new_sde.diffusion)

    def one(s, x):
        laplacian = jnp.trace(jax.hessian(lambda z: jnp.exp(law.log_prob(z)))(x))
        base, new, bad = (fokker_planck_rhs(e, law.log_prob, s, x) for e in (sde, new_sde, wrong))
        g2, l2 = g(s) ** 2, lam_s(s) ** 2
        scale = jnp.abs(base - 0.5 * g2 * laplacian) + 0.5 * (g2 + l2) * jnp.abs(laplacian) + 1e-300
        return jnp.abs(new - base) / scale, jnp.abs(bad - base) / scale

    return jax.vmap(one)(jr.uniform(s_key, (n,)), law.convolve(0.5).sample(x_key, n))


def run(fast: bool, out_dir: Path) -> Measurement:
    draws, points = (1, 8) if fast else (6, 64)
    rows, errors, controls = [], [], []
    for dim, draw in itertools.product((1, 2, 3), range(draws)):
        # a random SDE and density p; λ ~ U(0, 2), or λ = 0 (the probability flow) every other case
        rng = np.random.default_rng([SEED, dim, draw])
        a0, a1, w0, w1, g0, g1 = rng.uniform(-1.0, 1.0, 6)
        g = affine(1.0 + 0.5 * g0, 0.5 * g1)  # stays in [0, 2] on s ∈ [0, 1]
        r = StaticScore(random_mixture(rng, dim, 2))
        sde = SDE(LinearDrift(affine(a0, a1)) + ScoreDrift(affine(w0, w1), r), ScalarDiffusion(g))
        lam = 0.0 if (dim + draw) % 2 == 0 else Constant(rng.uniform(0.0, 2.0))
        law = random_mixture(rng, dim, 3)
        key = jr.key(rng.integers(2**31))
        err, ctrl = (np.asarray(v) for v in _relative_errors(law, sde, g, lam, key, points))
        errors.append(float(err.max()))
        controls.append(ctrl)
        row = [str(dim), str(draw), f"{float(as_schedule(lam)(0.0)):.3f}", f"{err.max():.2e}"]
        rows.append([*row, f"{np.median(ctrl):.2e} / {ctrl.min():.2e}"])
    control = float(np.median(np.concatenate(controls)))
    header = ["d", "draw", "λ", "max rel. error", "control: median / min rel. discrepancy"]
    values = dict(
        n_cases=len(errors), points=points, cases=table(header, rows), control=control,
        control_ratio=control / TOLERANCE,
    )  # fmt: skip
    return Measurement(max(errors), TOLERANCE, values)


CLAIM = Claim.load(__file__, run)
