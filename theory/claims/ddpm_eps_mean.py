"""Claim `ddpm-eps-mean` (texts in `ddpm_eps_mean.md`): with the true noise, the
ε-parameterised reverse mean of DDPM is the forward posterior mean."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from gpm_sde import DDPM, ddpm

from ..figures import Curve, CurvePanel, panel_row
from ..laws import mixture_2d
from ..types import Claim, Measurement, table

SEED = 2020_0611
N_STEPS = 1000
TOLERANCE = 1e-11


def _check(chain: DDPM, key: PRNGKeyArray) -> dict[str, np.ndarray]:
    r"""The relative errors of the four parts and of the control, one point per step. The
    reference is Gaussian conditioning in NumPy, independent of the library: given $x_0$,
    $x_{n-1} \sim \mathcal{N}(\sqrt{\bar\alpha_{n-1}}x_0, (1 - \bar\alpha_{n-1})I)$ (eq. 4) and
    $x_n = \sqrt{\alpha_n}x_{n-1} + \sqrt{\beta_n}z$ (eq. 2), so $\mathrm{Cov}(x_{n-1}, x_n) =
    \sqrt{\alpha_n}(1 - \bar\alpha_{n-1})$, $\mathrm{Var}(x_n) = 1 - \bar\alpha_n$, and
    $x_{n-1} \mid x_n, x_0$ has mean $\sqrt{\bar\alpha_{n-1}}x_0 +
    \frac{\mathrm{Cov}}{\mathrm{Var}}(x_n - \sqrt{\bar\alpha_n}x_0)$ and variance
    $(1 - \bar\alpha_{n-1}) - \mathrm{Cov}^2/\mathrm{Var}$."""
    ns = jnp.arange(1, chain.n_steps + 1)
    x_key, e_key = jr.split(key)
    x0 = np.asarray(mixture_2d().sample(x_key, chain.n_steps))
    eps = np.asarray(jr.normal(e_key, x0.shape))
    betas = np.asarray(chain.betas)
    log_ab = np.concatenate([[0.0], np.cumsum(np.log1p(-betas))])
    ab_prev, ab = np.exp(log_ab[:-1]), np.exp(log_ab[1:])
    one_m_prev, one_m = -np.expm1(log_ab[:-1]), -np.expm1(log_ab[1:])
    xn = np.exp(0.5 * log_ab[1:])[:, None] * x0 + np.sqrt(one_m)[:, None] * eps
    j_x0, j_xn, j_eps = (jnp.asarray(v) for v in (x0, xn, eps))
    mu_eps = np.asarray(chain.eps_mean(j_xn, j_eps, ns))
    mu_post, var_post = (np.asarray(v) for v in chain.posterior_mean_variance(j_x0, j_xn, ns))
    x0_hat = np.asarray(chain.predict_x0(j_xn, j_eps, ns))
    cov = np.sqrt(1.0 - betas) * one_m_prev
    shift = xn - np.sqrt(ab)[:, None] * x0
    mean_ref = np.sqrt(ab_prev)[:, None] * x0 + (cov / one_m)[:, None] * shift
    var_ref = one_m_prev - cov**2 / one_m
    x_norm, e_norm = np.linalg.norm(xn, axis=1), np.linalg.norm(eps, axis=1)
    # The scale of the mean: its two terms, x_n/√α_n and β_n ε/(√α_n √(1 - ᾱ_n)).
    scale = (x_norm + betas / np.sqrt(one_m) * e_norm) / np.sqrt(1.0 - betas)
    # The scale of eq. 15: its two terms, x_n/√ᾱ_n and √(1 - ᾱ_n) ε/√ᾱ_n.
    x0_scale = (x_norm + np.sqrt(one_m) * e_norm) / np.exp(0.5 * log_ab[1:])
    # Control: 1/√ᾱ_n in place of 1/√α_n in front of eq. 11 (a classic slip).
    wrong = np.sqrt((1.0 - betas) / ab)[:, None] * mu_eps
    return {
        "ε-mean vs posterior mean": np.linalg.norm(mu_eps - mu_post, axis=1) / scale,
        "posterior mean vs conditioning": np.linalg.norm(mu_post - mean_ref, axis=1) / scale,
        "posterior variance vs conditioning": np.abs(var_post - var_ref)
        / np.where(var_ref > 0, var_ref, 1.0),
        "predict_x0 vs x₀": np.linalg.norm(x0_hat - x0, axis=1) / x0_scale,
        "control": np.linalg.norm(wrong - mu_post, axis=1) / scale,
    }


def run(fast: bool, out_dir: Path) -> Measurement:
    repeats = 1 if fast else 8
    chains = {"linear": ddpm(N_STEPS), "cosine": ddpm(N_STEPS, schedule="cosine")}
    errors: dict[str, dict[str, np.ndarray]] = {}
    for i, (name, chain) in enumerate(chains.items()):
        runs = [_check(chain, jr.fold_in(jr.key(SEED), 100 * i + r)) for r in range(repeats)]
        errors[name] = {k: np.max([r[k] for r in runs], axis=0) for k in runs[0]}
    parts = [k for k in errors["linear"] if k != "control"]
    control = min(float(np.median(e["control"])) for e in errors.values())
    rows = [[s, *(f"{e[p].max():.1e}" for p in parts)] for s, e in errors.items()]
    values = dict(
        n_steps=N_STEPS, repeats=repeats, errors=table(["schedule", *parts], rows),
        control=control, control_ratio=control / TOLERANCE,
    )  # fmt: skip
    ns = np.arange(1, N_STEPS + 1)
    panels = []
    for schedule, errs in errors.items():
        curves = [Curve(p, ns, np.where(errs[p] > 0, errs[p], np.nan)) for p in parts]
        curves.append(Curve("tolerance", ns, np.full(N_STEPS, TOLERANCE), ":", "black"))
        panels.append(CurvePanel(f"{schedule} schedule", curves, xlabel="n", log_y=True))
    figure = panel_row(
        panels,
        "DDPM: relative errors of the ε-parameterised mean identities, every step n",
        out_dir / "ddpm-eps-mean.png",
    )
    measured = max(float(e[p].max()) for e in errors.values() for p in parts)
    return Measurement(measured, TOLERANCE, values, figure)


CLAIM = Claim.load(__file__, run)
