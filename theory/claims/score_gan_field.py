"""Claim `score-gan-field` (texts in `score_gan_field.md`): the Score-GAN field is the
difference of the optimal denoisers' ε-predictions, divided by σ (Tweedie's formula)."""

from __future__ import annotations

import itertools
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from gpm_sde import GaussianMixture, score_gan_field
from gpm_sde.scores import SmoothedMixtureScore

from ..fitting import map_points
from ..laws import random_mixture
from ..types import Claim, Measurement, table

TOLERANCE = 1e-10
SEED = 2023_0314
SIGMA_RANGE = (0.05, 3.0)


def posterior_mean(law: GaussianMixture, sigma: Float[Array, ""], x: Float[Array, " d"]) -> Array:
    r"""$\mathbb{E}[x_0 \mid x_0 + \sigma\varepsilon = x]$ for $x_0 \sim \sum_k w_k
    \mathcal{N}(\mu_k, \Sigma_k)$, $\varepsilon \sim \mathcal{N}(0, I)$, by Bayes' rule on the
    joint Gaussian of each component, no score involved:

    $$\mathbb{E}[x_0 \mid x] = \sum_k r_k(x)\big(\mu_k + \Sigma_k(\Sigma_k + \sigma^2 I)^{-1}
    (x - \mu_k)\big),\qquad r_k(x) \propto w_k\,\mathcal{N}(x; \mu_k, \Sigma_k + \sigma^2 I).$$

    Written from the mixture's parameters with `solve` and `slogdet`, independently of
    `GaussianMixture.score`.
    """
    cov = law.covs + sigma**2 * jnp.eye(x.shape[0])
    diff = x[None, :] - law.means
    sol = jnp.linalg.solve(cov, diff[..., None])[..., 0]  # (Σ_k + σ²I)^{-1}(x - μ_k)
    logdet = jnp.linalg.slogdet(cov)[1]
    log_r = jnp.log(law.weights) - 0.5 * logdet - 0.5 * jnp.sum(diff * sol, axis=1)
    posterior = law.means + jnp.einsum("kij,kj->ki", law.covs, sol)
    return jax.nn.softmax(log_r) @ posterior


@eqx.filter_jit
def _gaps(q: GaussianMixture, p: GaussianMixture, key: PRNGKeyArray, n: int) -> tuple:
    r"""The relative gaps (1), (2) and the control at `n` random $(\sigma, x)$, $\log\sigma \sim U$,
    $x \sim \tfrac12(q_\sigma + p_\sigma)$, mapped over the points in chunks (each has its own σ,
    see `theory.fitting.map_points`)."""
    s_key, c_key, q_key, p_key = jr.split(key, 4)
    lo, hi = np.log(SIGMA_RANGE[0]), np.log(SIGMA_RANGE[1])
    sigmas = jnp.exp(jr.uniform(s_key, (n,), minval=lo, maxval=hi))
    xq = map_points(lambda k, s: q.convolve(s).sample(k, 1)[0], jr.split(q_key, n), sigmas)
    xp = map_points(lambda k, s: p.convolve(s).sample(k, 1)[0], jr.split(p_key, n), sigmas)
    real, gen = SmoothedMixtureScore(q), SmoothedMixtureScore(p)
    norm = jnp.linalg.norm

    def at(sigma: Array, x: Array) -> tuple[Array, Array, Array]:
        field = score_gan_field(real, gen, 1.0, 1.0, sigma)(0.0, x[None])[0]
        mq, mp = posterior_mean(q, sigma, x), posterior_mean(p, sigma, x)
        # The optimal ε-predictions (denoisers), minimisers of E‖ε̂(x₀ + σε) − ε‖².
        eq, ep = (x - mq) / sigma, (x - mp) / sigma
        scale = (2 * norm(x) + norm(mq) + norm(mp)) / sigma  # the size of the subtracted terms
        gap = norm((ep - eq) - sigma * field) / scale
        tweedie = norm(eq + sigma * real(sigma, x)) / ((norm(x) + norm(mq)) / sigma)
        control = norm((ep - eq) - sigma**2 * field) / scale
        return gap, tweedie, control

    return map_points(at, sigmas, jnp.where(jr.bernoulli(c_key, 0.5, (n,))[:, None], xq, xp))


def run(fast: bool, out_dir: Path) -> Measurement:
    draws, points = (1, 64) if fast else (5, 1024)
    rows, worst, controls = [], [], []
    for dim, draw in itertools.product((1, 2, 3, 5), range(draws)):
        rng = np.random.default_rng([SEED, dim, draw])
        q, p = random_mixture(rng, dim, 3), random_mixture(rng, dim, 2)
        key = jr.key(int(rng.integers(2**31)))
        gap, tweedie, control = (np.asarray(v) for v in _gaps(q, p, key, points))
        worst += [gap.max(), tweedie.max()]
        controls.append(control)
        cells = [f"{v:.2e}" for v in (gap.max(), tweedie.max(), np.median(control))]
        rows.append([str(dim), str(draw), *cells])
    control = float(np.median(np.concatenate(controls)))
    header = ["d", "draw", "(1) max rel. gap", "(2) max rel. gap", "control: median"]
    values = dict(
        n_cases=len(rows), points=points, sigma_range=list(SIGMA_RANGE),
        cases=table(header, rows), control=control, control_ratio=control / TOLERANCE,
    )  # fmt: skip
    return Measurement(float(max(worst)), TOLERANCE, values)


CLAIM = Claim.load(__file__, run)
