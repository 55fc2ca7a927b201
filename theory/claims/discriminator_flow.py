r"""Claim `discriminator-flow` (texts in `discriminator_flow.md`): particles moved by the
gradient of the optimal discriminator's logit carry a Gaussian prior to the data, contracting in
$W_2$."""

from __future__ import annotations

from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from gpm_sde import GaussianMixture, discriminator_field, particle_flow, simulate
from gpm_sde.flows import GaussianDiffFlow, gaussian_diffflow
from gpm_sde.metrics import gaussian_w2, sliced_wasserstein
from gpm_sde.verify import moment_z_scores

from ..figures import CloudPanel, Curve, CurvePanel, panel_row
from ..laws import gaussian, random_spd
from ..types import Claim, Measurement, table

SEED = 2023_0315
T = 8.0
SAVE_TIMES = np.linspace(0.0, T, 33)
CHECK_TIMES = (1.0, 3.0, T)
Z_TOLERANCE = 5.0
W2_TOLERANCE = 1e-6  # round-off allowance of the closed-form W₂, relative to W₂(p₀, q)
GRID = 801
PATHS = 40
SW_POINTS = 10000  # the sliced distance uses at most this many particles and data points
SW_EVERY = 2  # ... at every other save time
TITLE = "Discriminator Flow with the optimal discriminator (dotted: two data samples' sliced W₂)"


class OptimalLogit(eqx.Module):
    r"""$D^*(s, x) = \operatorname{logit}\frac{q(x)}{q(x) + p_s(x)} = \log q(x) - \log p_s(x)$,
    the logit of the optimal vanilla-GAN discriminator between the data $q$ and the particles'
    law $p_s = \mathcal{N}(\mu_s, \Sigma_s)$, known in closed form along the flow."""

    data: GaussianMixture
    law: GaussianDiffFlow

    def __call__(self, s: Float[ArrayLike, ""], x: Float[Array, " d"]) -> Float[Array, ""]:
        return self.data.log_prob(x) - self.law.law(s).log_prob(x)


@eqx.filter_jit
def _moments(law: GaussianDiffFlow, times: Array) -> tuple[Array, Array]:
    return jax.vmap(law.mean)(times), jax.vmap(law.cov)(times)


@eqx.filter_jit
def _sliced(clouds: Float[Array, "t n 2"], sample: Float[Array, "n 2"]) -> Float[Array, " t"]:
    return jax.vmap(lambda y: sliced_wasserstein(y, sample))(clouds)


def run(fast: bool, out_dir: Path) -> Measurement:
    n, steps = (4000, 160) if fast else (40000, 640)
    rng = np.random.default_rng(SEED)  # random 2-D data N(m, S) with ‖m‖ = 4
    direction = rng.normal(size=2)
    m, s = 4.0 * direction / np.linalg.norm(direction), random_spd(rng, 2, ridge=0.3)
    data = gaussian(m, s)
    law = gaussian_diffflow(m, s, np.zeros(2), np.eye(2), 1.0, t1=T)
    field = discriminator_field(OptimalLogit(data, law), "hinge")
    saveat = diffrax.SaveAt(ts=jnp.asarray(SAVE_TIMES))
    x0 = jr.normal(jr.key(SEED), (n, 2))
    ys = np.asarray(simulate(particle_flow(field), x0, None, t1=T, steps=steps, saveat=saveat).ys)
    # (a) moments of the cloud against p_s = N(μ_s, Σ_s)
    idx = [int(np.argmin(np.abs(SAVE_TIMES - t))) for t in CHECK_TIMES]
    means, covs = (np.asarray(v) for v in _moments(law, jnp.asarray(SAVE_TIMES)))
    z = np.stack([moment_z_scores(ys[i], means[i], covs[i]) for i in idx])
    # (b) the W₂ contraction, on a fine grid
    grid = np.linspace(0.0, T, GRID)
    g_means, g_covs = (np.asarray(v) for v in _moments(law, jnp.asarray(grid)))
    w2 = np.array([gaussian_w2(a, c, m, s) for a, c in zip(g_means, g_covs, strict=True)])
    rate = 1.0 / float(np.linalg.eigvalsh(s).max())  # β λ with β = 1, λ = 1/λ_max(S)
    step = np.exp(-rate * (grid[1] - grid[0]))
    contraction = max(0.0, float(np.max(w2[1:] - step * w2[:-1]))) / w2[0]
    bound = max(0.0, float(np.max(w2 - np.exp(-rate * grid) * w2[0]))) / w2[0]
    # (c) a sample-based distance to the data, for the figure and the table
    k = min(n, SW_POINTS)
    d_key, e_key = jr.split(jr.fold_in(jr.key(SEED), 1))
    sample, other = data.sample(d_key, k), data.sample(e_key, k)
    sw = np.asarray(_sliced(jnp.asarray(ys[::SW_EVERY, :k]), sample))
    sw_null = float(sliced_wasserstein(other, sample))
    z_rows = [[f"{t:g}", *(f"{v:+.2f}" for v in zs)] for t, zs in zip(CHECK_TIMES, z, strict=True)]
    w_rows, sw_times = [], SAVE_TIMES[::SW_EVERY]
    for t in (0.0, 1.0, 2.0, 4.0, 6.0, T):
        i, j = np.argmin(np.abs(grid - t)), np.argmin(np.abs(sw_times - t))
        w_rows.append(
            [f"{t:g}", f"{w2[i]:.3e}", f"{np.exp(-rate * t) * w2[0]:.3e}", f"{sw[j]:.3e}"]
        )
    values = dict(
        m=np.round(m, 2).tolist(), s=np.round(s, 2).tolist(), n=n, steps=steps, t1=T,
        z_max=np.abs(z).max(), z_table=table(["s", "mean₁", "mean₂", "Σ₁₁", "Σ₁₂", "Σ₂₂"], z_rows),
        grid=GRID, rate=rate, bound=bound, contraction=contraction, w2_0=w2[0],
        w2_ratio=w2[-1] / w2[0],
        w2_table=table(["s", "W₂(p_s, q)", "bound", "sliced W₂(cloud, data sample)"], w_rows),
        sw_points=k, sw_0=sw[0], sw_end=sw[-1], sw_null=sw_null, n_z=z.size,
        false_alarm=z.size * 5.7e-7,
    )  # fmt: skip
    pts = np.concatenate([ys[0], ys[-1]])
    lo, hi = np.quantile(pts, 0.001, axis=0) - 0.5, np.quantile(pts, 0.999, axis=0) + 0.5
    extent = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
    distances = [
        Curve("W₂(p_s, q), closed form", grid, w2, "-"),
        Curve("contraction bound", grid, np.exp(-rate * grid) * w2[0], "--"),
        Curve("sliced W₂(cloud, data sample)", sw_times, sw, "o"),
    ]
    panels = [
        CloudPanel(
            f"{PATHS} particle paths; final cloud (s = {T:g})", ys[-1], data, extent, ys[:, :PATHS]
        ),
        CurvePanel("distance to the data", distances, log_y=True, hlines=(sw_null,)),
    ]
    figure = panel_row(panels, TITLE, out_dir / "discriminator-flow.png")
    measured = max(np.abs(z).max() / Z_TOLERANCE, max(contraction, bound) / W2_TOLERANCE)
    return Measurement(float(measured), 1.0, values, figure)


CLAIM = Claim.load(__file__, run)
