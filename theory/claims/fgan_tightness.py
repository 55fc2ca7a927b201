r"""Claim `fgan-tightness` (texts in `fgan_tightness.md`): the f-GAN variational bound equals
$D_f(p\|q)$ at $T^* = f'(p/q)$ and is smaller for every other $T$."""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from gpm_sde.losses import FGAN, AbstractFDivergence, f_divergence

from ..figures import Curve, CurvePanel, panel_row
from ..laws import line_grid, log_pdf, mixture_1d, pdf, trapezoid
from ..types import Claim, Measurement, table

SEED = 2016_0602
GRID = 20001
LABELS = {"kl": "KL", "reverse_kl": "reverse KL", "js": "JS (2 JS)", "pearson": "Pearson χ²"}
ROUND_OFF = 1e-11  # (i) the bound at T* against D_f; (ii) the first derivative
Z_TOLERANCE = 5.0  # (iii) the library's FGAN bound on samples
DELTAS = np.array([1.0, 0.5, 0.25, 0.1, 0.03, 0.01])
FIGURE_DELTAS = np.linspace(-1.0, 1.0, 101)
QUADRATIC_TOLERANCE = 0.05  # (ii) relative departure of the decrease from −½F''(0)δ² at δ = 0.01
# Data p and q, q about as wide as p's widest component, so that every divergence here is finite
# and so are the variances of the Monte Carlo terms (∫q²/p for reverse KL, ∫p³/q² for Pearson).
P = mixture_1d([0.5, 0.5], [-0.8, 1.0], [0.6, 0.9])
Q = mixture_1d([1.0], [0.2], [1.0])


@eqx.filter_jit
def _along_line(
    div: AbstractFDivergence, v_star: Array, h: ArrayLike, w_p: Array, w_q: Array, deltas: Array
) -> tuple[Array, Array, Array]:
    r"""$F(\delta) = \int p\,g_f(v^* + \delta h) - q\,f^*(g_f(v^* + \delta h))$ by quadrature
    (`w_p`, `w_q`: trapezoid weights × densities) through the library's `activation` and
    `conjugate_of_activation` at every $\delta$ of `deltas`, and $F'(0)$, $F''(0)$ by autodiff."""

    def bound(delta: Array) -> Array:
        v = v_star + delta * h
        return jnp.sum(w_p * div.activation(v)) - jnp.sum(w_q * div.conjugate_of_activation(v))

    zero = jnp.zeros((), v_star.dtype)
    return jax.vmap(bound)(deltas), jax.grad(bound)(zero), jax.grad(jax.grad(bound))(zero)


@eqx.filter_jit
def _library_bound(div: AbstractFDivergence, key: PRNGKeyArray, n: int) -> tuple[Array, ...]:
    r"""`FGAN(div).variational_bound` at $v^*$ = `optimal_output(log p − log q)` (library
    `log_prob`) on `n` draws of $p$ and of $q$, its SE, and `-discriminator_loss` on the same."""
    kp, kq = jr.split(key)
    real, fake = (
        div.optimal_output(jax.vmap(P.log_prob)(y) - jax.vmap(Q.log_prob)(y))
        for y in (P.sample(kp, n), Q.sample(kq, n))
    )
    loss = FGAN(div)
    var = jnp.var(div.activation(real)) + jnp.var(div.conjugate_of_activation(fake))
    bound = loss.variational_bound(real, fake)
    return bound, jnp.sqrt(var / n), -loss.discriminator_loss(real, fake)


def run(fast: bool, out_dir: Path) -> Measurement:
    n_mc = 200_000 if fast else 2_000_000
    x = line_grid([P, Q], GRID)
    p_x, q_x, lp, lq = pdf(P, x), pdf(Q, x), log_pdf(P, x), log_pdf(Q, x)
    m = 0.5 * (p_x + q_x)
    references = {  # D_f by quadrature from each divergence's usual definition (not from f)
        "kl": trapezoid(p_x * (lp - lq), x),
        "reverse_kl": trapezoid(q_x * (lq - lp), x),
        "js": trapezoid(p_x * (lp - np.log(m)) + q_x * (lq - np.log(m)), x),  # 2 JS, as f gives
        "pearson": trapezoid((p_x - q_x) ** 2 / q_x, x),
    }
    trap = (x[1] - x[0]) * np.r_[0.5, np.ones(GRID - 2), 0.5]  # the trapezoid rule's weights
    w_p, w_q = jnp.asarray(trap * p_x), jnp.asarray(trap * q_x)
    h = np.sin(1.3 * x + 0.4)  # a bounded, smooth direction in which the raw output is perturbed
    deltas = np.concatenate([-DELTAS[::-1], [0.0], DELTAS, FIGURE_DELTAS])  # checked, then drawn
    rows, ratios, line, decay = [], [], [], []
    for name, ref in references.items():
        div = f_divergence(name)
        v_star = div.optimal_output(jnp.asarray(lp - lq))
        curve, d1, d2 = _along_line(div, v_star, h, w_p, w_q, jnp.asarray(deltas))
        along, fine = np.split(np.asarray(curve), [2 * len(DELTAS) + 1])
        first, second = float(d1), float(d2)
        at_star = float(along[len(DELTAS)])
        # the library's own f, and the generic path f*(g_f(v)) against the stable one
        via_f = trapezoid(q_x * np.asarray(div.f(jnp.asarray(np.exp(lp - lq)))), x)
        gap = div.conjugate(div.activation(v_star)) - div.conjugate_of_activation(v_star)
        paths = float(jnp.max(jnp.abs(gap) * (w_q / trap.max())))
        value_err = max(abs(at_star - ref), abs(via_f - ref), paths) / max(ref, 1.0)
        decrease = at_star - along  # > 0 away from δ = 0
        quadratic = abs(decrease[-1] / DELTAS[-1] ** 2 + 0.5 * second) / abs(0.5 * second)
        mc, se, neg_loss = (float(v) for v in _library_bound(div, jr.key(SEED), n_mc))
        z = (mc - ref) / se
        # the bound must fall on both sides, and F'' < 0 (a strict maximum along h)
        strict = bool(np.all(np.delete(decrease, len(DELTAS)) > 0.0)) and second < 0.0
        ratios += [value_err / ROUND_OFF, abs(first) / max(ref, 1.0) / ROUND_OFF]  # (i), (ii)
        ratios += [quadratic / QUADRATIC_TOLERANCE, 0.0 if strict else np.inf]  # (ii)
        ratios += [abs(z) / Z_TOLERANCE, abs(neg_loss - mc) / ROUND_OFF]  # (iii)
        cells = [f"{ref:.10f}", f"{at_star - ref:+.1e}", f"{via_f - ref:+.1e}", f"{first:+.1e}"]
        cells += [f"{second:.4f}", f"{quadratic:.1e}", f"{float(decrease[len(DELTAS) + 1]):.3e}"]
        rows.append([LABELS[name], *cells, f"{mc:.5f} ± {se:.1e} (z = {z:+.2f})"])
        line.append(Curve(LABELS[name], FIGURE_DELTAS, (fine - ref) / ref))
        decay.append(Curve(LABELS[name], np.log10(DELTAS), decrease[len(DELTAS) + 1 :], "o-"))
    values = dict(
        cases=table(["divergence", "D_f by quadrature", "F(v*) − D_f",
                     "∫q f(p/q) − D_f (library f)", "F'(0)", "F''(0)", "quadratic fit at δ = 0.01",
                     f"F(v*) − F(v* + {DELTAS[0]:g}h)",
                     f"FGAN.variational_bound on {n_mc:.0e} draws"], rows),
        grid=GRID, deltas=", ".join(f"{d:g}" for d in DELTAS), n_mc=n_mc,
    )  # fmt: skip
    decay.append(Curve("∝ δ²", np.log10(DELTAS), 0.5 * DELTAS**2, ":", "gray"))
    view = (x > -4.0) & (x < 4.0)
    laws = [Curve("p", x[view], p_x[view]), Curve("q", x[view], q_x[view], "--")]
    laws.append(Curve("h (scaled ⅕)", x[view], 0.2 * h[view], ":"))
    panels = [
        CurvePanel("p, q and the direction h", laws, xlabel="x"),
        CurvePanel("(F(v* + δh) − D_f) / D_f", line, xlabel="δ"),
        CurvePanel("F(v*) − F(v* + δh), δ > 0", decay, xlabel="log₁₀ δ", log_y=True),
    ]
    title = "f-GAN variational bound: tight at T* = f'(p/q), lower elsewhere"
    figure = panel_row(panels, title, out_dir / "fgan-tightness.png")
    return Measurement(max(ratios), 1.0, values, figure)


CLAIM = Claim.load(__file__, run)
