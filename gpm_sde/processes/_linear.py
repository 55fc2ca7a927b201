r"""Linear forward processes built from the user's own functions: $\alpha(t)$ and $\sigma(t)$ (or
$\sigma(t)^2$), or the integrated noise rate $\int_0^t\beta$ of a variance-preserving process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._checks import check_callable, check_positive, check_scalar, is_concrete
from ._base import AbstractLinearProcess, _time_derivative, check_coefficients

# |alpha(0) - 1| allowed by the check alpha(0) = 1: round-off of a float32 schedule.
_ALPHA0_TOL = 1e-6
# g^2 = d(sigma^2)/dt - 2 f sigma^2 may fall this far below 0, relative to its two terms.
_G2_TOL = 1e-8


def _name(fn: Any) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def _elementwise(fn: Callable[..., Any], t: Any) -> Array:
    """`fn` of one scalar time, applied elementwise to the times `t` (scalar or array)."""
    t = jnp.asarray(t, dtype=jnp.result_type(float, t))
    return jnp.asarray(jnp.vectorize(fn)(t), dtype=jnp.result_type(float))


def _check_time_function(name: str, fn: Any, what: str) -> None:
    """`fn` is a callable `t -> scalar` written with `jax.numpy`: `TypeError` if it is not
    callable or fails on a scalar time, `ValueError` if it returns a non-scalar."""
    check_callable(
        name,
        fn,
        f"t -> {what}",
        fix="pass a function of one scalar time written with `jax.numpy`",
    )
    try:
        out = jax.eval_shape(fn, jax.ShapeDtypeStruct((), jnp.result_type(float)))
    except Exception as err:  # the user's function, any error: say which argument it was
        raise TypeError(
            f"`{name}` must be a callable `t -> {what}` of one scalar time, written with "
            f"`jax.numpy` (it is traced and differentiated), but calling it on a scalar time "
            f"raised {type(err).__name__}: {err}"
        ) from err
    if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != ():
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(
            f"`{name}` must return one scalar {what} for one scalar time t, got {shape}; "
            f"write it for a scalar t (it is applied elementwise with `jnp.vectorize`)."
        )


class LinearProcess(AbstractLinearProcess):
    r"""A linear forward process from your own functions of time,

    $$x_t = \alpha(t)\,x_0 + \sigma(t)\,\varepsilon,\qquad \varepsilon\sim\mathcal{N}(0, I),
    \qquad t \in [0, T],$$

    with the SDE $dx = f(t)\,x\,dt + g(t)\,dW$ derived by forward-mode autodiff, as for every
    [`AbstractLinearProcess`][gpm_sde.processes.AbstractLinearProcess]:

    $$f = \frac{d}{dt}\log\alpha, \qquad g^2 = \frac{d}{dt}\sigma^2 - 2f\sigma^2
    = \alpha^2\,\frac{d}{dt}\frac{\sigma^2}{\alpha^2}.$$

    So $g^2 \ge 0$ exactly when the noise-to-signal ratio $\sigma^2/\alpha^2$ does not
    decrease. [`vp`][gpm_sde.vp], [`subvp`][gpm_sde.subvp] and [`ve`][gpm_sde.ve] are this
    class with their own $\alpha$, $\sigma$ (to float64 round-off); see also
    [`vp_from_int_beta`][gpm_sde.processes.vp_from_int_beta].

    Pass **either** `sigma` **or** `variance`. $\sigma$ is the natural choice when it is smooth;
    pass `variance` $=\sigma^2$ when $\sigma$ has an infinite derivative where it vanishes, as
    $\sigma = \sqrt{1 - \alpha^2}$ of a VP process does at $t = 0$: autodiff of $\sigma^2$
    through the square root then gives $0\cdot\infty$ = NaN for $g(0)$, and the constructor
    says so.

    **Arguments:**

    - `alpha`: $t \mapsto \alpha(t)$, a function of one scalar time written with `jax.numpy`
      (it is traced, differentiated, and applied elementwise with `jnp.vectorize`), with
      $\alpha(0) = 1$ and $\alpha > 0$ on $[0, T]$.
    - `sigma`: $t \mapsto \sigma(t) \ge 0$.
    - `T`: the horizon $T > 0$.
    - `variance`: $t \mapsto \sigma(t)^2 \ge 0$, instead of `sigma`.

    **Raises:** `TypeError` for an argument that is not a callable of one scalar time;
    `ValueError`, naming the argument, when (with concrete values, checked on 9 times spanning
    $[0, T]$) $\alpha(0) \ne 1$, $\alpha \le 0$, $\sigma < 0$, $g^2 < 0$, a coefficient is not
    finite or overflows, or the prior $\mathcal{N}(0, \sigma(T)^2 I)$ is degenerate.

    Example: the VP process of [`vp`][gpm_sde.vp] (linear $\beta$ from 0.1 to 20),

    ```python
    B = lambda t: 0.1 * t + 0.5 * t**2 * (20.0 - 0.1)
    process = LinearProcess(
        alpha=lambda t: jnp.exp(-0.5 * B(t)), variance=lambda t: -jnp.expm1(-B(t)), T=1.0
    )
    ```
    """

    alpha_fn: Callable[..., Any]
    sigma_fn: Callable[..., Any] | None
    variance_fn: Callable[..., Any] | None
    T: float = eqx.field(static=True)

    def __init__(
        self,
        alpha: Callable[..., Any],
        sigma: Callable[..., Any] | None = None,
        T: float = 1.0,
        *,
        variance: Callable[..., Any] | None = None,
    ):
        if (sigma is None) == (variance is None):
            raise TypeError(
                "pass exactly one of `sigma` (t -> σ(t)) and `variance` (t -> σ(t)²), got "
                f"{'neither' if sigma is None else 'both'}."
            )
        _check_time_function("alpha", alpha, "α(t)")
        if sigma is not None:
            _check_time_function("sigma", sigma, "σ(t)")
        if variance is not None:
            _check_time_function("variance", variance, "σ(t)²")
        check_scalar("T", T)
        check_positive("T", T, fix="pass the time horizon, e.g. T=1.0")
        self.alpha_fn = alpha
        self.sigma_fn = sigma
        self.variance_fn = variance
        self.T = float(T)
        noise = f"sigma={_name(sigma)}" if sigma is not None else f"variance={_name(variance)}"
        call = f"LinearProcess(alpha={_name(alpha)}, {noise}, T={T!r})"
        _check_linear_process(self, call)

    def alpha(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        r"""$\alpha(t)$, the user's `alpha` applied elementwise."""
        return _elementwise(self.alpha_fn, t)

    def sigma(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        r"""$\sigma(t)$: the user's `sigma`, or $\sqrt{\sigma^2}$ from `variance`."""
        if self.sigma_fn is not None:
            return _elementwise(self.sigma_fn, t)
        return jnp.sqrt(self.variance(t))

    def variance(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        r"""$\sigma(t)^2$: the user's `variance`, or the square of `sigma`."""
        if self.variance_fn is not None:
            return _elementwise(self.variance_fn, t)
        return self.sigma(t) ** 2


def _check_linear_process(process: LinearProcess, call: str) -> None:
    """Raise `ValueError` naming the argument when the concrete `process` breaks a requirement
    of a forward process on 9 times spanning [0, T]; then `check_coefficients`."""
    if not is_concrete(process):
        return
    noise = "sigma" if process.sigma_fn is not None else "variance"
    with jax.ensure_compile_time_eval():
        t = jnp.linspace(0.0, process.T, 9)
        values = {
            "alpha": process.alpha(t),
            "sigma": process.sigma(t),
            "variance": process.variance(t),
            "dvar": _time_derivative(process.variance, t),
            "f": process.drift_coeff(t),
        }
    if not is_concrete(values):  # the user's functions close over traced values
        return
    v = {k: np.asarray(jax.device_get(a), dtype=np.float64) for k, a in values.items()}
    times = np.asarray(jax.device_get(t), dtype=np.float64)

    def first(bad: np.ndarray) -> int:
        return int(np.flatnonzero(bad)[0])

    a0 = v["alpha"][0]
    if not abs(a0 - 1.0) <= _ALPHA0_TOL:
        raise ValueError(
            f"{call}: `alpha` must be 1 at t = 0 (x_0 is the data), got alpha(0) = {a0:.6g}; "
            f"rescale it, e.g. `alpha=lambda t: a(t) / a(0.0)`."
        )
    bad = ~(np.isfinite(v["alpha"]) & (v["alpha"] > 0))
    if bad.any():
        i = first(bad)
        raise ValueError(
            f"{call}: `alpha` must be finite and > 0 on [0, T] (f = d/dt log α needs α > 0), "
            f"got alpha({times[i]:.6g}) = {v['alpha'][i]:.6g}; shorten `T` or fix `alpha`."
        )
    bad = ~(np.isfinite(v[noise]) & (v[noise] >= 0))
    if bad.any():
        i = first(bad)
        raise ValueError(
            f"{call}: `{noise}` must be finite and >= 0 on [0, T], got {noise}({times[i]:.6g}) = "
            f"{v[noise][i]:.6g}."
        )
    g2 = v["dvar"] - 2.0 * v["f"] * v["variance"]
    bad = ~np.isfinite(g2)
    if bad.any():
        i = first(bad)
        hint = (
            " σ has an infinite derivative where it vanishes (e.g. σ = sqrt(1 - α²) of a VP "
            "process at t = 0), and autodiff of σ² through it gives 0·∞; pass "
            "`variance=` (σ², smooth there) instead of `sigma`."
            if noise == "sigma" and v["sigma"][i] == 0.0
            else f" fix `{noise}` or `alpha` there."
        )
        raise ValueError(
            f"{call}: g(t)² = d/dt σ² - 2 f σ² is not finite at t = {times[i]:.6g}.{hint}"
        )
    scale = np.abs(v["dvar"]) + np.abs(2.0 * v["f"] * v["variance"])
    bad = g2 < -_G2_TOL * scale
    if bad.any():
        i = first(bad)
        raise ValueError(
            f"{call}: g(t)² = d/dt σ² - 2 f σ² = {g2[i]:.6g} < 0 at t = {times[i]:.6g}: the "
            f"noise-to-signal ratio σ²/α² decreases there, which no forward SDE does "
            f"(g² = α² d/dt(σ²/α²)); pass `{noise}` and `alpha` with σ/α non-decreasing."
        )
    check_coefficients(process, call, ("alpha", noise, "T"))


class _AlphaFromIntBeta(eqx.Module):
    int_beta: Callable[..., Any]

    def __call__(self, t):
        return jnp.exp(-0.5 * self.int_beta(t))


class _VarianceFromIntBeta(eqx.Module):
    int_beta: Callable[..., Any]

    def __call__(self, t):
        return -jnp.expm1(-self.int_beta(t))


def vp_from_int_beta(int_beta: Callable[..., Any], T: float = 1.0) -> LinearProcess:
    r"""The variance-preserving process of a noise rate $\beta(t) \ge 0$ given by its integral
    `int_beta` $= B(t) = \int_0^t \beta(u)\,du$:

    $$\alpha(t) = e^{-B(t)/2},\qquad \sigma(t)^2 = 1 - e^{-B(t)},\qquad
    dx = -\tfrac12\beta(t)\,x\,dt + \sqrt{\beta(t)}\,dW,$$

    $\beta = B'$ by autodiff (score_sde's `VPSDE.marginal_prob`, `sde_lib.py`, is this with
    the linear $\beta$ of [`integrated_beta`][gpm_sde.processes.integrated_beta]). This is the
    convention of the
    equinox score-based diffusion example (`docs/examples/score_based_diffusion.ipynb`: mean
    `exp(-0.5 * int_beta(t))`, variance `1 - exp(-int_beta(t))`, $\beta$ by `jax.jvp`; there
    `int_beta = lambda t: t` and $T = 10$). With the linear schedule
    $B(t) = \beta_{\min}t + \tfrac12 t^2(\beta_{\max} - \beta_{\min})$ it is
    [`vp`][gpm_sde.vp]. Returns a [`LinearProcess`][gpm_sde.processes.LinearProcess] with
    `alpha` and `variance` as above.

    **Arguments:**

    - `int_beta`: $t \mapsto B(t)$, a function of one scalar time written with `jax.numpy`,
      with $B(0) = 0$ and $B$ non-decreasing.
    - `T`: the horizon $T > 0$.
    """
    _check_time_function("int_beta", int_beta, "∫_0^t β")
    check_scalar("T", T)
    check_positive("T", T, fix="pass the time horizon, e.g. T=1.0")
    with jax.ensure_compile_time_eval():
        b0 = int_beta(jnp.asarray(0.0, dtype=float))
    if is_concrete(b0):
        b0 = float(np.asarray(jax.device_get(b0)))
        if not abs(b0) <= _ALPHA0_TOL:
            raise ValueError(
                f"`int_beta` must vanish at t = 0 (it is ∫_0^t β), got int_beta(0) = {b0!r}; "
                f"subtract it, e.g. `int_beta=lambda t: B(t) - B(0.0)`."
            )
    try:
        return LinearProcess(
            _AlphaFromIntBeta(int_beta), T=T, variance=_VarianceFromIntBeta(int_beta)
        )
    except ValueError as err:
        raise ValueError(
            f"vp_from_int_beta(int_beta={_name(int_beta)}, T={T!r}) builds α = exp(-int_beta/2) "
            f"and σ² = 1 - exp(-int_beta), and {err} (β = d/dt int_beta must be finite and "
            f">= 0 on [0, T])"
        ) from None
