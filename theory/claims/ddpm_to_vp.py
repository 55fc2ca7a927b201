"""Claim `ddpm-to-vp` (texts in `ddpm_to_vp.md`): the DDPM chain with $N$ steps converges to the
VP SDE at rate $1/N$."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from gpm_sde import DDPM, ddpm, vp

from ..figures import Curve, CurvePanel, panel_row
from ..types import Claim, Measurement, Parts, table

BETA_MIN, BETA_MAX = 0.1, 20.0
MEAN = np.array([1.5, -1.0])
COV = np.array([[0.5, 0.2], [0.2, 0.3]])
LAM = np.linalg.eigvalsh(COV)  # the eigenvalues of the data covariance
STEPS = (64, 128, 256, 512, 1024, 2048, 4096, 8192)
FIT_FROM = 128  # the slope is fitted on the N ≥ FIT_FROM
SLOPE_BAND = 0.05
CONSTANT_KAPPA = 10.0  # tolerance of the leading constant: a relative gap κ/N at the largest N
PROFILE_STEPS = (64, 256, 1024)
HALF_INT_BETA2 = 0.5 * (BETA_MAX**3 - BETA_MIN**3) / (3 * (BETA_MAX - BETA_MIN))


@jax.jit
def _coefficients(betas: Float[Array, " L"], ts: Float[Array, " L"]) -> tuple[Array, ...]:
    r"""$\bar\alpha_n$, $1 - \bar\alpha_n$ of `DDPM(betas)` at $n = 1..L$, and $\alpha(t)$,
    $\sigma(t)^2$ of `vp()` at `ts`: one compiled function for every N (the arrays are padded
    to a common length; padding after step N does not change $\bar\alpha_n$ for $n \le N$)."""
    chain, process = DDPM(betas), vp(BETA_MIN, BETA_MAX)
    ns = jnp.arange(1, betas.shape[0] + 1)
    ab, one_m = chain.alpha_bar(ns), chain.one_minus_alpha_bar(ns)
    return ab, one_m, process.alpha(ts), process.variance(ts)


def _w2_profile(n_steps: int) -> tuple[np.ndarray, np.ndarray, float]:
    r"""$W_2$ between the chain's exact law of $x_n$ and the VP marginal at $t_n = n/N$, for
    every $n$, with Gaussian data $\mathcal{N}(m, S)$; and $\delta_N = \log\bar\alpha_N +
    B(1)$. Both laws are $\mathcal{N}(a\,m, a^2 S + (1 - a^2) I)$ (with $a^2 = \bar\alpha_n$
    and $a^2 = \alpha(t_n)^2$), whose covariances commute, so
    $W_2^2 = |m|^2(a_1 - a_2)^2 + \sum_i\big(\sqrt{a_1^2\lambda_i + 1 - a_1^2} -
    \sqrt{a_2^2\lambda_i + 1 - a_2^2}\big)^2$ over the eigenvalues $\lambda_i$ of $S$."""
    chain = ddpm(n_steps, beta_1=BETA_MIN / n_steps, beta_N=BETA_MAX / n_steps)
    betas, ts = np.full(max(STEPS), 0.5), np.ones(max(STEPS))
    betas[:n_steps] = np.asarray(chain.betas)
    ts[:n_steps] = np.arange(1, n_steps + 1) / n_steps
    coefficients = _coefficients(jnp.asarray(betas), jnp.asarray(ts))
    ab, one_m_ab, a, var = (np.asarray(v)[:n_steps, None] for v in coefficients)
    spread = np.sqrt(ab * LAM + one_m_ab) - np.sqrt(a**2 * LAM + var)
    sq = MEAN @ MEAN * (np.sqrt(ab[:, 0]) - a[:, 0]) ** 2 + np.sum(spread**2, axis=1)
    b_total = BETA_MIN + 0.5 * (BETA_MAX - BETA_MIN)
    return ts[:n_steps], np.sqrt(sq), float(np.log(ab[-1, 0]) + b_total)


def _leading_profile(ts: np.ndarray) -> np.ndarray:
    r"""The leading term $N\,W_2(t) \to |\Phi(t)|\,h(t)$ of the expansion (see the docs):
    $\log\bar\alpha_n + B(t_n) = \Phi(t_n)/N + O(N^{-2})$ with $\Phi(t) = \tfrac{b}{2}t(1 - t)
    - \tfrac12\int_0^t\beta^2$, $b = \beta_{\max} - \beta_{\min}$, and $W_2 \approx
    |\delta|\,h(t)$ with $h = \alpha\sqrt{|m|^2/4 + \sum_i \alpha^2(\lambda_i - 1)^2 /
    (4(\alpha^2(\lambda_i - 1) + 1))}$, the derivative of $W_2$ in $\delta$ at $\delta = 0$."""
    b = BETA_MAX - BETA_MIN
    beta = BETA_MIN + b * ts
    phi = 0.5 * b * ts * (1.0 - ts) - 0.5 * ((beta**3 - BETA_MIN**3) / (3.0 * b))
    alpha = np.exp(-0.5 * (BETA_MIN * ts + 0.5 * b * ts**2))[:, None]
    terms = alpha**2 * (LAM - 1.0) ** 2 / (4.0 * (alpha**2 * (LAM - 1.0) + 1.0))
    return np.abs(phi) * (alpha[:, 0] * np.sqrt(MEAN @ MEAN / 4.0 + np.sum(terms, axis=1)))


def run(fast: bool, out_dir: Path) -> Measurement:
    profiles = {n: _w2_profile(n) for n in STEPS}  # exact and cheap: the same in fast mode
    n_arr = np.asarray(STEPS, dtype=float)
    e_arr = np.array([w2.max() for _, w2, _ in profiles.values()])
    ends = [end for _, _, end in profiles.values()]
    fit = n_arr >= FIT_FROM
    slope = -float(np.polyfit(np.log(n_arr[fit]), np.log(e_arr[fit]), 1)[0])
    grid = np.linspace(0.0, 1.0, 200_001)
    lead = _leading_profile(grid)
    c_w = float(lead.max())
    gap, tol_gap = abs(n_arr[-1] * e_arr[-1] / c_w - 1.0), CONSTANT_KAPPA / n_arr[-1]
    parts = Parts()
    label_a = f"(a) \\|fitted slope − 1\\|, N ≥ {FIT_FROM} (slope {slope:.4f})"
    parts.add(label_a, abs(slope - 1.0), SLOPE_BAND, ".4f")
    label_b = f"(b) \\|N·E(N) / C − 1\\| at N = {STEPS[-1]} (tolerance {CONSTANT_KAPPA:g}/N)"
    parts.add(label_b, gap, tol_gap, ".2e")
    local = ["—", *(f"{p:.4f}" for p in np.log2(e_arr[:-1] / e_arr[1:]))]
    rows = [
        [str(n), f"{e:.3e}", p, f"{n * e / c_w:.5f}", f"{n * d:.3f}"]
        for n, e, p, d in zip(STEPS, e_arr, local, ends, strict=True)
    ]
    values = dict(
        parts=parts.table(), beta_min=BETA_MIN, beta_max=BETA_MAX, mean=MEAN.tolist(),
        cov=COV.tolist(), c_w=c_w, limit=-HALF_INT_BETA2,
        errors=table(["N", "E(N)", "local slope", "N·E(N) / C", "N·δ_N"], rows),
        slope_band=SLOPE_BAND, kappa=CONSTANT_KAPPA,
    )  # fmt: skip
    log_n = np.log2(n_arr)
    errors = [
        Curve(f"max_n W2 (slope −{slope:.3f})", log_n, e_arr, "o-"),
        Curve("C/N (derived)", log_n, c_w / n_arr, "--", "black"),
        Curve("|log ᾱ_N + B(1)|", log_n, np.abs(ends), "s-"),
        Curve("(1/2N) ∫β²", log_n, HALF_INT_BETA2 / n_arr, ":", "black"),
    ]
    rescaled = [Curve(f"N = {n}", profiles[n][0], n * profiles[n][1]) for n in PROFILE_STEPS]
    rescaled.append(Curve("leading term |Φ(t)| h(t)", grid, lead, "--", "black"))
    figure = panel_row(
        [
            CurvePanel("error against N", errors, xlabel="log₂ N", log_y=True),
            CurvePanel("N · W2(law(x_n), p_t) along the path", rescaled, xlabel="t = n/N"),
        ],
        "DDPM chain vs VP SDE: the error is O(1/N), with the derived constant",
        out_dir / "ddpm-to-vp.png",
    )
    return Measurement(parts.ratio, 1.0, values, figure)


CLAIM = Claim.load(__file__, run)
