r"""Claim `discriminator-flow` (texts in `discriminator_flow.md`): particles moved by the
gradient of the optimal discriminator's logit carry a Gaussian prior to the data, contracting in
$W_2$; the non-saturating field descends KL, and IPM and hinge critics give the linear flow."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float
from scipy.integrate import cumulative_simpson

from gpm_sde import GaussianMixture, discriminator_field, particle_flow, simulate
from gpm_sde.flows import GaussianDiffFlow, gaussian_diffflow
from gpm_sde.metrics import gaussian_w2, sliced_wasserstein
from gpm_sde.verify import gaussian_kl, moment_z_scores

from ..figures import CloudPanel, Curve, CurvePanel, panel_row
from ..laws import gaussian, random_spd
from ..types import Claim, Measurement, Parts, table

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
TABLE_TIMES = (0.0, 1.0, 2.0, 4.0, 6.0, T)
FITS = 4000  # draws of the law of the particles' W₂ that the moment ODE predicts
# (kind, sign of the critic: −1 for one low on data, low_on_data), one cloud each
CRITICS: tuple[tuple[Literal["nonsaturating", "ipm", "hinge"], int, bool], ...] = (
    ("nonsaturating", 1, False), ("hinge", 1, False), ("ipm", 1, False), ("ipm", -1, True)
)  # fmt: skip
KL_TOLERANCE = 1e-3  # Simpson's rule in time, relative to KL(p̂₀‖q)
ODE_TOLERANCE = 1e-6  # Tsit5's global error on the moments (≈ 1e-8)
TITLE = "Discriminator Flow with the optimal discriminator (dotted: two data samples' sliced W₂)"


class OptimalLogit(eqx.Module):
    r"""$D^*(s, x) = \operatorname{logit}\frac{q(x)}{q(x) + p_s(x)} = \log q(x) - \log p_s(x)$,
    the logit of the optimal vanilla-GAN discriminator between the data $q$ and the particles'
    law $p_s = \mathcal{N}(\mu_s, \Sigma_s)$, known in closed form along the flow."""

    data: GaussianMixture
    law: GaussianDiffFlow

    def __call__(self, s: Float[ArrayLike, ""], x: Float[Array, " d"]) -> Float[Array, ""]:
        return self.data.log_prob(x) - self.law.law(s).log_prob(x)


def _fitted_logit(cloud: Array, sign: int, m: Array, p: Array):
    r"""$\pm(\log q - \log\hat p)$: $\hat p$ the cloud's Gaussian fit (1/n covariance),
    $q = \mathcal{N}(m, P^{-1})$."""
    mu, cov = jnp.mean(cloud, axis=0), jnp.cov(cloud.T, bias=True)
    lam, k = jnp.linalg.inv(cov), 0.5 * (jnp.linalg.slogdet(cov)[1] + jnp.linalg.slogdet(p)[1])
    return lambda s, x: sign * (0.5 * (x - mu) @ lam @ (x - mu) - 0.5 * (x - m) @ p @ (x - m) + k)


def _critic_fields(s: Array, y: Float[Array, "c n 2"], args: tuple[Array, Array]) -> Array:
    """One cloud per critic of CRITICS, each moved by `discriminator_field` of its own fit."""
    return jnp.stack([
        discriminator_field(_fitted_logit(c, sign, *args), kind, low_on_data=low)(s, c)
        for (kind, sign, low), c in zip(CRITICS, y, strict=True)
    ])  # fmt: skip


def _statistics(s: Array, y: Float[Array, "c n 2"], args: tuple[Array, Array]):
    r"""Each cloud's fit; $\mathbb{E}[\sigma(-\hat D)|\nabla\hat D|^2]$ of the first, by hand."""
    d, grad = jax.vmap(jax.value_and_grad(_fitted_logit(y[0], 1, *args), 1), (None, 0))(s, y[0])
    fits = jnp.mean(y, axis=1), jax.vmap(lambda c: jnp.cov(c.T, bias=True))(y)
    return fits, jnp.mean(jax.nn.sigmoid(-d) * jnp.sum(grad**2, axis=-1))


_w2_path = jax.jit(jax.vmap(gaussian_w2, (0, 0, None, None)))
_kl_path = jax.jit(jax.vmap(gaussian_kl, (0, 0, None, None)))


def _fits(rng: np.random.Generator, means: np.ndarray, covs: np.ndarray, n: int):
    """FITS Gaussian fits of n draws of each N(mean, cov), stacked: the sample mean and covariance
    are independent, N(mean, cov/n) and Wishart(cov, n − 1)/(n − 1) (Bartlett's decomposition)."""
    k, z = len(means), rng.standard_normal((len(means), FITS, 3, 1))
    chi = np.sqrt(rng.chisquare([n - 1, n - 2], (k, FITS, 2)))
    a = np.stack([chi[..., 0], np.zeros((k, FITS)), z[..., 2, 0], chi[..., 1]], axis=-1)
    chol = np.linalg.cholesky(covs)[:, None]
    a = chol @ a.reshape(k, FITS, 2, 2)
    fit_means = means[:, None] + (chol @ z[..., :2, :])[..., 0] / np.sqrt(n)
    return fit_means.reshape(-1, 2), (a @ a.transpose(0, 1, 3, 2)).reshape(-1, 2, 2) / (n - 1)


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
    every = steps // (len(SAVE_TIMES) - 1)  # the steps at SAVE_TIMES
    saveat = diffrax.SaveAt(t0=True, steps=every)
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
    # (d) W₂(fit of the cloud, q) against its law for n draws of p_s, given by the moment ODE
    rows = [int(np.argmin(np.abs(SAVE_TIMES - t))) for t in TABLE_TIMES]
    w2_cloud = np.array([gaussian_w2(ys[i].mean(0), np.cov(ys[i].T), m, s) for i in rows])
    fits = np.asarray(_w2_path(*_fits(rng, means[rows], covs[rows], n), m, s)).reshape(-1, FITS)
    w2_mean, w2_sd = fits.mean(axis=1), fits.std(axis=1, ddof=1)
    z_w2 = (w2_cloud - w2_mean) / w2_sd
    # (e), (f) one cloud per critic of CRITICS, each the optimal critic of the cloud's own fit
    args = (jnp.asarray(m), jnp.asarray(np.linalg.inv(s)))
    saves = diffrax.SaveAt(t0=True, steps=True, fn=_statistics)
    sol = simulate(particle_flow(_critic_fields), jnp.stack([x0] * len(CRITICS)), None, t1=T,
                   steps=steps, solver=diffrax.Tsit5(), saveat=saves, args=args)  # fmt: skip
    ((f_means, f_covs), dissipation), times = jax.tree.map(np.asarray, (sol.ys, sol.ts))
    kl = np.asarray(_kl_path(f_means[:, 0], f_covs[:, 0], m, s))
    w2_ns = _w2_path(f_means[:, 0], f_covs[:, 0], m, s)
    descent = cumulative_simpson(dissipation, x=times, initial=0.0)
    coarse = cumulative_simpson(dissipation[::2], x=times[::2], initial=0.0)
    ref = gaussian_diffflow(m, s, f_means[0, 1], f_covs[0, 1], 1.0, t1=T)
    r_means, r_covs = (np.asarray(v) for v in _moments(ref, jnp.asarray(SAVE_TIMES)))
    parts = Parts()
    parts.add("(a) max \\|z\\| of the moments against $p_s$", np.abs(z).max(), Z_TOLERANCE, ".2f")
    parts.add("(b) excess over the contraction / $W_2(p_0, q)$", max(contraction, bound),
              W2_TOLERANCE)  # fmt: skip
    parts.add("(d) max \\|z\\| of the particles' $W_2$", np.abs(z_w2).max(), Z_TOLERANCE, ".2f")
    parts.add("(e) non-saturating: KL identity error / KL at 0",
              np.abs(kl - kl[0] + descent).max() / kl[0], KL_TOLERANCE)  # fmt: skip
    dev_m = np.abs(f_means[::every, 1:] - r_means[:, None]).max(axis=(0, 2))
    dev_c = np.abs(f_covs[::every, 1:] - r_covs[:, None]).max(axis=(0, 2, 3))
    for (kind, _, low), error in zip(CRITICS[1:], np.maximum(dev_m, dev_c), strict=True):
        label = f"`{kind}`" + ", critic low on data (`low_on_data=True`)" * low
        parts.add(f"(f) {label}: moments against the moment ODE", error, ODE_TOLERANCE)
    z_rows = [[f"{t:g}", *(f"{v:+.2f}" for v in zs)] for t, zs in zip(CHECK_TIMES, z, strict=True)]
    w_rows, sw_times = [], SAVE_TIMES[::SW_EVERY]
    for t, *d in zip(TABLE_TIMES, w2_cloud, w2_mean, w2_sd, z_w2, strict=True):
        i, j = np.argmin(np.abs(grid - t)), np.argmin(np.abs(sw_times - t))
        w_rows.append(
            [f"{t:g}", f"{w2[i]:.3e}", f"{np.exp(-rate * t) * w2[0]:.3e}", f"{sw[j]:.3e}",
             f"{d[0]:.4f}", f"{d[1]:.4f} ± {d[2]:.4f}", f"{d[3]:+.2f}"]
        )  # fmt: skip
    header = [
        "s",
        "W₂(p_s, q)",
        "bound",
        "sliced W₂(cloud, data sample)",
        "W₂(fit, q)",
        "law: mean ± sd",
        "z",
    ]
    values = dict(
        m=np.round(m, 2).tolist(), s=np.round(s, 2).tolist(), n=n, steps=steps, t1=T,
        z_max=np.abs(z).max(), z_table=table(["s", "mean₁", "mean₂", "Σ₁₁", "Σ₁₂", "Σ₂₂"], z_rows),
        grid=GRID, rate=rate, bound=bound, contraction=contraction, w2_0=w2[0],
        w2_ratio=w2[-1] / w2[0], w2_table=table(header, w_rows),
        sw_points=k, sw_0=sw[0], sw_end=sw[-1], sw_null=sw_null, n_z=z.size,
        false_alarm=z.size * 5.7e-7, fits=FITS, z_w2=np.abs(z_w2).max(), kl_0=kl[0],
        kl_end=kl[-1], simpson=np.abs(coarse - descent[::2]).max() / 15 / kl[0],
        rate_0=dissipation[0], parts=parts.table(),
    )  # fmt: skip
    pts = np.concatenate([ys[0], ys[-1]])
    lo, hi = np.quantile(pts, 0.001, axis=0) - 0.5, np.quantile(pts, 0.999, axis=0) + 0.5
    extent = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
    distances = [
        Curve("W₂(p_s, q), closed form", grid, w2, "-"),
        Curve("contraction bound", grid, np.exp(-rate * grid) * w2[0], "--"),
        Curve("sliced W₂(cloud, data sample)", sw_times, sw, "o"),
        Curve("W₂(Gaussian fit of the cloud, q)", TABLE_TIMES, w2_cloud, "x"),
        Curve("non-saturating, fitted critic: W₂(fit, q)", times, w2_ns, "-."),
    ]
    panels = [
        CloudPanel(
            f"{PATHS} particle paths; final cloud (s = {T:g})", ys[-1], data, extent, ys[:, :PATHS]
        ),
        CurvePanel("distance to the data", distances, log_y=True, hlines=(sw_null,)),
    ]
    figure = panel_row(panels, TITLE, out_dir / "discriminator-flow.png")
    return Measurement(parts.ratio, 1.0, values, figure)


CLAIM = Claim.load(__file__, run)
