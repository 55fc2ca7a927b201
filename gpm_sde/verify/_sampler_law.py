r"""The exact output law of a sampler with an affine score: push a Gaussian through the
sampler's own steps."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._checks import check_float_array
from ..samplers import StepPlan


def sampler_gaussian_law(
    plan: StepPlan,
    mean: Float[ArrayLike, " d"],
    cov: Float[ArrayLike, "d d"],
) -> tuple[Float[Array, " d"], Float[Array, "d d"]]:
    r"""The exact law of a sampler's output when its starting point is $x \sim
    \mathcal{N}(m, C)$ and its score is **affine** in $x$ (e.g. the exact score of Gaussian
    data, [`MixtureMarginalScore`][gpm_sde.scores.MixtureMarginalScore] of one component).

    Every step of a [`StepPlan`][gpm_sde.samplers.StepPlan] is then affine in its state $S$
    and its noise $z \sim \mathcal{N}(0, I)$, $F_k(S, z) = F_k(0, 0) + J_S S + J_z z$, so the
    state stays Gaussian and its moments follow exactly:

    $$\mu_{k+1} = F_k(\mu_k, 0), \qquad \Sigma_{k+1} = J_S\,\Sigma_k\,J_S^\top + J_z J_z^\top,$$

    with the Jacobians taken by `jax.jacfwd` through the **plan's own step code**: this
    computes the law of the code that samples, not of a re-derivation of it (no sampling
    noise, no Monte-Carlo error). Run it in float64 (`jax.experimental.enable_x64()`) when
    comparing small errors. The state is a tuple of clouds (e.g. DPM-Solver++(2M) carries the
    previous denoised point), so $\mu$ and $\Sigma$ are those of the stacked state of one
    point; the output is the law of $\alpha(t_N) S_N[0]$.

    If the score is not affine the result is the law of the sampler linearised at the mean
    path, not its law.

    **Arguments:**

    - `plan`: the sampler's plan, from [`sampler_plan`][gpm_sde.samplers.sampler_plan].
    - `mean`, `cov`: the starting law, `(d,)` and `(d, d)` (one point of shape `(d,)`).

    **Returns:** `(mean, cov)` of the output, `(d,)` and `(d, d)`.
    """
    if not isinstance(plan, StepPlan):
        raise TypeError(
            f"`plan` must be a StepPlan, from `gpm_sde.samplers.sampler_plan(sampler, process, "
            f"score, steps=...)`; got {type(plan).__name__}."
        )
    check_float_array("mean", mean, 1, "(d,)")
    check_float_array("cov", cov, 2, "(d, d)")
    m = jnp.asarray(mean)
    c = jnp.asarray(cov, dtype=m.dtype)
    d = m.shape[0]
    if c.shape != (d, d):
        raise ValueError(f"`cov` must have shape {(d, d)} to match `mean`, got {c.shape}.")
    return _propagate(plan, m, c)


def _propagate(plan: StepPlan, m: Array, c: Array) -> tuple[Array, Array]:
    """Step by step, one compiled step per plan structure (a scan would recompile for every
    number of steps)."""
    dtype = m.dtype
    params = jax.tree_util.tree_map(lambda a: np.asarray(a, dtype=dtype), plan.params)
    n = plan.n_steps
    mu, sigma = _initial(plan, m, c)
    for k in range(n):
        p = jax.tree_util.tree_map(lambda a, k=k: a[k], params)
        first_order = plan.last_first_order and k == n - 1
        mu, sigma = _moments(plan.step, mu, sigma, p, first_order=first_order,
                             d=m.shape[0], k=plan.n_state, noisy=plan.noisy)  # fmt: skip
    return _final(plan, mu, sigma, m.shape[0])


def _unflat(v: Array, d: int, k: int) -> tuple[Array, ...]:
    return tuple(v[i * d : (i + 1) * d][None] for i in range(k))


def _flat(state: tuple[Array, ...]) -> Array:
    return jnp.concatenate([s[0] for s in state])


@eqx.filter_jit
def _initial(plan: StepPlan, m: Array, c: Array) -> tuple[Array, Array]:
    j = jax.jacfwd(lambda x: _flat(plan.initial_state(x[None])))(m)
    return _flat(plan.initial_state(m[None])), j @ c @ j.T


@eqx.filter_jit
def _final(plan: StepPlan, mu: Array, sigma: Array, d: int) -> tuple[Array, Array]:
    def out(v):
        return plan.output(_unflat(v, d, plan.n_state))[0]

    j = jax.jacfwd(out)(mu)
    return out(mu), j @ sigma @ j.T


@eqx.filter_jit
def _moments(step, mu, sigma, p, *, first_order: bool, d: int, k: int, noisy: bool):
    def f(v, z):
        return _flat(step(_unflat(v, d, k), z[None] if noisy else None, p,
                          first_order=first_order))  # fmt: skip

    zero = jnp.zeros((d,), mu.dtype)
    j_s, j_z = jax.jacfwd(f, argnums=(0, 1))(mu, zero)
    sigma_next = j_s @ sigma @ j_s.T
    if noisy:
        sigma_next = sigma_next + j_z @ j_z.T
    return f(mu, zero), sigma_next
