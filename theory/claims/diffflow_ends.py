r"""Claim `diffflow-ends` (texts in `diffflow_ends.md`): DiffFlow's $g = 0$ end is the
optimal-discriminator GAN flow, and its $g^2 = 2\beta$ end is Langevin dynamics on $q_\sigma$."""

from __future__ import annotations

from pathlib import Path

import diffrax
import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from gpm_sde import GaussianMixture, diffflow, gan_flow, langevin_flow, simulate
from gpm_sde.scores import AnnealedScore, DiscriminatorScoreDifference, SmoothedMixtureScore
from gpm_sde.verify import moment_z_scores, sample_moments

from ..figures import CloudPanel, Curve, CurvePanel, panel_row
from ..fitting import map_points
from ..laws import StaticScore, mixture_2d, random_affine, random_mixture
from ..types import Claim, Measurement, Parts, table

EXACT_TOLERANCE = 1e-8
Z_TOLERANCE = 5.0
SEED = 2023_0312
LANGEVIN_SIGMA = 1.0
LANGEVIN_T = 24.0
LANGEVIN_CHECK = (20.0, 24.0)
MOMENT_NAMES = ("mean₁", "mean₂", "Σ₁₁", "Σ₁₂", "Σ₂₂")


@eqx.filter_jit
def _exact_gaps(case: tuple, key: PRNGKeyArray, n: int) -> tuple:
    r"""At `n` random $(s, x)$, `case` = ($q$, $p$, $\beta$, $\sigma$): (a) the relative gap between
    `gan_flow`'s drift and $\beta\nabla\operatorname{logit}D^*$ ($\log q_{\sigma(s)} - \log p$ from
    exact densities) and the control's (the unsmoothed $q$); (b') the larger relative gap of
    the drifts and of the diffusions of `diffflow(g = √(2β))` and `langevin_flow`."""
    q, p, beta, sigma = case
    s_key, x_key = jr.split(key)
    ss, xs = jr.uniform(s_key, (n,)), p.convolve(0.5).sample(x_key, n)
    real = AnnealedScore(SmoothedMixtureScore(q), sigma)
    gen = StaticScore(p)
    gan = gan_flow(real, gen, beta)
    disc = DiscriminatorScoreDifference(
        lambda s, x: q.convolve(sigma(s)).log_prob(x) - p.log_prob(x)
    )
    wrong = DiscriminatorScoreDifference(lambda s, x: q.log_prob(x) - p.log_prob(x))
    noisy = diffflow(real, gen, beta, (2.0 * beta) ** 0.5)
    langevin = langevin_flow(real, beta)
    noisy_g, langevin_g = noisy.diffusion, langevin.diffusion
    assert noisy_g is not None and langevin_g is not None

    def at(s, x):
        cloud = x[None]
        scale = beta(s) * (jnp.linalg.norm(real(s, x)) + jnp.linalg.norm(gen(s, x)))
        drift = gan.drift(s, cloud, None)[0]
        a = jnp.linalg.norm(drift - beta(s) * disc(s, x)) / scale
        control = jnp.linalg.norm(drift - beta(s) * wrong(s, x)) / scale
        b_drift = jnp.linalg.norm(noisy.drift(s, cloud, None) - langevin.drift(s, cloud, None))
        b_noise = jnp.abs(noisy_g(s, cloud) - langevin_g(s, cloud)).max()
        return a, control, jnp.maximum(b_drift / scale, b_noise / jnp.sqrt(2.0 * beta(s)))

    return map_points(at, ss, xs)


def _ula_bias_in_se(y: np.ndarray, target: GaussianMixture, h: float) -> float:
    r"""The Euler–Maruyama (ULA) bias of the stationary variances, in SE, in the Gaussian
    approximation: on $\mathcal{N}(m, C)$, ULA with step $h$ has stationary covariance
    $C(I - \tfrac{h\beta}{2}C^{-1})^{-1}$, so the relative bias of a variance is at most
    $\tfrac{h\beta}{2}\lambda_{\max}(C_k^{-1})$ over the components' $C_k$ (the local
    curvature), and the shift is that times $\Sigma_{ii}$ over its SE."""
    rel = 0.5 * h * float(np.max(1.0 / np.linalg.eigvalsh(np.asarray(target.covs))))  # β = 1
    se = np.asarray(sample_moments(y)[1])[[2, 4]]  # the SEs of Σ₁₁ and Σ₂₂
    return float(np.max(rel * np.diag(np.asarray(target.covariance())) / se))


def run(fast: bool, out_dir: Path) -> Measurement:
    draws, points = (1, 16) if fast else (4, 128)
    rows, a_max, b_max, controls = [], 0.0, 0.0, []
    for dim in (1, 2, 3):
        for draw in range(draws):
            rng = np.random.default_rng([SEED, dim, draw])
            (beta, _), (sigma, _) = random_affine(rng, 0.2, 2.0), random_affine(rng, 0.05, 1.5)
            case = (random_mixture(rng, dim, 3), random_mixture(rng, dim, 2), beta, sigma)
            key = jr.key(int(rng.integers(2**31)))
            a, ctrl, b = (np.asarray(v) for v in _exact_gaps(case, key, points))
            a_max, b_max = max(a_max, float(a.max())), max(b_max, float(b.max()))
            controls.append(ctrl)
            cells = (a.max(), np.median(ctrl), b.max())
            rows.append([str(dim), str(draw), *(f"{v:.2e}" for v in cells)])
    control = float(np.median(np.concatenate(controls)))
    # (b) `langevin_flow` on q_σ (fixed σ, f = 0, β = 1) from N(0, I), saved at every unit of time
    n, h = (5000, 0.02) if fast else (20000, 0.01)
    x_key, w_key = jr.split(jr.key(SEED))
    target = mixture_2d().convolve(LANGEVIN_SIGMA)
    sde = langevin_flow(AnnealedScore(SmoothedMixtureScore(mixture_2d()), LANGEVIN_SIGMA), 1.0)
    times = np.arange(0.0, LANGEVIN_T + 0.5)
    saveat = diffrax.SaveAt(ts=jnp.asarray(times))
    x0, steps = jr.normal(x_key, (n, 2)), round(LANGEVIN_T / h)
    ys = np.asarray(simulate(sde, x0, w_key, t1=LANGEVIN_T, steps=steps, saveat=saveat).ys)
    z_path = np.stack([moment_z_scores(y, target.mean(), target.covariance()) for y in ys])
    check = [int(np.argmin(np.abs(times - t))) for t in LANGEVIN_CHECK]
    parts = Parts()
    parts.add("(a) GAN end vs β∇logit D*", a_max, EXACT_TOLERANCE, ".2e")
    parts.add("(b′) diffflow(g = √(2β)) vs langevin_flow", b_max, EXACT_TOLERANCE, ".2e")
    z_check = np.abs(z_path[check]).max()
    parts.add("(b) Langevin run: max \\|z\\| against q_σ", z_check, Z_TOLERANCE, ".2f")
    z_rows = [[f"{times[i]:g}", *(f"{v:+.2f}" for v in z_path[i])] for i in check]
    n_z = len(LANGEVIN_CHECK) * len(MOMENT_NAMES)
    header = ["d", "draw", "(a) max rel. gap", "(a) control: median", "(b′) max rel. gap"]
    values = dict(
        parts=parts.table(), cases=table(header, rows), control=control,
        control_ratio=control / EXACT_TOLERANCE, sigma=LANGEVIN_SIGMA, n=n, h=h, t_end=LANGEVIN_T,
        z_table=table(["s", *MOMENT_NAMES], z_rows), n_z=n_z, false_alarm=n_z * 5.7e-7,
        bias=_ula_bias_in_se(ys[check[-1]], target, h),
    )  # fmt: skip
    curves = [Curve("max |z|", times[1:], np.abs(z_path[1:]).max(axis=1), "o-")]
    figure = panel_row(
        [
            CloudPanel(f"Langevin cloud at s = {times[-1]:g}", ys[-1], target, (-5, 5, -4.5, 5.5)),
            CurvePanel("max |z| of the moments against q_σ", curves, log_y=True, hlines=(5, 1)),
        ],
        f"(b) Langevin on q_σ (σ = {LANGEVIN_SIGMA:g}) reaches it; dotted: 5 SE and 1 SE",
        out_dir / "diffflow-ends.png",
    )
    return Measurement(parts.ratio, 1.0, values, figure)


CLAIM = Claim.load(__file__, run)
