r"""Claim `ddpm-eps-mean`: with the true noise, the ε-parameterised reverse mean of DDPM is the
forward posterior mean $\tilde\mu_n(x_n, x_0)$."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from gpm_sde import DDPM, ddpm

from ..figures import Curve, CurvePanel, panel_row
from ..laws import mixture_2d
from ..types import Claim, Result, table

SEED = 2020_0611
EPS = float(np.finfo(np.float64).eps)
TOLERANCE = 1e-11
PARTS = (
    "ε-mean vs posterior mean",
    "posterior mean vs conditioning",
    "posterior variance vs conditioning",
    "predict_x0 vs x₀",
)


def _chains(n_steps: int) -> dict[str, DDPM]:
    return {"linear": ddpm(n_steps), "cosine": ddpm(n_steps, schedule="cosine")}


def _reference(
    betas: np.ndarray, x0: np.ndarray, xn: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""$\mathbb{E}[x_{n-1} \mid x_n, x_0]$ and $\mathrm{Var}[x_{n-1} \mid x_n, x_0]$ by
    Gaussian conditioning, independently of the library (NumPy float64). Given $x_0$,
    $x_{n-1} \sim \mathcal{N}(\sqrt{\bar\alpha_{n-1}}x_0, (1 - \bar\alpha_{n-1})I)$ (eq. 4) and
    $x_n = \sqrt{\alpha_n}x_{n-1} + \sqrt{\beta_n}z$ (eq. 2), so
    $\mathrm{Cov}(x_{n-1}, x_n) = \sqrt{\alpha_n}(1 - \bar\alpha_{n-1})$,
    $\mathrm{Var}(x_n) = 1 - \bar\alpha_n$ and the conditional law of $x_{n-1}$ has mean
    $\sqrt{\bar\alpha_{n-1}}x_0 + \frac{\mathrm{Cov}}{\mathrm{Var}}(x_n -
    \sqrt{\bar\alpha_n}x_0)$ and variance $(1 - \bar\alpha_{n-1}) -
    \mathrm{Cov}^2/\mathrm{Var}$. Row $i$ is step $n = i + 1$. Also returns
    $1 - \bar\alpha_n$ for every step."""
    log_ab = np.concatenate([[0.0], np.cumsum(np.log1p(-betas))])
    ab_prev, ab = np.exp(log_ab[:-1]), np.exp(log_ab[1:])
    one_m_prev, one_m = -np.expm1(log_ab[:-1]), -np.expm1(log_ab[1:])
    cov = np.sqrt(1.0 - betas) * one_m_prev
    mean = np.sqrt(ab_prev)[:, None] * x0 + (cov / one_m)[:, None] * (
        xn - np.sqrt(ab)[:, None] * x0
    )
    variance = one_m_prev - cov**2 / one_m
    return mean, variance, one_m


def _check(chain: DDPM, key: PRNGKeyArray) -> dict[str, np.ndarray]:
    r"""At every step $n = 1..N$ (one point per step, $x_0$ from `mixture_2d`, $\varepsilon
    \sim \mathcal{N}(0, I)$, $x_n = \sqrt{\bar\alpha_n}x_0 + \sqrt{1 - \bar\alpha_n}
    \varepsilon$), the relative errors of the four parts, and of the control."""
    n_steps = chain.n_steps
    ns = jnp.arange(1, n_steps + 1)
    x_key, e_key = jr.split(key)
    x0 = mixture_2d().sample(x_key, n_steps)
    eps = jr.normal(e_key, x0.shape)
    betas = np.asarray(chain.betas)
    log_ab = np.cumsum(np.log1p(-betas))
    x0_np, eps_np = np.asarray(x0), np.asarray(eps)
    xn_np = np.exp(0.5 * log_ab)[:, None] * x0_np + np.sqrt(-np.expm1(log_ab))[:, None] * eps_np
    xn = jnp.asarray(xn_np)
    mu_eps = np.asarray(chain.eps_mean(xn, eps, ns))
    mu_post, var_post = (np.asarray(v) for v in chain.posterior_mean_variance(x0, xn, ns))
    x0_hat = np.asarray(chain.predict_x0(xn, eps, ns))
    mean_ref, var_ref, one_m = _reference(betas, x0_np, xn_np)
    # The scale of the mean: its two terms, x_n/√α_n and β_n ε/(√α_n √(1 - ᾱ_n)).
    scale = (
        np.linalg.norm(xn_np, axis=1) + betas / np.sqrt(one_m) * np.linalg.norm(eps_np, axis=1)
    ) / np.sqrt(1.0 - betas)
    # The scale of eq. 15: its two terms, x_n/√ᾱ_n and √(1 - ᾱ_n) ε/√ᾱ_n.
    x0_scale = (
        np.linalg.norm(xn_np, axis=1) + np.sqrt(one_m) * np.linalg.norm(eps_np, axis=1)
    ) / np.exp(0.5 * log_ab)
    # Control: 1/√ᾱ_n in place of 1/√α_n in front of eq. 11 (a classic slip).
    wrong = np.sqrt((1.0 - betas) / np.exp(log_ab))[:, None] * mu_eps
    var_scale = np.where(var_ref > 0, var_ref, 1.0)
    return {
        PARTS[0]: np.linalg.norm(mu_eps - mu_post, axis=1) / scale,
        PARTS[1]: np.linalg.norm(mu_post - mean_ref, axis=1) / scale,
        PARTS[2]: np.abs(var_post - var_ref) / var_scale,
        PARTS[3]: np.linalg.norm(x0_hat - x0_np, axis=1) / x0_scale,
        "control": np.linalg.norm(wrong - mu_post, axis=1) / scale,
    }


def run(fast: bool, out_dir: Path) -> Result:
    """All four identities at every step of the linear and cosine chains."""
    n_steps = 1000
    repeats = 1 if fast else 8
    errors: dict[str, dict[str, np.ndarray]] = {}
    for i, (name, chain) in enumerate(_chains(n_steps).items()):
        runs = [_check(chain, jr.fold_in(jr.key(SEED), 100 * i + r)) for r in range(repeats)]
        errors[name] = {k: np.max([r[k] for r in runs], axis=0) for k in runs[0]}
    measured = max(float(errors[s][p].max()) for s in errors for p in PARTS)
    control = min(float(np.median(errors[s]["control"])) for s in errors)
    rows = [[s, *(f"{errors[s][p].max():.1e}" for p in PARTS)] for s in errors]
    details = "\n\n".join(
        [
            f"At every step $n = 1..{n_steps}$ of the linear (Ho et al.) and cosine (Nichol & "
            f"Dhariwal) chains, {repeats} point(s) per step: $x_0$ from `mixture_2d()`, "
            "$\\varepsilon \\sim \\mathcal{N}(0, I)$, $x_n = \\sqrt{\\bar\\alpha_n}x_0 + "
            "\\sqrt{1 - \\bar\\alpha_n}\\varepsilon$. Largest relative errors of: `eps_mean("
            "x_n, ε, n)` against `posterior_mean_variance(x_0, x_n, n)` (eq. 11 = eq. 7); that "
            "posterior mean and variance against Gaussian conditioning of $(x_{n-1}, x_n)$ "
            "given $x_0$ (eq. 2 and 4, computed in NumPy, independently of the library); and "
            "`predict_x0(x_n, ε, n)` against $x_0$ (eq. 15). Means are relative to the size "
            "of the two terms of eq. 11 (eq. 15 for `predict_x0`), variances to the variance "
            "($\\tilde\\beta_1 = 0$ exactly).",
            table(["schedule", *PARTS], rows),
            "**Control.** With $1/\\sqrt{\\bar\\alpha_n}$ in place of $1/\\sqrt{\\alpha_n}$ in "
            f"eq. 11 the median relative error is {control:.1e}, "
            f"{control / TOLERANCE:.0e} times the tolerance.",
        ]
    )
    return Result(
        measured=measured,
        tolerance=TOLERANCE,
        justification=_JUSTIFICATION,
        details=details,
        figure=_figure(errors, out_dir),
    )


_JUSTIFICATION = (
    "The four identities are exact algebra, so the two sides differ by float64 round-off "
    "only ($\\varepsilon$ = 2.2e-16). The terms of eq. 11 are computed in a few operations "
    "each; the amplification comes from $\\bar\\alpha_n$, a sum of $n \\le 1000$ logarithms "
    "(relative error ≲ $n\\varepsilon$ ≈ 2e-13, then halved by the square root), and from the "
    "cancellation in the conditioning variance $(1 - \\bar\\alpha_{n-1}) - "
    "\\mathrm{Cov}^2/\\mathrm{Var}$, whose terms exceed the result by the factor $(1 - "
    "\\bar\\alpha_n)/\\beta_n$ ≤ 161 for these schedules (101 linear, 161 cosine), so ≲ "
    "161 × 4ε ≈ 1.4e-13. The tolerance 1e-11 is fifty times the larger bound, and a wrong "
    "coefficient is O(1) off "
    "(the control). Errors are relative to the size of the terms that are summed (for "
    "`predict_x0`, $(|x_n| + \\sqrt{1 - \\bar\\alpha_n}|\\varepsilon|)/\\sqrt{\\bar\\alpha_n}$), "
    "so the cancellation when $x_0$ is small, or the division by $\\sqrt{\\bar\\alpha_N}$ "
    "≈ 5e-5 at the cosine schedule's clipped last step, does not count as an error."
)


def _figure(errors: dict[str, dict[str, np.ndarray]], out_dir: Path) -> Path:
    panels = []
    for schedule, errs in errors.items():
        ns = np.arange(1, len(errs[PARTS[0]]) + 1)
        curves = [
            Curve(part, ns, np.where(errs[part] > 0, errs[part], np.nan), "-") for part in PARTS
        ]
        curves.append(Curve("tolerance", ns, np.full(len(ns), TOLERANCE), ":", "black"))
        panels.append(CurvePanel(f"{schedule} schedule", curves, xlabel="n", log_y=True))
    return panel_row(
        panels,
        "DDPM: relative errors of the ε-parameterised mean identities, every step n",
        out_dir / "ddpm-eps-mean.png",
    )


CLAIM = Claim(
    name="ddpm-eps-mean",
    statement=(
        "If $x_n = \\sqrt{\\bar\\alpha_n}x_0 + \\sqrt{1 - \\bar\\alpha_n}\\varepsilon$, the "
        "ε-parameterised mean $\\mu(x_n, \\varepsilon) = \\frac{1}{\\sqrt{\\alpha_n}}(x_n - "
        "\\frac{\\beta_n}{\\sqrt{1 - \\bar\\alpha_n}}\\varepsilon)$ equals the mean "
        "$\\tilde\\mu_n(x_n, x_0)$ of the forward posterior $q(x_{n-1} \\mid x_n, x_0) = "
        "\\mathcal{N}(\\tilde\\mu_n, \\tilde\\beta_n I)$, $\\tilde\\beta_n = \\frac{1 - "
        "\\bar\\alpha_{n-1}}{1 - \\bar\\alpha_n}\\beta_n$, and $x_0 = (x_n - \\sqrt{1 - "
        "\\bar\\alpha_n}\\varepsilon)/\\sqrt{\\bar\\alpha_n}$."
    ),
    source="Ho et al. 2020, eq. 6, 7, 10, 11 and 15",
    method=(
        "At every step of the linear and cosine chains ($N$ = 1000), with $x_0$ from a mixture "
        "and the true noise, compare `DDPM.eps_mean` with `DDPM.posterior_mean_variance`, "
        "that posterior with Gaussian conditioning computed independently in NumPy, and "
        "`DDPM.predict_x0` with $x_0$: relative errors against a round-off tolerance."
    ),
    run=run,
)
