"""Claim `diffflow-invariance-gaussian` (texts in `diffflow_invariance_gaussian.md`): DiffFlow
at three noise levels has the moments of the closed-form moment ODE, hence the same marginals."""

from __future__ import annotations

import itertools
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from gpm_sde import diffflow, simulate
from gpm_sde.flows import GaussianDiffFlow, gaussian_diffflow
from gpm_sde.schedules import Constant
from gpm_sde.scores import AnnealedScore, SmoothedMixtureScore
from gpm_sde.verify import euler_maruyama_moments, moment_z_scores, two_sample_z_scores

from ..figures import CloudPanel, Curve, CurvePanel, panel_row
from ..laws import DIFFFLOW_T as T, gaussian, gaussian_problem
from ..types import Claim, Measurement, table

Z_TOLERANCE = 5.0
SEED = 2023_0310
LABELS = {0.0: "g = 0", 0.5: "g = ½√(2β)", 1.0: "g = √(2β)"}  # g = c√(2β) for these c
PLOT_EVERY = 10
STYLES = (("o", "tab:blue"), ("s", "tab:orange"), ("^", "tab:green"))
MOMENT_NAMES = ("mean₁", "mean₂", "Σ₁₁", "Σ₁₂", "Σ₂₂")


@eqx.filter_jit
def _along(schedules: tuple, flow: GaussianDiffFlow, grid: jax.Array) -> tuple:
    r"""The schedules and the moment ODE's $\mu_s$, $\Sigma_s$ at the points of `grid`."""
    return tuple(jax.vmap(f)(grid) for f in (*schedules, flow.mean, flow.cov))


def _euler_moments(m, s0, mu0, sigma0, along, c, h) -> tuple:
    r"""Exact mean and covariance of the Euler–Maruyama chain at every grid point. With the
    exact generated score the drift is affine, $b_n(x) = A_n x + c_n$, with
    $A = aI - \beta S_\sigma^{-1} + (\beta - \tfrac12 g^2)\Sigma_s^{-1}$ and
    $c = \beta S_\sigma^{-1}m - (\beta - \tfrac12 g^2)\Sigma_s^{-1}\mu_s$."""
    beta, sigma, a, mean, cov = (v[:-1] for v in along)  # each step's left end
    g2 = c**2 * 2.0 * beta
    w = (beta - 0.5 * g2)[:, None, None]
    s_prec = np.linalg.inv(s0 + sigma[:, None, None] ** 2 * np.eye(2))
    p_prec = np.linalg.inv(cov)
    matrix = a[:, None, None] * np.eye(2) - beta[:, None, None] * s_prec + w * p_prec
    offset = beta[:, None] * (s_prec @ m) - (w * p_prec @ mean[:, :, None])[..., 0]
    return euler_maruyama_moments(np.full(len(beta), h), matrix, offset, g2, mu0, sigma0)


def run(fast: bool, out_dir: Path) -> Measurement:
    n, steps = (4000, 300) if fast else (40000, 1500)
    problem, text = gaussian_problem(SEED)
    m, s0, mu0, sigma0, beta, sigma, a = problem
    flow = gaussian_diffflow(*problem, t1=T)
    real = AnnealedScore(SmoothedMixtureScore(gaussian(m, s0)), sigma)
    save = np.linspace(0.0, T, 3 * PLOT_EVERY + 1)  # grid points: steps is a multiple of 30
    saveat = diffrax.SaveAt(ts=jnp.asarray(save))
    clouds = {}
    for i, c in enumerate(LABELS):
        # c an array leaf: the runs share one compiled solve (c = 0: no noise, Euler's steps)
        sde = diffflow(real, flow, beta, Constant(c) * (2.0 * beta) ** 0.5, f=a)
        x_key, w_key = jr.split(jr.fold_in(jr.key(SEED), i))
        x0 = gaussian(mu0, sigma0).sample(x_key, n)
        sol = simulate(sde, x0, w_key, t1=T, steps=steps, solver=diffrax.Euler(), saveat=saveat)
        clouds[c] = np.asarray(sol.ys)
    grid = jax.tree.map(np.asarray, _along((beta, sigma, a), flow, jnp.linspace(0.0, T, steps + 1)))
    *_, mean_s, cov_s = grid  # μ_s, Σ_s on the grid
    checks = [(k * T / 3, k * PLOT_EVERY, k * steps // 3) for k in (1, 2, 3)]  # (t, i_save, i_grid)
    z_rows, gap_rows, z_max, gap_max, bias_max = [], [], 0.0, 0.0, 0.0
    for c, ys in clouds.items():
        e_means, e_covs = _euler_moments(m, s0, mu0, sigma0, grid, c, T / steps)
        for t, i, k in checks:
            z = moment_z_scores(ys[i], mean_s[k], cov_s[k])
            bias = np.abs(z - moment_z_scores(ys[i], e_means[k], e_covs[k])).max()
            z_max, bias_max = max(z_max, float(np.abs(z).max())), max(bias_max, float(bias))
            z_rows.append([LABELS[c], f"{t:.3g}", *(f"{v:+.2f}" for v in z), f"{bias:.3f}"])
    for c1, c2 in itertools.combinations(LABELS, 2):
        for t, i, _ in checks:
            z = two_sample_z_scores(clouds[c1][i], clouds[c2][i])
            gap_max = max(gap_max, float(np.abs(z).max()))
            pair = f"{LABELS[c1]} vs {LABELS[c2]}"
            gap_rows.append([pair, f"{t:.3g}", *(f"{v:+.2f}" for v in z)])
    n_z = (len(z_rows) + len(gap_rows)) * len(MOMENT_NAMES)
    header = ["g", "s", *MOMENT_NAMES]
    values = dict(
        **text, n=n, steps=steps, h=T / steps, z_max=z_max, gap_max=gap_max,
        z_table=table([*header, "Euler bias (SE)"], z_rows), gap_table=table(header, gap_rows),
        n_z=n_z, false_alarm=n_z * 5.7e-7, bias_max=bias_max,
    )  # fmt: skip
    lo, hi = (mean_s[-1] + k * 3.5 * np.sqrt(np.diag(cov_s[-1])) for k in (-1, 1))  # μ ∓ 3.5σ
    p_t, extent = flow.law(T), (lo[0], hi[0], lo[1], hi[1])
    ode = np.diagonal(cov_s[:: steps // (3 * PLOT_EVERY)], axis1=1, axis2=2)  # at `save`
    panels, curves = [], [Curve("ODE Σ₁₁", save, ode[:, 0], "k-")]
    curves.append(Curve("ODE Σ₂₂", save, ode[:, 1], "k--"))
    for (c, ys), style in zip(clouds.items(), STYLES, strict=True):
        panels.append(CloudPanel(f"{LABELS[c]}, s = {T:g}", ys[-1], p_t, extent))
        var = ys.var(axis=1, ddof=1)
        curves += [Curve(LABELS[c], save, var[:, 0], *style), Curve("", save, var[:, 1], *style)]
    figure = panel_row(
        [*panels, CurvePanel("variances along s", curves)],
        "DiffFlow at three noise levels: final clouds over the moment-ODE density, and "
        "variances along s",
        out_dir / "diffflow-invariance-gaussian.png",
    )
    return Measurement(max(z_max, gap_max), Z_TOLERANCE, values, figure)


CLAIM = Claim.load(__file__, run)
