r"""Claim `ddpm-to-vp`: the DDPM chain with $N$ steps converges to the VP SDE at rate $1/N$."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gpm_sde import DDPM, ddpm, vp

from ..types import Claim, Result, table

BETA_MIN, BETA_MAX = 0.1, 20.0
MEAN = np.array([1.5, -1.0])
COV = np.array([[0.5, 0.2], [0.2, 0.3]])
STEPS = (64, 128, 256, 512, 1024, 2048, 4096, 8192)
FIT_FROM = 128
"""The slope is fitted on the N ≥ `FIT_FROM` of `STEPS`."""
SLOPE_BAND = 0.05
CONSTANT_KAPPA = 10.0
"""Tolerance of the leading constant: a relative gap `CONSTANT_KAPPA` / N at the largest N."""
PROFILE_STEPS = (64, 256, 1024)


@jax.jit
def _coefficients(
    betas: Float[Array, " L"], ts: Float[Array, " L"]
) -> tuple[Float[Array, " L"], Float[Array, " L"], Float[Array, " L"], Float[Array, " L"]]:
    r"""$\bar\alpha_n$, $1 - \bar\alpha_n$ of `DDPM(betas)` at $n = 1..L$, and $\alpha(t)$,
    $\sigma(t)^2$ of `vp()` at `ts`: one compiled function for every N (the arrays are padded
    to a common length; padding after step N does not change $\bar\alpha_n$ for $n \le N$)."""
    chain, process = DDPM(betas), vp(BETA_MIN, BETA_MAX)
    ns = jnp.arange(1, betas.shape[0] + 1)
    return (
        chain.alpha_bar(ns),
        chain.one_minus_alpha_bar(ns),
        process.alpha(ts),
        process.variance(ts),
    )


def _w2_profile(n_steps: int) -> tuple[np.ndarray, np.ndarray, float]:
    r"""$W_2$ between the chain's exact law of $x_n$ and the VP marginal at $t_n = n/N$, for
    every $n$, with Gaussian data $\mathcal{N}(m, S)$; and $\delta_N = \log\bar\alpha_N +
    B(1)$. Both laws are $\mathcal{N}(a\,m, a^2 S + (1 - a^2) I)$ (with $a^2 = \bar\alpha_n$
    and $a^2 = \alpha(t_n)^2$), whose covariances commute, so
    $W_2^2 = |m|^2(a_1 - a_2)^2 + \sum_i\big(\sqrt{a_1^2\lambda_i + 1 - a_1^2} -
    \sqrt{a_2^2\lambda_i + 1 - a_2^2}\big)^2$ over the eigenvalues $\lambda_i$ of $S$."""
    chain = ddpm(n_steps, beta_1=BETA_MIN / n_steps, beta_N=BETA_MAX / n_steps)
    length = max(STEPS)
    betas = np.full(length, 0.5)
    betas[:n_steps] = np.asarray(chain.betas)
    ts = np.ones(length)
    ts[:n_steps] = np.arange(1, n_steps + 1) / n_steps
    ab, one_m_ab, a, var = (
        np.asarray(v)[:n_steps] for v in _coefficients(jnp.asarray(betas), jnp.asarray(ts))
    )
    ts = ts[:n_steps]
    lam = np.linalg.eigvalsh(COV)
    sq = MEAN @ MEAN * (np.sqrt(ab) - a) ** 2 + np.sum(
        (
            np.sqrt(ab[:, None] * lam + one_m_ab[:, None])
            - np.sqrt(a[:, None] ** 2 * lam + var[:, None])
        )
        ** 2,
        axis=1,
    )
    b_total = BETA_MIN + 0.5 * (BETA_MAX - BETA_MIN)
    return ts, np.sqrt(sq), float(np.log(ab[-1]) + b_total)


def _leading_profile(ts: np.ndarray) -> np.ndarray:
    r"""The leading term $N\,W_2(t) \to |\Phi(t)|\,h(t)$ of the expansion (see the docs):
    $\log\bar\alpha_n + B(t_n) = \Phi(t_n)/N + O(N^{-2})$ with $\Phi(t) = \tfrac{b}{2}t(1 - t)
    - \tfrac12\int_0^t\beta^2$, $b = \beta_{\max} - \beta_{\min}$, and $W_2 \approx
    |\delta|\,h(t)$ with $h = \alpha\sqrt{|m|^2/4 + \sum_i \alpha^2(\lambda_i - 1)^2 /
    (4(\alpha^2(\lambda_i - 1) + 1))}$, the derivative of $W_2$ in $\delta$ at $\delta = 0$."""
    b = BETA_MAX - BETA_MIN
    beta = BETA_MIN + b * ts
    int_beta2 = (beta**3 - BETA_MIN**3) / (3.0 * b)
    phi = 0.5 * b * ts * (1.0 - ts) - 0.5 * int_beta2
    alpha = np.exp(-0.5 * (BETA_MIN * ts + 0.5 * b * ts**2))
    lam = np.linalg.eigvalsh(COV)
    a2 = alpha[:, None] ** 2 * (lam - 1.0)
    h = alpha * np.sqrt(
        MEAN @ MEAN / 4.0
        + np.sum(alpha[:, None] ** 2 * (lam - 1.0) ** 2 / (4.0 * (a2 + 1.0)), axis=1)
    )
    return np.abs(phi) * h


def run(fast: bool, out_dir: Path) -> Result:
    """The sup-over-the-path W2 error for each N, its slope and its leading constant."""
    steps = STEPS  # exact and cheap: the same in fast mode
    sups, ends, profiles = [], [], {}
    for n in steps:
        ts, w2, delta_end = _w2_profile(n)
        sups.append(float(w2.max()))
        ends.append(delta_end)
        if n in PROFILE_STEPS:
            profiles[n] = (ts, n * w2)
    n_arr, e_arr = np.asarray(steps, dtype=float), np.asarray(sups)
    fit = n_arr >= FIT_FROM
    slope = -float(np.polyfit(np.log(n_arr[fit]), np.log(e_arr[fit]), 1)[0])
    grid = np.linspace(0.0, 1.0, 200_001)
    lead = _leading_profile(grid)
    c_w = float(lead.max())
    gap = abs(n_arr[-1] * e_arr[-1] / c_w - 1.0)
    tol_gap = CONSTANT_KAPPA / n_arr[-1]
    parts = [abs(slope - 1.0) / SLOPE_BAND, gap / tol_gap]
    local = [np.nan, *np.log2(e_arr[:-1] / e_arr[1:])]
    int_beta2 = (BETA_MAX**3 - BETA_MIN**3) / (3.0 * (BETA_MAX - BETA_MIN))
    rows = [
        [
            str(n),
            f"{e:.3e}",
            "—" if np.isnan(p) else f"{p:.4f}",
            f"{n * e / c_w:.5f}",
            f"{n * d:.3f}",
        ]
        for n, e, p, d in zip(steps, sups, local, ends, strict=True)
    ]
    details = "\n\n".join(
        [
            table(
                ["part", "measured", "tolerance"],
                [
                    [
                        f"(a) \\|fitted slope − 1\\|, N ≥ {FIT_FROM}",
                        f"{abs(slope - 1.0):.4f} (slope {slope:.4f})",
                        f"{SLOPE_BAND:g}",
                    ],
                    [
                        f"(b) \\|N·E(N) / C − 1\\| at N = {steps[-1]}",
                        f"{gap:.2e}",
                        f"{tol_gap:.2e} (= {CONSTANT_KAPPA:g}/N)",
                    ],
                ],
            ),
            f"Chain `ddpm(N, beta_1=β_min/N, beta_N=β_max/N)`, i.e. $\\beta_n = \\beta(s_n)/N$ "
            "with $s_n = (n-1)/(N-1)$ and the VP schedule $\\beta(t) = \\beta_{\\min} + "
            f"(\\beta_{{\\max}} - \\beta_{{\\min}})t$ ($\\beta_{{\\min}}$ = {BETA_MIN:g}, "
            f"$\\beta_{{\\max}}$ = {BETA_MAX:g}); step $n$ is time $t_n = n/N$ of `vp()`. Data "
            f"$\\mathcal{{N}}(m, S)$, $m$ = {MEAN.tolist()}, $S$ = {COV.tolist()}. Error "
            "$E(N) = \\max_n W_2(\\mathrm{law}(x_n), p_{t_n})$, exact (both laws Gaussian "
            "with commuting covariances). $C$ = "
            f"{c_w:.5f} is the derived leading constant $\\max_t |\\Phi(t)|h(t)$ (see the "
            "docs). Local slope: $\\log_2 E(N/2)/E(N)$. Last column: $N\\delta_N = "
            "N(\\log\\bar\\alpha_N + B(1))$, whose limit is $-\\tfrac12\\int_0^1\\beta^2$ = "
            f"{-0.5 * int_beta2:.3f}.",
            table(["N", "E(N)", "local slope", "N·E(N) / C", "N·δ_N"], rows),
        ]
    )
    return Result(
        measured=max(parts),
        tolerance=1.0,
        justification=_JUSTIFICATION,
        details=details,
        figure=_figure(n_arr, e_arr, np.abs(ends), c_w, slope, profiles, grid, lead, out_dir),
    )


_JUSTIFICATION = (
    "Everything here is deterministic and exact up to float64 round-off (≲ 1e-12 relative, "
    "far below every error measured), so the only tolerance needed is for the discretisation "
    "order itself. Measured = max((a) / "
    f"{SLOPE_BAND:g}, (b) / ({CONSTANT_KAPPA:g}/N)) against 1. The expansion (docs) gives "
    "$E(N) = C/N + O(N^{-2})$, so the local slope is $1 + \\kappa/N + O(N^{-2})$: the "
    "table's local slopes approach 1 with the deviation halving at each doubling, "
    "$\\kappa$ ≈ 4.8. A least-squares slope over $N \\ge 128$ is then within ≈ "
    "4.8/128 ≈ 0.04 of 1 in the worst case (it is closer, since the finer N dominate): "
    f"the band {SLOPE_BAND:g} covers it, while a wrong order (½, 2) is ≥ 0.5 away. (b) The "
    "leading constant is derived, not fitted: $N\\,E(N)/C - 1 = \\kappa'/N + O(N^{-2})$ with "
    "$\\kappa'$ ≈ 3.3 in the table; the tolerance "
    f"{CONSTANT_KAPPA:g}/N leaves a factor 3, and a wrong constant (e.g. forgetting the "
    "grid offset $\\tfrac{b}{2}t(1 - t)$ in $\\Phi$, or the factor ½ of $\\int\\beta^2$) "
    "misses by O(1)."
)


def _figure(
    n_arr: np.ndarray,
    e_arr: np.ndarray,
    ends: np.ndarray,
    c_w: float,
    slope: float,
    profiles: dict[int, tuple[np.ndarray, np.ndarray]],
    grid: np.ndarray,
    lead: np.ndarray,
    out_dir: Path,
) -> Path:
    fig = Figure(figsize=(10.0, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax0, ax1 = fig.subplots(1, 2)
    ax0.loglog(n_arr, e_arr, "o-", label=f"$\\max_n W_2$ (slope −{slope:.3f})")
    ax0.loglog(n_arr, c_w / n_arr, "k--", lw=0.8, label="$C/N$ (derived)")
    ax0.loglog(n_arr, ends, "s-", label="$|\\log\\bar\\alpha_N + B(1)|$")
    ax0.loglog(
        n_arr,
        0.5 * (BETA_MAX**3 - BETA_MIN**3) / (3 * (BETA_MAX - BETA_MIN)) / n_arr,
        "k:",
        lw=0.8,
        label="$\\frac{1}{2N}\\int_0^1\\beta^2$",
    )
    ax0.set_xlabel("number of steps N")
    ax0.set_ylabel("error")
    ax0.set_title("DDPM chain vs VP SDE: error against N", fontsize=10)
    ax0.legend(fontsize=8)
    for n, (ts, nw2) in profiles.items():
        ax1.plot(ts, nw2, lw=1.0, label=f"N = {n}")
    ax1.plot(grid, lead, "k--", lw=1.0, label="leading term $|\\Phi(t)|\\,h(t)$")
    ax1.set_xlabel("time $t = n/N$")
    ax1.set_ylabel("$N \\cdot W_2(\\mathrm{law}(x_n), p_t)$")
    ax1.set_title("the rescaled error along the path converges", fontsize=10)
    ax1.legend(fontsize=8)
    path = out_dir / "ddpm-to-vp.png"
    fig.savefig(path, dpi=110)
    return path


CLAIM = Claim(
    name="ddpm-to-vp",
    statement=(
        "The DDPM chain with $\\beta_n = \\beta(s_n)/N$ converges to the VP SDE $dx = "
        "-\\tfrac12\\beta(t)x\\,dt + \\sqrt{\\beta(t)}\\,dW$ as $N \\to \\infty$: the law of "
        "$x_n$ differs from the VP marginal at $t = n/N$ by $W_2 = O(1/N)$ uniformly in $n$, "
        "with the leading constant of the expansion $\\log\\bar\\alpha_n + B(t_n) = "
        "\\Phi(t_n)/N + O(N^{-2})$."
    ),
    source="Song et al. 2021, §3.4 and app. B (eq. 33); Ho et al. 2020, eq. 4",
    method=(
        "For $N$ = 64…8192 steps and Gaussian data, compute exactly the largest $W_2$ over the "
        "path between the chain's law of $x_n$ (`DDPM.alpha_bar`) and the VP marginal at "
        "$t_n$ (`vp().alpha`, `.variance`); fit the log-log slope and compare with the order "
        "1 and with the derived leading constant."
    ),
    run=run,
)
