r"""The exact output law of a sampler with an affine score: push a Gaussian through the
sampler's own steps."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
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


@eqx.filter_jit
def _propagate(plan: StepPlan, m: Array, c: Array) -> tuple[Array, Array]:
    d, k = m.shape[0], plan.n_state
    dtype = m.dtype
    params = jax.tree_util.tree_map(lambda a: a.astype(dtype), plan.params)
    n = plan.n_steps

    def unflat(v):
        return tuple(v[i * d : (i + 1) * d][None] for i in range(k))

    def flat(state):
        return jnp.concatenate([s[0] for s in state])

    def moments(mu, sigma, p, first_order):
        def f(v, z):
            return flat(plan.step(unflat(v), z[None] if plan.noisy else None, p,
                                  first_order=first_order))  # fmt: skip

        zero = jnp.zeros((d,), dtype)
        j_s, j_z = jax.jacfwd(f, argnums=(0, 1))(mu, zero)
        mu_next = f(mu, zero)
        sigma_next = j_s @ sigma @ j_s.T
        if plan.noisy:
            sigma_next = sigma_next + j_z @ j_z.T
        return mu_next, sigma_next

    init = jax.jacfwd(lambda x: flat(plan.initial_state(x[None])))(m)
    mu = flat(plan.initial_state(m[None]))
    sigma = init @ c @ init.T

    def body(carry, p):
        mu_k, sigma_k = carry
        return moments(mu_k, sigma_k, p, False), None

    head = jax.tree_util.tree_map(lambda a: a[: n - 1], params)
    last = jax.tree_util.tree_map(lambda a: a[n - 1], params)
    if n > 1:
        (mu, sigma), _ = jax.lax.scan(body, (mu, sigma), head)
    mu, sigma = moments(mu, sigma, last, plan.last_first_order)
    out = jax.jacfwd(lambda v: plan.output(unflat(v))[0])(mu)
    return plan.output(unflat(mu))[0], out @ sigma @ out.T
