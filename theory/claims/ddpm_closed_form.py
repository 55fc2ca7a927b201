"""Claim `ddpm-closed-form` (texts in `ddpm_closed_form.md`): the iterated DDPM chain has the
closed-form marginal of Ho et al.'s eq. 4."""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from gpm_sde import DDPM, ddpm

from ..figures import Curve, CurvePanel, panel_row
from ..laws import mixture_2d
from ..types import Claim, Measurement, Parts, table

SEED = 2020_0619
N_STEPS = 1000
CHECKS = (1, 10, 100, 300, 600, 1000)
ROUNDOFF_FACTOR = 16  # the round-off tolerance is ROUNDOFF_FACTOR × N × ε (see the .md)
TOLERANCE_A = ROUNDOFF_FACTOR * N_STEPS * float(np.finfo(np.float64).eps)
Z_TOLERANCE = 5.0


def _step_coefficients(chain: DDPM, key: PRNGKeyArray) -> tuple[np.ndarray, np.ndarray]:
    r"""$(a_n, b_n)$ with `forward_step(key, x, n)` $= a_n x + b_n\varepsilon$, read off the
    method itself for every $n$ at once (point $n - 1$ at step $n$): $b_n\varepsilon$ is the
    step of $x = 0$, and $a_n$ the step of $x = 1$ minus it."""
    ns = jnp.arange(1, chain.n_steps + 1)
    noise_only = chain.forward_step(key, jnp.zeros((chain.n_steps, 1)), ns)
    a = np.asarray(chain.forward_step(key, jnp.ones((chain.n_steps, 1)), ns) - noise_only)
    return a[:, 0], np.asarray(noise_only / jr.normal(key, (chain.n_steps, 1)))[:, 0]


def _relative_errors(a: np.ndarray, b: np.ndarray, exact: np.ndarray) -> np.ndarray:
    r"""The relative errors `(2, N)` against `exact` $= (\sqrt{\bar\alpha_n}, 1 - \bar\alpha_n)$
    of the moments of $x_n \mid x_0$ under $x_n = a_n x_{n-1} + b_n\varepsilon_n$: $c_n = a_n
    c_{n-1}$ (the coefficient of $x_0$), $v_n = a_n^2 v_{n-1} + b_n^2$ from $c_0 = 1$, $v_0 = 0$."""
    v, acc = np.empty_like(a), 0.0
    for i, (a_n, b_n) in enumerate(zip(a, b, strict=True)):
        acc = a_n * a_n * acc + b_n * b_n
        v[i] = acc
    return np.abs(np.stack([np.cumprod(a), v]) / exact - 1)


@eqx.filter_jit
def _advance(chain: DDPM, key: PRNGKeyArray, x: Float[Array, "m d"], start: Array, stop: Array):
    """`forward_step` from step `start + 1` to `stop`, step $n$ with key `fold_in(key, n)`."""

    def body(n: Array, y: Array) -> Array:
        return chain.forward_step(jr.fold_in(key, n), y, n)

    return jax.lax.fori_loop(start + 1, stop + 1, body, x)


def _sampled_z(chain: DDPM, m: int) -> tuple[np.ndarray, list[list[str]], np.ndarray]:
    r"""On `m` draws of `mixture_2d` pushed through the chain: per coordinate and check step,
    the z-scores of the least-squares slope of $x_n$ on $x_0$ against $\sqrt{\bar\alpha_n}$ and
    of the mean and variance of $r = x_n - \sqrt{\bar\alpha_n}x_0$ against $0$ and $1 -
    \bar\alpha_n$; their table rows; the sampled slope and residual variance (mean over the
    coordinates)."""
    x = mixture_2d().sample(jr.fold_in(jr.key(SEED), 0), m)
    x0 = np.asarray(x)
    centred0 = x0 - x0.mean(axis=0)
    sxx = (centred0**2).sum(axis=0)
    zs, rows, estimates = [], [], []
    for done, n in zip((0, *CHECKS[:-1]), CHECKS, strict=True):
        x = _advance(chain, jr.fold_in(jr.key(SEED), 1), x, jnp.asarray(done), jnp.asarray(n))
        c, v = float(np.sqrt(chain.alpha_bar(n))), float(chain.one_minus_alpha_bar(n))
        xn = np.asarray(x)
        slope = (centred0 * (xn - xn.mean(axis=0))).sum(axis=0) / sxx
        resid = xn - c * x0
        resid_var = resid.var(axis=0, ddof=1)
        z_slope = (slope - c) / np.sqrt(v / sxx)
        z_var = (resid_var - v) / (v * np.sqrt(2.0 / (m - 1)))
        zs.append(np.concatenate([z_slope, resid.mean(axis=0) / np.sqrt(v / m), z_var]))
        estimates.append([slope.mean(), resid_var.mean()])
        rows.append([str(n), f"{c:.6f}", f"{v:.6f}", *(f"{value:+.2f}" for value in zs[-1])])
    return np.stack(zs), rows, np.asarray(estimates)


def run(fast: bool, out_dir: Path) -> Measurement:
    m = 20_000 if fast else 200_000
    chains = {"linear": ddpm(N_STEPS), "cosine": ddpm(N_STEPS, schedule="cosine")}
    ns = np.arange(1, N_STEPS + 1)
    rows, rel_max, control, curves, errors = [], 0.0, 0.0, [], []
    for i, ((name, chain), style) in enumerate(zip(chains.items(), ("-", "--"), strict=True)):
        a, b = _step_coefficients(chain, jr.fold_in(jr.key(SEED), 10 + i))
        exact = np.stack([np.sqrt(chain.alpha_bar(ns)), chain.one_minus_alpha_bar(ns)])
        rel = _relative_errors(a, b, exact)
        rel_max = max(rel_max, float(rel.max()))
        # Control: a 0-based off-by-one, the step n using β_{n+1} (the last one keeps β_N).
        off = float(_relative_errors(np.append(a[1:], a[-1]), np.append(b[1:], b[-1]), exact).max())
        control = max(control, off)
        rows.append([name, f"{rel[0].max():.1e}", f"{rel[1].max():.1e}", f"{off:.1e}"])
        curves.append(Curve(f"{name}: √ᾱ_n", ns, exact[0], style, "tab:blue"))
        curves.append(Curve(f"{name}: 1 − ᾱ_n", ns, exact[1], style, "tab:orange"))
        worst = rel.max(axis=0)
        errors.append(Curve(name, ns, np.where(worst > 0, worst, np.nan), style))
    z, z_rows, estimates = _sampled_z(chains["linear"], m)
    parts = Parts()
    parts.add("(a) moment recursion vs closed form, max rel. error", rel_max, TOLERANCE_A)
    parts.add("(b) sampled chain, max \\|z\\|", float(np.abs(z).max()), Z_TOLERANCE, ".2f")
    z_header = ["n", "$\\sqrt{\\bar\\alpha_n}$", "$1 - \\bar\\alpha_n$"]
    z_header += [f"z {k}{i}" for k in ("slope", "mean", "var") for i in "₁₂"]
    values = dict(
        parts=parts.table(), n_steps=N_STEPS, m=m, control=control,
        recursion=table(["schedule", "max rel. error of $c_n$", "of $v_n$", "control"], rows),
        sampled=table(z_header, z_rows), control_ratio=control / TOLERANCE_A,
        factor=ROUNDOFF_FACTOR, tolerance_a=TOLERANCE_A, n_z=z.size, false_alarm=z.size * 5.7e-7,
    )  # fmt: skip
    curves.append(Curve("sampled (linear): slope", CHECKS, estimates[:, 0], "o", "tab:blue"))
    curves.append(Curve("sampled: residual var", CHECKS, estimates[:, 1], "s", "tab:orange"))
    errors.append(Curve("tolerance", ns, np.full(N_STEPS, TOLERANCE_A), ":", "black"))
    figure = panel_row(
        [
            CurvePanel("closed form: mean coefficient and variance", curves, xlabel="n"),
            CurvePanel("forward_step iterated vs closed form", errors, xlabel="n", log_y=True),
        ],
        "DDPM forward chain: q(x_n | x_0) = N(√ᾱ_n x_0, (1 − ᾱ_n) I)",
        out_dir / "ddpm-closed-form.png",
    )
    return Measurement(parts.ratio, 1.0, values, figure)


CLAIM = Claim.load(__file__, run)
