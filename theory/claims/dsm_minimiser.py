"""Claim `dsm-minimiser` (texts in `dsm_minimiser.md`): Tweedie's formula, and denoising score
matching is minimised by the marginal score, where it equals its irreducible constant."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from gpm_sde import GaussianMixture, vp
from gpm_sde.losses import dsm_loss
from gpm_sde.nn import EpsilonParam, ScoreMLP
from gpm_sde.processes import AbstractLinearProcess
from gpm_sde.scores import MixtureMarginalScore

from ..figures import Curve, CurvePanel, panel_row
from ..fitting import fit
from ..laws import mixture_2d
from ..types import Claim, Measurement, Parts, table

SEED = 2011_0701
T_MIN = 1e-5  # dsm_loss's default
TWEEDIE_TIMES, TWEEDIE_POINTS = (0.01, 0.1, 0.3, 0.6, 1.0), 2000
CHECK_TIMES, ERROR_POINTS = (0.05, 0.1, 0.3), 8192  # where the trained score is compared
BUDGET_FRACTION = 1 / 2  # the trained score's error may be at most this × the Gaussian one's
ROUND_OFF, Z_TOLERANCE = 1e-10, 5.0  # (i); (ii) and (iv)
GL_NODES = 32  # Gauss–Legendre nodes in t for the irreducible constant
BOX, BOX_POINTS = 8.0, 201  # the x-grid for it: [−BOX, BOX]², BOX_POINTS per axis
HIDDEN, DEPTH, EMBED, LR = 64, 2, 16, 1e-2


def _posterior_mean(law: GaussianMixture, alpha: float, sigma: float, x: np.ndarray) -> np.ndarray:
    r"""$\mathbb{E}[x_0 \mid x_t = x]$ by conditioning the mixture, in NumPy: given component
    $k$, $(x_0, x_t)$ is Gaussian and $\mathbb{E}[x_0 \mid x_t, k] = \mu_k + \alpha\Sigma_k
    C_k^{-1}(x_t - \alpha\mu_k)$, $C_k = \alpha^2\Sigma_k + \sigma^2 I$; the components are
    weighed by their posterior probabilities $\propto w_k\,\mathcal{N}(x_t; \alpha\mu_k, C_k)$."""
    w, mu, cov = (np.asarray(a, dtype=float) for a in (law.weights, law.means, law.covs))
    c = alpha**2 * cov + sigma**2 * np.eye(mu.shape[1])
    diff = x[:, None, :] - alpha * mu[None]  # (n, k, d)
    sol = np.einsum("kij,nkj->nki", np.linalg.inv(c), diff)
    log_r = np.log(w) - 0.5 * np.einsum("nki,nki->nk", diff, sol) - 0.5 * np.linalg.slogdet(c)[1]
    r = np.exp(log_r - log_r.max(axis=1, keepdims=True))
    means = mu[None] + alpha * np.einsum("kij,nkj->nki", cov, sol)
    return np.einsum("nk,nki->ni", r / r.sum(axis=1, keepdims=True), means)


@eqx.filter_jit
def _exact_parts(process: AbstractLinearProcess, law: GaussianMixture, key: PRNGKeyArray) -> tuple:
    r"""At each of `TWEEDIE_TIMES`: $\alpha(t)$, $\sigma(t)$, draws of $x_t$ and $(x_t +
    \sigma^2\nabla\log p_t(x_t))/\alpha$ with the library's exact marginal score; and the
    irreducible constant $\mathbb{E}_{t \sim U(t_{\min}, T)}\big[d - \sigma(t)^2 \int
    p_t\|\nabla\log p_t\|^2\big]$ of the `"std2"` weighting: Gauss–Legendre in $t$, the
    trapezoid rule on a box in $x$ (the library's density and score)."""

    def tweedie(t: Array, k: PRNGKeyArray) -> tuple:
        marginal = process.marginal(law, t)
        x = marginal.sample(k, TWEEDIE_POINTS)
        alpha, sigma = process.alpha(t), process.sigma(t)
        return alpha, sigma, x, (x + sigma**2 * jax.vmap(marginal.score)(x)) / alpha

    axis = jnp.linspace(-BOX, BOX, BOX_POINTS)
    pts = jnp.stack(jnp.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)

    def constant_at(t: Array) -> Array:
        marginal = process.marginal(law, t)
        dens = jnp.exp(jax.vmap(marginal.log_prob)(pts))
        sq = jnp.sum(jax.vmap(marginal.score)(pts) ** 2, axis=1)
        fisher = jnp.sum(dens * sq) * (axis[1] - axis[0]) ** 2  # no mass at the box's edges
        return law.dim - process.variance(t) * fisher

    nodes, weights = np.polynomial.legendre.leggauss(GL_NODES)
    ts = jnp.asarray(T_MIN + 0.5 * (process.T - T_MIN) * (nodes + 1.0))
    constant = jnp.sum(jnp.asarray(0.5 * weights) * jax.lax.map(constant_at, ts))  # mean over t
    times = jnp.asarray(TWEEDIE_TIMES)
    return *jax.vmap(tweedie)(times, jr.split(key, len(TWEEDIE_TIMES))), constant


def _loss(process: AbstractLinearProcess, law: GaussianMixture, batch: int, model, key) -> Array:
    """The training loss: `dsm_loss` (`"std2"`) on `batch` fresh data points per step."""
    kx, kl = jr.split(key)
    return dsm_loss(model, process, law.sample(kx, batch), kl, weighting="std2", t_min=T_MIN)


@eqx.filter_jit
def _first_stage(process, law, key: PRNGKeyArray, steps: int, total: int, batch: int) -> tuple:
    """A fresh `EpsilonParam(ScoreMLP)` and the first `steps` of its training along a schedule
    of `total` steps, in one compilation (building the network eagerly, or in a `jit` of its
    own, costs a compilation of its own)."""
    initial = EpsilonParam(ScoreMLP(2, HIDDEN, DEPTH, EMBED, key=jr.fold_in(key, 0)), process.sigma)
    loss = partial(_loss, process, law, batch)
    trained, losses = fit(initial, loss, steps, LR, jr.fold_in(key, 1), schedule_steps=total)
    return initial, trained, losses


@eqx.filter_jit
def _evaluate(model: Callable, exact: MixtureMarginalScore, key: PRNGKeyArray, n: int) -> tuple:
    r"""At each of `CHECK_TIMES`, $\sqrt{\mathbb{E}\|s_\theta - s^*\|^2/\mathbb{E}\|s^*\|^2}$ on
    draws of $p_t$ for the model and for the score of the moment-matched Gaussian
    $\mathcal{N}(\alpha m, \alpha^2 C + \sigma^2 I)$ (the baseline: what a model blind to the
    modes could reach). And the library's DSM loss per point (`"std2"`, `reduction="none"`) on
    `n` data points, all with the same key, i.e. the same $t$ and $\varepsilon$ per point:
    $L(s^*)$, $L(s_\theta) - L(s^*)$, and $\tfrac12(L(\Delta) + L(-\Delta)) - L(0)$ with
    $\Delta = s_\theta - s^*$, which is $\sigma(t)^2\|s_\theta - s^*\|^2$ at each point because
    $L(f) = \|\sigma f + \varepsilon\|^2$."""
    process, law = exact.process, exact.law
    k_err, k_mc = jr.split(key)

    def errors(t: Array, k: PRNGKeyArray) -> tuple[Array, ...]:
        marginal = process.marginal(law, t)
        x = marginal.sample(k, ERROR_POINTS)
        true = jax.vmap(marginal.score)(x)
        fitted = jax.vmap(lambda y: model(t, y))(x)
        gauss = -jnp.linalg.solve(marginal.covariance(), (x - marginal.mean()).T).T
        norm = jnp.sum(true**2)
        return tuple(jnp.sqrt(jnp.sum((s - true) ** 2) / norm) for s in (fitted, gauss))

    k_x, k_loss = jr.split(k_mc)
    x0 = law.sample(k_x, n)

    def loss(score: Callable) -> Array:
        return dsm_loss(score, process, x0, k_loss, weighting="std2", t_min=T_MIN, reduction="none")

    at_exact = loss(exact)
    plus, minus = (loss(lambda t, y: c * (model(t, y) - exact(t, y))) for c in (1.0, -1.0))
    distance = 0.5 * (plus + minus) - loss(lambda t, y: jnp.zeros_like(y))
    errs = jax.vmap(errors)(jnp.asarray(CHECK_TIMES), jr.split(k_err, len(CHECK_TIMES)))
    return errs, (at_exact, loss(model) - at_exact, distance)


def run(fast: bool, out_dir: Path) -> Measurement:
    n_mc, stages, stage_steps, batch = (100_000, 1, 2000, 128) if fast else (200_000, 3, 1500, 256)
    process, law = vp(), mixture_2d()
    exact = MixtureMarginalScore(process, law)
    k_tw, k_fit, k_eval = jr.split(jr.key(SEED), 3)
    # (i) Tweedie's formula against the mixture's posterior mean; (ii) the constant
    alphas, sigmas, xs, vias, constant = map(np.asarray, _exact_parts(process, law, k_tw))
    tw_errs, tweedie = [], []
    for t, alpha, sigma, x, via in zip(TWEEDIE_TIMES, alphas, sigmas, xs, vias, strict=True):
        direct = _posterior_mean(law, float(alpha), float(sigma), x)
        tw_errs.append(float(np.max(np.abs(via - direct)) / max(1.0, float(np.abs(direct).max()))))
        tweedie.append([f"{t:g}", f"{alpha:.4f}", f"{sigma:.4f}", f"{tw_errs[-1]:.1e}"])
    # (iii) a score network trained by DSM, its errors before and after each stage
    total = stages * stage_steps
    initial, model, first_losses = _first_stage(process, law, k_fit, stage_steps, total, batch)
    evaluations = [_evaluate(m, exact, k_eval, n_mc) for m in (initial, model)]
    losses = [np.asarray(first_losses)]
    loss = partial(_loss, process, law, batch)  # one object: the later stages share a compilation
    for stage in range(1, stages):
        key, start = jr.fold_in(k_fit, stage + 1), jnp.asarray(stage * stage_steps)
        model, trace = fit(model, loss, stage_steps, LR, key, schedule_steps=total, start=start)
        losses.append(np.asarray(trace))
        evaluations.append(_evaluate(model, exact, k_eval, n_mc))
    # (stage, time, [model, gaussian]); stage 0 is the untrained network
    err = np.asarray([np.asarray(e[0]).T for e in evaluations])
    budget_ratio = float(np.max(err[-1, :, 0] / (BUDGET_FRACTION * err[-1, :, 1])))
    decreasing = bool(np.all(np.diff(err[:, :, 0], axis=0) < 0.0))
    # (ii) the loss at s* on samples; (iv) the excess loss of the trained score against its
    # weighted squared distance to s*, point by point with a common key
    at_exact, excess, distance = (np.asarray(v) for v in evaluations[-1][1])
    se_exact = float(at_exact.std() / np.sqrt(n_mc))
    z_const = (float(at_exact.mean()) - float(constant)) / se_exact
    gap = excess - distance
    z_excess = float(gap.mean() / (gap.std() / np.sqrt(n_mc)))
    parts = Parts()
    parts.add("(i) Tweedie vs the mixture's posterior mean (relative)", max(tw_errs), ROUND_OFF)
    parts.add("(ii) \\|z\\| of DSM(s*) against the constant", abs(z_const), Z_TOLERANCE, ".2f")
    parts.add("(iii) max over t of error(s_θ) / (½ error(Gaussian))", budget_ratio, 1.0, ".2f")
    label = "(iv) \\|z\\| of DSM(s_θ) − DSM(s*) against E σ²‖s_θ − s*‖²"
    parts.add(label, abs(z_excess), Z_TOLERANCE, ".2f")
    lines = parts.table().splitlines()  # and the pass/fail part, which has no ratio
    lines.insert(-1, f"| (iii) error fell over every stage, at every t | {decreasing} | True |")
    step = stage_steps * np.arange(stages + 1)
    errors, curves, flat = [], [], []  # the table's rows; the figure's curves and Gaussian levels
    for j, t in enumerate(CHECK_TIMES):
        errors.append([f"{t:g}", *(f"{e:.3f}" for e in err[:, j, 0]), f"{err[-1, j, 1]:.3f}"])
        curves.append(Curve(f"t = {t:g}", step, err[:, j, 0], "o-", f"C{j}"))
        label = "" if j else "Gaussian's score"
        flat.append(Curve(label, step[[0, -1]], [err[-1, j, 1]] * 2, ":", f"C{j}"))
    curves += flat
    header = ["t", *(f"after {s * stage_steps} steps" for s in range(stages + 1)), "Gaussian"]
    values = dict(
        parts="\n".join(lines), tweedie_points=TWEEDIE_POINTS, n_mc=n_mc,
        tweedie=table(["t", "α(t)", "σ(t)", "max error"], tweedie), loss_exact=at_exact.mean(),
        se_exact=se_exact, gl_nodes=GL_NODES, box=BOX, box_points=BOX_POINTS, constant=constant,
        z_const=z_const, hidden=HIDDEN, depth=DEPTH, stages=stages, stage_steps=stage_steps, lr=LR,
        batch=batch, error_points=ERROR_POINTS, errors=table(header, errors), excess=excess.mean(),
        distance=distance.mean(), gap=gap.mean(), gap_se=gap.std() / np.sqrt(n_mc),
    )  # fmt: skip
    window, all_losses = 100, np.concatenate(losses)
    smooth = np.convolve(all_losses, np.ones(window) / window, mode="valid")
    x = np.arange(window, len(all_losses) + 1)
    loss_curves = [
        Curve(f"training loss ({window}-step mean)", x, smooth),
        Curve("irreducible constant", x[[0, -1]], [constant] * 2, "--"),
    ]
    panels = [
        CurvePanel("relative L² error of the score", curves, xlabel="training step", log_y=True),
        CurvePanel("DSM loss (std² weighting)", loss_curves, xlabel="training step"),
    ]
    title = "Denoising score matching: the minimiser is the marginal score"
    figure = panel_row(panels, title, out_dir / "dsm-minimiser.png")
    return Measurement(max(parts.ratio, 0.0 if decreasing else np.inf), 1.0, values, figure)


CLAIM = Claim.load(__file__, run)
