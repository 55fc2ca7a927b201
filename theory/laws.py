r"""Test laws and test problems for the claims, and the independent references they are checked
against.

- Random and fixed Gaussian mixtures in $\mathbb{R}^d$, a fixed law seen as a time-dependent
  score, random covariances and random affine schedules, all drawn with NumPy (building a
  handful of small laws eagerly in JAX would compile every op).
- One-dimensional mixtures with their densities and distribution functions **written out in
  NumPy** from the weights, means and variances, and quadrature on the line: the independent
  references against which the library's losses are checked, so they do not call the
  library's `log_prob` or `score`. On a uniform grid the trapezoid rule integrates smooth,
  Gaussian-tailed integrands to round-off (its error decays like $e^{-2\pi^2 s^2/h^2}$ for a
  Gaussian of width $s$ and step $h$), which is what lets the claims state round-off
  tolerances for divergences computed by quadrature.
- The SDEs of the solver-order checks (geometric Brownian motion, a sine drift) and their
  errors on one [`FineBrownianPath`][gpm_sde.verify.FineBrownianPath] per particle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from gpm_sde import SDE, GaussianMixture, LinearDrift, ScalarDiffusion
from gpm_sde.schedules import AbstractSchedule, Constant, Function
from gpm_sde.verify import FineBrownianPath, solve_on_path


def random_mixture(rng: np.random.Generator, dim: int, n_components: int) -> GaussianMixture:
    r"""A random mixture in $\mathbb{R}^{d}$: Dirichlet(2) weights, means $\mathcal{N}(0, 2^2 I)$,
    covariances $A A^\top/d + 0.2 I$ with $A$ standard normal (full, well conditioned).

    Drawn with NumPy: building a handful of small laws eagerly in JAX would compile every op.
    """
    weights = rng.dirichlet(2.0 * np.ones(n_components))
    means = 2.0 * rng.standard_normal((n_components, dim))
    a = rng.standard_normal((n_components, dim, dim))
    covs = a @ np.swapaxes(a, 1, 2) / dim + 0.2 * np.eye(dim)
    return GaussianMixture(weights, means, covs)


class StaticScore(eqx.Module):
    r"""The score of a fixed law seen as a time-dependent score, `(s, x) -> ∇log p(x)`."""

    law: GaussianMixture

    def __call__(self, s: Float[ArrayLike, ""], x: Float[Array, " d"]) -> Float[Array, " d"]:
        return self.law.score(x)


def mixture_2d() -> GaussianMixture:
    """A fixed 2-D, 3-component mixture with full, distinct covariances and unequal weights."""
    return GaussianMixture(
        np.array([0.2, 0.5, 0.3]),
        np.array([[-2.0, 0.5], [1.5, -1.0], [0.5, 2.5]]),
        np.array(
            [
                [[0.30, 0.10], [0.10, 0.20]],
                [[0.50, -0.20], [-0.20, 0.40]],
                [[0.15, 0.00], [0.00, 0.60]],
            ]
        ),
    )


def coordinate_density(law: GaussianMixture, i: int, grid: np.ndarray) -> np.ndarray:
    r"""The density of coordinate $x_i$ on `grid`: $\sum_k w_k\,\mathcal{N}(\mu_{k,i},
    \Sigma_{k,ii})$, the exact marginal of a mixture."""
    w, mu = np.asarray(law.weights), np.asarray(law.means[:, i])
    var = np.asarray(law.covs[:, i, i])
    pdf = np.exp(-0.5 * (grid[:, None] - mu) ** 2 / var) / np.sqrt(2 * np.pi * var)
    return pdf @ w


def random_spd(rng: np.random.Generator, dim: int, ridge: float = 0.2) -> np.ndarray:
    r"""A random covariance $A A^\top/d + r I$ with $A$ standard normal and ridge $r$."""
    a = rng.standard_normal((dim, dim))
    return a @ a.T / dim + ridge * np.eye(dim)


def gaussian(mean: np.ndarray, cov: np.ndarray) -> GaussianMixture:
    r"""$\mathcal{N}(m, S)$ as a one-component [`GaussianMixture`][gpm_sde.GaussianMixture]."""
    return GaussianMixture(np.ones(1), np.asarray(mean)[None], np.asarray(cov)[None])


def _time(s: Float[Array, ""]) -> Float[Array, ""]:
    """The identity schedule $s \\mapsto s$."""
    return s


def affine(c0: float, c1: float) -> AbstractSchedule:
    """The schedule $c_0 + c_1 s$."""
    return Constant(c0) + Constant(c1) * Function(_time)


def random_affine(
    rng: np.random.Generator, lo: float, hi: float, t1: float = 1.0
) -> tuple[AbstractSchedule, tuple[float, float]]:
    r"""An affine schedule whose values at $s = 0$ and $s = t_1$ are drawn uniformly from
    $[\text{lo}, \text{hi}]$, so it stays in that interval on $[0, t_1]$; returned with its two
    end values."""
    v0, v1 = rng.uniform(lo, hi, 2)
    return affine(float(v0), float((v1 - v0) / t1)), (float(v0), float(v1))


DIFFFLOW_T = 2.0
"""The horizon of the random DiffFlow problems of `gaussian_problem`."""


def gaussian_problem(seed: int) -> tuple[tuple, dict]:
    r"""A random 2-D DiffFlow problem (of the claims `diffflow-invariance-gaussian` and
    `diffflow-likelihood`), as `gaussian_diffflow`'s arguments
    $(m, S_0, \mu_0, \Sigma_0, \beta, \sigma, a)$ ($\mu_0$ 3 away from $m$; affine schedules on
    $[0, T]$ with $T$ = `DIFFFLOW_T`, $\sigma(s)$ decreasing from $[0.8, 1.5]$ to
    $[0.05, 0.3]$) and as text."""
    rng = np.random.default_rng(seed)
    m = rng.normal(0.0, 1.5, 2)
    s0 = random_spd(rng, 2, ridge=0.2)
    direction = rng.normal(size=2)
    mu0 = m + 3.0 * direction / np.linalg.norm(direction)
    sigma0 = 0.5 * random_spd(rng, 2, ridge=0.3)
    beta, b = random_affine(rng, 0.5, 1.5, DIFFFLOW_T)
    v0, v1 = float(rng.uniform(0.8, 1.5)), float(rng.uniform(0.05, 0.3))
    a, av = random_affine(rng, -0.5, 0.3, DIFFFLOW_T)
    text = {k: np.round(v, 2).tolist() for k, v in dict(m=m, s0=s0, mu0=mu0, sigma0=sigma0).items()}
    ends = zip("βσa", (b, (v0, v1), av), strict=True)
    text |= dict(t_end=DIFFFLOW_T, ends=", ".join(f"{k}: {u:.2f} → {v:.2f}" for k, (u, v) in ends))
    return (m, s0, mu0, sigma0, beta, affine(v0, (v1 - v0) / DIFFFLOW_T), a), text


def mixture_1d(
    weights: Sequence[float], means: Sequence[float], stds: Sequence[float]
) -> GaussianMixture:
    r"""$\sum_k w_k\,\mathcal{N}(\mu_k, s_k^2)$ on the line, as a
    [`GaussianMixture`][gpm_sde.GaussianMixture] with $d = 1$."""
    w = np.asarray(weights, dtype=float)
    mu = np.asarray(means, dtype=float)[:, None]
    var = np.asarray(stds, dtype=float)[:, None, None] ** 2
    return GaussianMixture(w / w.sum(), mu, var)


def _parts(law: GaussianMixture) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w = np.asarray(law.weights, dtype=float)
    mu = np.asarray(law.means, dtype=float)[:, 0]
    sd = np.sqrt(np.asarray(law.covs, dtype=float)[:, 0, 0])
    return w, mu, sd


def pdf(law: GaussianMixture, x: np.ndarray) -> np.ndarray:
    r"""The density $\sum_k w_k\,e^{-(x - \mu_k)^2/2s_k^2}/\sqrt{2\pi}s_k$ at the points `x`."""
    w, mu, sd = _parts(law)
    z = (np.asarray(x, dtype=float)[..., None] - mu) / sd
    return np.exp(-0.5 * z**2) / (np.sqrt(2 * np.pi) * sd) @ w


def log_pdf(law: GaussianMixture, x: np.ndarray) -> np.ndarray:
    r"""$\log$ of [`pdf`][theory.laws.pdf], by a log-sum-exp (finite far in the tails)."""
    w, mu, sd = _parts(law)
    z = (np.asarray(x, dtype=float)[..., None] - mu) / sd
    terms = np.log(w) - 0.5 * z**2 - np.log(np.sqrt(2 * np.pi) * sd)
    top = terms.max(axis=-1)
    return top + np.log(np.exp(terms - top[..., None]).sum(axis=-1))


def cdf(law: GaussianMixture, x: np.ndarray) -> np.ndarray:
    r"""The distribution function $\sum_k w_k\,\Phi((x - \mu_k)/s_k)$ at the points `x`."""
    w, mu, sd = _parts(law)
    z = (np.asarray(x, dtype=float)[..., None] - mu) / sd
    return np.asarray(ndtr(jnp.asarray(z))) @ w


def line_grid(laws: Sequence[GaussianMixture], points: int, width: float = 12.0) -> np.ndarray:
    r"""A uniform grid covering every component of `laws` to `width` standard deviations."""
    lo = min(float((m - width * s).min()) for _, m, s in map(_parts, laws))
    hi = max(float((m + width * s).max()) for _, m, s in map(_parts, laws))
    return np.linspace(lo, hi, points)


def trapezoid(values: np.ndarray, x: np.ndarray) -> float:
    """$\\int$ `values` $dx$ by the trapezoid rule on the grid `x` (last axis)."""
    return float(np.trapezoid(values, x))


@dataclass(frozen=True)
class GBM:
    r"""Geometric Brownian motion $dX = \mu X\,ds + \sigma X\,dW$ (Itô), $X_0 = x_0$, with the
    exact solution $X_s = x_0 \exp\big((\mu - \tfrac12\sigma^2)s + \sigma W_s\big)$ on the path,
    $\mathbb{E}X_s^2 = x_0^2 e^{(2\mu + \sigma^2)s}$, and Euler–Maruyama's exact second moment
    $\mathbb{E}\hat X_n^2 = x_0^2\big((1 + \mu h)^2 + \sigma^2 h\big)^n$ (each step multiplies
    $\hat X$ by the independent factor $1 + \mu h + \sigma\Delta W$)."""

    mu: float = 2.0
    sigma: float = 1.0
    x0: float = 1.0
    T: float = 1.0

    def sde(self) -> SDE:
        """The SDE, its multiplicative noise a callable diffusion `(s, y, args) -> σ y`."""
        sigma = self.sigma
        return SDE(LinearDrift(self.mu), lambda s, y, args: sigma * y)

    def exact(self, path: FineBrownianPath) -> Float[Array, " n"]:
        """$X_T$ on the path's $W_T$."""
        w_T = path.w[-1]  # W(T) - W(0), with W(0) = 0
        return self.x0 * jnp.exp((self.mu - 0.5 * self.sigma**2) * self.T + self.sigma * w_T)

    def second_moment(self) -> float:
        """$\\mathbb{E}X_T^2$."""
        return self.x0**2 * float(np.exp((2 * self.mu + self.sigma**2) * self.T))

    def euler_second_moment(self, steps: int) -> float:
        """$\\mathbb{E}\\hat X_T^2$ of Euler–Maruyama with `steps` steps, exactly."""
        h = self.T / steps
        return self.x0**2 * ((1 + self.mu * h) ** 2 + self.sigma**2 * h) ** steps


@dataclass(frozen=True)
class SineDrift:
    r"""The additive-noise SDE $dX = -\sin(X)\,ds + \sigma\,dW$, $X_0 = x_0$: a nonlinear drift
    and no closed-form solution, so the reference is the same solver at the path's fine step.
    Strong noise ($\sigma = 2$) makes the $h^{3/2}$ noise–drift term of an order-1.5 scheme
    dominate its $O(h^2)$ deterministic error already at coarse steps."""

    sigma: float = 2.0
    x0: float = 1.0
    T: float = 1.0

    def sde(self) -> SDE:
        r"""The SDE; its noise is additive, $G = \sigma$, as `ScalarDiffusion(σ)`."""
        return SDE(_minus_sin, ScalarDiffusion(self.sigma))


def _minus_sin(s: Float[ArrayLike, ""], y: Array, args: object) -> Array:
    r"""The drift $-\sin y$."""
    return -jnp.sin(y)


def strong_errors_gbm(
    gbm: GBM, key: PRNGKeyArray, n: int, steps: tuple[int, ...], fine: int
) -> tuple[np.ndarray, np.ndarray]:
    r"""Euler–Maruyama on `n` GBM paths for each step count: per path (step counts × n),
    $\hat X_T - X_T$ and $\hat X_T^2 - X_T^2$ (common random numbers for the weak error)."""
    path = FineBrownianPath(jax.ShapeDtypeStruct((n,), jnp.float64), key, 0.0, gbm.T, fine)
    y0 = jnp.full((n,), gbm.x0)
    exact = gbm.exact(path)
    xs = [solve_on_path(gbm.sde(), path, y0, m, diffrax.Euler()) for m in steps]
    diff = np.stack([np.asarray(x - exact) for x in xs])
    sq = np.stack([np.asarray(x**2 - exact**2) for x in xs])
    return diff, sq


def strong_errors_reference(
    problem: SineDrift,
    solver: diffrax.AbstractSolver,
    key: PRNGKeyArray,
    n: int,
    steps: tuple[int, ...],
    fine: int,
) -> np.ndarray:
    """`solver` on `n` paths of `problem` for each step count, minus the same solver at the
    path's `fine` step (the reference), per path: (step counts × n)."""
    path = FineBrownianPath(jax.ShapeDtypeStruct((n,), jnp.float64), key, 0.0, problem.T, fine)
    y0 = jnp.full((n,), problem.x0)
    ref = solve_on_path(problem.sde(), path, y0, fine, solver)
    return np.stack(
        [np.asarray(solve_on_path(problem.sde(), path, y0, m, solver) - ref) for m in steps]
    )


def step_sizes(T: float, steps: tuple[int, ...]) -> np.ndarray:
    """$h = T/m$ for each step count $m$."""
    return T / np.asarray(steps, dtype=np.float64)
