r"""Claim `langevin-vs-annealed`: Langevin dynamics with the exact score gets the weights of
separated modes wrong; annealed Langevin recovers them (Song & Ermon 2019, §3.2.2, Fig. 3)."""

from __future__ import annotations

from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from gpm_sde import GaussianMixture, simulate
from gpm_sde.flows import langevin_flow
from gpm_sde.samplers import annealed_langevin, geometric_sigmas

from ..figures import CloudPanel, panel_row
from ..laws import StaticScore
from ..types import Claim, Result, table

SEED = 2019_0712
WEIGHT = 0.2
"""The weight of the mode at (−5, −5); the other, at (5, 5), has 0.8."""
BOX = 8.0
"""Initial points are uniform on $[-8, 8]^2$, as in Song & Ermon's Figure 3."""
SIGMA_MAX, SIGMA_MIN, LEVELS = 20.0, 1.0, 10
EPS = 0.1
"""The step $\\epsilon$: of Langevin dynamics, and of the last annealing level."""
Z_TOLERANCE = 5.0
FAIL_MARGIN = 10.0
"""Langevin 'fails' when its weight error exceeds this many binomial SE."""


def _law() -> GaussianMixture:
    r"""$\tfrac15\mathcal{N}((-5, -5), I) + \tfrac45\mathcal{N}((5, 5), I)$ (Song & Ermon 2019,
    §3.2.2)."""
    return GaussianMixture(
        np.array([WEIGHT, 1.0 - WEIGHT]),
        np.array([[-5.0, -5.0], [5.0, 5.0]]),
        np.stack([np.eye(2), np.eye(2)]),
    )


class _PerturbedScore(eqx.Module):
    r"""`(sigma, x) -> ∇log q_σ(x)`: the exact score of the noise-perturbed data
    $q_\sigma = q * \mathcal{N}(0, \sigma^2 I)$, the mixture `law.convolve(sigma)`."""

    law: GaussianMixture

    def __call__(self, sigma: Float[ArrayLike, ""], x: Float[Array, " d"]) -> Float[Array, " d"]:
        return self.law.convolve(sigma).score(x)


@eqx.filter_jit
def _langevin(law: GaussianMixture, x0: Float[Array, "m 2"], key: PRNGKeyArray, steps: int):
    r"""`steps` steps $x \leftarrow x + \tfrac{\epsilon}{2}\nabla\log q(x) + \sqrt\epsilon z$:
    Euler–Maruyama of `langevin_flow` (rate 1) with time step $\epsilon/2$."""
    sde = langevin_flow(StaticScore(law))
    sol = simulate(sde, x0, key, t1=0.5 * EPS * steps, steps=steps, solver=diffrax.Euler())
    assert sol.ys is not None
    return sol.ys[-1]


@eqx.filter_jit
def _annealed(law: GaussianMixture, x0: Float[Array, "m 2"], key: PRNGKeyArray, per_level: int):
    """Annealed Langevin (Algorithm 1) with the exact perturbed scores."""
    sigmas = geometric_sigmas(SIGMA_MAX, SIGMA_MIN, LEVELS)
    return annealed_langevin(
        _PerturbedScore(law), sigmas, key, x_init=x0, steps_per_level=per_level, eps=EPS
    ).x


def _weight(x: np.ndarray) -> float:
    """The fraction of points on the side $x_1 + x_2 < 0$ of the mode at (−5, −5)."""
    return float(np.mean(x.sum(axis=1) < 0.0))


def run(fast: bool, out_dir: Path) -> Result:
    """Both samplers from the same uniform start, with the same number of steps."""
    m, per_level = (2000, 300) if fast else (5000, 1000)
    law, key = _law(), jr.key(SEED)
    x0 = jr.uniform(jr.fold_in(key, 0), (m, 2), minval=-BOX, maxval=BOX)
    steps = LEVELS * per_level
    lang = np.asarray(_langevin(law, x0, jr.fold_in(key, 1), steps))
    ann = np.asarray(_annealed(law, x0, jr.fold_in(key, 2), per_level))
    exact = np.asarray(eqx.filter_jit(law.sample)(jr.fold_in(key, 3), m))
    se = np.sqrt(WEIGHT * (1.0 - WEIGHT) / m)
    weights = {"exact": _weight(exact), "Langevin": _weight(lang), "annealed": _weight(ann)}
    z = {name: (w - WEIGHT) / se for name, w in weights.items()}
    start = _weight(np.asarray(x0))
    parts = [abs(z["annealed"]) / Z_TOLERANCE, FAIL_MARGIN / abs(z["Langevin"])]
    rows = [
        [name, f"{w:.4f}", f"{w - WEIGHT:+.4f}", f"{z[name]:+.1f}"] for name, w in weights.items()
    ]
    sigmas = np.asarray(geometric_sigmas(SIGMA_MAX, SIGMA_MIN, LEVELS))
    details = "\n\n".join(
        [
            table(
                ["part", "measured / tolerance"],
                [
                    ["(a) annealed: \\|z\\| / 5", f"{parts[0]:.2f}"],
                    ["(b) Langevin fails: 10 / \\|z\\|", f"{parts[1]:.2f}"],
                ],
            ),
            "Data $q = \\tfrac15\\mathcal{N}((-5, -5), I) + \\tfrac45\\mathcal{N}((5, 5), I)$; "
            f"M = {m} initial points uniform on $[-{BOX:g}, {BOX:g}]^2$ (a share {start:.3f} "
            "of them on the side of the light mode). **Langevin**: "
            f"{steps} steps $x \\leftarrow x + \\tfrac{{\\epsilon}}{{2}}\\nabla\\log q(x) + "
            f"\\sqrt\\epsilon z$, $\\epsilon$ = {EPS:g} (`langevin_flow` + Euler–Maruyama). "
            f"**Annealed** (`annealed_langevin`): {LEVELS} levels $\\sigma_i$ geometric from "
            f"{SIGMA_MAX:g} to {SIGMA_MIN:g} ({', '.join(f'{s:.2f}' for s in sigmas)}), "
            f"{per_level} steps each (the same {steps} in all), step $\\alpha_i = \\epsilon"
            "\\sigma_i^2/\\sigma_L^2$, exact scores of $q_{\\sigma_i}$ = `law.convolve(σ_i)`. "
            "The weight of the light mode is the share of points with $x_1 + x_2 < 0$ (the "
            "two modes' half-planes; $q$ and $q_{\\sigma_L}$ put ≤ 3e-7 of their mass across "
            f"the line), with binomial SE $\\sqrt{{w(1-w)/M}}$ = {se:.4f} at $w$ = {WEIGHT:g}.",
            table(["sampler", "weight of the light mode", "error", "z"], rows),
        ]
    )
    return Result(
        measured=max(parts),
        tolerance=1.0,
        justification=_JUSTIFICATION,
        details=details,
        figure=_figure(law, exact, lang, ann, weights, out_dir),
    )


_JUSTIFICATION = (
    "Measured = max(\\|z_annealed\\| / 5, 10 / \\|z_Langevin\\|) against 1: the claim passes "
    "when annealed Langevin's weight is within 5 binomial SE of 0.2 and plain Langevin's is "
    "more than 10 SE away. The particles are independent, so the number on the light side "
    "is binomial and $z = (\\hat w - w)/\\sqrt{w(1-w)/M}$ is ≈ N(0, 1) for a sampler that "
    "draws from $q$: 5 SE gives a false alarm with probability 5.7e-7. Annealing is not "
    "exact at finite steps: particles stop crossing between the modes once $\\sigma_i$ "
    "falls to ≈ 2–3, when $q_\\sigma$ still puts a little mass across the midline, so a "
    "small bias toward ½ remains; with these levels it was measured at M = 40000 (SE 0.002) "
    "as 0.2082 with 300 steps per level and 0.2037 with 1000, i.e. ≈ 0.9 SE at the fast "
    "sizes and ≈ 0.65 SE at the full ones, small against 5. For plain Langevin the claim "
    "is that it fails: with separated modes its mixing time is of order "
    "$e^{\\Delta U}$ with barrier $\\Delta U$ ≈ $|\\mu_1 - \\mu_2|^2/8$ = 25 (Song & Ermon "
    "§3.2.2), so in the available time each particle stays in the basin it started in and "
    "the weight is the uniform start's share, ≈ ½. 10 SE is far above the sampling noise "
    "(a sampler of $q$ reaches it with probability ≈ 1e-23), and the error of ≈ 0.3 is "
    "some 30–50 SE at these sizes."
)


def _figure(
    law: GaussianMixture,
    exact: np.ndarray,
    lang: np.ndarray,
    ann: np.ndarray,
    weights: dict[str, float],
    out_dir: Path,
) -> Path:
    log_prob = jax.jit(jax.vmap(law.log_prob))

    def log_q(x: np.ndarray) -> np.ndarray:
        return np.asarray(log_prob(jnp.asarray(x)))

    extent = (-BOX - 1.0, BOX + 1.0, -BOX - 1.0, BOX + 1.0)
    titles = {
        "exact": "exact samples of q",
        "Langevin": "Langevin dynamics",
        "annealed": f"annealed Langevin (law q_σ, σ = {SIGMA_MIN:g})",
    }
    clouds = {"exact": exact, "Langevin": lang, "annealed": ann}
    panels: list[CloudPanel] = [
        CloudPanel(f"{titles[k]}\nweight of (−5, −5): {weights[k]:.3f}", v, log_q, extent)
        for k, v in clouds.items()
    ]
    return panel_row(
        panels,
        "Mixture 0.2/0.8 of two separated modes: exact, Langevin and annealed Langevin from "
        "uniform initial points (Song & Ermon 2019, Fig. 3)",
        out_dir / "langevin-vs-annealed.png",
    )


CLAIM = Claim(
    name="langevin-vs-annealed",
    statement=(
        "For data with separated modes, $q = \\tfrac15\\mathcal{N}((-5, -5), I) + "
        "\\tfrac45\\mathcal{N}((5, 5), I)$, Langevin dynamics with the exact score $\\nabla"
        "\\log q$ started from uniform points does not recover the relative weights of the "
        "modes in reasonable time (the score does not see them away from the modes), while "
        "annealed Langevin dynamics with the exact scores of the perturbed laws $q_{\\sigma_i}$ "
        "does."
    ),
    source="Song & Ermon 2019 (NCSN), §3.2.2, Fig. 3 and Algorithm 1",
    method=(
        "From the same uniform initial points and with the same number of steps, run "
        "Langevin dynamics (`flows.langevin_flow`) on $q$ and annealed Langevin "
        "(`samplers.annealed_langevin`, 10 geometric levels from σ = 20 to 1) on the exact "
        "$q_{\\sigma_i}$ = `law.convolve(σ_i)`; compare the share of particles at the light "
        "mode with 0.2 in binomial standard errors."
    ),
    run=run,
)
