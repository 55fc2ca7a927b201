r"""The `SDE` module: a drift and a diffusion on the particle cloud, turned into diffrax terms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import lineax as lx
from jaxtyping import Array, ArrayLike, Float

from ._diffusion import AbstractDiffusion
from ._drift import AbstractDrift, FunctionDrift, ScoreDrift


class _FunctionDiffusion(AbstractDiffusion):
    fn: Callable[..., Any]

    def __call__(self, s, y, args=None):
        return self.fn(s, y, args)


class _DiagonalField(eqx.Module):
    """diffrax control vector field: `(s, y, args) -> DiagonalLinearOperator(G(s, y))`."""

    diffusion: AbstractDiffusion

    def __call__(self, s, y, args):
        return lx.DiagonalLinearOperator(self.diffusion(s, y, args))


class SDE(eqx.Module):
    r"""An SDE on a particle cloud $y \in \mathbb{R}^{N \times \text{event}}$ in generation time,

    $$dy = b(s, y)\, ds + G(s, y) \odot dW_s,$$

    with a diagonal diffusion $G$. `diffusion=None` is an ODE (a flow).

    **Arguments:**

    - `drift`: an [`AbstractDrift`][gpm_sde.sde.AbstractDrift], or any callable
      `(s, y, args) -> array like y` acting on the whole cloud.
    - `diffusion`: an [`AbstractDiffusion`][gpm_sde.sde.AbstractDiffusion] such as
      [`ScalarDiffusion`][gpm_sde.ScalarDiffusion], a callable `(s, y, args) -> diagonal like y`,
      or `None` for no noise.
    - `time_range`: `(s_min, s_max)`, the generation times where the SDE is defined, or `None`
      (any time). [`reverse`][gpm_sde.reverse] sets `(0, T)`: a reverse diffusion evaluates the
      score at $t = T - s$, meaningless outside $[0, T]$. [`simulate`][gpm_sde.simulate]
      refuses `t0`/`t1` outside it (a `ValueError` on concrete times, equinox's runtime error
      under `jax.jit`); [`reweight_noise`][gpm_sde.reweight_noise] keeps it.
    """

    drift: AbstractDrift
    diffusion: AbstractDiffusion | None
    time_range: tuple[float, float] | None = eqx.field(static=True)

    def __init__(
        self,
        drift: AbstractDrift | Callable[..., Any],
        diffusion: AbstractDiffusion | Callable[..., Any] | None = None,
        *,
        time_range: tuple[float, float] | None = None,
    ):
        if not isinstance(drift, AbstractDrift):
            if not callable(drift):
                raise TypeError(
                    f"`drift` must be an AbstractDrift or a callable `(s, y, args) -> array`, "
                    f"got {type(drift).__name__}."
                )
            drift = FunctionDrift(drift)
        if diffusion is not None and not isinstance(diffusion, AbstractDiffusion):
            if not callable(diffusion):
                raise TypeError(
                    f"`diffusion` must be an AbstractDiffusion, a callable `(s, y, args) -> "
                    f"array`, or None, got {type(diffusion).__name__}; for constant noise pass "
                    f"`ScalarDiffusion(g)`."
                )
            diffusion = _FunctionDiffusion(diffusion)
        if time_range is not None:
            try:
                lo, hi = (float(v) for v in time_range)
            except (TypeError, ValueError) as err:
                raise TypeError(
                    f"`time_range` must be None or a pair of floats (s_min, s_max), got "
                    f"{time_range!r}."
                ) from err
            if not lo < hi:
                raise ValueError(
                    f"`time_range` must be (s_min, s_max) with s_min < s_max, got {time_range!r}."
                )
            time_range = (lo, hi)
        self.drift = drift
        self.diffusion = diffusion
        self.time_range = time_range

    @property
    def is_ode(self) -> bool:
        """True when there is no diffusion term (`diffusion=None`)."""
        return self.diffusion is None

    def check_scores(
        self,
        s: Float[ArrayLike, ""] | jax.ShapeDtypeStruct,
        y: Float[Array, " n *event"] | jax.ShapeDtypeStruct,
    ) -> None:
        """Check every [`ScoreDrift`][gpm_sde.ScoreDrift] term of the drift (found anywhere in
        its pytree: in sums, scalings, or a module of your own) against the cloud `y`: each score
        must return the cloud's shape `(N, *event)` (a cloud score) or `event` on one point (a
        pointwise score), as a real floating array. Raise a `ValueError`/`TypeError` that names
        the score (e.g. ``"`score` of `reverse`"``) and says what to pass otherwise.

        Shapes only (`jax.eval_shape`): nothing is computed, so it is cheap and works under
        `jax.jit`. [`simulate`][gpm_sde.simulate] calls it once per solve, with `s` of its time
        dtype; call it yourself before handing [`terms`][gpm_sde.sde.SDE.terms] to your own
        `diffrax.diffeqsolve`.

        **Arguments:**

        - `s`: a time of the dtype the solver passes (its value is not used).
        - `y`: the initial cloud `(N, *event)`, or a `jax.ShapeDtypeStruct` of it.
        """
        leaves = jax.tree_util.tree_leaves(self.drift, is_leaf=lambda x: isinstance(x, ScoreDrift))
        for leaf in leaves:
            if isinstance(leaf, ScoreDrift):
                leaf.check(s, y)

    def terms(self, brownian: diffrax.AbstractPath | None = None) -> diffrax.AbstractTerm:
        r"""The diffrax terms of this SDE: `MultiTerm(ODETerm(b), ControlTerm(G, W))`, with $G$ a
        `lineax.DiagonalLinearOperator`; just `ODETerm(b)` for an ODE. Hand them to your own
        `diffrax.diffeqsolve`.

        **Arguments:**

        - `brownian`: the Brownian path $W$ (e.g. `diffrax.VirtualBrownianTree`); required
          unless this is an ODE.
        """
        drift_term = diffrax.ODETerm(self.drift)
        if self.diffusion is None:
            return drift_term
        if brownian is None:
            raise ValueError(
                "`brownian` is required for an SDE with a diffusion term; pass e.g. "
                "`diffrax.VirtualBrownianTree(t0, t1, tol, shape=y0.shape, key=key)`."
            )
        return diffrax.MultiTerm(
            drift_term, diffrax.ControlTerm(_DiagonalField(self.diffusion), brownian)
        )
