r"""Truncated diffusion (TDPM; Zheng, He, Chen & Zhou 2022): a generator draws the marginal at a
truncation time, and a reverse-time sampler does the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import IntLike, as_numpy, check_int, check_positive, is_concrete
from ..processes import AbstractLinearProcess
from ..schedules import karras_sigmas
from ._common import check_end_time, check_process
from ._euler_ancestral import euler_ancestral
from ._result import Samples

_SPACINGS = ("karras", "uniform")


@eqx.filter_jit
def _ratio(process: AbstractLinearProcess, t: Array) -> Array:
    return process.sigma(t) / process.alpha(t)


@eqx.filter_jit
def _times_of_ratio(process: AbstractLinearProcess, targets: Array, hi: Array) -> Array:
    # t in [0, hi] with sigma(t)/alpha(t) = target, by bisection (the ratio increases in t).
    def body(_, bounds):
        lo, up = bounds
        mid = 0.5 * (lo + up)
        above = _ratio(process, mid) > targets
        return jnp.where(above, lo, mid), jnp.where(above, mid, up)

    lo, up = jnp.zeros_like(targets), jnp.full_like(targets, hi)
    lo, up = jax.lax.fori_loop(0, 100, body, (lo, up))
    return 0.5 * (lo + up)


def tdpm_grid(
    process: AbstractLinearProcess,
    t_trunc: float,
    steps: IntLike,
    spacing: str = "karras",
    *,
    eps: float = 1e-3,
    rho: float = 7.0,
    to_zero: bool = True,
) -> Float[Array, " k"]:
    r"""The increasing generation-time grid $s_k = T - t_k$ of a truncated reverse run, from
    $t_0 = t_{\rm trunc}$ down, in `steps` intervals:

    - `"karras"`: `steps` noise-to-signal levels $\tilde\sigma = \sigma/\alpha$ on Karras et
      al.'s $\rho$-grid (2022, eq. 5) from $\tilde\sigma(t_{\rm trunc})$ to
      $\tilde\sigma(\epsilon)$, then $t = 0$ (`to_zero=True`, as the samplers' own grids), or
      `steps + 1` levels down to $\tilde\sigma(\epsilon)$ (`to_zero=False`): for
      [`edm_heun`][gpm_sde.samplers.edm_heun],
      [`dpm_solver_pp_2m`][gpm_sde.samplers.dpm_solver_pp_2m],
      [`euler_ancestral`][gpm_sde.samplers.euler_ancestral] and the others in $\tilde\sigma$;
    - `"uniform"`: $t_k$ equally spaced from $t_{\rm trunc}$ to $\epsilon$, for
      [`reverse_sde_sample`][gpm_sde.samplers.reverse_sde_sample] and
      [`probability_flow_sample`][gpm_sde.samplers.probability_flow_sample].

    **Returns:** the `(steps + 1,)` generation times, starting at $T - t_{\rm trunc}$.
    """
    check_process(process)
    T = float(process.T)
    tt = _check_trunc(process, t_trunc, eps)
    k = check_int("steps", steps, 1, "the number of steps after the generator")
    if spacing not in _SPACINGS:
        raise ValueError(f"`spacing` must be one of {_SPACINGS}, got {spacing!r}.")
    if spacing == "uniform":
        t = np.linspace(tt, float(eps), k + 1)
    else:
        check_positive("rho", rho, fix="pass e.g. rho=7.0 (Karras et al. 2022)")
        levels = k if to_zero else k + 1
        r = np.asarray(_ratio(process, jnp.asarray([float(eps), tt], dtype=float)))
        if levels == 1:
            t = np.array([tt])
        else:
            sig = karras_sigmas(levels, float(r[0]), float(r[1]), rho)
            t = np.asarray(_times_of_ratio(process, sig, jnp.asarray(tt, dtype=float)))
            t = t.astype(np.float64)
            t[0], t[-1] = tt, float(eps)
        if to_zero:
            t = np.concatenate([t, [0.0]])
    return jnp.asarray(T - t, dtype=float)


def _check_trunc(process: AbstractLinearProcess, t_trunc: Any, eps: Any) -> float:
    check_end_time(process, eps)
    if not is_concrete(t_trunc) or np.ndim(as_numpy(t_trunc)) != 0:
        raise TypeError(
            f"`t_trunc` must be a concrete float (it fixes the grid), got {t_trunc!r}; pass "
            f"e.g. t_trunc=0.3."
        )
    tt = float(as_numpy(t_trunc))
    if not float(eps) < tt <= float(process.T):
        raise ValueError(
            f"`t_trunc` must lie in (eps, T] = ({float(eps)}, {float(process.T)}]: the "
            f"generator draws the marginal at diffusion time t_trunc and the sampler runs from "
            f"there to eps; got {tt}."
        )
    return tt


def _draw(generator: Any, key: PRNGKeyArray, n: int, latent_dim: Any) -> Array:
    sample = getattr(generator, "sample", None)
    if callable(sample):
        return jnp.asarray(sample(key, n))
    if not callable(generator):
        raise TypeError(
            f"`generator` must be a law with `.sample(key, n)` or a generator `G(z)` on one "
            f"latent, got {type(generator).__name__}."
        )
    if latent_dim is None:
        latent_dim = getattr(generator, "latent_dim", None)
        if latent_dim is None:
            raise ValueError(
                "`latent_dim` is needed: the generator has no `latent_dim` attribute; pass "
                "`latent_dim=k` for a generator `G(z)` with `z: (k,)`."
            )
    k = check_int("latent_dim", latent_dim, 1, "the size of one latent z", example=2)
    z = jr.normal(key, (n, k), dtype=jnp.zeros(()).dtype)
    return jnp.asarray(jax.vmap(generator)(z))


def tdpm_sample(
    generator: Any,
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    key: PRNGKeyArray,
    n: IntLike,
    *,
    t_trunc: float,
    steps: IntLike | None = None,
    ts: Float[ArrayLike, " k"] | None = None,
    sampler: Callable[..., Any] = euler_ancestral,
    spacing: str = "karras",
    eps: float = 1e-3,
    rho: float = 7.0,
    to_zero: bool = True,
    latent_dim: IntLike | None = None,
    **options: Any,
) -> Samples:
    r"""Truncated diffusion sampling (TDPM; Zheng, He, Chen & Zhou 2022): the diffusion is cut
    at $t_{\rm trunc} < T$, a generator models the truncated marginal $p_{t_{\rm trunc}}$
    (the law of $x_{t_{\rm trunc}} = \alpha x_0 + \sigma\varepsilon$), and a reverse-time
    sampler carries its draws to the data:

    $$x_{t_{\rm trunc}} = G(z),\quad z \sim \mathcal{N}(0, I),\qquad
    x_0 \approx \operatorname{sampler}\big(x_{t_{\rm trunc}};\ t_{\rm trunc} \to 0\big).$$

    When $G$ draws $p_{t_{\rm trunc}}$ exactly and the score is exact, the output law is
    the sampler's from that time on: nothing of the prior at $T$ enters. The cost is one
    generator evaluation plus the sampler's NFE on the truncated grid (for a one-evaluation
    sampler with `steps` $= N$: $N + 1$). This is a reconstruction from the paper's idea,
    not from its code: the reverse part is any sampler of the library (by default
    [`euler_ancestral`][gpm_sde.samplers.euler_ancestral] with $\eta = 1$, DDPM's ancestral
    step for any linear process), and the generator is any model of $p_{t_{\rm trunc}}$
    (e.g. a GAN trained by [`train_gan`][gpm_sde.train.train_gan] on noised data; the
    paper's own training of the generator is not reproduced).

    **Arguments:**

    - `generator`: a law with `.sample(key, n)` (e.g. the exact
      `process.marginal(law, t_trunc)` of mixture data), or a generator `G(z)` on one latent
      ([`MLPGenerator`][gpm_sde.nn.MLPGenerator]).
    - `process`, `score`: the forward process and a score `(t, x) -> ∇log p_t(x)` (pointwise
      or a cloud score).
    - `key`: split by `jax.random.split` into the generator's draw (first) and the
      sampler's key (second).
    - `n`: the number of points.
    - `t_trunc`: the truncation time, in $(\epsilon, T]$.
    - `steps`: the sampler's steps from $t_{\rm trunc}$, on the grid of
      [`tdpm_grid`][gpm_sde.samplers.tdpm_grid]`(process, t_trunc, steps, spacing, eps=eps,
      rho=rho, to_zero=to_zero)`; or
    - `ts`: the generation-time grid itself, increasing from $T - t_{\rm trunc}$.
    - `sampler`: a continuous sampler called as `sampler(process, score, key, ts=...,
      x_init=..., **options)` ([`euler_ancestral`][gpm_sde.samplers.euler_ancestral] by
      default; [`edm_heun`][gpm_sde.samplers.edm_heun],
      [`dpm_solver_pp_2m`][gpm_sde.samplers.dpm_solver_pp_2m],
      [`reverse_sde_sample`][gpm_sde.samplers.reverse_sde_sample] with
      `spacing="uniform"`, ...).
    - `spacing`, `eps`, `rho`, `to_zero`: the grid built from `steps`.
    - `latent_dim`: the latent size of `G` (default `generator.latent_dim`).
    - `options`: further keyword options of the sampler (e.g. `eta=0.0`).

    **Returns:** [`Samples`][gpm_sde.samplers.Samples] with `.x` the cloud at the grid's end.
    """
    check_process(process)
    if not callable(sampler):
        raise TypeError(f"`sampler` must be a sampler function, got {type(sampler).__name__}.")
    count = check_int("n", n, 1, "the number of points")
    if (steps is None) == (ts is None):
        raise TypeError(
            f"pass exactly one of `steps` (the grid of `tdpm_grid`) and `ts` (a generation-time "
            f"grid from T - t_trunc), got steps={steps!r} and ts={ts!r}."
        )
    if ts is None:
        assert steps is not None
        grid = tdpm_grid(process, t_trunc, steps, spacing, eps=eps, rho=rho, to_zero=to_zero)
    else:
        tt = _check_trunc(process, t_trunc, eps)
        grid = jnp.asarray(ts, dtype=float)
        start = float(process.T) - tt
        if grid.ndim != 1 or not abs(float(grid[0]) - start) <= 1e-6 * max(1.0, start):
            raise ValueError(
                f"`ts` must be a 1-D generation-time grid starting at T - t_trunc = {start}, "
                f"where the generator's cloud lives; got {ts!r}."
            )
    k_gen, k_run = jr.split(key)
    x = _draw(generator, k_gen, count, latent_dim)
    return sampler(process, score, k_run, ts=grid, x_init=x, **options)
