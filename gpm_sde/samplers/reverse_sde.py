r"""Sampling by solving a member of the reverse-time family from the prior."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import diffrax
import jax.random as jr
from jaxtyping import PRNGKeyArray

from ..processes import AbstractLinearProcess
from ..schedules import Schedule
from ..sde import probability_flow, reverse
from ..solve import simulate
from ._common import check_callable, check_end_time, check_int, check_process


def reverse_sde_sample(
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    key: PRNGKeyArray,
    n: int,
    event_shape: Sequence[int],
    *,
    steps: int,
    lam: Schedule | None = None,
    eps: float | int = 1e-3,
    solver: diffrax.AbstractSolver | None = None,
    saveat: diffrax.SaveAt | None = None,
) -> diffrax.Solution:
    r"""Draw `n` points by solving the reverse-time SDE of `process` from its prior
    (Song et al. 2021, eq. 6; Anderson 1982), in generation time $s = T - t$:

    $$Y_0 \sim \pi = \mathcal{N}(0, \sigma(T)^2 I), \qquad
    dY_s = \Big[-f(T-s)\,Y_s + \tfrac12\big(g(T-s)^2 + \lambda(s)^2\big)
    \nabla\log p_{T-s}(Y_s)\Big]ds + \lambda(s)\,dW_s,$$

    for $s \in [0, T - \epsilon]$, with `steps` equal steps of `solver` (default
    Euler–Maruyama) through [`simulate`][gpm_sde.simulate]. With the exact score, $Y_s$ has the
    law $p_{T-s}$ for every $\lambda$ ([`reverse`][gpm_sde.reverse]), up to the prior mismatch
    $p_T \ne \pi$ and the solver's discretisation error; stopping at $t = \epsilon > 0$ avoids
    the singular score of data with no density.

    **Arguments:**

    - `process`: the forward process; `score`: its score `score(t, x)` in diffusion time,
      pointwise on one point `x: event_shape`, or a cloud score (called on the whole cloud).
    - `key`: split into the prior draw and the Brownian motion.
    - `n`: the number of points; `event_shape`: the shape of one point, e.g. `(2,)`.
    - `steps`: the number of solver steps.
    - `lam`: $\lambda(s)$, a float or callable of generation time; `None` is the reverse SDE
      $\lambda = g(T - s)$, `0` the probability-flow ODE.
    - `eps`: the diffusion time $\epsilon \in [0, T)$ where sampling stops.
    - `solver`, `saveat`: as in [`simulate`][gpm_sde.simulate]; save times are generation times
      $s$, where the exact law is $p_{T-s}$.

    **Returns:** the `diffrax.Solution`; `sol.ys[-1]` is the final cloud `(n, *event_shape)` with
    the default `saveat`.
    """
    check_process(process)
    check_callable("score", score, "(t, x) -> ∇log p_t(x)")
    check_int("n", n, 1, "the number of points")
    check_int("steps", steps, 1, "the number of solver steps")
    check_end_time(process, eps)
    k_prior, k_noise = jr.split(key)
    y0 = process.prior.sample(k_prior, int(n), tuple(event_shape))
    sde = reverse(process, score, lam, label="`score` of `reverse_sde_sample`")
    t1 = process.T - float(eps)
    return simulate(sde, y0, k_noise, t1=t1, steps=steps, solver=solver, saveat=saveat)


def probability_flow_sample(
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    key: PRNGKeyArray,
    n: int,
    event_shape: Sequence[int],
    *,
    steps: int,
    eps: float | int = 1e-3,
    solver: diffrax.AbstractSolver | None = None,
    saveat: diffrax.SaveAt | None = None,
) -> diffrax.Solution:
    r"""Draw `n` points by solving the probability-flow ODE of `process` from its prior
    (Song et al. 2021, eq. 13):

    $$Y_0 \sim \mathcal{N}(0, \sigma(T)^2 I), \qquad
    \frac{dY_s}{ds} = -f(T-s)\,Y_s + \tfrac12 g(T-s)^2\,\nabla\log p_{T-s}(Y_s),
    \qquad s \in [0, T - \epsilon],$$

    the $\lambda = 0$ member of [`reverse_sde_sample`][gpm_sde.samplers.reverse_sde_sample]:
    the only randomness is the prior draw (from `key`). Default solver `diffrax.Heun()`
    (second order), `steps` equal steps.

    **Arguments:** as in [`reverse_sde_sample`][gpm_sde.samplers.reverse_sde_sample], without
    `lam`.

    **Returns:** the `diffrax.Solution` of [`simulate`][gpm_sde.simulate].
    """
    check_process(process)
    check_callable("score", score, "(t, x) -> ∇log p_t(x)")
    check_int("n", n, 1, "the number of points")
    check_int("steps", steps, 1, "the number of solver steps")
    check_end_time(process, eps)
    y0 = process.prior.sample(key, int(n), tuple(event_shape))
    sde = probability_flow(process, score, label="`score` of `probability_flow_sample`")
    t1 = process.T - float(eps)
    return simulate(sde, y0, None, t1=t1, steps=steps, solver=solver, saveat=saveat)
