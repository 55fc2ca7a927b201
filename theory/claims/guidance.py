"""Claim `guidance` (texts in `guidance.md`): classifier guidance at γ = 1 is the exact
conditional score and samples the class; γ ≠ 1 (and classifier-free guidance with w > 0) does
not sample the tilted law."""

from __future__ import annotations

from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from scipy.integrate import solve_ivp

from gpm_sde import GaussianMixture, MixtureMarginalScore, reverse, simulate
from gpm_sde.processes import vp
from gpm_sde.scores import (
    MixtureComponentLogPosterior,
    classifier_free_guidance,
    classifier_guidance,
)
from gpm_sde.verify import moment_z_scores

from ..laws import line_grid, mixture_1d, mixture_2d, pdf, trapezoid
from ..types import Claim, Measurement, Parts, table

SEED = 2022
EPS = 1e-3
SCORE_TOLERANCE = 1e-9
Z_TOLERANCE = 5.0
GAP_FLOOR = 10.0  # the tilt gap must be at least this many standard errors
GAMMA = 3.0
LAW_1D = mixture_1d([0.5, 0.5], [-1.0, 1.5], [0.6, 0.5])
CLASS_1D = 1
# (d): conditional N(m1, v1), unconditional N(m0, v0), classifier-free weight W
M1, V1, M0, V0, W = 1.0, 0.25, 0.0, 1.0, 2.0


def _component(law: GaussianMixture, k: int) -> GaussianMixture:
    return GaussianMixture(jnp.ones(1), law.means[k : k + 1], law.covs[k : k + 1])


def _score_error(key: jax.Array) -> float:
    """(a) max relative error of the γ = 1 guided score against the component's score."""
    process, law = vp(), mixture_2d()
    xs = 2.0 * jr.normal(key, (64, 2))
    worst = 0.0
    for k in range(law.n_components):
        guided = classifier_guidance(
            MixtureMarginalScore(process, law), MixtureComponentLogPosterior(process, law, k), 1.0
        )
        exact = MixtureMarginalScore(process, _component(law, k))
        for t in (0.0, 0.01, 0.1, 0.5, 1.0):
            got = jax.vmap(lambda x: guided(t, x))(xs)
            want = jax.vmap(lambda x: exact(t, x))(xs)
            err = jnp.abs(got - want).max() / jnp.abs(want).max()
            worst = max(worst, float(err))
    return worst


def _sample(score, y0: jax.Array, key: jax.Array, steps: int) -> np.ndarray:
    process = vp()
    sde = reverse(process, score)
    sol = simulate(sde, y0, key, t1=process.T - EPS, steps=steps, solver=diffrax.ShARK())
    assert sol.ys is not None
    return np.asarray(sol.ys[-1])


def _tilted_moments_1d(gamma: float) -> tuple[float, float]:
    """Mean and variance of q(x | k)^γ q(x)^{1-γ} / Z on the line, by quadrature."""
    x = line_grid([LAW_1D], 40001)
    comp = _component(LAW_1D, CLASS_1D)
    density = pdf(comp, x) ** gamma * pdf(LAW_1D, x) ** (1.0 - gamma)
    density = density / trapezoid(density, x)
    mean = trapezoid(x * density, x)
    return mean, trapezoid((x - mean) ** 2 * density, x)


def _guided_gaussian_law(w: float) -> tuple[float, float, float, float]:
    r"""(d) The law the CFG-guided reverse SDE samples when both scores are Gaussian: the guided
    score is affine in $x$, so the reverse SDE is linear and its law stays Gaussian; its mean
    and variance solve two ODEs, integrated here to 1e-11. Returns (start mean, start variance,
    end mean, end variance)."""
    process = vp()
    T = process.T

    def coeffs(t: float) -> tuple[float, float, float, float]:
        a, s = float(process.alpha(t)), float(process.sigma(t))
        c1, c0 = a * a * V1 + s * s, a * a * V0 + s * s
        slope = -(1 + w) / c1 + w / c0
        offset = (1 + w) * a * M1 / c1 - w * a * M0 / c0
        return float(process.drift_coeff(t)), float(process.diffusion_squared(t)), slope, offset

    def rhs(s: float, y: np.ndarray) -> list[float]:
        f, g2, slope, offset = coeffs(T - s)
        k = -f + g2 * slope
        return [k * y[0] + g2 * offset, 2 * k * y[1] + g2]

    a, s = float(process.alpha(T)), float(process.sigma(T))
    m_start, v_start = a * M1, a * a * V1 + s * s
    sol = solve_ivp(rhs, (0.0, T - EPS), [m_start, v_start], rtol=1e-11, atol=1e-13)
    return m_start, v_start, float(sol.y[0, -1]), float(sol.y[1, -1])


def run(fast: bool, out_dir: Path) -> Measurement:
    n, steps = (4000, 400) if fast else (40000, 1000)
    keys = jr.split(jr.key(SEED), 8)
    process, law2 = vp(), mixture_2d()
    parts = Parts()
    # (a) exact score identity
    score_err = _score_error(keys[0])
    parts.add("(a) γ = 1 score vs conditional score, max rel. error", score_err, SCORE_TOLERANCE)
    # (b) γ = 1: the reverse SDE samples the class
    rows_b, zb = [], []
    for k in range(law2.n_components):
        y0 = process.marginal(_component(law2, k), process.T).sample(keys[1 + k], n)
        guided = classifier_guidance(
            MixtureMarginalScore(process, law2), MixtureComponentLogPosterior(process, law2, k), 1.0
        )
        ys = _sample(guided, y0, keys[4 + k], steps)
        target = process.marginal(_component(law2, k), EPS)
        z = np.abs(np.asarray(moment_z_scores(ys, target.mean(), target.covariance())))
        zb.append(z.max())
        rows_b.append([str(k), f"{z[:2].max():.2f}", f"{z[2:].max():.2f}"])
    parts.add("(b) γ = 1 reverse SDE vs the class, max \\|z\\|", max(zb), Z_TOLERANCE, ".2f")
    # (c) γ ≠ 1 on a 1-D mixture: the sampled moments against the tilted law's
    y0 = process.marginal(LAW_1D, process.T).sample(keys[7], n)
    guided = classifier_guidance(
        MixtureMarginalScore(process, LAW_1D),
        MixtureComponentLogPosterior(process, LAW_1D, CLASS_1D),
        GAMMA,
    )
    ys = _sample(guided, y0, jr.fold_in(keys[7], 1), steps)
    tilt_mean, tilt_var = _tilted_moments_1d(GAMMA)
    z_tilt = np.asarray(moment_z_scores(ys, jnp.array([tilt_mean]), jnp.array([[tilt_var]])))
    gap_c = float(np.abs(z_tilt).max())
    parts.add("(c) 10 / (tilt gap in SE), γ = 3", GAP_FLOOR / gap_c, 1.0, ".3f")
    # (d) CFG on Gaussian scores: the sampled law is the derived Gaussian, not the tilted one
    cond = MixtureMarginalScore(process, mixture_1d([1.0], [M1], [V1**0.5]))
    uncond = MixtureMarginalScore(process, mixture_1d([1.0], [M0], [V0**0.5]))
    m_start, v_start, m_end, v_end = _guided_gaussian_law(W)
    y0 = m_start + v_start**0.5 * jr.normal(jr.fold_in(keys[7], 2), (n, 1))
    yd = _sample(classifier_free_guidance(cond, uncond, W), y0, jr.fold_in(keys[7], 3), steps)
    z_derived = np.abs(np.asarray(moment_z_scores(yd, jnp.array([m_end]), jnp.array([[v_end]]))))
    prec = (1 + W) / V1 - W / V0
    t_mean, t_var = ((1 + W) * M1 / V1 - W * M0 / V0) / prec, 1.0 / prec
    # the tilted law at t = 0 (noised by σ(ε) to compare like with like: ε is tiny)
    a_e, s_e = float(process.alpha(EPS)), float(process.sigma(EPS))
    tilt_e = (a_e * t_mean, a_e**2 * t_var + s_e**2)
    z_tilt_d = np.abs(
        np.asarray(moment_z_scores(yd, jnp.array([tilt_e[0]]), jnp.array([[tilt_e[1]]])))
    )
    parts.add(
        "(d) CFG reverse SDE vs derived Gaussian law, max \\|z\\|",
        z_derived.max(),
        Z_TOLERANCE,
        ".2f",
    )
    parts.add("(d) 10 / (gap to tilted Gaussian in SE)", GAP_FLOOR / z_tilt_d.max(), 1.0, ".3f")
    sample_mean_c, sample_var_c = float(ys.mean()), float(ys.var())
    rows_cd = [
        ["(c) γ = 3, 1-D mixture", f"{sample_mean_c:.4f}", f"{sample_var_c:.4f}",
         f"{tilt_mean:.4f}", f"{tilt_var:.4f}", "—", f"{gap_c:.1f}"],
        [f"(d) CFG w = {W:g}, Gaussian scores", f"{float(yd.mean()):.4f}", f"{float(yd.var()):.4f}",
         f"{tilt_e[0]:.4f}", f"{tilt_e[1]:.4f}", f"{m_end:.4f} / {v_end:.4f}",
         f"{z_tilt_d.max():.1f}"],
    ]  # fmt: skip
    n_z = 3 * 5 + 2
    values = dict(
        parts=parts.table(), n=n, steps=steps, eps=EPS, gamma=GAMMA, w=W,
        class_table=table(["class k", "max \\|z\\| mean", "max \\|z\\| cov."], rows_b),
        tilt_table=table(
            ["case", "sample mean", "sample var.", "tilted mean", "tilted var.",
             "derived law mean / var.", "gap to tilted (SE)"], rows_cd),
        n_z=n_z, false_alarm=n_z * 5.7e-7,
    )  # fmt: skip
    return Measurement(parts.ratio, 1.0, values, None)


CLAIM = Claim.load(__file__, run)
