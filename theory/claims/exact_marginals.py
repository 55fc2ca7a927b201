"""Claim `exact-marginals` (texts in `exact_marginals.md`): a mixture pushed through a linear
process has the exact marginals."""

from __future__ import annotations

from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from gpm_sde import SDE, GaussianMixture, LinearDrift, ScalarDiffusion, simulate
from gpm_sde.processes import AbstractLinearProcess, subvp, ve, vp
from gpm_sde.schedules import Function
from gpm_sde.verify import fokker_planck_rhs, linear_process_euler_moments, moment_z_scores

from ..figures import HistogramPanel, histogram_grid
from ..laws import coordinate_density, mixture_2d
from ..types import Claim, Measurement, Parts, table

FP_TOLERANCE = 1e-8
Z_TOLERANCE = 5.0
FP_TIMES = (0.02, 0.1, 0.3, 0.5, 0.9)
SAVE_TIMES = (0.1, 0.5, 0.9)


def _forward_sde(process: AbstractLinearProcess, g_scale: float = 1.0) -> SDE:
    r"""$dx = f(t)\,x\,dt + c\,g(t)\,dW$ with $c$ = `g_scale`: the forward SDE for $c = 1$."""
    g = Function(process.diffusion)
    return SDE(LinearDrift(process.drift_coeff), ScalarDiffusion(g_scale * g))


@eqx.filter_jit
def _fp_residuals(
    process: AbstractLinearProcess, law: GaussianMixture, key: PRNGKeyArray, n: int
) -> tuple[Float[Array, "t n"], Float[Array, "t n"]]:
    r"""Relative residual of $\partial_t p_t = \mathcal{L}^* p_t$ at `n` points $x \sim p_t$ for
    each $t$ of `FP_TIMES`, and the same residual for the control with $g \to 1.01\,g$."""
    sde, control = _forward_sde(process), _forward_sde(process, 1.01)

    def one(t, x):
        def log_p(u, z):
            return process.marginal(law, u).log_prob(z)

        def density(z):
            return jnp.exp(log_p(t, z))

        dp = density(x) * jax.jvp(lambda u: log_p(u, x), (t,), (jnp.ones_like(t),))[1]
        rhs = fokker_planck_rhs(sde, lambda z: log_p(t, z), t, x)
        rhs_control = fokker_planck_rhs(control, lambda z: log_p(t, z), t, x)
        diffusion_term = 0.5 * process.diffusion_squared(t) * jnp.trace(jax.hessian(density)(x))
        scale = jnp.abs(dp) + jnp.abs(rhs - diffusion_term) + jnp.abs(diffusion_term) + 1e-300
        return jnp.abs(dp - rhs) / scale, jnp.abs(dp - rhs_control) / scale

    def at_time(t, k):
        return jax.vmap(one, in_axes=(None, 0))(t, process.marginal(law, t).sample(k, n))

    return jax.vmap(at_time)(jnp.asarray(FP_TIMES), jr.split(key, len(FP_TIMES)))


@eqx.filter_jit
def _initial_cloud(
    process: AbstractLinearProcess, law: GaussianMixture, key: PRNGKeyArray, n: int
) -> Float[Array, "n d"]:
    """`n` draws of the exact $p_0$ (for VE, the data smoothed by $\\sigma_{\\min}$)."""
    return process.marginal(law, 0.0).sample(key, n)


def run(fast: bool, out_dir: Path) -> Measurement:
    n, steps, points = (4000, 900, 8) if fast else (20000, 4500, 64)
    law, t1 = mixture_2d(), SAVE_TIMES[-1]
    grid = jnp.linspace(0.0, t1, steps + 1)
    fp_rows, z_rows, panels, fp, zs, biases = [], [], [], [], [], []
    for i, (name, process) in enumerate({"VP": vp(), "sub-VP": subvp(), "VE": ve()}.items()):
        fp_key, sim_key = jr.split(jr.fold_in(jr.key(2021), i))
        # (a) the Fokker–Planck residual of the exact marginal
        residual, control = (np.asarray(v) for v in _fp_residuals(process, law, fp_key, points))
        fp.append(float(residual.max()))
        fp_rows.append([name, f"{residual.max():.2e}", f"{np.median(control):.2e}"])
        # (b) Euler–Maruyama paths from p₀, saved at SAVE_TIMES (points of the grid), against
        # the exact moments, and the exact moments of the Euler chain (its bias)
        x_key, w_key = jr.split(sim_key)
        x0 = _initial_cloud(process, law, x_key, n)
        saveat = diffrax.SaveAt(ts=jnp.asarray(SAVE_TIMES))
        sol = simulate(_forward_sde(process), x0, w_key, t1=t1, steps=steps, saveat=saveat)
        p0 = process.marginal(law, 0.0)
        euler_m, euler_c = linear_process_euler_moments(process, grid, p0.mean(), p0.covariance())
        panels.append([])
        for t, ys in zip(SAVE_TIMES, np.asarray(sol.ys), strict=True):
            exact, k = process.marginal(law, t), round(t / (t1 / steps))
            z = np.asarray(moment_z_scores(ys, exact.mean(), exact.covariance()))
            bias = float(np.abs(z - moment_z_scores(ys, euler_m[k], euler_c[k])).max())
            zs.append(z)
            biases.append(bias)
            z_mean, z_cov = np.abs(z[: law.dim]).max(), np.abs(z[law.dim :]).max()
            z_rows.append([name, str(t), f"{z_mean:.2f}", f"{z_cov:.2f}", f"{bias:.3f}"])
            lo, hi = np.quantile(ys[:, 0], [0.0005, 0.9995])
            x = np.linspace(lo, hi, 400)
            density = coordinate_density(exact, 0, x)
            panels[-1].append(HistogramPanel(f"{name}, t = {t}", ys[:, 0], x, density))
    parts = Parts()
    parts.add("(a) Fokker–Planck relative residual", max(fp), FP_TOLERANCE, ".2e")
    parts.add("(b) max \\|z\\| of simulated moments", np.abs(zs).max(), Z_TOLERANCE, ".2f")
    n_z = np.size(zs)
    values = dict(
        parts=parts.table(), points=points, fp_times=FP_TIMES, n=n, steps=steps, t_end=t1,
        h=t1 / steps, n_z=n_z, false_alarm=n_z * 5.7e-7, bias_max=max(biases),
        fp_table=table(["process", "max rel. residual",
                        "control $1.01\\,g$: median rel. residual"], fp_rows),
        z_table=table(["process", "t", "max \\|z\\| mean", "max \\|z\\| cov.", "Euler bias (SE)"],
                      z_rows),
    )  # fmt: skip
    figure = histogram_grid(
        panels,
        f"First coordinate of {n} simulated particles against the exact marginal density",
        out_dir / "exact-marginals.png",
    )
    return Measurement(parts.ratio, 1.0, values, figure)


CLAIM = Claim.load(__file__, run)
