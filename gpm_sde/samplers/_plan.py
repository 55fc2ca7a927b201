r"""`StepPlan`: a sampler written as a sequence of steps, each affine in its noise, run by one
`lax.scan`; and the helpers of the samplers that work in Karras et al.'s noise-to-signal
parametrisation $\tilde x = x/\alpha$, $\tilde\sigma = \sigma/\alpha$."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from .._checks import IntLike, as_numpy, check_callable, check_int, check_positive, is_concrete
from ..processes import AbstractLinearProcess
from ..schedules import scaled_coefficients, time_grid
from ..scores import check_score, on_cloud
from ._common import check_process, generation_grid, start_cloud
from ._result import Samples


class StepPlan(eqx.Module):
    r"""A sampler unrolled into its steps: from a starting cloud $x$ at diffusion time $t_0$,

    $$S_0 = (x/\alpha(t_0), 0, \dots), \qquad S_{k+1} = F_k(S_k, z_k), \qquad
    x_{\text{out}} = \alpha(t_N)\,S_N[0],$$

    where the state $S$ is a tuple of clouds (the scaled cloud $\tilde x = x/\alpha$ first,
    then e.g. the previous denoised cloud of a multistep method) and $z_k \sim
    \mathcal{N}(0, I)$ has the cloud's shape (only for stochastic samplers). Every sampler of
    [`sampler_plan`][gpm_sde.samplers.sampler_plan] is *run* through its plan, so that a tool
    which propagates a law through $F_k$ (e.g.
    [`sampler_gaussian_law`][gpm_sde.verify.sampler_gaussian_law]) sees exactly the code that
    samples.

    **Fields:**

    - `step`: the step $F$, an `eqx.Module` called as `step(state, z, p, first_order=...)`
      with `p` one step's parameters; `z` is `None` for a deterministic plan.
    - `params`: the per-step parameters, a pytree of arrays with leading axis $N$ (the steps).
    - `scale_in`, `scale_out`: $1/\alpha(t_0)$ and $\alpha(t_N)$.
    - `n_state`: the number of clouds in the state.
    - `noisy`: whether the steps draw noise.
    - `last_first_order`: whether the last step is first order (it goes to
      $\tilde\sigma = 0$, where a second evaluation is not defined).
    - `nfe`: the number of score evaluations of one run.
    """

    step: Callable[..., Any]
    params: PyTree[Array]
    scale_in: Float[Array, ""]
    scale_out: Float[Array, ""]
    n_state: int = eqx.field(static=True)
    noisy: bool = eqx.field(static=True)
    last_first_order: bool = eqx.field(static=True)
    nfe: int = eqx.field(static=True)

    @property
    def n_steps(self) -> int:
        """The number of steps $N$."""
        return int(jax.tree_util.tree_leaves(self.params)[0].shape[0])

    def run(
        self, x: Float[Array, " n *event"], key: PRNGKeyArray | None = None
    ) -> Float[Array, " n *event"]:
        """Run the plan from the cloud `x` at $t_0$; step $k$ draws its noise from
        `jax.random.fold_in(key, k)` (`key` may be `None` for a deterministic plan)."""
        if self.noisy and key is None:
            raise TypeError("this sampler draws noise: pass a `key`, e.g. `jax.random.key(0)`.")
        return _run(self, jnp.asarray(x), key if self.noisy else None)

    def initial_state(self, x: Array) -> tuple[Array, ...]:
        """$S_0$: the scaled cloud $x/\\alpha(t_0)$, then zeros."""
        x = x * self.scale_in.astype(x.dtype)
        return (x, *(jnp.zeros_like(x) for _ in range(self.n_state - 1)))

    def output(self, state: tuple[Array, ...]) -> Array:
        """The output cloud $\\alpha(t_N)\\,S_N[0]$."""
        return state[0] * self.scale_out.astype(state[0].dtype)


@eqx.filter_jit
def _run(plan: StepPlan, x: Array, key: PRNGKeyArray | None) -> Array:
    dtype = x.dtype
    params = jax.tree_util.tree_map(lambda a: a.astype(dtype), plan.params)
    n = plan.n_steps

    def noise(k):
        return None if key is None else jr.normal(jr.fold_in(key, k), x.shape, dtype=dtype)

    def body(state, inputs):
        k, p = inputs
        return plan.step(state, noise(k), p, first_order=False), None

    state = plan.initial_state(x)
    head = jax.tree_util.tree_map(lambda a: a[: n - 1], params)
    last = jax.tree_util.tree_map(lambda a: a[n - 1], params)
    if n > 1:
        state, _ = jax.lax.scan(body, state, (jnp.arange(n - 1), head))
    state = plan.step(state, noise(n - 1), last, first_order=plan.last_first_order)
    return plan.output(state)


def denoise(score: Callable[..., Any], t: Array, a: Array, r: Array, xt: Array) -> Array:
    r"""The denoiser in scaled variables, by Tweedie's formula: with $x = \alpha\tilde x$,
    $D(\tilde x; \tilde\sigma) = \mathbb{E}[x_0 \mid x_t = x] = \tilde x +
    \tilde\sigma^2\,\alpha\,\nabla\log p_t(\alpha\tilde x)$ (`a` $=\alpha(t)$, `r`
    $=\tilde\sigma(t)$)."""
    return xt + (r**2 * a) * on_cloud(score, t, a * xt).astype(xt.dtype)


def karras_time_grid(
    process: AbstractLinearProcess,
    steps: IntLike | None,
    ts: Float[ArrayLike, " k"] | None,
    eps: float | int | None,
    rho: Float[ArrayLike, ""],
    to_zero: bool,
    has_init: bool,
) -> np.ndarray:
    r"""The decreasing diffusion times $t_0 > \dots > t_N$ of a sampler in the
    $\tilde\sigma$-parametrisation, as float64.

    With `steps` $= N$: Karras et al.'s $\rho$-grid of
    [`time_grid`][gpm_sde.schedules.time_grid]`(process, N - 1, "karras", eps=eps, rho=rho)`
    (the $N$ levels from $\tilde\sigma(T)$ down to $\tilde\sigma(\epsilon)$) followed by
    $t_N = 0$ when `to_zero` (k-diffusion's `get_sigmas_karras`, which appends $\sigma = 0$),
    otherwise `time_grid(process, N, "karras", ...)`. With `ts`, the increasing generation
    times $s = T - t$, checked as by the other samplers."""
    T = float(process.T)
    if not isinstance(to_zero, bool):
        raise TypeError(f"`to_zero` must be a bool, got {to_zero!r}.")
    if steps is not None and ts is None:
        n = check_int("steps", steps, 1, "the number of steps")
        e = 1e-3 if eps is None else eps
        check_positive("rho", rho, fix="pass e.g. rho=7.0 (Karras et al. 2022)")
        if to_zero:
            if n == 1:
                s = np.array([0.0, T])
            else:
                head = np.asarray(time_grid(process, n - 1, "karras", eps=e, rho=rho), np.float64)
                s = np.concatenate([head, [T]])
        else:
            s = np.asarray(time_grid(process, n, "karras", eps=e, rho=rho), np.float64)
        return T - s
    s_grid, _ = generation_grid(process, steps, ts, eps, has_init)
    return T - np.asarray(as_numpy(s_grid), dtype=np.float64)


def check_static_float(name: str, value: Any, fix: str) -> float:
    """A concrete finite float option (it shapes the per-step coefficients on the host)."""
    if not is_concrete(value) or np.ndim(as_numpy(value)) != 0:
        raise TypeError(f"`{name}` must be a concrete float, got {value!r}; {fix}.")
    v = float(as_numpy(value))
    if np.isnan(v):
        raise ValueError(f"`{name}` must not be NaN; {fix}.")
    return v


def as_params(**arrays: np.ndarray) -> dict[str, Array]:
    """Per-step parameters as arrays of the default float dtype."""
    return {k: jnp.asarray(np.asarray(v, dtype=np.float64), dtype=float) for k, v in arrays.items()}


def scale_fields(a: np.ndarray) -> tuple[Array, Array]:
    """`scale_in` = $1/\\alpha(t_0)$ and `scale_out` = $\\alpha(t_N)$."""
    return jnp.asarray(1.0 / a[0], dtype=float), jnp.asarray(a[-1], dtype=float)


def sample_with_plan(
    plan: StepPlan,
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    key: Any,
    n: Any,
    event_shape: Any,
    x_init: Any,
) -> Samples:
    """Draw (or take) the starting cloud, check the score on it, and run the plan."""
    x0, k_noise = start_cloud(process.prior, key, n, event_shape, x_init, needs_noise=plan.noisy)
    check_score(score, jnp.asarray(process.T, x0.dtype), x0, name="`score`")
    return Samples(plan.run(x0, k_noise))


def ancestral_levels(
    r: np.ndarray, r_next: np.ndarray, eta: float
) -> tuple[np.ndarray, np.ndarray]:
    r"""k-diffusion's `get_ancestral_step`: $\sigma_{\text{up}} = \min\big(\sigma_{i+1},
    \eta\sqrt{\sigma_{i+1}^2(\sigma_i^2 - \sigma_{i+1}^2)/\sigma_i^2}\big)$ and
    $\sigma_{\text{down}} = \sqrt{\sigma_{i+1}^2 - \sigma_{\text{up}}^2}$."""
    up = np.minimum(r_next, eta * np.sqrt(np.maximum(r_next**2 * (r**2 - r_next**2) / r**2, 0.0)))
    return np.sqrt(np.maximum(r_next**2 - up**2, 0.0)), up


class AncestralGrid(eqx.Module):
    """The checked grid of an ancestral plan: times `t`, $\alpha$ `a`, $\tilde\\sigma$ `r`,
    the levels `r_down`, `r_up` of each step, and the option $S_{\text{noise}}$."""

    t: np.ndarray
    a: np.ndarray
    r: np.ndarray
    r_down: np.ndarray
    r_up: np.ndarray
    eta: float
    s_noise: float


def ancestral_grid(
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    steps: IntLike | None,
    ts: Float[ArrayLike, " k"] | None,
    eps: float | int | None,
    rho: float,
    to_zero: bool,
    eta: float,
    s_noise: float,
    has_init: bool,
    eta_fix: str,
) -> AncestralGrid:
    """The prologue shared by the ancestral plans (Euler ancestral, DPM-Solver++(2S)): the
    checked arguments, the Karras-or-given grid with its coefficients, and each step's
    `ancestral_levels`."""
    check_process(process)
    check_callable("score", score, "(t, x) -> ∇log p_t(x)")
    eta_v = check_static_float("eta", eta, eta_fix)
    snoise = check_static_float("s_noise", s_noise, "pass S_noise > 0, e.g. 1.0")
    if eta_v < 0 or snoise <= 0:
        raise ValueError(f"`eta` must be >= 0 and `s_noise` > 0, got {eta_v} and {snoise}.")
    t = karras_time_grid(process, steps, ts, eps, rho, to_zero, has_init)
    a, r = scaled_coefficients(process, t)
    if np.any(r[:-1] <= 0.0):
        raise ValueError(
            "the grid reaches sigma(t)/alpha(t) = 0 before its last time; end it there."
        )
    r_down, r_up = ancestral_levels(r[:-1], r[1:], eta_v)
    return AncestralGrid(t, a, r, r_down, r_up, eta_v, snoise)
