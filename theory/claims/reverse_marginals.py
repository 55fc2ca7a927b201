"""Claim `reverse-marginals` (texts in `reverse_marginals.md`): the reverse SDE and the
probability-flow ODE keep the marginals."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import diffrax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from gpm_sde import MixtureMarginalScore, probability_flow, reverse, simulate
from gpm_sde.processes import AbstractLinearProcess, subvp, ve, vp
from gpm_sde.verify import moment_z_scores

from ..figures import OverlayPanel, overlay_grid
from ..laws import coordinate_density, mixture_2d
from ..types import Claim, Measurement, table

SEED = 2021
Z_TOLERANCE = 5.0
EPS = 1e-3
FRACTIONS = (0.25, 0.5, 0.75, 1.0)  # the save times, as fractions of [0, T − ε]
LAW = mixture_2d()


def _check(
    name: str, process: AbstractLinearProcess, key: PRNGKeyArray, n: int, steps: int
) -> tuple[dict[str, np.ndarray], list[OverlayPanel]]:
    """Simulate the reverse SDE (ShARK) and the PF ODE (Heun) from `n` draws of the exact $p_T$
    (not the prior: the prior's mismatch is another claim's); the z-scores of their moments
    against those of $p_{T - s}$ (dynamics -> save times × moments), and the figure's panels."""
    score = MixtureMarginalScore(process, LAW)
    x_key, w_key = jr.split(key)
    y0 = process.marginal(LAW, process.T).sample(x_key, n)
    t1 = process.T - EPS
    ss = t1 * np.asarray(FRACTIONS)
    solve = partial(simulate, t1=t1, steps=steps, saveat=diffrax.SaveAt(ts=jnp.asarray(ss)))
    sde = solve(reverse(process, score), y0, w_key, solver=diffrax.ShARK())
    ode = solve(probability_flow(process, score), y0, None)
    ys = {"reverse SDE": np.asarray(sde.ys), "PF ODE": np.asarray(ode.ys)}
    exact = [process.marginal(LAW, process.T - s) for s in ss]
    z = {
        dynamics: np.stack(
            [moment_z_scores(y[i], p.mean(), p.covariance()) for i, p in enumerate(exact)]
        )
        for dynamics, y in ys.items()
    }
    panels = []
    for i, (s, p) in enumerate(zip(ss, exact, strict=True)):
        first = {dynamics: y[i, :, 0] for dynamics, y in ys.items()}
        lo, hi = np.quantile(np.concatenate(list(first.values())), [0.0005, 0.9995])
        grid = np.linspace(lo, hi, 400)
        density = coordinate_density(p, 0, grid)
        panels.append(OverlayPanel(f"{name}, s = {s:.3g}", first, grid, density))
    return z, panels


def run(fast: bool, out_dir: Path) -> Measurement:
    n, steps = (2000, 200) if fast else (20000, 1000)
    processes = {"VP": vp(), "VE": ve()} if fast else {"VP": vp(), "sub-VP": subvp(), "VE": ve()}
    checks = {
        name: _check(name, process, jr.fold_in(jr.key(SEED), i), n, steps)
        for i, (name, process) in enumerate(processes.items())
    }
    d = LAW.dim
    rows = [
        [name, dynamics, f"{frac:g} (T − ε)", *(f"{np.abs(v).max():.2f}" for v in (zi[:d], zi[d:]))]
        for name, (z, _) in checks.items()
        for dynamics, zs in z.items()
        for frac, zi in zip(FRACTIONS, zs, strict=True)
    ]
    header = ["process", "dynamics", "s", "max \\|z\\| mean", "max \\|z\\| cov."]
    zs = [np.abs(zs) for z, _ in checks.values() for zs in z.values()]
    n_z = sum(z.size for z in zs)
    values = dict(
        n=n, steps=steps, eps=EPS, cases=table(header, rows), n_z=n_z, false_alarm=n_z * 5.7e-7
    )
    figure = overlay_grid(
        [panels for _, panels in checks.values()],
        f"First coordinate of {n} particles at generation time s against the exact density of "
        "$p_{T-s}$",
        out_dir / "reverse-marginals.png",
    )
    return Measurement(max(float(z.max()) for z in zs), Z_TOLERANCE, values, figure)


CLAIM = Claim.load(__file__, run)
