r"""Claim `diffflow-spectrum` (texts in `diffflow_spectrum.md`): every member of DiffFlow's spectrum
$g \in [0, \sqrt{2\beta}]$ has the same marginals; only the particle paths change."""

from __future__ import annotations

import itertools
from pathlib import Path

import diffrax
import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from gpm_sde import SDE, GaussianMixture, diffflow, simulate
from gpm_sde.metrics import gaussian_w2_squared, mmd_permutation_test
from gpm_sde.schedules import Constant
from gpm_sde.scores import AnnealedScore, SmoothedMixtureScore
from gpm_sde.verify import moment_z_scores

from ..figures import CloudPanel, panel_row
from ..laws import gaussian
from ..types import Claim, Measurement, Parts, table

SEED = 2023_0313
BETA = 1.0
SIGMA = 0.5
T = 10.0
STEPS = 500
LABELS = {0.0: "g = 0", 0.25: "g = ¼√(2β)", 0.5: "g = ½√(2β)", 0.75: "g = ¾√(2β)", 1.0: "g = √(2β)"}
SAVE_EVERY = 5  # every cloud is saved every SAVE_EVERY steps (the figure's paths come from these)
CHECK_TIMES = (0.5, 2.0, T)
N_PATHS = 30
PATH_END = 2.5  # the paths are drawn on [0, 2.5], the transport phase (later they wander inside)
Z_TOLERANCE = 5.0
FAMILY_LEVEL = 0.01
PERMUTATIONS = 1999
MOMENT_NAMES = ("mean₁", "mean₂", "Σ₁₁", "Σ₁₂", "Σ₂₂")
_ROT = np.array([[np.cos(np.pi / 6), -np.sin(np.pi / 6)], [np.sin(np.pi / 6), np.cos(np.pi / 6)]])
DATA_MEAN = np.array([0.0, -0.5])
DATA_COV = _ROT @ np.diag([0.9, 0.15]) @ _ROT.T
TARGET_COV = DATA_COV + SIGMA**2 * np.eye(2)  # S = S_0 + σ²I, the covariance of q_σ
START_MEANS, START_COVS = [[-3.5, 3.0], [3.5, 2.5]], [0.25 * np.eye(2), np.diag([0.3, 0.1])]
START = GaussianMixture(np.array([0.3, 0.7]), np.array(START_MEANS), np.stack(START_COVS))
EXTENT = (-5.5, 5.5, -4.0, 5.0)  # the figure's box
_draws = eqx.filter_jit(GaussianMixture.sample)


class _ExactLaw(eqx.Module):
    r"""The exact $p_s$ and its score, `(s, x) -> ∇log p_s(x)`. The law of DiffFlow does not
    depend on $g$, so it is that of the Langevin end $g = \sqrt{2\beta}$,
    $dx = -\beta S^{-1}(x - m)\,ds + \sqrt{2\beta}\,dW$: linear with additive noise, so each
    component of the start $p_0$ stays Gaussian with its weight, with
    $\mu_k(s) = m + E_s(\mu_k(0) - m)$ and $\Sigma_k(s) = S + E_s(\Sigma_k(0) - S)E_s$,
    $E_s = e^{-\beta s S^{-1}}$ (DiffFlow's moment ODE with $f = 0$, fixed $\sigma$)."""

    start: GaussianMixture
    target: tuple[Array, ...]  # the eigenvalues and eigenvectors of S, m, and S

    def law(self, s: Float[ArrayLike, ""]) -> GaussianMixture:
        eigvals, eigvecs, mean, cov = self.target
        decay = (eigvecs * jnp.exp(-BETA * jnp.asarray(s) / eigvals)) @ eigvecs.T
        means = mean + (self.start.means - mean) @ decay.T
        covs = cov + decay @ (self.start.covs - cov) @ decay.T
        return GaussianMixture(self.start.weights, means, 0.5 * (covs + jnp.swapaxes(covs, 1, 2)))

    def __call__(self, s: Float[ArrayLike, ""], x: Float[Array, " 2"]) -> Float[Array, " 2"]:
        return self.law(s).score(x)


def _run(sde: SDE, key: PRNGKeyArray, n: int) -> np.ndarray:
    """ShARK from `n` draws of $p_0$ (own draws and noise per key), saved at every `SAVE_EVERY`."""
    x_key, w_key = jr.split(key)
    x0, saveat = _draws(START, x_key, n), diffrax.SaveAt(t0=True, steps=SAVE_EVERY)
    sol = simulate(sde, x0, w_key, t1=T, steps=STEPS, solver=diffrax.ShARK(), saveat=saveat)
    return np.asarray(sol.ys)


def _p_value(key: PRNGKeyArray, x: np.ndarray, y: np.ndarray) -> float:
    return float(mmd_permutation_test(key, jnp.asarray(x), jnp.asarray(y), PERMUTATIONS)[1])


def run(fast: bool, out_dir: Path) -> Measurement:
    n, n_mmd = (2000, 200) if fast else (10_000, 500)
    key = jr.key(SEED)
    q_sigma = (*np.linalg.eigh(TARGET_COV), DATA_MEAN, TARGET_COV)
    exact = _ExactLaw(START, tuple(jnp.asarray(v) for v in q_sigma))
    real = AnnealedScore(SmoothedMixtureScore(gaussian(DATA_MEAN, DATA_COV)), SIGMA)

    def member(c: float) -> SDE:  # g = c√(2β), c an array leaf: all runs share one compilation
        return diffflow(real, exact, BETA, Constant(jnp.asarray(c)) * (2.0 * BETA) ** 0.5)

    saved = {c: _run(member(c), jr.fold_in(key, i), n) for i, c in enumerate(LABELS)}
    # The control: the noise of g = ½√(2β) with the drift of g = 0, at s = T.
    control = _run(SDE(member(0.0).drift, member(0.5).diffusion), jr.fold_in(key, 50), n)[-1]
    times = np.linspace(0.0, T, STEPS // SAVE_EVERY + 1)
    at = [int(np.argmin(np.abs(times - s))) for s in CHECK_TIMES]
    moments = [(p.mean(), p.covariance()) for p in (exact.law(s) for s in CHECK_TIMES)]
    rows, z_max = [], 0.0
    for c, ys in saved.items():
        for s, i, m in zip(CHECK_TIMES, at, moments, strict=True):
            z = moment_z_scores(ys[i], *m)
            z_max = max(z_max, float(np.abs(z).max()))
            rows.append([LABELS[c], f"{s:g}", *(f"{v:+.2f}" for v in z)])
    z_ctl = float(np.abs(moment_z_scores(control, *moments[-1])).max())
    # Each level against its own draws of the target q_σ (NumPy: a Gaussian needs no compiled
    # sampler), then against its neighbour in g, on disjoint subsets.
    rng = np.random.default_rng(SEED)
    draws = rng.multivariate_normal(DATA_MEAN, TARGET_COV, size=n_mmd * len(saved))
    tests = {}
    for i, (c, ys) in enumerate(saved.items()):
        y = draws[i * n_mmd : (i + 1) * n_mmd]
        tests[f"{LABELS[c]} vs target q_σ"] = _p_value(jr.fold_in(key, 200 + i), ys[-1][:n_mmd], y)
    for i, (c1, c2) in enumerate(itertools.pairwise(LABELS)):
        x, y = saved[c1][-1][n_mmd : 2 * n_mmd], saved[c2][-1][-n_mmd:]
        tests[f"{LABELS[c1]} vs {LABELS[c2]}"] = _p_value(jr.fold_in(key, 300 + i), x, y)
    threshold = FAMILY_LEVEL / len(tests)
    parts = Parts()
    parts.add("(a) max \\|z\\| of the moments against the exact $p_s$", z_max, Z_TOLERANCE, ".2f")
    bonferroni = threshold / min(tests.values())
    parts.add("(b) Bonferroni threshold / smallest MMD p-value at $s = T$", bonferroni, 1.0, ".2f")
    # An upper bound on W₂(p_T, q_σ): couple component k of p_T with q_σ (a Gaussian), so
    # W₂² ≤ Σ_k w_k W₂²(N(μ_k(T), Σ_k(T)), q_σ).
    p_t = exact.law(T)
    components = zip(p_t.means, p_t.covs, strict=True)
    w2_sq = [gaussian_w2_squared(m, c, DATA_MEAN, TARGET_COV) for m, c in components]
    gap = float(np.sqrt(np.dot(p_t.weights, w2_sq)))
    se_mean = float(np.sqrt(np.linalg.eigvalsh(TARGET_COV).max() / n))
    n_z = len(rows) * len(MOMENT_NAMES)
    p_rows = [[k, f"{v:.3f}"] for k, v in tests.items()]
    values = dict(
        parts=parts.table(), n=n, gap=gap, gap_se=gap / se_mean, z_ctl=z_ctl, n_z=n_z,
        false_alarm=n_z * 5.7e-7, n_mmd=n_mmd, permutations=PERMUTATIONS, level=FAMILY_LEVEL,
        z_table=table(["g", "s", *(f"z {m}" for m in MOMENT_NAMES)], rows), n_tests=len(tests),
        threshold=threshold, tests=table(["test", "p-value"], p_rows), p_min=1 / (PERMUTATIONS + 1),
    )  # fmt: skip
    log_q, early, panels = gaussian(DATA_MEAN, TARGET_COV), times <= PATH_END, []
    for c, ys in saved.items():
        title = f"{LABELS[c]}\nMMD p vs target: {tests[f'{LABELS[c]} vs target q_σ']:.2f}"
        panels.append(CloudPanel(title, ys[-1][:2000], log_q, EXTENT, ys[early, :N_PATHS]))
    figure = panel_row(
        panels,
        f"DiffFlow from a two-blob start to q_σ: {N_PATHS} particle paths per noise level on "
        f"s ∈ [0, {PATH_END:g}] (orange; black dots: starts) and the cloud at s = {T:g} over the "
        "target's contours",
        out_dir / "diffflow-spectrum.png",
    )
    return Measurement(parts.ratio, 1.0, values, figure)


CLAIM = Claim.load(__file__, run)
