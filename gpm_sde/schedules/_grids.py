r"""Time grids for the samplers: the noise levels of Karras et al. (2022), the integer timesteps
of DDIM and diffusers, and continuous grids in generation time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from .._checks import IntLike, as_numpy, check_finite, check_int, check_positive, is_concrete

if TYPE_CHECKING:
    from ..processes import AbstractLinearProcess

DISCRETE_SPACINGS = ("linspace", "leading", "trailing", "uniform", "quad")
CONTINUOUS_SPACINGS = ("uniform", "quadratic", "karras")


def _concrete_float(name: str, value) -> float:
    check_finite(name, value)
    if not is_concrete(value) or np.ndim(as_numpy(value)) != 0:
        raise TypeError(
            f"`{name}` must be a concrete scalar (it fixes a static grid), got {value!r}; pass "
            f"a Python float."
        )
    return float(as_numpy(value))


def _karras(n: int, sigma_min: float, sigma_max: float, rho: float) -> np.ndarray:
    """Eq. 5 of Karras et al. (2022) in float64, without the final zero."""
    ramp = np.linspace(0.0, 1.0, n)
    hi, lo = sigma_max ** (1.0 / rho), sigma_min ** (1.0 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def karras_sigmas(
    n: IntLike,
    sigma_min: Float[ArrayLike, ""],
    sigma_max: Float[ArrayLike, ""],
    rho: Float[ArrayLike, ""] = 7.0,
    *,
    append_zero: bool = False,
) -> Float[Array, " m"]:
    r"""The $n$ decreasing noise levels of Karras et al. (2022, eq. 5):

    $$\sigma_i = \Big(\sigma_{\max}^{1/\rho} + \frac{i}{n - 1}\big(\sigma_{\min}^{1/\rho}
    - \sigma_{\max}^{1/\rho}\big)\Big)^{\rho}, \qquad i = 0, \dots, n - 1,$$

    so $\sigma_0 = \sigma_{\max}$ and $\sigma_{n-1} = \sigma_{\min}$ ($n = 1$ gives
    $\sigma_{\max}$ alone). $\rho = 7$ is the paper's choice; $\rho = 1$ is uniform in $\sigma$
    and $\rho \to \infty$ geometric. The paper's eq. 5 ends the grid with $\sigma_N = 0$; so
    does k-diffusion's `get_sigmas_karras(n, sigma_min, sigma_max, rho)`, which returns these
    $n$ values followed by a $0$: pass `append_zero=True` for exactly that array of $n + 1$
    values. Computed in float64 and returned in the default float dtype.

    **Arguments:**

    - `n`: the number of noise levels, $\ge 1$.
    - `sigma_min`, `sigma_max`: $0 \le \sigma_{\min} < \sigma_{\max}$ (EDM: 0.002 and 80).
    - `rho`: $\rho > 0$.
    - `append_zero`: append $\sigma = 0$ (k-diffusion's convention).

    **Returns:** the `(n,)` (or `(n + 1,)`) decreasing levels.
    """
    n = check_int("n", n, 1, "the number of noise levels")
    lo = _concrete_float("sigma_min", sigma_min)
    hi = _concrete_float("sigma_max", sigma_max)
    r = _concrete_float("rho", rho)
    check_positive("sigma_min", lo, strict=False, fix="noise levels are standard deviations")
    check_positive("rho", r, fix="pass e.g. rho=7.0 (Karras et al. 2022)")
    if not hi > lo:
        raise ValueError(
            f"`sigma_max` must be greater than `sigma_min`, got sigma_min={lo}, "
            f"sigma_max={hi}; the levels decrease from sigma_max to sigma_min."
        )
    sigmas = _karras(n, lo, hi, r)
    if append_zero:
        sigmas = np.concatenate([sigmas, [0.0]])
    return jnp.asarray(sigmas, dtype=float)


def ddpm_timesteps(
    n_train: int, steps: int, spacing: str, *, steps_offset: int = 0
) -> Int[np.ndarray, " k"]:
    r"""A sub-sequence of the integer timesteps $t \in \{0, \dots, N - 1\}$ of a DDPM chain of
    $N$ = `n_train` steps, **0-based as in diffusers** (timestep $t$ is step $n = t + 1$ of Ho
    et al. 2020: $\bar\alpha$ at $t$ is `alphas_cumprod[t]`), in the order they are run
    (decreasing). These are the skip schedules of DDIM (Song, Meng & Ermon 2021) as their code
    and diffusers write them, with $S$ = `steps` and $\lfloor\cdot\rceil$
    NumPy's rounding (half to even):

    | `spacing` | timesteps, before reversal to decreasing order | from |
    |---|---|---|
    | `"linspace"` | $\lfloor i\,(N-1)/(S-1)\rceil$, $i = 0..S-1$ | diffusers |
    | `"leading"` | $i\,\lfloor N/S\rfloor$ + `steps_offset`, $i = 0..S-1$ | diffusers |
    | `"trailing"` | $\lfloor N - i\,N/S\rceil - 1$, $i = 0..S-1$ | diffusers |
    | `"uniform"` | `range(0, N, N // S)` | DDIM's code |
    | `"quad"` | $\lfloor (i\sqrt{0.8N}/(S-1))^2\rfloor$, $i = 0..S-1$ (distinct) | DDIM's code |

    The diffusers rows are `DDIMScheduler.set_timesteps` and `DDPMScheduler.set_timesteps`
    (`timestep_spacing`, default `"leading"`); the DDIM rows are `skip_type` of
    `runners/diffusion.py` in ermongroup/ddim. The arrays are theirs, element for element, with
    two clean-ups where their arithmetic misfires: for some
    $S$ (e.g. $S = 61$ of $N = 1000$) `"trailing"`'s float `arange` yields one extra entry,
    $-1$, not a timestep, which is dropped; `"quad"`'s repeated values (for $S - 1 >
    \sqrt{0.8N}$), steps from a timestep to itself that DDIM's update leaves unchanged, are
    kept once. `"uniform"` has $\lceil N / \lfloor N/S\rfloor\rceil \ge S$ entries when $S$
    does not divide $N$, as in DDIM's code.

    **Arguments:**

    - `n_train`: $N$, the chain's number of steps (`ddpm.n_steps`; diffusers'
      `num_train_timesteps`).
    - `steps`: $S \in 1..N$ (diffusers' `num_inference_steps`).
    - `spacing`: one of `"linspace"`, `"leading"`, `"trailing"`, `"uniform"`, `"quad"`.
    - `steps_offset`: added to `"leading"` timesteps, as diffusers does (e.g. 1 for Stable
      Diffusion); diffusers ignores it for the other spacings, and so it must be 0 there.

    **Returns:** a NumPy `int64` array of strictly decreasing timesteps in $0..N-1$, ready for
    the `ts` of [`ddim`][gpm_sde.samplers.ddim] and
    [`ddpm_ancestral`][gpm_sde.samplers.ddpm_ancestral].
    """
    n = check_int("n_train", n_train, 1, "the chain's number of steps")
    s = check_int("steps", steps, 1, "the number of sampling steps")
    offset = check_int("steps_offset", steps_offset, 0, "added to 'leading' timesteps")
    if s > n:
        raise ValueError(
            f"`steps` must be at most n_train = {n} (the timesteps are a sub-sequence of the "
            f"chain's), got {s}."
        )
    if spacing not in DISCRETE_SPACINGS:
        raise ValueError(f"`spacing` must be one of {DISCRETE_SPACINGS}, got {spacing!r}.")
    if offset and spacing != "leading":
        raise ValueError(
            f"`steps_offset` applies to spacing='leading' only (diffusers ignores it for "
            f"{spacing!r}); got steps_offset={offset}."
        )
    if spacing == "linspace":
        t = np.linspace(0, n - 1, s).round()[::-1].copy().astype(np.int64)
    elif spacing == "leading":
        t = (np.arange(0, s) * (n // s)).round()[::-1].copy().astype(np.int64) + offset
    elif spacing == "trailing":
        t = np.round(np.arange(n, 0, -n / s)).astype(np.int64) - 1
        t = t[t >= 0]  # the float arange's spurious extra entry, -1 (see above)
    elif spacing == "uniform":
        t = np.arange(0, n, n // s, dtype=np.int64)[::-1].copy()
    else:
        seq = [int(v) for v in list(np.linspace(0, np.sqrt(n * 0.8), s) ** 2)]
        t = np.unique(np.asarray(seq, dtype=np.int64))[::-1].copy()
    if t.max() > n - 1:
        raise ValueError(
            f"`steps_offset` = {offset} moves the last 'leading' timestep to {int(t.max())}, "
            f"outside 0..{n - 1}; pass a smaller offset or fewer steps."
        )
    return t


def time_grid(
    process: AbstractLinearProcess,
    steps: IntLike,
    spacing: str = "uniform",
    *,
    eps: Float[ArrayLike, ""] = 1e-3,
    rho: Float[ArrayLike, ""] = 7.0,
) -> Float[Array, " steps_plus_1"]:
    r"""An increasing grid $0 = s_0 < s_1 < \dots < s_N = T - \epsilon$ in **generation time**
    $s = T - t$, for the `ts` of the continuous samplers
    ([`reverse_sde_sample`][gpm_sde.samplers.reverse_sde_sample],
    [`probability_flow_sample`][gpm_sde.samplers.probability_flow_sample],
    [`predictor_corrector`][gpm_sde.samplers.predictor_corrector]) and of
    [`simulate`][gpm_sde.simulate]. In diffusion time $t_k = T - s_k$, with $u = k/N$:

    - `"uniform"`: $t_k = T - u\,(T - \epsilon)$, `jnp.linspace(0, T - eps, N + 1)`, the grid
      those functions build from `steps` (so passing it as `ts` gives bitwise the same result).
    - `"quadratic"`: $t_k = \epsilon + (T - \epsilon)(1 - u)^2$, dense near the data: the
      continuous counterpart of DDIM's quadratic skip (`"quad"` of
      [`ddpm_timesteps`][gpm_sde.schedules.ddpm_timesteps]).
    - `"karras"`: the noise-to-signal ratio $r(t) = \sigma(t)/\alpha(t)$ (Karras et al.'s
      $\sigma$; $r = \sigma$ when $\alpha = 1$, as for VE and EDM) follows the $\rho$-grid of
      eq. 5, $r(t_k) = $ [`karras_sigmas`][gpm_sde.schedules.karras_sigmas]`(N + 1,
      r(ε), r(T), rho)[k]`, inverted by bisection on $[\epsilon, T]$ (so $r$ must increase).

    The end points are exact: $s_0 = 0$ and $s_N = T - \epsilon$.

    **Arguments:**

    - `process`: the forward process (its `T`, `alpha`, `sigma`).
    - `steps`: $N \ge 1$, the number of intervals.
    - `spacing`: `"uniform"`, `"quadratic"` or `"karras"`.
    - `eps`: the diffusion time $\epsilon \in [0, T)$ where sampling stops (`"karras"` needs
      $r(\epsilon) \ge 0$ finite, i.e. $\alpha(\epsilon) > 0$).
    - `rho`: $\rho > 0$ of the `"karras"` grid (ignored otherwise).

    **Returns:** the `(N + 1,)` increasing generation times, in the default float dtype.
    """
    from ..processes import AbstractLinearProcess

    if not isinstance(process, AbstractLinearProcess):
        raise TypeError(
            f"`process` must be a forward process such as `gpm_sde.vp()`, got "
            f"{type(process).__name__}; for a DDPM chain use `ddpm_timesteps`."
        )
    n = check_int("steps", steps, 1, "the number of grid intervals")
    if spacing not in CONTINUOUS_SPACINGS:
        raise ValueError(f"`spacing` must be one of {CONTINUOUS_SPACINGS}, got {spacing!r}.")
    e = _concrete_float("eps", eps)
    T = float(process.T)
    if not 0.0 <= e < T:
        raise ValueError(
            f"`eps` must lie in [0, T) = [0, {T}): the grid stops at diffusion time t = eps "
            f"(generation time T - eps); got {e}."
        )
    end = T - e
    if spacing == "uniform":
        return jnp.linspace(0.0, end, n + 1, dtype=float)
    u = np.linspace(0.0, 1.0, n + 1)
    if spacing == "quadratic":
        s = end * u * (2.0 - u)  # T - t_k with t_k = eps + (T - eps)(1 - u)^2
    else:
        r = _concrete_float("rho", rho)
        check_positive("rho", r, fix="pass e.g. rho=7.0 (Karras et al. 2022)")

        r_lo, r_hi = (float(v) for v in scaled_coefficients(process, np.array([e, T]))[1])
        if not (np.isfinite(r_lo) and np.isfinite(r_hi) and r_hi > r_lo >= 0.0):
            raise ValueError(
                f"spacing='karras' needs a noise-to-signal ratio sigma(t)/alpha(t) that is "
                f"finite and increasing on [eps, T], got {r_lo} at t = eps = {e} and {r_hi} "
                f"at T = {T}; pass a larger eps or another spacing."
            )
        targets = _karras(n + 1, r_lo, r_hi, r)[1:-1]
        inner = times_of_ratio(process, targets, lo=e)
        t = np.concatenate([[T], inner, [e]])
        s = T - t
    s[0], s[-1] = 0.0, end
    if not np.all(np.diff(s) > 0):
        raise ValueError(
            f"spacing={spacing!r} with steps={n} gives a grid that is not strictly increasing "
            f"(is sigma(t)/alpha(t) increasing?); use fewer steps or another spacing."
        )
    return jnp.asarray(s, dtype=float)


@eqx.filter_jit
def _ratio(process: AbstractLinearProcess, t: Array) -> tuple[Array, Array]:
    return process.alpha(t), process.sigma(t) / process.alpha(t)


def scaled_coefficients(
    process: AbstractLinearProcess, t: Float[ArrayLike, " k"]
) -> tuple[Float[np.ndarray, " k"], Float[np.ndarray, " k"]]:
    r"""$\alpha(t)$ and the noise-to-signal ratio $r(t) = \sigma(t)/\alpha(t)$ (Karras et
    al.'s $\sigma$ of the scaled state $x/\alpha$, 2022, eq. 4 with $s(t) = \alpha(t)$) at
    the concrete diffusion times `t`, as float64 NumPy arrays, from one compiled call per
    process and shape: the coefficients from which the few-step samplers build their steps
    on the host.

    **Arguments:**

    - `process`: a linear forward process (its `alpha`, `sigma`).
    - `t`: concrete diffusion times.

    **Returns:** `(alpha, r)`, each of the shape of `t`.
    """
    a, r = _ratio(process, jnp.asarray(t, dtype=float))
    return np.asarray(a, dtype=np.float64), np.asarray(r, dtype=np.float64)


def times_of_ratio(
    process: AbstractLinearProcess, targets: Float[ArrayLike, " k"], *, lo: float = 0.0
) -> Float[np.ndarray, " k"]:
    r"""The diffusion times $t \in [t_{\text{lo}}, T]$ where the noise-to-signal ratio
    $r(t) = \sigma(t)/\alpha(t)$ takes the values `targets`, $t = r^{-1}(\text{target})$
    (targets outside $[r(t_{\text{lo}}), r(T)]$ give the nearer end), by 100 bisection
    steps in one compiled loop, compiled once per process and number of targets. Used for
    the `"karras"` grid of [`time_grid`][gpm_sde.schedules.time_grid] and the intermediate
    levels of the EDM and DPM-Solver samplers.

    **Arguments:**

    - `process`: a linear forward process whose $r$ increases on $[t_{\text{lo}}, T]$.
    - `targets`: the ratios $r$ to invert.
    - `lo`: the lower end $t_{\text{lo}}$ of the bracket (default 0).

    **Returns:** the times, float64, in the default float dtype's precision.
    """
    targets = jnp.asarray(np.asarray(targets, dtype=np.float64), dtype=float)
    lo_arr = jnp.full_like(targets, lo)
    return np.asarray(_bisect(process, targets, lo_arr), dtype=np.float64)


@eqx.filter_jit
def _bisect(process: AbstractLinearProcess, targets: Array, lo: Array) -> Array:
    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        above = process.sigma(mid) / process.alpha(mid) > targets
        return jnp.where(above, lo, mid), jnp.where(above, mid, hi)

    hi = jnp.full_like(targets, float(process.T))
    lo, hi = jax.lax.fori_loop(0, 100, body, (lo, hi))
    return 0.5 * (lo + hi)
