"""Claim `lambda-family` (texts in `lambda_family.md`): every member of the reverse λ-family has
the same marginals."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from gpm_sde import SDE, GaussianMixture, MixtureMarginalScore, probability_flow, reverse, simulate
from gpm_sde.metrics import mmd_permutation_test
from gpm_sde.processes import AbstractLinearProcess, ve, vp
from gpm_sde.verify import moment_z_scores, two_sample_z_scores

from ..figures import OverlayPanel, overlay_grid
from ..laws import coordinate_density, mixture_2d
from ..types import Claim, Measurement, table

SEED = 1982
Z_TOLERANCE = 5.0
FAMILY_LEVEL = 0.01  # family-wise level of the MMD permutation tests (Bonferroni over all)
PERMUTATIONS = 999
EPS = 1e-3
FRACTIONS = (0.25, 0.5, 0.75, 1.0)  # the save times, as fractions of [0, T − ε]
# The SDE members, λ(s) = g(T − s)(a + b sin²(πs/T)), as (a, b).
NOISY = {"λ = ½g": (0.5, 0.0), "λ = g": (1.0, 0.0), "λ = 2g": (2.0, 0.0), "λ = 2g sin²": (0.0, 2.0)}
REFERENCE = "λ = g"
MEMBERS = ("λ = 0", *NOISY)
LAW = mixture_2d()


class _Lambda(eqx.Module):
    r"""$\lambda(s) = g(T - s)\,\big(a + b\sin^2(\pi s/T)\big)$: a multiple of $g$ for $b = 0$;
    for $a = 0$ a time-varying noise that is $0$ at both ends and $b\,g$ half-way."""

    process: AbstractLinearProcess
    a: Float[Array, ""]
    b: Float[Array, ""]

    def __call__(self, s: Float[Array, ""]) -> Float[Array, ""]:
        T = self.process.T
        bump = jnp.sin(jnp.pi * s / T) ** 2
        return self.process.diffusion(T - s) * (self.a + self.b * bump)


@eqx.filter_jit
def _starts(process: AbstractLinearProcess, keys: PRNGKeyArray, n: int) -> Float[Array, "m n d"]:
    """Independent clouds of `n` draws of the exact $p_T$, one per key."""
    return jax.vmap(lambda k: process.marginal(LAW, process.T).sample(k, n))(keys)


def _simulate_members(
    process: AbstractLinearProcess, key: PRNGKeyArray, n: int, steps: int
) -> dict[str, np.ndarray]:
    """Every member, and the control, from its own `n` draws of $p_T$ with its own noise, saved
    at the fractions of $[0, T - \\epsilon]$: member -> `(times, n, d)`. The SDE members are one
    `vmap` over $(a, b)$ of `simulate` with ShARK; the PF ODE uses Heun."""
    score = MixtureMarginalScore(process, LAW)
    t1 = process.T - EPS
    saveat = diffrax.SaveAt(ts=t1 * jnp.asarray(FRACTIONS))
    solve = partial(simulate, t1=t1, steps=steps, saveat=saveat)
    keys = jr.split(key, 2 * len(MEMBERS))
    y0s = _starts(process, keys[: len(MEMBERS)], n)

    def noisy(a: Array, b: Array, y0: Array, k: PRNGKeyArray) -> Array:
        sol = solve(reverse(process, score, _Lambda(process, a, b)), y0, k, solver=diffrax.ShARK())
        assert sol.ys is not None
        return sol.ys

    a, b = (jnp.asarray(v) for v in zip(*NOISY.values(), strict=True))
    ys = jax.vmap(noisy)(a, b, y0s[1:], keys[len(MEMBERS) + 1 :])
    # The control: λ = 2g noise with the drift of λ = g, i.e. without the ½(λ² - g²) score term.
    two_g = _Lambda(process, jnp.asarray(2.0), jnp.asarray(0.0))
    wrong = SDE(reverse(process, score).drift, reverse(process, score, two_g).diffusion)
    control = solve(wrong, y0s[2], keys[len(MEMBERS)], solver=diffrax.ShARK())
    flow = solve(probability_flow(process, score), y0s[0], None)
    clouds = {m: np.asarray(y) for m, y in zip(NOISY, ys, strict=True)}
    return {"λ = 0": np.asarray(flow.ys), **clouds, "control": np.asarray(control.ys)}


def _against(ys: np.ndarray, exact: list[GaussianMixture]) -> np.ndarray:
    """z-scores of the moments of the clouds `ys` against those of the exact laws, per time."""
    z = [moment_z_scores(y, p.mean(), p.covariance()) for y, p in zip(ys, exact, strict=True)]
    return np.stack(z)


def _panel(title: str, clouds: dict[str, np.ndarray], k: int, law: GaussianMixture) -> OverlayPanel:
    """The members' first coordinates at the `k`-th save time against the exact density."""
    first = {m: clouds[m][k, :, 0] for m in MEMBERS}
    lo, hi = np.quantile(np.concatenate(list(first.values())), [0.0005, 0.9995])
    grid = np.linspace(lo, hi, 400)
    return OverlayPanel(title, first, grid, coordinate_density(law, 0, grid))


def run(fast: bool, out_dir: Path) -> Measurement:
    n, steps, n_mmd = (2000, 200, 300) if fast else (10000, 500, 500)
    processes = {"VP": vp()} if fast else {"VP": vp(), "VE": ve()}
    tested = [m for m in MEMBERS if m != REFERENCE]  # by MMD, against the reference
    rows, z_exact, z_between, p_values, controls, panels = [], [], [], [], [], []
    for i, (name, process) in enumerate(processes.items()):
        sim_key, mmd_key = jr.split(jr.fold_in(jr.key(SEED), i))
        clouds = _simulate_members(process, sim_key, n, steps)
        ss = (process.T - EPS) * np.asarray(FRACTIONS)
        exact = [process.marginal(LAW, process.T - s) for s in ss]
        ref = clouds[REFERENCE]
        for m in MEMBERS:
            z_exact.append(_against(clouds[m], exact))
            cells = ["—", "—"]
            if m != REFERENCE:
                z = [two_sample_z_scores(y, r) for y, r in zip(clouds[m], ref, strict=True)]
                z_between.append(np.stack(z))
                key = jr.fold_in(mmd_key, tested.index(m))
                last, last_ref = jnp.asarray(clouds[m][-1, :n_mmd]), jnp.asarray(ref[-1, :n_mmd])
                p_values.append(float(mmd_permutation_test(key, last, last_ref, PERMUTATIONS)[1]))
                cells = [f"{np.abs(z_between[-1]).max():.2f}", f"{p_values[-1]:.3f}"]
            rows.append([name, m, f"{np.abs(z_exact[-1]).max():.2f}", *cells])
        controls.append(f"{np.abs(_against(clouds['control'], exact)).max():.0f} ({name})")
        titles = [f"{name}, s = {s:.3g}" for s in ss]
        panels.append([_panel(titles[k], clouds, k, p) for k, p in enumerate(exact)])
    part_a = max(float(np.abs(z).max()) for z in z_exact) / Z_TOLERANCE
    part_b = max(float(np.abs(z).max()) for z in z_between) / Z_TOLERANCE
    threshold = FAMILY_LEVEL / len(p_values)
    part_c = threshold / min(p_values)
    n_z = sum(z.size for z in (*z_exact, *z_between))
    header = ["process", "member", "max \\|z\\| vs exact", f"max \\|z\\| vs {REFERENCE}"]
    values = dict(
        part_a=part_a, part_b=part_b, part_c=part_c, reference=REFERENCE, noisy=", ".join(NOISY),
        n=n, steps=steps, eps=EPS, n_mmd=n_mmd, permutations=PERMUTATIONS, threshold=threshold,
        members=table([*header, "MMD p-value"], rows), control=", ".join(controls), n_z=n_z,
        false_alarm=n_z * 5.7e-7, family_level=FAMILY_LEVEL, n_tests=len(p_values),
        smallest_p=1 / (PERMUTATIONS + 1),
    )  # fmt: skip
    title = f"First coordinate of {n} particles per member at generation time s against the "
    title += "exact density of $p_{T-s}$"
    figure = overlay_grid(panels, title, out_dir / "lambda-family.png")
    return Measurement(max(part_a, part_b, part_c), 1.0, values, figure)


CLAIM = Claim.load(__file__, run)
