r"""Convergence orders of SDE solvers on one Brownian path per particle, at several step sizes.

Shared by the `convergence-orders` claim and `tests/test_convergence.py`. A strong error
$\mathbb{E}|X_T - \hat X_T|$ compares the numerical and the exact (or reference) solution on the
**same** Brownian path, at every step size.
[`FineBrownianPath`][theory.convergence.FineBrownianPath] draws that path once on a fine dyadic
grid and answers every query between its grid points exactly, Lévy area included, so coarse
grids see sums of the fine increments. The solves use the
library's own fixed-grid loop (`gpm_sde.solve._fixed_grid.scan_solve`, what `simulate` runs) with
the library's diffrax terms (`SDE.terms`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from gpm_sde import SDE, LinearDrift, ScalarDiffusion
from gpm_sde.solve._fixed_grid import plan_saves, scan_solve


class FineBrownianPath(diffrax.AbstractBrownianPath):
    r"""A Brownian path $W$ with space-time Lévy area, drawn on the grid $t_k = t_0 + k h_f$,
    $h_f = (t_1 - t_0)/$`steps`, and exact for every query between grid points.

    Each fine step draws $W_k \sim \mathcal{N}(0, h_f)$ and its space-time Lévy area
    $H_k \sim \mathcal{N}(0, h_f/12)$ (independent; Foster et al. 2020, def. 3.5). The path
    stores $W(t_k)$ and $I(t_k) = \int_0^{t_k} W_u\,du$, which is exact on the grid:
    $\int_{t_k}^{t_{k+1}} W_u\,du = h_f\big(W(t_k) + \tfrac12 W_k + H_k\big)$. The increment and
    the space-time Lévy area of any coarse step $[a, b]$ of grid points, $h = b - a$, follow:

    $$W_{a,b} = W(b) - W(a), \qquad H_{a,b} = \frac{1}{h}\int_a^b W_{a,u}\,du - \tfrac12 W_{a,b}
    = \frac{I(b) - I(a)}{h} - W(a) - \tfrac12 W_{a,b}.$$

    So a solve on any grid that divides the fine one sees one and the same path.

    **Arguments:**

    - `shape`: the shape of the noise (the cloud's), with its dtype, as `jax.ShapeDtypeStruct`.
    - `key`: the PRNG key; `t0`, `t1`: the interval; `steps`: the number of fine steps.
    """

    w: Float[Array, " m *shape"]
    integral: Float[Array, " m *shape"]
    t0: float = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    steps: int = eqx.field(static=True)
    levy_area: type = eqx.field(static=True)

    def __init__(
        self, shape: jax.ShapeDtypeStruct, key: PRNGKeyArray, t0: float, t1: float, steps: int
    ):
        h = (t1 - t0) / steps
        k_w, k_h = jr.split(key)
        dw = np.sqrt(h) * jr.normal(k_w, (steps, *shape.shape), shape.dtype)
        dh = np.sqrt(h / 12.0) * jr.normal(k_h, (steps, *shape.shape), shape.dtype)
        zero = jnp.zeros((1, *shape.shape), shape.dtype)
        w = jnp.concatenate([zero, jnp.cumsum(dw, axis=0)])
        self.w = w
        self.integral = jnp.concatenate([zero, jnp.cumsum(h * (w[:-1] + 0.5 * dw + dh), axis=0)])
        self.t0, self.t1, self.steps = float(t0), float(t1), steps
        self.levy_area = diffrax.SpaceTimeLevyArea

    def index(self, t: Float[ArrayLike, ""]) -> Array:
        """The fine grid index nearest to `t`."""
        h = (self.t1 - self.t0) / self.steps
        return jnp.round((jnp.asarray(t) - self.t0) / h).astype(jnp.int32)

    def evaluate(self, t0, t1=None, left=True, use_levy=False):
        del left
        i0 = self.index(jax.lax.stop_gradient(t0))
        if t1 is None:
            return self.w[i0]
        i1 = self.index(jax.lax.stop_gradient(t1))
        w = self.w[i1] - self.w[i0]
        if not use_levy:
            return w
        h_grid = (i1 - i0) * ((self.t1 - self.t0) / self.steps)
        hh = (self.integral[i1] - self.integral[i0]) / h_grid - self.w[i0] - 0.5 * w
        dt = jnp.asarray(t1, w.dtype) - jnp.asarray(t0, w.dtype)
        return diffrax.SpaceTimeLevyArea(dt=dt, W=w, H=hh)


@eqx.filter_jit
def solve_on_path(
    sde: SDE,
    path: FineBrownianPath,
    y0: Float[Array, " n"],
    steps: int,
    solver: diffrax.AbstractSolver,
) -> Float[Array, " n"]:
    """`steps` equal steps of `solver` on `[path.t0, path.t1]` (a divisor of `path.steps`), by
    the library's fixed-grid loop, driven by `path`; the state at `path.t1`."""
    if path.steps % steps:
        raise ValueError(f"`steps` = {steps} must divide the path's {path.steps} fine steps.")
    plan = plan_saves(diffrax.SaveAt(t1=True), path.t0, path.t1, steps)
    assert plan is not None
    t0, t1 = jnp.asarray(path.t0, y0.dtype), jnp.asarray(path.t1, y0.dtype)
    sol = scan_solve(
        sde.terms(path), solver, t0, t1, steps, y0, None, plan, diffrax.NoProgressMeter()
    )
    assert sol.ys is not None
    return sol.ys[0]


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


@dataclass(frozen=True)
class OrderFit:
    """A fitted convergence order: the least-squares slope of log error on log step size."""

    h: np.ndarray  # step sizes
    error: np.ndarray  # the error at each step size
    slope: float
    se: float  # bootstrap standard error of the slope (resampling the paths)
    ci: tuple[float, float]  # bootstrap 2.5% and 97.5% quantiles


def _slope(h: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Least-squares slopes of log `error` (last axis over step sizes) against log `h`."""
    x = np.log(h) - np.log(h).mean()
    y = np.log(error)
    return (y - y.mean(axis=-1, keepdims=True)) @ x / (x @ x)


def fit_order(
    h: np.ndarray,
    per_path: np.ndarray,
    reduce: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator,
    resamples: int = 400,
) -> OrderFit:
    r"""Fit the order from `per_path` (step sizes × paths) with the error at each step size
    `reduce(per_path)` (reducing the last axis: e.g. the mean of $|X_T - \hat X_T|$, or the
    absolute mean of a signed difference). Its Monte-Carlo uncertainty is the spread of the
    slope over `resamples` bootstrap resamples of the paths, the same resample for every step
    size (the errors at different step sizes share the paths, so they are correlated)."""
    n = per_path.shape[1]
    error = reduce(per_path)
    idx = rng.integers(0, n, (resamples, n))
    boot = _slope(h, np.stack([reduce(per_path[:, i]) for i in idx]))
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return OrderFit(h, error, float(_slope(h, error)), float(boot.std()), (float(lo), float(hi)))


def mean_abs(per_path: np.ndarray) -> np.ndarray:
    """The strong error: the mean of $|X_T - \\hat X_T|$ over the paths."""
    return np.abs(per_path).mean(axis=-1)


def abs_mean(per_path: np.ndarray) -> np.ndarray:
    """The weak error: the absolute mean of a signed difference over the paths."""
    return np.abs(per_path.mean(axis=-1))


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
