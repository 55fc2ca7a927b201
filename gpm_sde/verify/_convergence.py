r"""Convergence orders of SDE solvers: one Brownian path per particle seen at every step size,
and the least-squares order of the error against the step with a bootstrap standard error.

A strong error $\mathbb{E}|X_T - \hat X_T|$ compares the numerical and the exact (or reference)
solution on the **same** Brownian path at every step size.
[`FineBrownianPath`][gpm_sde.verify.FineBrownianPath] draws that path once on a fine grid and
answers every query between its grid points exactly, Lévy area included, so coarse grids see
sums of the fine increments; [`solve_on_path`][gpm_sde.verify.solve_on_path] solves an
[`SDE`][gpm_sde.SDE] on it through its diffrax terms (`SDE.terms`), and
[`fit_order`][gpm_sde.verify.fit_order] fits the order.
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

from ..sde import SDE


class FineBrownianPath(diffrax.AbstractBrownianPath):
    r"""A Brownian path $W$ with space-time Lévy area, drawn on the grid $t_k = t_0 + k h_f$,
    $h_f = (t_1 - t_0)/$`steps`, and exact for every query between grid points.

    Each fine step draws $W_k \sim \mathcal{N}(0, h_f)$ and its space-time Lévy area
    $H_k \sim \mathcal{N}(0, h_f/12)$, independent (Foster et al. 2020, def. 3.5).
    The path stores $W(t_k)$ and $I(t_k) = \int_0^{t_k} W_u\,du$, exact on the grid:
    $\int_{t_k}^{t_{k+1}} W_u\,du = h_f\big(W(t_k) + \tfrac12 W_k + H_k\big)$. The increment
    and the space-time Lévy area of any coarse step $[a, b]$ between grid points, $h = b - a$,
    follow:

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
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"`steps` must be a positive int, got {steps!r}.")
        if not t1 > t0:
            raise ValueError(f"`t1` must be greater than `t0`, got t0={t0!r}, t1={t1!r}.")
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
        """$W(t_0)$, or the increment $W_{t_0, t_1}$ (with its space-time Lévy area when
        `use_levy`), $t_0, t_1$ rounded to the nearest fine grid points."""
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
    y0: Float[Array, " n *event"],
    steps: int,
    solver: diffrax.AbstractSolver,
) -> Float[Array, " n *event"]:
    r"""The state at `path.t1` of `steps` equal steps of `solver` on `[path.t0, path.t1]`, the
    SDE's terms (`sde.terms(path)`) driven by `path`: the solution at step
    $h = (t_1 - t_0)/$`steps` on the one path, for a strong error.

    **Arguments:**

    - `sde`: the [`SDE`][gpm_sde.SDE].
    - `path`: the [`FineBrownianPath`][gpm_sde.verify.FineBrownianPath]; its shape is `y0`'s.
    - `y0`: the initial state.
    - `steps`: the number of steps, a divisor of `path.steps`.
    - `solver`: any diffrax solver (`diffrax.Euler()`, `diffrax.ShARK()`, ...).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be a positive int, got {steps!r}.")
    if path.steps % steps:
        raise ValueError(f"`steps` = {steps} must divide the path's {path.steps} fine steps.")
    ts = jnp.linspace(path.t0, path.t1, steps + 1, dtype=y0.dtype)
    sol = diffrax.diffeqsolve(
        sde.terms(path),
        solver,
        ts[0],
        ts[-1],
        dt0=None,
        y0=y0,
        stepsize_controller=diffrax.StepTo(ts=ts),
        saveat=diffrax.SaveAt(t1=True),
        max_steps=steps,
    )
    assert sol.ys is not None
    return sol.ys[0]


@dataclass(frozen=True)
class OrderFit:
    """A fitted convergence order: the least-squares slope of log error on log step size.

    **Fields:** `h` (the step sizes), `error` (the error at each), `slope` (the order), `se`
    (its bootstrap standard error), `ci` (the bootstrap 2.5% and 97.5% quantiles).
    """

    h: np.ndarray
    error: np.ndarray
    slope: float
    se: float
    ci: tuple[float, float]


def _slope(h: np.ndarray, error: np.ndarray) -> np.ndarray | float:
    """Least-squares slopes of log `error` (last axis over step sizes) against log `h`."""
    x = np.log(h) - np.log(h).mean()
    y = np.log(error)
    return (y - y.mean(axis=-1, keepdims=True)) @ x / (x @ x)


def strong_error(per_path: Float[ArrayLike, "*steps n"]) -> np.ndarray:
    r"""The strong error $\frac1n\sum_i|X^{(i)}_T - \hat X^{(i)}_T|$ over the paths (last axis)
    of signed differences `per_path`."""
    return np.abs(np.asarray(per_path)).mean(axis=-1)


def weak_error(per_path: Float[ArrayLike, "*steps n"]) -> np.ndarray:
    r"""The weak error $\big|\frac1n\sum_i \Delta^{(i)}\big|$, the absolute mean over the paths
    (last axis) of signed differences `per_path` (e.g. $\phi(\hat X_T) - \phi(X_T)$ with
    common random numbers)."""
    return np.abs(np.asarray(per_path).mean(axis=-1))


def fit_order(
    h: Float[ArrayLike, " m"],
    per_path: Float[ArrayLike, "m n"],
    reduce: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator,
    resamples: int = 400,
) -> OrderFit:
    r"""Fit the convergence order $p$ in $e(h) \approx C h^p$: the least-squares slope

    $$\hat p = \frac{\sum_j (\log h_j - \overline{\log h})\,\log e(h_j)}
    {\sum_j (\log h_j - \overline{\log h})^2},$$

    where $e(h_j)$ is `reduce(per_path[j])`, with its Monte-Carlo uncertainty: the spread of
    $\hat p$ over `resamples` nonparametric bootstrap resamples of the paths (drawn with
    replacement), the same resample at every step size, because the errors at different step
    sizes share the paths and are correlated.

    **Arguments:**

    - `h`: the step sizes `(m,)`, $m \ge 2$ distinct.
    - `per_path`: one value per step size and path `(m, n)`, e.g. $\hat X_T - X_T$.
    - `reduce`: the error from the values of the paths (reducing the last axis):
      [`strong_error`][gpm_sde.verify.strong_error] or
      [`weak_error`][gpm_sde.verify.weak_error].
    - `rng`: the NumPy generator of the resamples.
    - `resamples`: the number of bootstrap resamples.
    """
    h = np.asarray(h, dtype=np.float64)
    per_path = np.asarray(per_path)
    if h.ndim != 1 or len(np.unique(h)) < 2:
        raise ValueError(f"`h` must be a vector of at least 2 distinct step sizes, got {h!r}.")
    if np.any(h <= 0):
        raise ValueError(f"`h` must be positive step sizes, got {h!r}.")
    if per_path.ndim != 2 or per_path.shape[0] != len(h):
        raise ValueError(
            f"`per_path` must have shape (len(h), n) = ({len(h)}, n), got {per_path.shape}."
        )
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 2:
        raise ValueError(f"`resamples` must be an int >= 2, got {resamples!r}.")
    n = per_path.shape[1]
    error = reduce(per_path)
    idx = rng.integers(0, n, (resamples, n))
    boot = np.asarray(_slope(h, np.stack([reduce(per_path[:, i]) for i in idx])))
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return OrderFit(h, error, float(_slope(h, error)), float(boot.std()), (float(lo), float(hi)))
