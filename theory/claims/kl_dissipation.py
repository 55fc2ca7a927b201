r"""Claim `kl-dissipation` (texts in `kl_dissipation.md`): along DiffFlow (fixed σ, $f = 0$),
$\mathrm{KL}(p_s\|q_\sigma)$ decreases at the rate $\beta$ times the relative Fisher information,
and tends to zero."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from gpm_sde import GaussianMixture
from gpm_sde.flows import GaussianDiffFlow, gaussian_diffflow
from gpm_sde.verify import gaussian_kl

from ..figures import Curve, CurvePanel, panel_row
from ..laws import gaussian, random_spd
from ..types import Claim, Measurement, Parts, table

SEED = 2023_0313
T = 15.0
GRID = 1501  # times on [0, T] for the monotonicity and LSI checks
CHECK_FRACTIONS = (0.5, 0.1, 1e-2, 1e-3)  # check where KL(s) has fallen to these × KL(0)
DELTA = 1e-4  # half-width of the central difference
ODE_RTOL = 1e-12  # tolerance of the moment ODE's solver
FD_TOLERANCE = 1e-6
MC_TOLERANCE = 1e-2
MONOTONE_TOLERANCE = 1e-12
MC_POINTS = 1_000_000
ROUND_OFF_KL = 1e-12  # the figure stops where KL (a difference of O(1) terms) reaches round-off
TIMES = np.linspace(0.0, T, GRID)
INNER = TIMES[1:-1]  # where the derivative is taken, by central differences


@eqx.filter_jit
def _moments(flow: GaussianDiffFlow, times: Array) -> tuple[Array, Array]:
    return jax.vmap(flow.mean)(times), jax.vmap(flow.cov)(times)


@eqx.filter_jit
def _fisher_mc(
    flow: GaussianDiffFlow, q: GaussianMixture, sigma: float, s: Array, key: PRNGKeyArray
) -> tuple[Array, Array]:
    r"""Monte-Carlo $\mathbb{E}_{p_s}\|\nabla\log p_s - \nabla\log q_\sigma\|^2$ and its SE, from
    `MC_POINTS` exact draws of $p_s$, with the library's scores: the generated score
    `flow(s, x)` and $\nabla\log q_\sigma$ = `q.convolve(σ).score`."""
    mean, cov = flow.mean(s), flow.cov(s)
    xs = mean + jr.normal(key, (MC_POINTS, mean.shape[0]), mean.dtype) @ jnp.linalg.cholesky(cov).T
    q_sigma = q.convolve(sigma)
    sq = jnp.sum(jax.vmap(lambda x: flow(s, x) - q_sigma.score(x))(xs) ** 2, axis=1)
    return jnp.mean(sq), jnp.std(sq) / jnp.sqrt(MC_POINTS)


@dataclass(frozen=True)
class _Case:
    r"""One random case: on the grid `TIMES`, KL and its log-Sobolev bound
    $e^{-2\beta s/\lambda_{\max}(S)}\mathrm{KL}(0)$; on `INNER`, $d\mathrm{KL}/ds$ by central
    differences and $-\beta$ × the Fisher information; at the check times (indices into `INNER`
    where KL(s)/KL(0) ≈ `CHECK_FRACTIONS`), $-\beta$ × its Monte-Carlo estimate and SE."""

    dim: int
    beta: float
    sigma: float
    kl: np.ndarray
    bound: np.ndarray
    lhs: np.ndarray
    rhs: np.ndarray
    checks: np.ndarray
    rhs_mc: np.ndarray
    rhs_se: np.ndarray


def _check(dim: int, draw: int, key: PRNGKeyArray) -> _Case:
    r"""Random data $\mathcal{N}(m, S_0)$, $\sigma \in [0.2, 1]$, $\beta \in [0.5, 1.5]$ and a
    random start $\mathcal{N}(\mu_0, \Sigma_0)$ with $\mu_0$ at distance 3 from $m$; along the
    library's moment-ODE solution, $\mathrm{KL}(p_s\|q_\sigma)$ and the relative Fisher
    information $\mathbb{E}_{p_s}\|\nabla\log(p_s/q_\sigma)\|^2$ in closed form, at the grid and
    at its interior ± δ (the check times are grid points). For Gaussians
    $\nabla\log(p_s/q_\sigma)(x) = A(x - \mu_s) + S^{-1}(\mu_s - m)$ with
    $A = S^{-1} - \Sigma_s^{-1}$, so the Fisher information is
    $\operatorname{tr}(A\Sigma_s A) + \|S^{-1}(\mu_s - m)\|^2$."""
    rng = np.random.default_rng([SEED, dim, draw])
    m = rng.normal(0.0, 1.0, dim)
    s0 = random_spd(rng, dim, ridge=0.2)
    direction = rng.normal(size=dim)
    mu0 = m + 3.0 * direction / np.linalg.norm(direction)
    sigma0 = 0.5 * random_spd(rng, dim, ridge=0.1)
    beta, sigma = float(rng.uniform(0.5, 1.5)), float(rng.uniform(0.2, 1.0))
    flow = gaussian_diffflow(m, s0, mu0, sigma0, beta, sigma, t1=T, rtol=ODE_RTOL)
    s = s0 + sigma**2 * np.eye(dim)  # the covariance of q_σ
    all_times = jnp.asarray(np.concatenate([TIMES, INNER + DELTA, INNER - DELTA]))
    means, covs = (np.asarray(v) for v in _moments(flow, all_times))
    kl = np.array([gaussian_kl(mu, c, m, s) for mu, c in zip(means, covs, strict=True)])
    a = np.linalg.inv(s) - np.linalg.inv(covs[1 : GRID - 1])
    b = (means[1 : GRID - 1] - m) @ np.linalg.inv(s).T
    fisher = np.trace(a @ covs[1 : GRID - 1] @ a, axis1=1, axis2=2) + np.sum(b * b, axis=1)
    k = len(INNER)
    lhs = (kl[GRID : GRID + k] - kl[GRID + k :]) / (2 * DELTA)
    kl = kl[:GRID]
    # The first interior grid time where KL has fallen below each fraction of KL(0): late
    # enough to span the decay, early enough that KL is far above its round-off (≈ 1e-16).
    checks = np.array([int(np.argmax(kl[1:-1] < f * kl[0])) for f in CHECK_FRACTIONS])
    q, at = gaussian(m, s0), jnp.asarray(INNER[checks])
    mc = np.array([_fisher_mc(flow, q, sigma, t, jr.fold_in(key, i)) for i, t in enumerate(at)])
    rate = 2.0 * beta / float(np.linalg.eigvalsh(s).max())  # the log-Sobolev decay rate of KL
    bound = np.exp(-rate * TIMES) * kl[0]
    return _Case(
        dim, beta, sigma, kl, bound, lhs, -beta * fisher, checks, -beta * mc[:, 0], beta * mc[:, 1]
    )


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    """The largest relative difference $|a - b|/|b|$."""
    return float(np.max(np.abs(a - b) / np.abs(b)))


def run(fast: bool, out_dir: Path) -> Measurement:
    draws = 1 if fast else 3
    cases = [
        _check(dim, draw, jr.key(SEED + 10 * dim + draw))
        for dim, draw in itertools.product((1, 2, 3), range(draws))
    ]
    fd = max(_rel(c.lhs[c.checks], c.rhs[c.checks]) for c in cases)
    mc = max(_rel(c.lhs[c.checks], c.rhs_mc) for c in cases)
    monotone = max(max(0.0, float(np.diff(c.kl).max())) / c.kl[0] for c in cases)
    lsi = max(max(0.0, float(np.max(c.kl - c.bound))) / c.kl[0] for c in cases)
    parts = Parts()
    parts.add("(i) dKL/ds vs −β·Fisher, closed form", fd, FD_TOLERANCE, ".2e")
    parts.add("(ii) dKL/ds vs −β·Fisher, Monte Carlo", mc, MC_TOLERANCE, ".2e")
    parts.add("(iii) largest increase of KL / KL(0)", monotone, MONOTONE_TOLERANCE, ".2e")
    label = "(iv) largest excess of KL over e^{−2βs/λ_max(S)} KL(0), / KL(0)"
    parts.add(label, lsi, MONOTONE_TOLERANCE, ".2e")
    rows = []
    for c in cases:
        for i, v, se in zip(c.checks, c.rhs_mc, c.rhs_se, strict=True):
            exact = [f"{INNER[i]:g}", f"{c.kl[1:-1][i]:.3e}", f"{c.lhs[i]:.6e}", f"{c.rhs[i]:.6e}"]
            rows.append(
                [str(c.dim), f"{c.beta:.2f}", f"{c.sigma:.2f}", *exact, f"{v:.4e} ± {se:.1e}"]
            )
    header = ["d", "β", "σ", "s", "KL", "dKL/ds (differences)", "−β·Fisher (exact)"]
    header.append("−β·Fisher (Monte Carlo)")
    mc_se = max(float(np.max(c.rhs_se / np.abs(c.lhs[c.checks]))) for c in cases)
    values = dict(
        parts=parts.table(), t_end=T, delta=DELTA, mc_points=MC_POINTS,
        fractions=", ".join(f"{f:g}" for f in CHECK_FRACTIONS), grid=GRID,
        kl_end=max(float(c.kl[-1] / c.kl[0]) for c in cases),
        lsi_end=max(c.kl[-1] / c.bound[-1] for c in cases), cases=table(header, rows),
        mc_se=mc_se, mc_sds=0.01 / mc_se,
    )  # fmt: skip
    # The figure: the slowest-decaying case, up to where KL reaches round-off (below
    # `ROUND_OFF_KL` it is noise).
    c = max(cases, key=lambda c: c.kl[-1] / c.kl[0])
    keep = c.kl > ROUND_OFF_KL
    inner = keep[1:-1]
    kl_curves = [
        Curve("KL along the moment ODE", TIMES[keep], c.kl[keep], "-"),
        Curve("log-Sobolev bound", TIMES, c.bound, "--"),
    ]
    identity = [
        Curve("−dKL/ds (differences)", INNER[inner], -c.lhs[inner]),
        Curve("β E‖∇log(p/q_σ)‖² (exact)", INNER[inner], -c.rhs[inner], "--"),
        Curve("β E‖∇log(p/q_σ)‖² (Monte Carlo)", INNER[c.checks], -c.rhs_mc, "o"),
    ]
    panels = [
        CurvePanel("KL(p_s ‖ q_σ)", kl_curves, log_y=True),
        CurvePanel("the dissipation identity", identity, log_y=True),
    ]
    title = f"KL dissipation, d = {c.dim}, β = {c.beta:.2f}, σ = {c.sigma:.2f}"
    figure = panel_row(panels, title, out_dir / "kl-dissipation.png")
    return Measurement(parts.ratio, 1.0, values, figure)


CLAIM = Claim.load(__file__, run)
