r"""Claim `wgan-gp-w1`: a WGAN-GP critic recovers the Wasserstein-1 distance (up to the
penalty's own, computable bias), and on parallel lines $W_1 = |\theta|$ while the
Jensen–Shannon divergence is stuck at $\log 2$."""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from gpm_sde import GaussianMixture
from gpm_sde.losses import MinimaxGAN, WassersteinGAN, gradient_penalty
from gpm_sde.nn import MLPDiscriminator

from ..figures import Curve, CurvePanel, panel_row
from ..fitting import fit
from ..laws import cdf, line_grid, mixture_1d, pdf, trapezoid
from ..types import Claim, Result, table

SEED = 2017_0126
LAM = 10.0  # the gradient penalty's λ (Gulrajani et al. 2017)
HIDDEN, DEPTH, BATCH, LR = 32, 2, 128, 3e-3
W_BUDGET = 0.03  # relative error of the critic's estimate against W₁ + GP bias
JS_BUDGET = 0.01  # nats: log 2 − JS estimate, for θ ≠ 0
Y_POINTS = 64  # midpoints in y for the integrals along the lines
X_GRID, Y_GRID = 4001, 8  # the 1-D case's critic is integrated on this grid
FAST_THETAS = (0.0, 0.25, 1.0, 2.0)
FULL_THETAS = (-1.0, 0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0)

# Every law here is (X, U) with U ~ U[0, 1] independent and X a two-component mixture given by
# (weights, means, standard deviations); a line x = θ has both components at θ with sd 0.
_Law = tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
DATA_1D: _Law = ((0.5, 0.5), (-1.5, 1.0), (0.4, 0.6))
GEN_1D: _Law = ((0.5, 0.5), (0.8, 0.8), (1.3, 1.3))


def _line(theta: float) -> _Law:
    return (0.5, 0.5), (theta, theta), (0.0, 0.0)


def _sample(key: PRNGKeyArray, law: tuple[Array, Array, Array], n: int) -> Float[Array, "n 2"]:
    """`n` draws of $(X, U)$."""
    w, mu, sd = law
    kc, kx, ky = jr.split(key, 3)
    comp = jr.categorical(kc, jnp.log(w), shape=(n,))
    x = mu[comp] + sd[comp] * jr.normal(kx, (n,), dtype=mu.dtype)
    return jnp.stack([x, jr.uniform(ky, (n,), dtype=mu.dtype)], axis=1)


@eqx.filter_jit
def _train(
    data_law: tuple[Array, Array, Array],
    gen_law: tuple[Array, Array, Array],
    key: PRNGKeyArray,
    steps: int,
) -> tuple[MLPDiscriminator, MLPDiscriminator]:
    r"""Train, on the same batches, a critic on `WassersteinGAN` + `gradient_penalty` and a
    discriminator on `MinimaxGAN`. The two losses add up but share no parameters, so Adam
    trains each as if alone. The laws are traced arrays: one compilation serves every case."""
    kc, kd, kf = jr.split(key, 3)
    models = (
        MLPDiscriminator(2, HIDDEN, DEPTH, key=kc),
        MLPDiscriminator(2, HIDDEN, DEPTH, key=kd),
    )

    def loss(m: tuple[MLPDiscriminator, MLPDiscriminator], k: PRNGKeyArray) -> Array:
        critic, disc = m
        kp, kq, ke = jr.split(k, 3)
        real, fake = _sample(kp, data_law, BATCH), _sample(kq, gen_law, BATCH)
        w_loss = WassersteinGAN().discriminator_loss(
            jax.vmap(critic)(real), jax.vmap(critic)(fake)
        ) + gradient_penalty(critic, real, fake, ke, lam=LAM)
        d_loss = MinimaxGAN().discriminator_loss(jax.vmap(disc)(real), jax.vmap(disc)(fake))
        return w_loss + d_loss

    return fit(models, loss, steps, LR, kf)[0]


@eqx.filter_jit
def _on_points(model: MLPDiscriminator, points: Float[Array, "n 2"]) -> Float[Array, " n"]:
    return jax.vmap(model)(points)


def _interpolate_density(data: GaussianMixture, gen: GaussianMixture, x: np.ndarray) -> np.ndarray:
    r"""The density $\rho$ of $\hat x = \epsilon X + (1 - \epsilon)X'$, $X \sim p$, $X' \sim q$,
    $\epsilon \sim U[0, 1]$ (the penalty's sampling law): for fixed $\epsilon$ and components
    a Gaussian, integrated over $\epsilon$ by 200-point Gauss–Legendre."""
    nodes, weights = np.polynomial.legendre.leggauss(200)
    eps, weights = 0.5 * (nodes + 1.0), 0.5 * weights
    wp, mp, vp = (np.asarray(a, dtype=float).ravel() for a in (data.weights, data.means, data.covs))
    wq, mq, vq = (np.asarray(a, dtype=float).ravel() for a in (gen.weights, gen.means, gen.covs))
    mean = eps[:, None, None] * mp[:, None] + (1 - eps[:, None, None]) * mq[None, :]
    var = eps[:, None, None] ** 2 * vp[:, None] + (1 - eps[:, None, None]) ** 2 * vq[None, :]
    coef = weights[:, None, None] * wp[:, None] * wq[None, :] / np.sqrt(2 * np.pi * var)
    z2 = (x[:, None, None, None] - mean) ** 2 / var
    return np.einsum("eij,xeij->x", coef, np.exp(-0.5 * z2))


def _w1_by_quantiles(data: GaussianMixture, gen: GaussianMixture, x: np.ndarray) -> float:
    r"""$\int_0^1 |F_p^{-1}(u) - F_q^{-1}(u)|\,du$, the inverses by interpolating the
    distribution functions on the grid, $u$ at 10⁶ midpoints."""
    u = (np.arange(1_000_000) + 0.5) / 1_000_000
    qp, qq = np.interp(u, cdf(data, x), x), np.interp(u, cdf(gen, x), x)
    return float(np.mean(np.abs(qp - qq)))


def run(fast: bool, out_dir: Path) -> Result:
    """Train critics and discriminators on the 1-D pair and on parallel lines; compare."""
    thetas, steps = (FAST_THETAS, 800) if fast else (FULL_THETAS, 3000)
    laws = [(DATA_1D, GEN_1D)] + [(_line(0.0), _line(t)) for t in thetas]

    def arrays(law: _Law) -> tuple[Array, Array, Array]:
        w, mu, sd = law
        return (
            jnp.asarray(w, dtype=float),
            jnp.asarray(mu, dtype=float),
            jnp.asarray(sd, dtype=float),
        )

    keys = jr.split(jr.key(SEED), len(laws))
    trained = [_train(arrays(d), arrays(g), k, steps) for (d, g), k in zip(laws, keys, strict=True)]
    # (a) the 1-D pair: exact W₁, the penalty's bias, the critic's estimate by quadrature
    p, q = mixture_1d(*DATA_1D), mixture_1d(*GEN_1D)
    x = line_grid([p, q], X_GRID, width=8.0)
    delta = cdf(p, x) - cdf(q, x)
    w1 = trapezoid(np.abs(delta), x)
    w1_quantiles = _w1_by_quantiles(p, q, line_grid([p, q], 200_001, width=12.0))
    rho = _interpolate_density(p, q, x)
    bias = trapezoid(delta**2 / (2 * LAM * rho), x)
    ys = (np.arange(Y_GRID) + 0.5) / Y_GRID
    grid = np.stack([np.repeat(x, Y_GRID), np.tile(ys, X_GRID)], axis=1)
    f = np.asarray(_on_points(trained[0][0], jnp.asarray(grid))).reshape(X_GRID, Y_GRID)
    f = f.mean(axis=1)
    w_hat = trapezoid(f * (pdf(p, x) - pdf(q, x)), x)
    err_a = abs(w_hat - (w1 + bias)) / w1
    # (b) parallel lines: W₁ = |θ| (+ the bias θ²/2λ), JS = log 2 for θ ≠ 0
    y = (np.arange(Y_POINTS) + 0.5) / Y_POINTS
    f_lines, l_lines = [], []
    for t, (critic, disc) in zip(thetas, trained[1:], strict=True):
        pts = jnp.asarray(
            np.concatenate(
                [np.stack([np.zeros_like(y), y], 1), np.stack([np.full_like(y, t), y], 1)]
            )
        )
        f_lines.append(np.asarray(_on_points(critic, pts)))
        l_lines.append(np.asarray(_on_points(disc, pts)))
    f_lines, l_lines = np.stack(f_lines), np.stack(l_lines)
    n = Y_POINTS
    w_est = f_lines[:, :n].mean(axis=1) - f_lines[:, n:].mean(axis=1)
    value = np.asarray(
        jnp.mean(jax.nn.log_sigmoid(l_lines[:, :n]), axis=1)
        + jnp.mean(jax.nn.log_sigmoid(-l_lines[:, n:]), axis=1)
    )
    js_est = 0.5 * (value + np.log(4.0))
    th = np.asarray(thetas)
    w_pred = np.abs(th) * (1 + np.abs(th) / (2 * LAM))
    moving = th != 0.0
    err_b = float(np.max(np.abs(w_est - w_pred)[moving] / np.abs(th[moving])))
    zero_w = float(np.max(np.abs(w_est[~moving]), initial=0.0))
    js_gap = float(np.max(np.log(2.0) - js_est[moving]))
    js_zero = float(np.max(np.abs(js_est[~moving]), initial=0.0))
    parts = [
        ["(a) \\|Ŵ − (W₁ + bias)\\| / W₁, 1-D pair", f"{err_a:.2e}", f"{W_BUDGET:g}"],
        [
            "(b) max \\|Ŵ(θ) − \\|θ\\|(1 + \\|θ\\|/2λ)\\| / \\|θ\\|, θ ≠ 0",
            f"{err_b:.2e}",
            f"{W_BUDGET:g}",
        ],
        ["(b) max log 2 − JS estimate, θ ≠ 0", f"{js_gap:.2e}", f"{JS_BUDGET:g}"],
        [
            "(b) \\|JS estimate\\| and \\|Ŵ\\| at θ = 0",
            f"{max(js_zero, zero_w):.1e}",
            f"{JS_BUDGET:g}",
        ],
    ]
    measured = max(
        err_a / W_BUDGET,
        err_b / W_BUDGET,
        js_gap / JS_BUDGET,
        max(js_zero, zero_w) / JS_BUDGET,
        float(np.max(js_est - np.log(2.0))) / 1e-12,  # the estimate is a lower bound
    )
    rows = [
        [
            f"{t:+g}",
            f"{abs(t):g}",
            f"{wp:.4f}",
            f"{we:.4f}",
            "0" if t == 0 else "log 2 = 0.6931",
            f"{je:.5f}",
        ]
        for t, wp, we, je in zip(thetas, w_pred, w_est, js_est, strict=True)
    ]
    details = "\n\n".join(
        [
            table(["part", "measured", "tolerance"], parts),
            "Each law is $(X, U)$ on the plane, $U \\sim U[0, 1]$ independent. Critics: "
            f"`MLPDiscriminator` (width {HIDDEN}, depth {DEPTH}) on `WassersteinGAN` + "
            f"`gradient_penalty(λ = {LAM:g})`; discriminators: the same network on "
            f"`MinimaxGAN`; {steps} Adam steps (cosine decay from {LR:g}), {BATCH} fresh "
            "draws of each law per step, one compiled loop for all cases. Estimates are "
            "integrals of the trained networks against the exact laws (quadrature, no "
            "sampling error): $\\hat W = \\mathbb{E}_p f - \\mathbb{E}_q f$ and "
            "$\\widehat{\\mathrm{JS}} = (V(D) + \\log 4)/2$.",
            "**(a)** $p = \\tfrac12\\mathcal{N}(-1.5, 0.4^2) + \\tfrac12\\mathcal{N}(1, 0.6^2)$, "
            f"$q = \\mathcal{{N}}(0.8, 1.3^2)$ in $X$. $W_1 = \\int|F_p - F_q|$ = {w1:.6f} "
            f"(by quantiles, $\\int_0^1|F_p^{{-1}} - F_q^{{-1}}|$ = {w1_quantiles:.6f}). The "
            "penalty biases the critic: in 1-D its optimum has slope $f' = -\\operatorname"
            "{sign}(\\Delta)(1 + |\\Delta|/2\\lambda\\rho)$, $\\Delta = F_p - F_q$ and $\\rho$ "
            "the density of the interpolates, so $\\hat W = W_1 + \\int\\Delta^2/2\\lambda\\rho$ "
            f"= {w1:.4f} + {bias:.4f}. Trained: $\\hat W$ = {w_hat:.4f}, "
            f"{100 * (w_hat / w1 - 1):+.1f}% from $W_1$, {100 * (w_hat - w1 - bias) / w1:+.2f}% "
            "from $W_1$ + bias.",
            "**(b)** Parallel lines $P_0 = (0, U)$, $P_\\theta = (\\theta, U)$ (Arjovsky et al. "
            "2017, Example 1). $W_1 = |\\theta|$; the penalty's bias is $\\theta^2/2\\lambda$ "
            "(interpolates uniform on the strip); $\\mathrm{JS} = \\log 2$ for every "
            "$\\theta \\ne 0$ and 0 at $\\theta = 0$.",
            table(
                ["θ", "W₁", "W₁ + θ²/2λ", "critic Ŵ", "JS", "discriminator JS estimate"],
                rows,
            ),
        ]
    )
    figure = _figure(x, f, delta, rho, th, w_est, js_est, out_dir)
    return Result(measured, 1.0, _justification(bias / w1), details, figure)


def _justification(rel_bias: float) -> str:
    return (
        "Measured = max((a) / 0.03, (b) W / 0.03, (b) JS / 0.01, θ = 0 / 0.01) against 1, and "
        "infinity if a JS estimate exceeded log 2 (it is a lower bound, $V(D) \\le V(D^*)$). "
        "The estimates integrate the trained networks against the exact laws, so what is "
        "left is the fit's error. The penalty itself biases the critic away from $W_1$ "
        f"(+{100 * rel_bias:.1f}% in (a), $|\\theta|/2\\lambda$ relative on the lines): that "
        "bias is computed exactly and included, since a 10% allowance on $W_1$ alone would "
        "hide it. Budgets, stated: 3% relative on $\\hat W$. Over seeds the 1-D fit lands "
        "0.9 to 1.6% below $W_1$ + bias whatever the number of steps (800 to 3000): the "
        "penalty's optimum is steep where interpolates are rare ($\\rho$ small), and a fit "
        "weighted by $\\rho$ does not get there; on the lines, where $\\rho$ is uniform on "
        "the strip, it lands within 0.1% for $|\\theta| \\ge 0.25$ (θ = 0.1, a narrow strip "
        "whose slope is slower to settle, is in the full run only, with 3000 steps); 0.01 "
        "nats on the "
        "JS estimate (reached: 1e-4 to 1e-3, the discriminator's logits growing without "
        "bound on disjoint supports). A sign error in the WGAN loss makes $\\hat W < 0$; "
        "halving or doubling the penalty moves (b) by $|\\theta|/4\\lambda$ or more (5% at "
        "θ = 2) and (a) by 3% or more; without it the critic is unbounded."
    )


def _figure(
    x: np.ndarray,
    f: np.ndarray,
    delta: np.ndarray,
    rho: np.ndarray,
    thetas: np.ndarray,
    w_est: np.ndarray,
    js_est: np.ndarray,
    out_dir: Path,
) -> Path:
    view = (x > -3.5) & (x < 4.5)
    dx = np.diff(x, prepend=x[0])
    slope_gp = -np.sign(delta) * (1 + np.abs(delta) / (2 * LAM * rho))
    f_gp = np.cumsum(slope_gp * dx)
    f_k = np.cumsum(-np.sign(delta) * dx)
    centre = int(np.argmin(np.abs(x)))
    order = np.argsort(thetas)
    th = thetas[order]
    fine = np.linspace(th.min(), th.max(), 201)
    return panel_row(
        [
            CurvePanel(
                "1-D pair: critic f(x) − f(0)",
                [
                    Curve("trained critic", x[view], (f - f[centre])[view], "-", "tab:orange"),
                    Curve("penalty's optimum", x[view], (f_gp - f_gp[centre])[view], "--", "black"),
                    Curve("1-Lipschitz potential", x[view], (f_k - f_k[centre])[view], ":", "gray"),
                ],
                xlabel="x",
            ),
            CurvePanel(
                "parallel lines (0, U) vs (θ, U)",
                [
                    Curve("W₁ = |θ|", fine, np.abs(fine), "-", "tab:blue"),
                    Curve(
                        "W₁ + θ²/2λ (penalty's optimum)",
                        fine,
                        np.abs(fine) * (1 + np.abs(fine) / (2 * LAM)),
                        "--",
                        "tab:blue",
                    ),
                    Curve("critic Ŵ", th, w_est[order], "o", "tab:blue"),
                    Curve("JS", fine, np.where(fine == 0, 0.0, np.log(2.0)), "-", "tab:red"),
                    Curve("discriminator JS estimate", th, js_est[order], "s", "tab:red"),
                ],
                xlabel="θ",
            ),
        ],
        "WGAN-GP critic and minimax discriminator",
        out_dir / "wgan-gp-w1.png",
    )


CLAIM = Claim(
    name="wgan-gp-w1",
    statement=(
        "A WGAN-GP critic trained between two laws estimates $W_1(p, q) = \\int_0^1|F_p^{-1} - "
        "F_q^{-1}|\\,du$, up to the gradient penalty's own bias (computable in 1-D); on "
        "parallel lines $P_0 = (0, U)$, $P_\\theta = (\\theta, U)$ it gives $W_1 = |\\theta|$, "
        "continuous in $\\theta$, while a minimax discriminator's value gives "
        "$\\mathrm{JS} = \\log 2$ for every $\\theta \\ne 0$."
    ),
    source=(
        "Arjovsky et al. 2017 (WGAN), Example 1 and Thm. 1–3; Gulrajani et al. 2017 "
        "(WGAN-GP), eq. 3; `gpm_sde.losses.WassersteinGAN`, `gradient_penalty`"
    ),
    method=(
        "Train critics (`WassersteinGAN` + `gradient_penalty`) and discriminators "
        "(`MinimaxGAN`) on a 1-D mixture pair and on parallel lines with the optax loop of "
        "`theory.fitting`; integrate the trained networks against the exact laws. Compare the "
        "critic's $\\hat W$ with $W_1$ (quadrature of the distribution functions, and by "
        "quantiles) plus the penalty's bias $\\int (F_p - F_q)^2/2\\lambda\\rho$, and the "
        "discriminator's $\\widehat{\\mathrm{JS}}$ with $\\log 2$."
    ),
    run=run,
)
