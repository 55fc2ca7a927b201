"""Claim `lsgan-pearson` (texts in `lsgan_pearson.md`): the LSGAN generator objective at the
optimal discriminator is half a Pearson χ²."""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from gpm_sde import GaussianMixture
from gpm_sde.losses import LeastSquaresGAN

from ..figures import Curve, CurvePanel, panel_row
from ..laws import line_grid, mixture_1d, pdf, trapezoid
from ..types import Claim, Measurement, Parts, table

SEED = 2017_1022
GRID = 20001
SHIFTS = tuple(float(s) for s in np.linspace(-3.0, 3.0, 13))  # generator means of the family
MAIN_SHIFT = 0.5  # the case checked on samples too
ROUND_OFF = 1e-12
Z_TOLERANCE = 5.0
DATA = mixture_1d([0.55, 0.45], [-1.0, 1.2], [0.5, 0.7])


def _generator(shift: float) -> GaussianMixture:
    return mixture_1d([1.0], [shift], [0.9])


@eqx.filter_jit
def _optimal_d(loss: LeastSquaresGAN, p: Float[Array, " n"], q: Float[Array, " n"]) -> tuple:
    """The minimiser of $\\int p\\,\\ell_r(D) + q\\,\\ell_f(D)$ point by point (one Newton step
    from 0, exact for a quadratic; $\\ell_r, \\ell_f$ by autodiff of `discriminator_loss`), its
    first-order residual, and `generator_loss` at each $D^*$."""
    grad = jax.grad(lambda r, f: loss.discriminator_loss(r[None], f[None]), argnums=(0, 1))
    hess = jax.hessian(lambda r, f: loss.discriminator_loss(r[None], f[None]), argnums=(0, 1))
    (g_r, g_f), ((h_rr, _), (_, h_ff)) = grad(0.0, 0.0), hess(0.0, 0.0)
    d = -(p * g_r + q * g_f) / (p * h_rr + q * h_ff)
    g_r, g_f = jax.vmap(grad)(d, d)
    residual = (p * g_r + q * g_f) / (p + q)
    return d, residual, jax.vmap(lambda v: loss.generator_loss(v[None]))(d)


@eqx.filter_jit
def _on_samples(loss: LeastSquaresGAN, q: GaussianMixture, key: PRNGKeyArray, n: int) -> tuple:
    """`generator_loss` at $D^* = \\tanh(\\frac12(\\log p - \\log q))$ on `n` draws of each
    law, summed, and its SE from the per-point variances."""
    kp, kq = jr.split(key)

    def d_star(y: Array) -> Array:
        return jnp.tanh(0.5 * (jax.vmap(DATA.log_prob)(y) - jax.vmap(q.log_prob)(y)))

    dp, dq = d_star(DATA.sample(kp, n)), d_star(q.sample(kq, n))
    var = jnp.var(0.5 * (dp - loss.c) ** 2) + jnp.var(0.5 * (dq - loss.c) ** 2)
    return loss.generator_loss(dp) + loss.generator_loss(dq), jnp.sqrt(var / n)


def _case(loss: LeastSquaresGAN, q: GaussianMixture) -> tuple:
    """By quadrature: max |D* − formula|, max residual, C(G), ½χ², and the grid with D*."""
    x = line_grid([DATA, q], GRID)
    p_x, q_x = pdf(DATA, x), pdf(q, x)
    d, residual, g = (np.asarray(v) for v in _optimal_d(loss, jnp.asarray(p_x), jnp.asarray(q_x)))
    formula = (loss.b * p_x + loss.a * q_x) / (p_x + q_x)  # Mao et al. 2017, eq. 4
    c_g = trapezoid((p_x + q_x) * g, x)
    half_chi2 = 0.5 * trapezoid((2 * q_x - (p_x + q_x)) ** 2 / (p_x + q_x), x)
    return np.max(np.abs(d - formula)), np.max(np.abs(residual)), c_g, half_chi2, x, d


def run(fast: bool, out_dir: Path) -> Measurement:
    n_mc = 200_000 if fast else 2_000_000
    loss = LeastSquaresGAN(a=-1.0, b=1.0, c=0.0)
    cases = [_case(loss, _generator(s)) for s in SHIFTS]
    control = [_case(LeastSquaresGAN(), _generator(s))[2] for s in SHIFTS]  # a = 0, b = c = 1
    _, _, _, chi_main, x, d_main = cases[SHIFTS.index(MAIN_SHIFT)]
    c_g, chi = np.array([k[2] for k in cases]), np.array([k[3] for k in cases])
    c_mc, se = (float(v) for v in _on_samples(loss, _generator(MAIN_SHIFT), jr.key(SEED), n_mc))
    z = (c_mc - chi_main) / se
    parts = Parts()
    parts.add("(i) max \\|D*_library − (bp + aq)/(p + q)\\|", max(k[0] for k in cases), ROUND_OFF)
    parts.add("(i) max first-order residual at D*", max(k[1] for k in cases), ROUND_OFF)
    parts.add("(ii) max \\|C(G) − ½χ²(p + q ‖ 2q)\\|", np.max(np.abs(c_g - chi)), ROUND_OFF)
    parts.add("(iii) \\|z\\| of C(G) on samples", abs(z), Z_TOLERANCE, ".2f")
    rows = [
        [f"{m:+.1f}", f"{c:.12f}", f"{h:.12f}", f"{c - h:+.1e}", f"{ctl:.4f}"]
        for m, c, h, ctl in zip(SHIFTS, c_g, chi, control, strict=True)
        if m in (-3.0, -1.0, 0.0, MAIN_SHIFT, 1.0, 3.0)
    ]
    header = ["m", "C(G)", "½χ²(p + q ‖ 2q)", "difference", "C(G) with a = 0, b = c = 1"]
    values = dict(
        parts=parts.table(), n_shifts=len(SHIFTS), m_lo=SHIFTS[0], m_hi=SHIFTS[-1], grid=GRID,
        cases=table(header, rows), m_main=MAIN_SHIFT, n_mc=n_mc, c_mc=c_mc, se=se,
        chi_main=chi_main, z=z, control_gap=np.min(np.abs(np.array(control) - chi)),
    )  # fmt: skip
    view = (x > -4.0) & (x < 4.5)
    x = x[view]
    p_q_d = [
        Curve("p", x, pdf(DATA, x)),
        Curve("q", x, pdf(_generator(MAIN_SHIFT), x), "--"),
        Curve("D* = (p − q)/(p + q)", x, d_main[view], "-", "black"),
    ]
    objectives = [
        Curve("½χ²(p + q ‖ 2q), quadrature", SHIFTS, chi),
        Curve("C(G), library losses", SHIFTS, c_g, "o"),
        Curve("C(G), a = 0, b = c = 1", SHIFTS, control, "x:"),
    ]
    figure = panel_row(
        [
            CurvePanel(f"p, q (m = {MAIN_SHIFT:g}) and D*", p_q_d, xlabel="x"),
            CurvePanel("generator objective at D*, q = N(m, 0.9²)", objectives, xlabel="m"),
        ],
        "LSGAN (a = −1, b = 1, c = 0): the generator minimises a Pearson χ²",
        out_dir / "lsgan-pearson.png",
    )
    return Measurement(parts.ratio, 1.0, values, figure)


CLAIM = Claim.load(__file__, run)
