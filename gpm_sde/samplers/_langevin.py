r"""Annealed Langevin sampling (Song & Ermon 2019)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import diffrax
import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import (
    IntLike,
    as_numpy,
    check_callable,
    check_float_array,
    check_int,
    check_positive,
    is_concrete,
)
from ..distributions import IsotropicNormal
from ..flows import langevin_flow
from ..schedules import AbstractSchedule
from ..scores import AnnealedScore
from ..solve import simulate
from ._common import start_cloud
from ._result import Samples


def geometric_sigmas(
    sigma_max: Float[ArrayLike, ""], sigma_min: Float[ArrayLike, ""], n: IntLike
) -> Float[Array, " n"]:
    r"""$n$ noise levels in geometric progression from $\sigma_1$ = `sigma_max` down to
    $\sigma_L$ = `sigma_min` (Song & Ermon 2019, §4.2):
    $\sigma_i = \sigma_1 (\sigma_L/\sigma_1)^{(i-1)/(L-1)}$, $L = n \ge 2$."""
    check_int("n", n, 2, "the number of noise levels")
    check_positive("sigma_max", sigma_max, fix="pass the largest noise level, e.g. 5.0")
    check_positive("sigma_min", sigma_min, fix="pass the smallest noise level, e.g. 0.01")
    if is_concrete(sigma_max, sigma_min) and as_numpy(sigma_max) < as_numpy(sigma_min):
        raise ValueError(
            f"`sigma_max` must be >= `sigma_min`, got sigma_max={sigma_max}, "
            f"sigma_min={sigma_min}; swap them (the levels decrease)."
        )
    lo = jnp.log(jnp.asarray(sigma_max, dtype=float))
    hi = jnp.log(jnp.asarray(sigma_min, dtype=float))
    return jnp.exp(jnp.linspace(lo, hi, int(n)))


class _AnnealedSchedule(AbstractSchedule):
    r"""Piecewise constant in the step counter $s$: level $i = \lfloor s/T \rfloor$ (0-based),
    value $\sigma_i$ (`what="sigma"`) or $\alpha_i / 2 = \epsilon\sigma_i^2/(2\sigma_L^2)$
    (`what="half_step"`)."""

    sigmas: Float[Array, " L"]
    eps: Float[Array, ""]
    steps_per_level: int = eqx.field(static=True)
    what: str = eqx.field(static=True)

    def __call__(self, s):
        n_levels = self.sigmas.shape[0]
        # s is an integer step count on the unit grid; +0.5 guards against round-off.
        level = jnp.floor((jnp.asarray(s) + 0.5) / self.steps_per_level).astype(jnp.int32)
        sigma = self.sigmas[jnp.clip(level, 0, n_levels - 1)]
        if self.what == "sigma":
            return sigma
        return 0.5 * self.eps * sigma**2 / self.sigmas[-1] ** 2


def annealed_langevin(
    score: Callable[..., Any],
    sigmas: Float[ArrayLike, " L"],
    key: PRNGKeyArray,
    n: IntLike | None = None,
    event_shape: Sequence[int] | None = None,
    *,
    steps_per_level: IntLike,
    eps: Float[ArrayLike, ""],
    x_init: Float[Array, " n *event"] | None = None,
) -> Samples:
    r"""Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1): for the noise levels
    $\sigma_1 > \dots > \sigma_L$, set $\alpha_i = \epsilon\,\sigma_i^2/\sigma_L^2$ and run
    $T$ = `steps_per_level` steps

    $$\tilde x_t = \tilde x_{t-1} + \frac{\alpha_i}{2}\nabla_x\log q_{\sigma_i}(\tilde x_{t-1})
    + \sqrt{\alpha_i}\,z_t, \qquad z_t \sim \mathcal{N}(0, I),$$

    each level starting where the previous one stopped, $q_\sigma = q * \mathcal{N}(0,
    \sigma^2 I)$. The final cloud is returned as is (no final denoising step, as in
    Algorithm 1). The grid of this sampler is the sequence of noise levels `sigmas` (e.g.
    [`karras_sigmas`][gpm_sde.schedules.karras_sigmas] or
    [`geometric_sigmas`][gpm_sde.samplers.geometric_sigmas]) with `steps_per_level` steps
    each.

    **Implementation.** Level $i$ is Euler–Maruyama, with unit steps, of the time-changed
    Langevin SDE [`langevin_flow`][gpm_sde.flows.langevin_flow] with $\beta = \alpha_i/2$: the
    step $x + \beta\nabla\log q_{\sigma_i} + \sqrt{2\beta}\,z$ is exactly the update above. All
    levels together are one SDE in the step counter $s \in [0, LT]$ with $\sigma(s)$ and $\beta(s)$
    piecewise constant ($\sigma(s) = \sigma_{\lfloor s/T\rfloor + 1}$), solved by one call of
    [`simulate`][gpm_sde.simulate] with `diffrax.Euler()` and $LT$ unit steps.

    **Arguments:**

    - `score`: the σ-conditioned score `score(sigma, x) -> ∇log q_σ(x)`, pointwise on one
      point or a cloud score (called on the whole cloud).
    - `sigmas`: `(L,)` decreasing noise levels, e.g.
      [`geometric_sigmas`][gpm_sde.samplers.geometric_sigmas]`(sigma_max, 0.01, 10)`. The
      samples approximate $q_{\sigma_L}$: choose $\sigma_L$ small against the scale you
      resolve.
    - `key`: split by `jax.random.split` into the initial draw (first) and the noise $z_t$
      (second).
    - `n`, `event_shape`: the number of points and the shape of one point (read from `x_init`
      when it is given).
    - `steps_per_level`: $T \ge 1$.
    - `eps`: $\epsilon > 0$, the step size at the last level.
    - `x_init`: the initial cloud `(n, *event)`; by default a draw of
      $\mathcal{N}(0, \sigma_1^2 I)$, the law of data near the origin smoothed at the first
      level (the VE prior of Song et al. 2021). Song & Ermon start from uniform noise: pass
      e.g. `x_init=jax.random.uniform(k, (n, 2), minval=-8.0, maxval=8.0)`; any broad law
      covering the data does.

    **Returns:** [`Samples`][gpm_sde.samplers.Samples] with `.x` the final cloud `(n, *event)`.
    """
    check_callable("score", score, "(sigma, x) -> ∇log q_sigma(x)")
    check_float_array("sigmas", sigmas, 1, "(L,), the noise levels")
    check_int("steps_per_level", steps_per_level, 1, "Langevin steps per noise level")
    check_positive("eps", eps, fix="pass the last level's step size, e.g. eps=2e-5")
    check_positive("sigmas", sigmas, fix="noise levels are standard deviations")
    sig = jnp.asarray(sigmas)
    if is_concrete(sig) and np.any(np.diff(as_numpy(sig)) > 0):
        raise ValueError(
            f"`sigmas` must be non-increasing (σ_1 > ... > σ_L, annealed from coarse to fine), "
            f"got {as_numpy(sig)!r}; pass e.g. `geometric_sigmas(sigma_max, sigma_min, L)`."
        )
    if sig.shape[0] == 0:
        raise ValueError("`sigmas` must hold at least one noise level.")
    prior = IsotropicNormal(sig[0])
    x0, k_noise = start_cloud(prior, key, n, event_shape, x_init, needs_noise=True)
    dtype = x0.dtype
    sig = sig.astype(dtype)
    eps_arr = jnp.asarray(eps, dtype=dtype)
    sigma_s = _AnnealedSchedule(sig, eps_arr, int(steps_per_level), "sigma")
    half_step = _AnnealedSchedule(sig, eps_arr, int(steps_per_level), "half_step")
    sde = langevin_flow(
        AnnealedScore(score, sigma_s), half_step, label="`score` of `annealed_langevin`"
    )
    total = int(sig.shape[0]) * int(steps_per_level)
    sol = simulate(sde, x0, k_noise, t1=float(total), steps=total, solver=diffrax.Euler())
    assert sol.ys is not None
    return Samples(sol.ys[-1])
