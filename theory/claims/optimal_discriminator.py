r"""Claim `optimal-discriminator` (texts in `optimal_discriminator.md`): the minimax GAN's best
discriminator is $D^* = p/(p + q)$, where the value is $2\,\mathrm{JS}(p\|q) - \log 4$, and a
trained discriminator gets there."""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from gpm_sde import GaussianMixture
from gpm_sde.losses import MinimaxGAN
from gpm_sde.nn import MLPDiscriminator

from ..figures import Curve, CurvePanel, panel_row
from ..fitting import fit
from ..laws import cdf, line_grid, log_pdf, mixture_1d, pdf, trapezoid
from ..types import Claim, Measurement, Parts

SEED = 2014_0610
GRID = 20001
ROUND_OFF = 1e-12  # part (a): the identity by quadrature
Z_TOLERANCE = 5.0  # part (a): the library's loss on samples, in standard errors
GAP_BUDGET = 1e-3  # part (b): V* − V(D_θ), nats
SUP_BUDGET = 0.05  # part (b): max |D_θ − D*| over the bulk
BULK = 0.01  # the bulk: between these quantiles of (p + q)/2
HIDDEN, DEPTH, BATCH, LR = 32, 2, 512, 5e-3
WINDOW = 200  # training losses averaged over this many steps
DATA = mixture_1d([0.6, 0.4], [-1.0, 1.5], [0.6, 0.8])  # p: a two-component mixture
GEN = mixture_1d([1.0], [0.4], [1.3])  # q: a wider Gaussian overlapping it


@eqx.filter_jit
def _train(p: GaussianMixture, q: GaussianMixture, steps: int, key: PRNGKeyArray) -> tuple:
    """Build and train an `MLPDiscriminator` on the minimax discriminator loss, fresh batches
    each step (one compilation for both)."""
    init_key, fit_key = jr.split(key)

    def d_loss(d: MLPDiscriminator, k: PRNGKeyArray) -> Float[Array, ""]:
        kp, kq = jr.split(k)
        real, fake = jax.vmap(d)(p.sample(kp, BATCH)), jax.vmap(d)(q.sample(kq, BATCH))
        return MinimaxGAN().discriminator_loss(real, fake)

    return fit(MLPDiscriminator(1, HIDDEN, DEPTH, key=init_key), d_loss, steps, LR, fit_key)


@eqx.filter_jit
def _log_ratio(p: GaussianMixture, q: GaussianMixture, x: Float[Array, "n 1"]) -> Array:
    r"""$\ell^*(x) = \log p(x) - \log q(x)$ with the library's `log_prob`."""
    return jax.vmap(p.log_prob)(x) - jax.vmap(q.log_prob)(x)


@eqx.filter_jit
def _library_value(p: GaussianMixture, q: GaussianMixture, key: PRNGKeyArray, n: int) -> tuple:
    r"""$V = -$`MinimaxGAN().discriminator_loss` at $\ell^*$ on `n` draws of each law, and its
    standard error from the per-point variances of the two terms."""
    kp, kq = jr.split(key)
    real, fake = _log_ratio(p, q, p.sample(kp, n)), _log_ratio(p, q, q.sample(kq, n))
    var = jnp.var(jax.nn.softplus(-real)) + jnp.var(jax.nn.softplus(fake))
    return -MinimaxGAN().discriminator_loss(real, fake), jnp.sqrt(var / n)


def _value(logit: np.ndarray, p_x: np.ndarray, q_x: np.ndarray, x: np.ndarray) -> float:
    r"""$V(D) = \int p\log D + q\log(1 - D)$ by quadrature, $D = \sigma(\ell)$."""
    log_d, log_1md = (np.asarray(jax.nn.log_sigmoid(jnp.asarray(v))) for v in (logit, -logit))
    return trapezoid(p_x * log_d + q_x * log_1md, x)


def run(fast: bool, out_dir: Path) -> Measurement:
    n_mc, steps = (200_000, 2500) if fast else (2_000_000, 12000)
    x = line_grid([DATA, GEN], GRID)
    p_x, q_x = pdf(DATA, x), pdf(GEN, x)
    m_x = 0.5 * (p_x + q_x)
    # JS from its definition, KL to the midpoint law, independently of any discriminator
    kl_p = trapezoid(p_x * (log_pdf(DATA, x) - np.log(m_x)), x)
    kl_q = trapezoid(q_x * (log_pdf(GEN, x) - np.log(m_x)), x)
    js = 0.5 * kl_p + 0.5 * kl_q
    target = 2.0 * js - np.log(4.0)
    # (a) the value at ℓ* = log p − log q, the library's log-densities
    logit_star = np.asarray(_log_ratio(DATA, GEN, jnp.asarray(x[:, None])))
    v_star = _value(logit_star, p_x, q_x, x)
    mc_key, train_key = jr.split(jr.key(SEED))
    v_mc, se = (float(v) for v in _library_value(DATA, GEN, mc_key, n_mc))
    z = (v_mc - target) / se
    # (b) a trained discriminator
    d, losses = _train(DATA, GEN, steps, train_key)
    logit = np.asarray(eqx.filter_jit(jax.vmap(d))(jnp.asarray(x[:, None])))
    gap = v_star - _value(logit, p_x, q_x, x)
    m_cdf = 0.5 * (cdf(DATA, x) + cdf(GEN, x))
    bulk = (m_cdf > BULK) & (m_cdf < 1.0 - BULK)
    d_star, d_fit = 1.0 / (1.0 + np.exp(-logit_star)), 1.0 / (1.0 + np.exp(-logit))
    sup = float(np.max(np.abs(d_fit - d_star)[bulk]))
    lo, hi = x[bulk][0], x[bulk][-1]
    parts = Parts()
    parts.add("(a) \\|V(D*) − (2 JS − log 4)\\|, quadrature", abs(v_star - target), ROUND_OFF)
    parts.add("(a) \\|z\\| of the library's loss at ℓ* on samples", abs(z), Z_TOLERANCE, ".2f")
    parts.add("(b) V* − V(D_θ) (nats, ≥ 0)", gap, GAP_BUDGET, ".2e")
    parts.add("(b) max \\|D_θ − D*\\| over the bulk", sup, SUP_BUDGET, ".3f")
    smooth = np.convolve(-np.asarray(losses), np.ones(WINDOW) / WINDOW, mode="valid")
    values = dict(
        parts=parts.table(), js=js, grid=GRID, target=target, v_star=v_star, n_mc=n_mc,
        v_mc=v_mc, se=se, z=z, hidden=HIDDEN, depth=DEPTH, lr=LR, steps=steps, batch=BATCH,
        draws=steps * BATCH, v_fit=v_star - gap, gap=gap, bulk_lo=lo, bulk_hi=hi,
        bulk=BULK, bulk_hi_q=1 - BULK, sup=sup,
        last_losses=np.mean(np.asarray(losses[-WINDOW:])), minus_v_star=-v_star,
    )  # fmt: skip
    view = (x > lo - 1.0) & (x < hi + 1.0)
    xv, at = x[view], np.arange(WINDOW, len(losses) + 1)
    laws = [Curve("p", xv, p_x[view]), Curve("q", xv, q_x[view], "--")]
    discriminators = [
        Curve("D* = p/(p + q)", xv, d_star[view], "-", "black"),
        Curve("trained D_θ", xv, d_fit[view], "--", "tab:orange"),
    ]
    training = [
        Curve(f"−d_loss ({WINDOW}-step mean)", at, smooth),
        Curve("V* = 2 JS − log 4", at, [v_star] * len(at), "--"),
    ]
    panels = [
        CurvePanel("data p and generator q", laws, xlabel="x"),
        CurvePanel("discriminator D = σ(ℓ)", discriminators, xlabel="x"),
        CurvePanel("value during training", training, xlabel="step"),
    ]
    title = "Optimal discriminator of the minimax GAN"
    figure = panel_row(panels, title, out_dir / "optimal-discriminator.png")
    # V* is the maximum: a negative gap counts 100-fold
    return Measurement(max(parts.ratio, -100 * gap / GAP_BUDGET), 1.0, values, figure)


CLAIM = Claim.load(__file__, run)
