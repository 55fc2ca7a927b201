r"""Sampling by solving a member of the reverse-time family from the prior."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import diffrax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import IntLike, check_callable
from ..processes import AbstractLinearProcess
from ..schedules import Schedule
from ..sde import SDE, probability_flow, reverse
from ..solve import simulate
from ._common import check_process, generation_grid, start_cloud
from ._result import Samples

_SAVE_Y = diffrax.SaveAt(t1=True).subs.fn  # diffrax's default `fn`: save the state itself


def _with_final(saveat: diffrax.SaveAt | None) -> tuple[diffrax.SaveAt, bool, bool]:
    """`saveat` plus the final time (the samples), whether the user asked for any save, and
    whether the user asked for the final time itself."""
    if saveat is None:
        return diffrax.SaveAt(t1=True), False, True
    if not isinstance(saveat, diffrax.SaveAt):
        raise TypeError(f"`saveat` must be None or a diffrax.SaveAt, got {saveat!r}.")
    sub = saveat.subs
    if not isinstance(sub, diffrax.SubSaveAt) or sub.fn is not _SAVE_Y or saveat.dense:
        raise ValueError(
            "the samplers' `saveat` saves clouds: pass one `diffrax.SaveAt(t0=..., ts=..., "
            "steps=..., t1=...)` without `fn`, `subs` or `dense`; for statistics along the path "
            "call `gpm_sde.simulate` on `reverse(process, score)` with `SaveAt(fn=...)`."
        )
    full = diffrax.SaveAt(t0=sub.t0, t1=True, ts=sub.ts, steps=sub.steps)
    return full, True, bool(sub.t1)


def _solve(
    sde: SDE,
    x0: Array,
    key: PRNGKeyArray | None,
    t1: float,
    grid: Array,
    steps: int | None,
    ts: Any,
    solver: diffrax.AbstractSolver | None,
    saveat: diffrax.SaveAt | None,
) -> Samples:
    full, saving, keep_final = _with_final(saveat)
    if ts is None:
        sol = simulate(sde, x0, key, t1=t1, steps=steps, solver=solver, saveat=full)
    else:
        sol = simulate(sde, x0, key, ts=grid, solver=solver, saveat=full)
    assert sol.ys is not None and sol.ts is not None
    x = sol.ys[-1]
    if not saving:
        return Samples(x)
    if keep_final:
        return Samples(x, sol.ts, sol.ys)
    return Samples(x, sol.ts[:-1], sol.ys[:-1])


def reverse_sde_sample(
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    key: PRNGKeyArray,
    n: IntLike | None = None,
    event_shape: Sequence[int] | None = None,
    *,
    steps: IntLike | None = None,
    ts: Float[ArrayLike, " k"] | None = None,
    x_init: Float[Array, " n *event"] | None = None,
    lam: Schedule | None = None,
    eps: float | int | None = None,
    solver: diffrax.AbstractSolver | None = None,
    saveat: diffrax.SaveAt | None = None,
) -> Samples:
    r"""Draw `n` points by solving the reverse-time SDE of `process` from its prior
    (Song et al. 2021, eq. 6; Anderson 1982), in generation time $s = T - t$:

    $$Y_0 \sim \pi = \mathcal{N}(0, \sigma(T)^2 I), \qquad
    dY_s = \Big[-f(T-s)\,Y_s + \tfrac12\big(g(T-s)^2 + \lambda(s)^2\big)
    \nabla\log p_{T-s}(Y_s)\Big]ds + \lambda(s)\,dW_s,$$

    for $s \in [0, T - \epsilon]$, with `steps` equal steps of `solver` (default
    Euler–Maruyama), or the steps of the grid `ts`, through [`simulate`][gpm_sde.simulate].
    With the exact score, $Y_s$ has the law $p_{T-s}$ for every $\lambda$
    ([`reverse`][gpm_sde.reverse]), up to the prior mismatch $p_T \ne \pi$ and the solver's
    discretisation error; stopping at $t = \epsilon > 0$ avoids the singular score of data with
    no density.

    **Arguments:**

    - `process`: the forward process; `score`: its score `score(t, x)` in diffusion time,
      pointwise on one point `x: event_shape`, or a cloud score (called on the whole cloud).
    - `key`: split by `jax.random.split` into the prior draw (first) and the Brownian motion
      (second).
    - `n`: the number of points; `event_shape`: the shape of one point, e.g. `(2,)`. Both
      are read from `x_init` when it is given.
    - `steps`: the number of equal solver steps, on $s \in [0, T - \epsilon]$; or
    - `ts`: instead of `steps`, an increasing grid of generation times $s$ in $[0, T]$, e.g.
      [`time_grid`][gpm_sde.schedules.time_grid]`(process, 50, "karras")`; it stops at
      $\epsilon = T - $ `ts[-1]`. `ts = time_grid(process, steps)` gives bitwise the result
      of `steps`.
    - `x_init`: a starting cloud `(n, *event)` instead of a prior draw: the cloud at
      generation time `ts[0]` (0 with `steps`), i.e. at diffusion time $T - $ `ts[0]`. With
      `x_init = process.prior.sample(jax.random.split(key)[0], n, event_shape)` the result is
      that of drawing the prior.
    - `lam`: $\lambda(s)$, a float or callable of generation time; `None` is the reverse SDE
      $\lambda = g(T - s)$, `0` the probability-flow ODE.
    - `eps`: the diffusion time $\epsilon \in [0, T)$ where sampling stops (default `1e-3`;
      with `ts`, omit it).
    - `solver`: as in [`simulate`][gpm_sde.simulate].
    - `saveat`: a `diffrax.SaveAt` of the clouds to keep along the way (`t0`, `ts` in
      generation time, `steps`, `t1`), where the exact law at $s$ is $p_{T-s}$.

    **Returns:** [`Samples`][gpm_sde.samplers.Samples]: `.x` the final cloud
    `(n, *event_shape)`; `.ts`, `.ys` the clouds saved as `saveat` asks (`None` without
    `saveat`).
    """
    check_process(process)
    check_callable("score", score, "(t, x) -> ∇log p_t(x)")
    grid, end = generation_grid(process, steps, ts, eps, x_init is not None)
    x0, k_noise = start_cloud(process.prior, key, n, event_shape, x_init, needs_noise=True)
    sde = reverse(process, score, lam, label="`score` of `reverse_sde_sample`")
    steps = None if steps is None else int(steps)
    return _solve(sde, x0, k_noise, process.T - end, grid, steps, ts, solver, saveat)


def probability_flow_sample(
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    key: PRNGKeyArray | None,
    n: IntLike | None = None,
    event_shape: Sequence[int] | None = None,
    *,
    steps: IntLike | None = None,
    ts: Float[ArrayLike, " k"] | None = None,
    x_init: Float[Array, " n *event"] | None = None,
    eps: float | int | None = None,
    solver: diffrax.AbstractSolver | None = None,
    saveat: diffrax.SaveAt | None = None,
) -> Samples:
    r"""Draw `n` points by solving the probability-flow ODE of `process` from its prior
    (Song et al. 2021, eq. 13):

    $$Y_0 \sim \mathcal{N}(0, \sigma(T)^2 I), \qquad
    \frac{dY_s}{ds} = -f(T-s)\,Y_s + \tfrac12 g(T-s)^2\,\nabla\log p_{T-s}(Y_s),
    \qquad s \in [0, T - \epsilon],$$

    the $\lambda = 0$ member of [`reverse_sde_sample`][gpm_sde.samplers.reverse_sde_sample]:
    the only randomness is the prior draw (from `jax.random.split(key)[0]`, as there). Default
    solver `diffrax.Heun()` (second order), `steps` equal steps or the grid `ts`.

    **Arguments:** as in [`reverse_sde_sample`][gpm_sde.samplers.reverse_sde_sample], without
    `lam`; `key` may be `None` when `x_init` is given (the ODE draws no noise).

    **Returns:** [`Samples`][gpm_sde.samplers.Samples], as
    [`reverse_sde_sample`][gpm_sde.samplers.reverse_sde_sample].
    """
    check_process(process)
    check_callable("score", score, "(t, x) -> ∇log p_t(x)")
    grid, end = generation_grid(process, steps, ts, eps, x_init is not None)
    x0, _ = start_cloud(process.prior, key, n, event_shape, x_init, needs_noise=False)
    sde = probability_flow(process, score, label="`score` of `probability_flow_sample`")
    steps = None if steps is None else int(steps)
    return _solve(sde, x0, None, process.T - end, grid, steps, ts, solver, saveat)
