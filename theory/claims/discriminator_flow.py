r"""Claim `discriminator-flow`: particles moved by the gradient of the optimal discriminator's
logit carry a Gaussian prior to the data, contracting in $W_2$."""

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
from ..types import Claim, Result, table

SEED = 2023_0315
T = 8.0
SAVE_TIMES = tuple(float(t) for t in np.linspace(0.0, T, 33))
CHECK_TIMES = (1.0, 3.0, T)
Z_TOLERANCE = 5.0
W2_TOLERANCE = 1e-6  # round-off allowance of the closed-form W₂, relative to W₂(p₀, q)
GRID = 801
PATHS = 40
SW_POINTS = 10000  # the sliced distance uses at most this many particles and data points
SW_EVERY = 2  # ... at every other save time
MOMENT_NAMES = ("mean₁", "mean₂", "Σ₁₁", "Σ₁₂", "Σ₂₂")


class OptimalLogit(eqx.Module):
    r"""$D^*(s, x) = \operatorname{logit}\frac{q(x)}{q(x) + p_s(x)} = \log q(x) - \log p_s(x)$,
    the logit of the optimal vanilla-GAN discriminator between the data $q$ and the particles'
    law $p_s = \mathcal{N}(\mu_s, \Sigma_s)$, known in closed form along the flow."""

    data: GaussianMixture
    law: GaussianDiffFlow

    def __call__(self, s: Float[ArrayLike, ""], x: Float[Array, " d"]) -> Float[Array, ""]:
        # The precision depends on s only: under vmap over particles it is computed once.
        mean, cov = self.law.mean(s), self.law.cov(s)
        diff = x - mean
        log_p = -0.5 * (diff @ jnp.linalg.inv(cov) @ diff + jnp.linalg.slogdet(cov)[1])
        return self.data.log_prob(x) - (log_p - 0.5 * x.shape[0] * jnp.log(2 * jnp.pi))


def _problem() -> tuple[np.ndarray, np.ndarray]:
    """Random 2-D data $\\mathcal{N}(m, S)$ with $\\|m\\| = 4$."""
    rng = np.random.default_rng(SEED)
    direction = rng.normal(size=2)
    return 4.0 * direction / np.linalg.norm(direction), random_spd(rng, 2, ridge=0.3)


@eqx.filter_jit
def _w2_inputs(law: GaussianDiffFlow, times: Array) -> tuple[Array, Array]:
    return jax.vmap(law.mean)(times), jax.vmap(law.cov)(times)


@eqx.filter_jit
def _sliced(clouds: Float[Array, "t n 2"], sample: Float[Array, "n 2"]) -> Float[Array, " t"]:
    """The sliced Wasserstein distance of each cloud to the data sample."""
    return jax.vmap(lambda y: sliced_wasserstein(y, sample))(clouds)


def run(fast: bool, out_dir: Path) -> Result:
    """Flow particles from $\\mathcal{N}(0, I)$ with the field $\\nabla D^*$; check the moments
    against the closed-form law and the $W_2$ contraction to the data."""
    n, steps = (4000, 160) if fast else (40000, 640)
    m, s = _problem()
    data = gaussian(m, s)
    law = gaussian_diffflow(m, s, np.zeros(2), np.eye(2), 1.0, t1=T)
    field = discriminator_field(OptimalLogit(data, law), "hinge")
    key = jr.key(SEED)
    x0 = jr.normal(key, (n, 2))
    saveat = diffrax.SaveAt(ts=jnp.asarray(SAVE_TIMES))
    ys = np.asarray(simulate(particle_flow(field), x0, None, t1=T, steps=steps, saveat=saveat).ys)
    # (a) moments of the cloud against p_s = N(μ_s, Σ_s)
    idx = [int(np.argmin(np.abs(np.asarray(SAVE_TIMES) - t))) for t in CHECK_TIMES]
    means, covs = (np.asarray(v) for v in _w2_inputs(law, jnp.asarray(SAVE_TIMES)))
    z = np.stack([moment_z_scores(ys[i], means[i], covs[i]) for i in idx])
    z_max = float(np.abs(z).max())
    # (b) the W₂ contraction, on a fine grid
    grid = np.linspace(0.0, T, GRID)
    g_means, g_covs = (np.asarray(v) for v in _w2_inputs(law, jnp.asarray(grid)))
    w2 = np.array([gaussian_w2(a, c, m, s) for a, c in zip(g_means, g_covs, strict=True)])
    rate = 1.0 / float(np.linalg.eigvalsh(s).max())  # β λ with β = 1, λ = 1/λ_max(S)
    step = np.exp(-rate * (grid[1] - grid[0]))
    contraction = max(0.0, float(np.max(w2[1:] - step * w2[:-1]))) / w2[0]
    bound = max(0.0, float(np.max(w2 - np.exp(-rate * grid) * w2[0]))) / w2[0]
    w2_part = max(contraction, bound)
    # (c) a sample-based distance to the data, for the figure and the table
    k = min(n, SW_POINTS)
    d_key, e_key = jr.split(jr.fold_in(key, 1))
    sample, other = data.sample(d_key, k), data.sample(e_key, k)
    sw = np.asarray(_sliced(jnp.asarray(ys[::SW_EVERY, :k]), sample))
    sw_null = float(sliced_wasserstein(other, sample))
    measured = max(z_max / Z_TOLERANCE, w2_part / W2_TOLERANCE)
    details = _details(n, steps, m, s, z, w2, grid, rate, contraction, bound, sw, sw_null)
    return Result(
        measured=measured,
        tolerance=1.0,
        justification=_justification(z.size),
        details=details,
        figure=_figure(ys, data, grid, w2, rate, sw, sw_null, out_dir),
    )


def _details(
    n: int,
    steps: int,
    m: np.ndarray,
    s: np.ndarray,
    z: np.ndarray,
    w2: np.ndarray,
    grid: np.ndarray,
    rate: float,
    contraction: float,
    bound: float,
    sw: np.ndarray,
    sw_null: float,
) -> str:
    sw_times = np.asarray(SAVE_TIMES)[::SW_EVERY]
    z_rows = [[f"{t:g}", *(f"{v:+.2f}" for v in zs)] for t, zs in zip(CHECK_TIMES, z, strict=True)]
    w_rows = []
    for t in (0.0, 1.0, 2.0, 4.0, 6.0, T):
        i = int(np.argmin(np.abs(grid - t)))
        j = int(np.argmin(np.abs(sw_times - t)))
        w_rows.append(
            [
                f"{t:g}",
                f"{w2[i]:.3e}",
                f"{np.exp(-rate * t) * w2[0]:.3e}",
                f"{sw[j]:.3e}",
            ]
        )
    return "\n\n".join(
        [
            f"Data $q = \\mathcal{{N}}(m, S)$ with $m$ = {np.round(m, 2).tolist()}, $S$ = "
            f"{np.round(s, 2).tolist()}; prior $\\mathcal{{N}}(0, I)$; N = {n} particles, "
            f'{steps} Heun steps on $[0, {T:g}]$. Field: `discriminator_field(D*, "hinge")` '
            "$= \\nabla_x D^*$ (the linear generator cost $c(d) = -d$), $D^* = \\log q - "
            "\\log p_s$ with $p_s$ from `gaussian_diffflow` (β = 1, σ = 0).",
            "**(a)** z-scores of the cloud's moments against $p_s = \\mathcal{N}(\\mu_s, "
            f"\\Sigma_s)$ (max \\|z\\| = {np.abs(z).max():.2f}). The field is affine in $x$ at "
            "each time, so it moves the sample's moments exactly as the law's: the rows see "
            "one and the same sampling error of the prior, carried through the flow map up to "
            "each time, and a wrong map would show as drift across the rows.",
            table(["s", *MOMENT_NAMES], z_rows),
            f"**(b)** $W_2(p_s, q)$ in closed form on {GRID} times, against the contraction "
            f"bound $e^{{-s/\\lambda_{{\\max}}(S)}}W_2(p_0, q)$ (rate {rate:.3f}). Largest "
            f"excess over the bound: {bound:.1e}; over the one-step contraction "
            f"$W_2(s + \\Delta) \\le e^{{-\\Delta/\\lambda_{{\\max}}}}W_2(s)$ (which implies "
            f"monotone decrease): {contraction:.1e}, both relative to $W_2(p_0, q)$ = "
            f"{w2[0]:.3f}. $W_2(p_{{{T:g}}}, q)/W_2(p_0, q)$ = {w2[-1] / w2[0]:.1e}.",
            table(["s", "W₂(p_s, q)", "bound", "sliced W₂(cloud, data sample)"], w_rows),
            f"**(c)** The sliced Wasserstein distance (`gpm_sde.metrics.sliced_wasserstein`) "
            f"between {min(n, SW_POINTS)} particles and as many data points falls from "
            f"{sw[0]:.3f} to {sw[-1]:.4f}, "
            f"the level between two independent data samples of that size ({sw_null:.4f}): "
            "the finite-sample floor. Reported, not part of the verdict.",
        ]
    )


def _justification(n_z: int) -> str:
    return (
        f"Measured = max((a) / {Z_TOLERANCE:g}, (b) / {W2_TOLERANCE:g}) against 1. **(a)** "
        "The flow is a deterministic map of independent draws of the prior, so the particles "
        "at time $s$ are independent draws of $p_s$ (up to Heun's O(h²) error, negligible at "
        "this step) and each moment's $z$ (sample SE, fourth moments for covariances) is "
        f"≈ N(0, 1); a 5-SE bound over {n_z} z-scores raises a false alarm with probability ≤ "
        f"{n_z * 5.7e-7:.0e}. **(b)** The field $\\nabla\\log(q/p_s)$ is the Wasserstein "
        "gradient flow of $\\mathrm{KL}(\\cdot\\|q)$, which is $\\lambda$-convex with "
        "$\\lambda = 1/\\lambda_{\\max}(S)$ for Gaussian $q$; such flows contract, $W_2(p_s, q) "
        "\\le e^{-\\lambda s}W_2(p_0, q)$ (Ambrosio, Gigli & Savaré 2008, Thm 11.2.1), at every "
        "time and over every step. The closed-form $W_2$ between Gaussians is exact up to "
        "the moment ODE's tolerance (1e-9) and the cancellation in $\\operatorname{tr}(C_0 + C_1 "
        "- 2(C_1^{1/2}C_0C_1^{1/2})^{1/2})$ near the data (≈ 1e-8 in $W_2$): 1e-6 of "
        "$W_2(p_0, q)$ covers both, while a slower-than-claimed decay would exceed it at once."
    )


def _figure(
    ys: np.ndarray,
    data: GaussianMixture,
    grid: np.ndarray,
    w2: np.ndarray,
    rate: float,
    sw: np.ndarray,
    sw_null: float,
    out_dir: Path,
) -> Path:
    log_q = data
    pts = np.concatenate([ys[0], ys[-1]])
    lo, hi = np.quantile(pts, 0.001, axis=0) - 0.5, np.quantile(pts, 0.999, axis=0) + 0.5
    extent = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
    times = np.asarray(SAVE_TIMES)[::SW_EVERY]
    return panel_row(
        [
            CloudPanel(
                f"{PATHS} particle paths; final cloud (s = {T:g})",
                ys[-1],
                log_q,
                extent,
                paths=ys[:, :PATHS],
            ),
            CurvePanel(
                "distance to the data",
                [
                    Curve("W₂(p_s, q), closed form", grid, w2, "-"),
                    Curve("contraction bound", grid, np.exp(-rate * grid) * w2[0], "--"),
                    Curve("sliced W₂(cloud, data sample)", times, sw, "o"),
                ],
                log_y=True,
                hlines=(sw_null,),
            ),
        ],
        "Discriminator Flow with the optimal discriminator (dotted: two data samples' sliced W₂)",
        out_dir / "discriminator-flow.png",
    )


CLAIM = Claim(
    name="discriminator-flow",
    statement=(
        "Particles moved by $dx/ds = \\nabla_x D^*(s, x)$, with $D^* = \\operatorname{logit}"
        "\\frac{q}{q + p_s}$ the optimal discriminator between the data and the particles' own "
        "law, carry a Gaussian prior to the data $q$: their law is the Wasserstein gradient "
        "flow of $\\mathrm{KL}(\\cdot\\|q)$ (DiffFlow's GAN end), and for Gaussian $q$ "
        "$W_2(p_s, q) \\le e^{-s/\\lambda_{\\max}(S)}W_2(p_0, q) \\to 0$."
    ),
    source=(
        "Franceschi et al. 2023 (GPM), §3 and Table 1 (Discriminator Flow); Zhang et al. 2023 "
        "(DiffFlow), §3.2; Ambrosio, Gigli & Savaré 2008, Thm 11.2.1"
    ),
    method=(
        "Gaussian data $\\mathcal{N}(m, S)$ and prior $\\mathcal{N}(0, I)$. With the linear "
        'generator cost the field `discriminator_field(D*, "hinge")` is $\\nabla D^* = '
        "\\nabla\\log(q/p_s)$, which is affine, so $p_s$ stays Gaussian and is the moment-ODE "
        "solution (`gaussian_diffflow`, β = 1, σ = 0) — $D^*$ is then exact at every $s$. "
        "(The non-saturating field $\\sigma(-D^*)\\nabla D^*$ is not affine: $p_s$ would leave "
        "the Gaussian family and $D^*$ would need an estimate of $p_s$, so it is not used "
        "here.) Simulate the particles with `particle_flow`, compare their moments with "
        "$p_s$, and check the $W_2$ contraction to $q$ in closed form on a fine grid."
    ),
    run=run,
)
