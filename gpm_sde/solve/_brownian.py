"""A counter-based Brownian path on a fixed time grid: exact increments, no tree search."""

from __future__ import annotations

import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

_PATH_TAG = 0x5E3779B9  # an arbitrary large constant, far from the small ints users fold in


class GridBrownianPath(diffrax.AbstractBrownianPath):
    r"""Brownian motion sampled step by step on the grid $s_n = s_0 + n\,\Delta s$, or on an
    explicit increasing grid $s_0 < s_1 < \dots < s_N$ (`ts`).

    The increment over step $n$ is drawn from `fold_in(fold_in(key, TAG), n)`, with a fixed
    large `TAG`, so that the noise does not coincide with draws a user makes from
    `fold_in(key, i)` for small `i` (e.g. the initial cloud):

    $$W_{s_{n+1}} - W_{s_n} \sim \mathcal{N}(0, (s_{n+1} - s_n)\, I)$$

    independently across steps (with the space-time Lévy area $H \sim \mathcal{N}(0,
    \Delta s/12)$, and space-time-time $K \sim \mathcal{N}(0, \Delta s/720)$, when the solver
    asks for them; Foster et al. 2020). Being a pure function of the step index, it is
    deterministic, costs one counter-based draw per step (no Brownian-tree descent), and can be
    differentiated through with diffrax's default adjoint.

    It is exact only for queries of whole grid steps, which is what every fixed-step diffrax
    solver makes; [`simulate`][gpm_sde.simulate] uses it with a matching `StepTo` grid. For
    adaptive steps use `diffrax.VirtualBrownianTree`.

    **Arguments:**

    - `shape`: a `jax.ShapeDtypeStruct` of the noise (the cloud's shape and dtype).
    - `key`: the PRNG key.
    - `t0`, `t1`: the grid's end points; `steps`: the number of grid steps.
    - `levy_area`: `diffrax.BrownianIncrement`, `SpaceTimeLevyArea` or `SpaceTimeTimeLevyArea`.
    - `ts`: an explicit increasing grid of `steps + 1` times from `t0` to `t1` (default: the
      uniform grid); step $n$ is then located by search in `ts`.
    """

    shape: jax.ShapeDtypeStruct = eqx.field(static=True)
    key: PRNGKeyArray
    t0: Float[Array, ""]
    t1: Float[Array, ""]
    steps: int = eqx.field(static=True)
    levy_area: type = eqx.field(static=True)
    ts: Float[Array, " steps_plus_1"] | None = None

    def __init__(
        self,
        shape: jax.ShapeDtypeStruct,
        key: PRNGKeyArray,
        t0: Float[ArrayLike, ""],
        t1: Float[ArrayLike, ""],
        steps: int,
        levy_area: type = diffrax.BrownianIncrement,
        ts: Float[ArrayLike, " steps_plus_1"] | None = None,
    ):
        if levy_area not in (
            diffrax.BrownianIncrement,
            diffrax.SpaceTimeLevyArea,
            diffrax.SpaceTimeTimeLevyArea,
        ):
            raise ValueError(
                f"`levy_area` must be diffrax.BrownianIncrement, SpaceTimeLevyArea or "
                f"SpaceTimeTimeLevyArea, got {levy_area!r}."
            )
        self.shape = shape
        self.key = jr.fold_in(key, _PATH_TAG)  # the path's own stream (see above)
        # The grid's times in the widest float (float64 with x64), as `simulate` carries them:
        # the step index of a time is then exact; the increments have the noise's dtype.
        self.t0 = jnp.asarray(t0, dtype=jnp.result_type(float))
        self.t1 = jnp.asarray(t1, dtype=jnp.result_type(float))
        self.steps = steps
        self.levy_area = levy_area
        if ts is not None and jnp.shape(ts) != (steps + 1,):
            raise ValueError(
                f"`ts` must hold steps + 1 = {steps + 1} times, got shape {jnp.shape(ts)}."
            )
        self.ts = None if ts is None else jnp.asarray(ts, dtype=self.t0.dtype)

    def step_index(self, t: Float[ArrayLike, ""]) -> Array:
        """The index $n$ of the grid step that starts at time `t` (the nearest grid point)."""
        if self.ts is not None:
            i = jnp.clip(jnp.searchsorted(self.ts, t), 1, self.steps)
            nearer_left = t - self.ts[i - 1] <= self.ts[i] - t
            return jnp.where(nearer_left, i - 1, i).astype(jnp.int32)
        dt = (self.t1 - self.t0) / self.steps
        return jnp.round((t - self.t0) / dt).astype(jnp.int32)

    def increment(self, n: Array, dt: Float[ArrayLike, ""]):
        """The Brownian increment (and Lévy areas) of grid step `n`, of length `dt`."""
        dtype = self.shape.dtype
        dt = jnp.asarray(dt, dtype=dtype)
        std = jnp.sqrt(dt)
        key = jr.fold_in(self.key, n)
        if self.levy_area is diffrax.BrownianIncrement:
            w = std * jr.normal(key, self.shape.shape, dtype)
            return diffrax.BrownianIncrement(dt=dt, W=w)
        if self.levy_area is diffrax.SpaceTimeLevyArea:
            k_w, k_h = jr.split(key)
            w = std * jr.normal(k_w, self.shape.shape, dtype)
            h = std / math.sqrt(12.0) * jr.normal(k_h, self.shape.shape, dtype)
            return diffrax.SpaceTimeLevyArea(dt=dt, W=w, H=h)
        k_w, k_h, k_k = jr.split(key, 3)
        w = std * jr.normal(k_w, self.shape.shape, dtype)
        h = std / math.sqrt(12.0) * jr.normal(k_h, self.shape.shape, dtype)
        kk = std / math.sqrt(720.0) * jr.normal(k_k, self.shape.shape, dtype)
        return diffrax.SpaceTimeTimeLevyArea(dt=dt, W=w, H=h, K=kk)

    def evaluate(self, t0, t1=None, left=True, use_levy=False):
        del left
        if t1 is None:
            raise NotImplementedError(
                "GridBrownianPath gives increments over grid steps only, not point values "
                "W(t); use diffrax.VirtualBrownianTree when a solver needs W(t)."
            )
        t0 = jax.lax.stop_gradient(jnp.asarray(t0, dtype=self.t0.dtype))
        t1 = jax.lax.stop_gradient(jnp.asarray(t1, dtype=self.t0.dtype))
        out = self.increment(self.step_index(t0), t1 - t0)
        return out if use_levy else out.W
