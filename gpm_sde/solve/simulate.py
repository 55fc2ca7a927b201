"""`simulate`: solve an SDE on a particle cloud with diffrax, forward in generation time."""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from .._checks import check_finite, check_float_array, is_concrete
from ..sde import SDE
from .brownian import GridBrownianPath


def _levy_area(solver: diffrax.AbstractSolver) -> type:
    """The Brownian increment type (plain or with Lévy area) that `solver` needs."""
    minimal = getattr(solver, "minimal_levy_area", None)
    if minimal is None or minimal is diffrax.AbstractBrownianIncrement:
        return diffrax.BrownianIncrement
    if issubclass(diffrax.SpaceTimeLevyArea, minimal):
        return diffrax.SpaceTimeLevyArea
    return diffrax.SpaceTimeTimeLevyArea


def _check_simulate_args(sde, y0, t0, t1, steps) -> None:
    if not isinstance(sde, SDE):
        raise TypeError(
            f"`sde` must be a gpm_sde.SDE, got {type(sde).__name__}; build one with "
            f"`SDE(drift, diffusion)` or a transform such as `reverse(process, score)`."
        )
    check_float_array("y0", y0)
    if jnp.ndim(y0) < 1 or jnp.shape(y0)[0] == 0:
        raise ValueError(
            f"`y0` must be a non-empty particle cloud of shape (N, *event) with N >= 1, got "
            f"shape {jnp.shape(y0)}."
        )
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(f"`steps` must be an int >= 1 (the number of solver steps), got {steps!r}.")
    if steps < 1:
        raise ValueError(
            f"`steps` must be an int >= 1 (the number of solver steps), got {steps!r}."
        )
    check_finite("t0", t0)
    check_finite("t1", t1)
    check_finite("y0", y0, fix="start from a finite cloud")
    if is_concrete(t0, t1) and not float(t1) > float(t0):
        raise ValueError(
            f"`t1` must be greater than `t0` (got t0={float(t0)}, t1={float(t1)}): every "
            f"dynamics runs forward in generation time s; for a reverse diffusion use "
            f"`reverse(process, score)`, which is already written in s = T - t (diffrax's "
            f"stochastic solvers are wrong backwards in time, diffrax issue 598)."
        )


def simulate(
    sde: SDE,
    y0: Float[Array, " n *event"],
    key: PRNGKeyArray | None,
    *,
    t1: Float[ArrayLike, ""],
    steps: int,
    t0: Float[ArrayLike, ""] = 0.0,
    solver: diffrax.AbstractSolver | None = None,
    saveat: diffrax.SaveAt | None = None,
    args: PyTree = None,
) -> diffrax.Solution:
    r"""Solve $dy = b(s, y)\,ds + G(s, y)\odot dW_s$ for $s \in [t_0, t_1]$ from the cloud `y0`,
    on a fixed grid of `steps` equal steps.

    The Brownian motion is a [`GridBrownianPath`][gpm_sde.solve.GridBrownianPath] keyed by
    `key`: step $n$ draws an exact $\mathcal{N}(0, \Delta s\, I)$ increment (with the Lévy
    area the solver needs) from `fold_in(key, n)`. The same key gives the same samples on the
    same machine.

    **Arguments:**

    - `sde`: the [`SDE`][gpm_sde.SDE], in generation time.
    - `y0`: the initial cloud `(N, *event)`.
    - `key`: PRNG key of the Brownian motion (unused, may be `None`, for an ODE).
    - `t1`, `t0`: the time interval, `t1 > t0`.
    - `steps`: the number of equal steps, `>= 1`.
    - `solver`: any diffrax solver; default `diffrax.Euler()` (Euler–Maruyama) for an SDE and
      `diffrax.Heun()` for an ODE.
    - `saveat`: a `diffrax.SaveAt`; default `SaveAt(t1=True)`.
    - `args`: passed to the drift and diffusion as their `args`.

    **Returns:** the `diffrax.Solution`; `sol.ys` is stacked over the save times.
    """
    _check_simulate_args(sde, y0, t0, t1, steps)
    y0 = jnp.asarray(y0)
    if solver is None:
        solver = diffrax.Heun() if sde.is_ode else diffrax.Euler()
    if saveat is None:
        saveat = diffrax.SaveAt(t1=True)
    dtype = y0.dtype
    t0_arr = jnp.asarray(t0, dtype=dtype)
    t1_arr = jnp.asarray(t1, dtype=dtype)
    ts = jnp.linspace(t0_arr, t1_arr, steps + 1)
    if sde.is_ode:
        terms = sde.terms()
    else:
        if key is None:
            raise ValueError("`key` is required for an SDE with noise; pass `jax.random.key(0)`.")
        brownian = GridBrownianPath(
            jax.ShapeDtypeStruct(y0.shape, dtype), key, t0_arr, t1_arr, steps, _levy_area(solver)
        )
        terms = sde.terms(brownian)
    return diffrax.diffeqsolve(
        terms,
        solver,
        t0_arr,
        t1_arr,
        dt0=None,
        y0=y0,
        args=args,
        saveat=saveat,
        stepsize_controller=diffrax.StepTo(ts=ts),
        max_steps=steps,
    )
