r"""Adapters from the networks people train to the scores this library runs on.

A network predicts one of the quantities of the marginal $x_t = \alpha(t)x_0 +
\sigma(t)\varepsilon$: the noise $\varepsilon$, the data $x_0$, the velocity $v$, an EDM
denoiser, or the score itself. Each adapter turns that prediction into the score
$\nabla_x\log p_t(x)$, exactly, on the process's own $\alpha(t)$, $\sigma(t)$:

- `from_eps`: the noise, $\hat\varepsilon \approx \mathbb{E}[\varepsilon \mid x_t = x]$;
  score $-\hat\varepsilon/\sigma$.
- `from_x0`: the data, $\hat x_0 \approx \mathbb{E}[x_0 \mid x_t = x]$; score
  $(\alpha\hat x_0 - x)/\sigma^2$.
- `from_v`: the velocity, $\hat v \approx \mathbb{E}[\alpha\varepsilon - \sigma x_0 \mid x_t =
  x]$; score $-(\sigma x + \alpha\hat v)/(\sigma(\alpha^2 + \sigma^2))$.
- `from_denoiser`: an EDM denoiser $D(\tilde x; \tilde\sigma) \approx \mathbb{E}[x_0 \mid x_0
  + \tilde\sigma n = \tilde x]$; score $(\alpha D(x/\alpha; \sigma/\alpha) - x)/\sigma^2$.

All follow from Tweedie's formula $\nabla\log p_t(x) = (\alpha\,\mathbb{E}[x_0 \mid x_t = x] -
x)/\sigma^2 = -\mathbb{E}[\varepsilon \mid x_t = x]/\sigma$. The discrete DDPM chain has its own
adapters (`from_eps_discrete`, ...), and `from_batched` wraps a function written on a batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, Real

from .._checks import (
    as_numpy,
    check_callable,
    check_int,
    check_scalar,
    check_time_range,
    is_concrete,
)
from ..processes import DDPM, AbstractLinearProcess
from ._cloud import AbstractCloudScore

_PREDICTIONS = ("score", "eps", "x0", "v", "denoiser")
_ORDERS = ("x,t", "t,x")


def _expand(c: Array, x: Array) -> Array:
    """A coefficient of shape `()` or `(B,)` shaped to broadcast against `x: (*event)` or
    `(B, *event)`."""
    return jnp.reshape(c, jnp.shape(c) + (1,) * (x.ndim - jnp.ndim(c)))


def _score_from(
    prediction: str,
    process: AbstractLinearProcess | None,
    fn: Callable[..., Any],
    t: Array,
    x: Array,
) -> Array:
    r"""$\nabla\log p_t(x)$ from the prediction `fn(time, x)` of kind `prediction`. `t` is a
    scalar for one point `x: (*event)`, or `(B,)` for a batch `x: (B, *event)`."""
    if prediction == "score":
        return fn(t, x)
    assert process is not None
    alpha, sigma, var = process.alpha(t), process.sigma(t), process.variance(t)
    a, s, s2 = _expand(alpha, x), _expand(sigma, x), _expand(var, x)
    if prediction == "denoiser":
        out = fn(sigma / alpha, x / a)
        score = (a * out - x) / s2
    else:
        out = fn(t, x)
        if prediction == "eps":
            score = -out / s
        elif prediction == "x0":
            score = (a * out - x) / s2
        else:  # "v"
            score = -(s * x + a * out) / (s * (a * a + s2))
    return score.astype(jnp.result_type(x, out))


def _check_process(process: Any, adapter: str) -> None:
    if isinstance(process, DDPM):
        raise TypeError(
            f"`process` of `{adapter}` must be a continuous-time process such as "
            f"`gpm_sde.vp()`, got the discrete DDPM chain; use `{adapter}_discrete(ddpm, ..., "
            f"index_base=...)` for a network of integer timesteps."
        )
    if not isinstance(process, AbstractLinearProcess):
        raise TypeError(
            f"`process` of `{adapter}` must be a linear forward process such as "
            f"`gpm_sde.vp()` or `gpm_sde.processes.LinearProcess(alpha, sigma, T)`, got "
            f"{type(process).__name__}."
        )


def _check_time(t: Any, process: AbstractLinearProcess | None) -> None:
    if process is not None:
        check_time_range("t", t, 0.0, process.T, type(process).__name__)


class PredictionScore(eqx.Module):
    r"""A pointwise score `score(t, x)` from a network's prediction on one point: the noise,
    the data, the velocity or an EDM denoiser (see each builder for its formula and source:
    [`from_eps`][gpm_sde.scores.from_eps], [`from_x0`][gpm_sde.scores.from_x0],
    [`from_v`][gpm_sde.scores.from_v], [`from_denoiser`][gpm_sde.scores.from_denoiser]).
    Jittable and differentiable (in `x`, `t` and the network's parameters).

    **Arguments:**

    - `process`: the forward process whose $\alpha(t)$, $\sigma(t)$ the conversion uses.
    - `fn`: the network, `fn(t, x)` on one point (`fn(sigma, x)` for a denoiser).
    - `prediction`: `"eps"`, `"x0"`, `"v"` or `"denoiser"`.
    """

    process: AbstractLinearProcess
    fn: Callable[..., Any]
    prediction: str = eqx.field(static=True)

    def __check_init__(self):
        if self.prediction not in _PREDICTIONS[1:]:
            raise ValueError(
                f"`prediction` must be one of {_PREDICTIONS[1:]}, got {self.prediction!r}."
            )

    def __call__(
        self, t: Float[ArrayLike, ""], x: Float[Array, "*event"]
    ) -> Float[Array, "*event"]:
        r"""$\nabla_x\log p_t(x)$ at one point `x` and diffusion time `t`."""
        _check_time(t, self.process)
        t = jnp.asarray(t, dtype=jnp.result_type(float, t))
        return _score_from(self.prediction, self.process, self.fn, t, x)


def _lift(
    process: Any, fn: Any, prediction: str, adapter: str, name: str, signature: str
) -> PredictionScore | BatchedScore:
    _check_process(process, adapter)
    check_callable(name, fn, signature)
    if isinstance(fn, BatchedScore):
        if fn.prediction != "score":
            raise ValueError(
                f"`{name}` of `{adapter}` is already a score built by `from_{fn.prediction}`; "
                f"pass the raw network wrapped by `from_batched` alone."
            )
        return BatchedScore(fn.fn, fn.order, fn.event_shape, process, prediction)
    return PredictionScore(process, fn, prediction)


def from_eps(
    process: AbstractLinearProcess, eps_fn: Callable[..., Any]
) -> PredictionScore | BatchedScore:
    r"""The score of a noise-prediction network $\hat\varepsilon(t, x) \approx
    \mathbb{E}[\varepsilon \mid x_t = x]$, for $x_t = \alpha(t)x_0 + \sigma(t)\varepsilon$:

    $$\nabla_x\log p_t(x) = -\frac{\hat\varepsilon(t, x)}{\sigma(t)},$$

    since $\nabla_x\log p(x_t \mid x_0) = -\varepsilon/\sigma$ and the marginal score is its
    posterior mean (Tweedie's formula). This is score_sde's `score = -score / std` for its VP
    and sub-VP models (`models/utils.py`, `get_score_fn`), the network output being
    $\hat\varepsilon$.

    **Arguments:**

    - `process`: the forward process the network was trained on.
    - `eps_fn`: $\hat\varepsilon$ as `eps_fn(t, x)` on one point `x: (*event,)` (time first),
      or a network on a batch wrapped by [`from_batched`][gpm_sde.scores.from_batched].

    **Returns:** a pointwise score `score(t, x)` in diffusion time
    ([`PredictionScore`][gpm_sde.scores.PredictionScore]), or, for a `from_batched` network, a
    cloud score that calls it once on the whole cloud
    ([`BatchedScore`][gpm_sde.scores.BatchedScore]).
    """
    return _lift(process, eps_fn, "eps", "from_eps", "eps_fn", "(t, x) -> ε̂")


def from_x0(
    process: AbstractLinearProcess, x0_fn: Callable[..., Any]
) -> PredictionScore | BatchedScore:
    r"""The score of a data-prediction network $\hat x_0(t, x) \approx \mathbb{E}[x_0 \mid
    x_t = x]$, by Tweedie's formula for $x_t = \alpha(t)x_0 + \sigma(t)\varepsilon$:

    $$\nabla_x\log p_t(x) = \frac{\alpha(t)\,\hat x_0(t, x) - x}{\sigma(t)^2}.$$

    (diffusers' `prediction_type="sample"`; for $\alpha = 1$ this is the denoiser relation
    $(D - x)/\sigma^2$ of Karras et al. 2022.)

    **Arguments:**

    - `process`: the forward process the network was trained on.
    - `x0_fn`: $\hat x_0$ as `x0_fn(t, x)` on one point, or a `from_batched` network.

    **Returns:** as [`from_eps`][gpm_sde.scores.from_eps].
    """
    return _lift(process, x0_fn, "x0", "from_x0", "x0_fn", "(t, x) -> x̂0")


def from_v(
    process: AbstractLinearProcess, v_fn: Callable[..., Any]
) -> PredictionScore | BatchedScore:
    r"""The score of a velocity-prediction network $\hat v(t, x) \approx \mathbb{E}[v \mid x_t
    = x]$ with

    $$v = \alpha(t)\,\varepsilon - \sigma(t)\,x_0, \qquad \nabla_x\log p_t(x)
    = -\frac{\sigma x + \alpha\hat v}{\sigma\,(\alpha^2 + \sigma^2)},$$

    since $\hat\varepsilon = (\sigma x + \alpha\hat v)/(\alpha^2 + \sigma^2)$ and $\hat x_0 =
    (\alpha x - \sigma\hat v)/(\alpha^2 + \sigma^2)$ invert $x = \alpha x_0 + \sigma\varepsilon$,
    $v = \alpha\varepsilon - \sigma x_0$.

    The v-parameterisation is Salimans & Ho 2022's, written for variance-preserving processes
    ($\alpha^2 + \sigma^2 = 1$), where it is $v = \alpha\varepsilon - \sigma x_0$ and the
    formulas above lose the factor $\alpha^2 + \sigma^2$. diffusers' `v_prediction` is that VP
    form: `get_velocity` returns `sqrt(alpha_prod) * noise - sqrt(1 - alpha_prod) * sample` and
    its DDPM step takes `pred_original_sample = sqrt(alpha_prod) * sample - sqrt(1 -
    alpha_prod) * model_output`, which assumes $\alpha^2 + \sigma^2 = 1$
    (`schedulers/scheduling_ddpm.py`). Here $v$ keeps the same unnormalised definition on any
    linear process (sub-VP, VE, ...), and the factor $\alpha^2 + \sigma^2$ is kept. A network
    trained on the VP-rescaled variable $x/\sqrt{\alpha^2 + \sigma^2}$ (k-diffusion's
    `VDenoiser`) is a denoiser: use [`from_denoiser`][gpm_sde.scores.from_denoiser].

    **Arguments:**

    - `process`: the forward process the network was trained on.
    - `v_fn`: $\hat v$ as `v_fn(t, x)` on one point, or a `from_batched` network.

    **Returns:** as [`from_eps`][gpm_sde.scores.from_eps].
    """
    return _lift(process, v_fn, "v", "from_v", "v_fn", "(t, x) -> v̂")


def from_denoiser(
    process: AbstractLinearProcess, D: Callable[..., Any]
) -> PredictionScore | BatchedScore:
    r"""The score of an EDM denoiser $D(\tilde x; \tilde\sigma) \approx \mathbb{E}[x_0 \mid x_0
    + \tilde\sigma n = \tilde x]$ (Karras et al. 2022), on the process $x_t = \alpha(t)x_0 +
    \sigma(t)\varepsilon$:

    $$\nabla_x\log p_t(x) = \frac{\alpha(t)\, D\big(x/\alpha(t);\ \sigma(t)/\alpha(t)\big)
    - x}{\sigma(t)^2}.$$

    $D$ is defined on the *scaled* variable $\tilde x = x/\alpha = x_0 + (\sigma/\alpha)
    \varepsilon$, whose noise level is $\tilde\sigma = \sigma/\alpha$; so $\alpha D = \alpha
    \mathbb{E}[x_0 \mid x_t = x]$ and this is Tweedie's formula. In EDM's notation the scaling
    is $s(t) = \alpha(t)$ and the noise level $\sigma_{\mathrm{EDM}}(t) = \sigma(t)/\alpha(t)$:
    the authors' general sampler (NVlabs/edm `generate.py`, `ablation_sampler`) calls
    `net(x / s(t), sigma(t))`, and the probability-flow ODE $dx/dt = f x - \tfrac12 g^2
    \nabla\log p_t$ with this score is their
    $dx/dt = (\dot\sigma_{\mathrm{EDM}}/\sigma_{\mathrm{EDM}} + \dot s/s)\,x -
    \dot\sigma_{\mathrm{EDM}}\, s/\sigma_{\mathrm{EDM}}\, D(x/s; \sigma_{\mathrm{EDM}})$.
    k-diffusion's wrappers agree: `DiscreteEpsDDPMDenoiser` gives $D(\tilde x; \tilde\sigma) =
    \tilde x - \tilde\sigma\,\hat\varepsilon$ for $\tilde\sigma = \sqrt{(1 - \bar\alpha)/
    \bar\alpha}$, on which this adapter returns $-\hat\varepsilon/\sigma$ (as
    [`from_eps`][gpm_sde.scores.from_eps]); `VDenoiser` gives $D = \alpha x - \sigma\hat v$
    (as [`from_v`][gpm_sde.scores.from_v] with $\alpha^2 + \sigma^2 = 1$)
    (`k_diffusion/external.py`).

    **Arguments:**

    - `process`: the forward process (for [`edm`][gpm_sde.edm], $\alpha = 1$ and $D$ is
      called at $(\sigma = t, x)$).
    - `D`: the denoiser as `D(sigma, x)` on one point, **noise level first** like every
      pointwise function of this library (wrap EDM's `D(x, sigma)` as `lambda s, x: D(x, s)`),
      or a network on a batch wrapped by [`from_batched`][gpm_sde.scores.from_batched]
      (`order="x,t"` for k-diffusion's `model(x, sigma)`).

    **Returns:** as [`from_eps`][gpm_sde.scores.from_eps].
    """
    return _lift(process, D, "denoiser", "from_denoiser", "D", "(sigma, x) -> D(x; sigma)")


# ---------------------------------------------------------------------------------------------
# Functions written on a batch.


def _check_order(order: Any) -> str:
    if not isinstance(order, str):
        raise TypeError(
            f"`order` must be the string 'x,t' or 't,x', got {type(order).__name__} {order!r}."
        )
    norm = order.replace(" ", "")
    if norm not in _ORDERS:
        raise ValueError(
            f"`order` must be 'x,t' (fn(x, t), as diffusers' `unet(sample, timestep)` and "
            f"score_sde's `model(x, labels)`) or 't,x' (fn(t, x)), got {order!r}."
        )
    return norm


def _probe_batch(event_shape: tuple[int, ...]) -> int:
    """A batch size of at least 3 that differs from every axis of the event, so that swapped
    arguments cannot broadcast into the expected shape."""
    b = 3
    while b in event_shape:
        b += 1
    return b


def _try_order(fn: Any, order: str, x: Any, t: Any) -> str | None:
    """None if `fn` called in `order` maps `x: (B, *event)`, `t: (B,)` to `(B, *event)`, else
    what went wrong."""
    args = (x, t) if order == "x,t" else (t, x)
    try:
        out = jax.eval_shape(fn, *args)
    except Exception as err:  # the user's function, any error: report it
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return f"raises {type(err).__name__}: {first_line[:300]}"
    if not isinstance(out, jax.ShapeDtypeStruct):
        return f"returns a {type(out).__name__}, not one array of shape {tuple(x.shape)}"
    if tuple(out.shape) != tuple(x.shape):
        return f"returns shape {tuple(out.shape)}, not {tuple(x.shape)}"
    return None


def _describe_call(order: str, b: int, event_shape: tuple[int, ...]) -> str:
    x = f"x: {(b, *event_shape)}"
    t = f"t: ({b},)"
    return f"fn({x}, {t})" if order == "x,t" else f"fn({t}, {x})"


class BatchedScore(AbstractCloudScore):
    r"""A score from a function written on a batch, `fn(x, t)` or `fn(t, x)` with
    `x: (B, *event)` and times `t: (B,)`, returning `(B, *event)`.

    It is a cloud score ([`AbstractCloudScore`][gpm_sde.scores.AbstractCloudScore]): on a
    cloud `y: (N, *event)` it calls `fn` **once**, with the time repeated $N$ times, instead
    of lifting a pointwise function with `vmap`. Called on one point `x: event_shape` (by a
    pointwise path, e.g. under `jax.vmap`) it calls `fn` on a batch of one. The two cases are
    told apart by `event_shape`, so the score is right either way. Build it with
    [`from_batched`][gpm_sde.scores.from_batched], and compose it with
    [`from_eps`][gpm_sde.scores.from_eps], [`from_x0`][gpm_sde.scores.from_x0],
    [`from_v`][gpm_sde.scores.from_v] or [`from_denoiser`][gpm_sde.scores.from_denoiser] for a
    network that predicts something else (then `prediction` and `process` say what, and the
    conversion is applied per point on the batch).

    **Arguments:**

    - `fn`: the batched function.
    - `order`: `"x,t"` or `"t,x"`, its argument order.
    - `event_shape`: the shape of one point.
    - `process`: the forward process of the conversion (`None` for a score).
    - `prediction`: `"score"`, `"eps"`, `"x0"`, `"v"` or `"denoiser"`.
    """

    per_point: ClassVar[bool] = True

    fn: Callable[..., Any]
    order: str = eqx.field(static=True)
    event_shape: tuple[int, ...] = eqx.field(static=True)
    process: AbstractLinearProcess | None = None
    prediction: str = eqx.field(static=True, default="score")

    def __check_init__(self):
        _check_order(self.order)
        if self.prediction not in _PREDICTIONS:
            raise ValueError(
                f"`prediction` must be one of {_PREDICTIONS}, got {self.prediction!r}."
            )
        if (self.process is None) != (self.prediction == "score"):
            raise ValueError("`process` is needed exactly when `prediction` is not 'score'.")

    def _batch(self, t: Array, x: Array) -> Array:
        out = self.fn(x, t) if self.order == "x,t" else self.fn(t, x)
        if jnp.shape(out) != x.shape:
            raise ValueError(
                f"the batched function of `from_batched` (order={self.order!r}) returned shape "
                f"{jnp.shape(out)} for x: {x.shape} and t: {t.shape}; expected {x.shape}."
            )
        return out

    def __call__(
        self, t: Real[ArrayLike, ""] | Real[Array, " n"], y: Float[Array, "..."]
    ) -> Float[Array, "..."]:
        r"""The score at one point `y: event_shape`, or at every particle of a cloud
        `y: (N, *event_shape)` (one time `t`, or one per particle)."""
        event = self.event_shape
        if y.shape == event:
            t_b = jnp.reshape(jnp.asarray(t), (1,))
            return self(t_b, y[None])[0]
        if y.ndim != len(event) + 1 or y.shape[1:] != event:
            raise ValueError(
                f"`y` must be one point of shape {event} or a cloud of shape (N, *{event}) "
                f"(`event_shape` of `from_batched`), got shape {y.shape}."
            )
        t = jnp.asarray(t)
        if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != y.shape[0]):
            raise ValueError(
                f"`t` must be a scalar or one time per point, shape ({y.shape[0]},), got "
                f"shape {t.shape}."
            )
        _check_time(t, self.process)
        if self.process is not None:
            t = t.astype(jnp.result_type(float, t))
        t_b = jnp.broadcast_to(t, (y.shape[0],))
        return _score_from(self.prediction, self.process, self._batch, t_b, y)


def from_batched(
    fn: Callable[..., Any],
    order: str,
    event_shape: tuple[int, ...],
    *,
    time_dtype: Any = None,
) -> BatchedScore:
    r"""A score from a function written on a batch: `fn(x, t)` (`order="x,t"`, as diffusers'
    `unet(sample, timestep)`, score_sde's `model(x, labels)` or k-diffusion's `model(x,
    sigma)`) or `fn(t, x)` (`order="t,x"`), with `x: (B, *event_shape)` and times `t: (B,)`,
    returning `(B, *event_shape)`.

    The argument order is checked when the score is built: `fn` is traced
    (`jax.eval_shape`, nothing computed) on a probe batch of $B \ge 3$ points, $B$ distinct
    from every axis of `event_shape`, in the given order. If that fails or returns another
    shape while the other order fits, a `ValueError` names `order` and the order that fits,
    instead of a broadcasting error deep inside a sampler. (With `event_shape=()` both orders
    have the same shapes and cannot be told apart.)

    The result is a cloud score that calls `fn` once per cloud, and also works on one point
    (see [`BatchedScore`][gpm_sde.scores.BatchedScore]). For a network that predicts the noise,
    the data, the velocity or an EDM denoiser, pass the result on:
    `from_eps(process, from_batched(unet, "x,t", (3, 32, 32)))`. For a DDPM network of integer
    timesteps, pass `time_dtype=jnp.int32` and hand the result to
    [`from_eps_discrete`][gpm_sde.scores.from_eps_discrete].

    **Arguments:**

    - `fn`: the batched function.
    - `order`: `"x,t"` or `"t,x"`, required (no guessing).
    - `event_shape`: the shape of one point, e.g. `(2,)` or `(3, 32, 32)`.
    - `time_dtype`: the dtype of the probe's times; default: the default float dtype.

    **Raises:** `ValueError` naming `order` when the other order fits, or describing both
    calls when neither does.
    """
    norm = _check_order(order)
    check_callable("fn", fn, "fn(x, t) or fn(t, x) on a batch")
    if not isinstance(event_shape, tuple | list):
        raise TypeError(
            f"`event_shape` must be a tuple of non-negative ints, the shape of one point (e.g. "
            f"(2,) or (3, 32, 32)), got {type(event_shape).__name__} {event_shape!r}."
        )
    event_shape = tuple(
        check_int(f"event_shape[{i}]", n, 0, "a size of one point's axis", example=2)
        for i, n in enumerate(event_shape)
    )
    dtype = jnp.result_type(float) if time_dtype is None else jnp.dtype(time_dtype)
    b = _probe_batch(event_shape)
    x = jax.ShapeDtypeStruct((b, *event_shape), jnp.result_type(float))
    t = jax.ShapeDtypeStruct((b,), dtype)
    problem = _try_order(fn, norm, x, t)
    if problem is not None:
        other = _ORDERS[1 - _ORDERS.index(norm)]
        other_problem = _try_order(fn, other, x, t)
        if other_problem is None:
            raise ValueError(
                f"`order={order!r}` does not fit `fn`: called as "
                f"{_describe_call(norm, b, event_shape)} it {problem}, while "
                f"{_describe_call(other, b, event_shape)} returns {(b, *event_shape)} as "
                f"expected; pass order={other!r}."
            )
        raise ValueError(
            f"`fn` fits neither argument order on a probe batch of {b} points of "
            f"`event_shape` {event_shape} and times of dtype {jnp.dtype(dtype).name}: "
            f"{_describe_call(norm, b, event_shape)} {problem}; "
            f"{_describe_call(other, b, event_shape)} {other_problem}. `fn` must map a batch "
            f"(B, *event_shape) and times (B,) to (B, *event_shape); check `event_shape` (and "
            f"`time_dtype`, e.g. jnp.int32 for integer timesteps)."
        )
    return BatchedScore(fn, norm, event_shape)


# ---------------------------------------------------------------------------------------------
# The discrete DDPM chain.


def _check_index_base(index_base: Any) -> int:
    check_int("index_base", index_base, 0, "0 or 1, the network's first DDPM step")
    if index_base not in (0, 1):
        raise ValueError(
            f"`index_base` must be 0 or 1, got {index_base!r}: 0 when the network numbers "
            f"the DDPM steps 0..N-1 (diffusers' `timesteps`, score_sde's `labels = t * (N - 1)` "
            f"for discrete VP models, `alphas_cumprod[k]`), 1 when it numbers them 1..N like "
            f"Ho et al. 2020 and this library."
        )
    return int(index_base)


class DiscreteEpsModel(eqx.Module):
    r"""A noise model `eps_model(n, x)` of the DDPM chain, in this library's convention (steps
    $n \in 1..N$, 1-based as in Ho et al. 2020, one point `x`), from a network that predicts
    the noise, the data or the velocity at its own integer timestep

    $k = n - 1 + b$, $b$ = `index_base`

    ($k \in 0..N-1$ for `index_base=0`, as diffusers and score_sde number them; $k = n$ for
    `index_base=1`). With $\bar\alpha_n$ of
    [`DDPM.alpha_bar`][gpm_sde.processes.DDPM.alpha_bar] and the marginal
    $x_n = \sqrt{\bar\alpha_n}\,x_0 + \sqrt{1 - \bar\alpha_n}\,\varepsilon$
    ([`DDPM.sample_marginal`][gpm_sde.processes.DDPM.sample_marginal]; diffusers'
    `add_noise`):

    - `"eps"`: $\hat\varepsilon = \mathrm{fn}(k, x)$;
    - `"x0"`: $\hat\varepsilon = (x - \sqrt{\bar\alpha_n}\,\hat x_0)/\sqrt{1 - \bar\alpha_n}$;
    - `"v"`: $\hat\varepsilon = \sqrt{\bar\alpha_n}\,\hat v + \sqrt{1 - \bar\alpha_n}\,x$ for
      $v = \sqrt{\bar\alpha_n}\,\varepsilon - \sqrt{1 - \bar\alpha_n}\,x_0$ (diffusers'
      `get_velocity`).

    Use it with [`ddpm_ancestral`][gpm_sde.samplers.ddpm_ancestral] and
    [`ddim`][gpm_sde.samplers.ddim]; `score(n, x)` is the score of $q(x_n)$. Build it with
    [`from_eps_discrete`][gpm_sde.scores.from_eps_discrete],
    [`from_x0_discrete`][gpm_sde.scores.from_x0_discrete] or
    [`from_v_discrete`][gpm_sde.scores.from_v_discrete].

    **Arguments:**

    - `ddpm`: the chain the network was trained on.
    - `fn`: the network `fn(k, x)` on one point (or a `from_batched` network).
    - `index_base`: 0 or 1, how the network numbers the steps.
    - `prediction`: `"eps"`, `"x0"` or `"v"`.
    """

    ddpm: DDPM
    fn: Callable[..., Any]
    index_base: int = eqx.field(static=True)
    prediction: str = eqx.field(static=True, default="eps")

    def __check_init__(self):
        _check_index_base(self.index_base)
        if self.prediction not in ("eps", "x0", "v"):
            raise ValueError(f"`prediction` must be 'eps', 'x0' or 'v', got {self.prediction!r}.")

    def _step(self, n: Any) -> Array:
        dtype = jnp.asarray(n).dtype
        if dtype == jnp.bool_ or not jnp.issubdtype(dtype, jnp.integer):
            raise TypeError(
                f"`n` must be an integer DDPM step, 1-based (1..N) as in Ho et al. 2020 and "
                f"this library, got dtype {dtype}."
            )
        n_steps = self.ddpm.n_steps
        if is_concrete(n):
            arr = as_numpy(n)
            if np.any(arr < 1) or np.any(arr > n_steps):
                base = self.index_base
                raise ValueError(
                    f"`n` must lie in 1..{n_steps}: this library's DDPM steps are 1-based (Ho et "
                    f"al. 2020); the network is called at k = n - 1 + index_base, in "
                    f"{base}..{n_steps - 1 + base} for index_base={base}. Got n = {arr!r}."
                )
        return jnp.asarray(n)

    def __call__(self, n: Int[ArrayLike, ""], x: Float[Array, "*event"]) -> Float[Array, "*event"]:
        r"""$\hat\varepsilon(n, x)$ at the 1-based step `n`."""
        n = self._step(n)
        out = self.fn(n - 1 + self.index_base, x)
        if self.prediction == "eps":
            return out
        ab = self.ddpm.alpha_bar(n).astype(x.dtype)
        omab = self.ddpm.one_minus_alpha_bar(n).astype(x.dtype)
        if self.prediction == "x0":
            return (x - jnp.sqrt(ab) * out) / jnp.sqrt(omab)
        return jnp.sqrt(ab) * out + jnp.sqrt(omab) * x

    def score(self, n: Int[ArrayLike, ""], x: Float[Array, "*event"]) -> Float[Array, "*event"]:
        r"""The score of the marginal $q(x_n)$: $-\hat\varepsilon(n, x)/\sqrt{1 - \bar\alpha_n}$."""
        n = self._step(n)
        return -self(n, x) / jnp.sqrt(self.ddpm.one_minus_alpha_bar(n)).astype(x.dtype)


def _discrete(ddpm: Any, fn: Any, index_base: Any, prediction: str, name: str) -> DiscreteEpsModel:
    if not isinstance(ddpm, DDPM):
        raise TypeError(
            f"`ddpm` must be a DDPM chain such as `gpm_sde.ddpm(n_steps=1000)`, got "
            f"{type(ddpm).__name__}; for a continuous-time process use `from_{prediction}`."
        )
    check_callable(name, fn, "(k, x) -> prediction, k the network's integer timestep")
    return DiscreteEpsModel(ddpm, fn, _check_index_base(index_base), prediction)


def from_eps_discrete(
    ddpm: DDPM, eps_fn: Callable[..., Any], *, index_base: int
) -> DiscreteEpsModel:
    r"""The noise model `eps_model(n, x)` (1-based steps $n$) of a noise-prediction network
    $\hat\varepsilon(k, x)$ that numbers the DDPM steps from `index_base`: $k = n - 1 + b$,
    $b$ = `index_base` (see [`DiscreteEpsModel`][gpm_sde.scores.DiscreteEpsModel]).

    `index_base` has no default: a network trained with diffusers (`timesteps` in
    $0..N-1$, `alphas_cumprod[k]` $= \bar\alpha_{k+1}$) or score_sde (`labels` in $0..N-1$,
    `sqrt_1m_alphas_cumprod[labels]`) takes `index_base=0`; one that numbers the steps like
    Ho et al. 2020 ($t \in 1..T$) takes `index_base=1`. A wrong choice is not an error (both
    are valid integers) but an off-by-one in $\bar\alpha$, so it must be stated.

    **Arguments:**

    - `ddpm`: the chain, e.g. `gpm_sde.ddpm(n_steps=1000)` for diffusers' default linear
      schedule (`beta_start=1e-4`, `beta_end=0.02`).
    - `eps_fn`: $\hat\varepsilon$ as `eps_fn(k, x)` on one point, or a `from_batched` network
      built with `time_dtype=jnp.int32`.
    - `index_base`: 0 or 1.
    """
    return _discrete(ddpm, eps_fn, index_base, "eps", "eps_fn")


def from_x0_discrete(ddpm: DDPM, x0_fn: Callable[..., Any], *, index_base: int) -> DiscreteEpsModel:
    r"""The noise model `eps_model(n, x)` of a data-prediction network $\hat x_0(k, x)$
    (diffusers' `prediction_type="sample"`), $k = n - 1 + b$ ($b$ = `index_base`):
    $\hat\varepsilon = (x - \sqrt{\bar\alpha_n}\hat x_0)/\sqrt{1 - \bar\alpha_n}$, the
    relation $\hat x_0 = (x - \sqrt{1 - \bar\alpha_n}\,\hat\varepsilon)/\sqrt{\bar\alpha_n}$
    that diffusers' DDPM step applies ("formula (15)" of Ho et al. 2020, per its comment)
    solved for $\hat\varepsilon$. See
    [`from_eps_discrete`][gpm_sde.scores.from_eps_discrete] for `index_base`."""
    return _discrete(ddpm, x0_fn, index_base, "x0", "x0_fn")


def from_v_discrete(ddpm: DDPM, v_fn: Callable[..., Any], *, index_base: int) -> DiscreteEpsModel:
    r"""The noise model `eps_model(n, x)` of a velocity-prediction network $\hat v(k, x)$
    (diffusers' `prediction_type="v_prediction"`), $k = n - 1 + b$ ($b$ = `index_base`), for
    $v = \sqrt{\bar\alpha_n}\,\varepsilon - \sqrt{1 - \bar\alpha_n}\,x_0$ (diffusers'
    `get_velocity`; Salimans & Ho 2022 on a variance-preserving chain):
    $\hat\varepsilon = \sqrt{\bar\alpha_n}\,\hat v + \sqrt{1 - \bar\alpha_n}\,x$. See
    [`from_eps_discrete`][gpm_sde.scores.from_eps_discrete] for `index_base`."""
    return _discrete(ddpm, v_fn, index_base, "v", "v_fn")


class DiscreteVPScore(eqx.Module):
    r"""A continuous-time pointwise score `score(t, x)`, $t \in [0, T]$, from a noise model of
    an $N$-step DDPM chain, mapped as score_sde maps its discrete VP models
    (`models/utils.py`, `get_score_fn`: `labels = t * (N - 1)`, `std =
    sqrt_1m_alphas_cumprod[labels.long()]`):

    $$\nabla\log p_t(x) \approx -\frac{\hat\varepsilon(n, x)}{\sqrt{1 - \bar\alpha_n}},\qquad
    n = 1 + \Big\lfloor \frac{t}{T}(N - 1) \Big\rfloor \in 1..N .$$

    It is piecewise constant in $t$ (the score of $q(x_n)$), not the score of a continuous
    process: with $\beta_n$ linear from $\beta_{\min}/N$ to $\beta_{\max}/N$ (score_sde's
    `VPSDE.discrete_betas`) the chain approximates [`vp`][gpm_sde.vp]`(beta_min, beta_max)`
    to $O(1/N)$. score_sde hands the network the unrounded `labels`; here the network gets the
    integer step. Build it with [`vp_score_from_discrete`][gpm_sde.scores.vp_score_from_discrete].

    **Arguments:**

    - `ddpm`: the chain.
    - `eps_model`: `eps_model(n, x)` with 1-based $n$, e.g. from
      [`from_eps_discrete`][gpm_sde.scores.from_eps_discrete].
    - `T`: the horizon of the continuous time.
    """

    ddpm: DDPM
    eps_model: Callable[..., Any]
    T: float = eqx.field(static=True, default=1.0)

    def __call__(
        self, t: Float[ArrayLike, ""], x: Float[Array, "*event"]
    ) -> Float[Array, "*event"]:
        r"""$-\hat\varepsilon(n, x)/\sqrt{1 - \bar\alpha_n}$ at the step $n$ of time `t`."""
        check_time_range("t", t, 0.0, self.T, "the discrete VP score")
        n_steps = self.ddpm.n_steps
        k = jnp.floor(jnp.asarray(t) / self.T * (n_steps - 1)).astype(jnp.int32)
        n = jnp.clip(k, 0, n_steps - 1) + 1
        std = jnp.sqrt(self.ddpm.one_minus_alpha_bar(n)).astype(x.dtype)
        return -self.eps_model(n, x) / std


def vp_score_from_discrete(
    ddpm: DDPM, eps_model: Callable[..., Any], T: float = 1.0
) -> DiscreteVPScore:
    r"""A continuous-time score on $[0, T]$ from the 1-based noise model `eps_model(n, x)` of
    the chain `ddpm`, the way score_sde samples its discrete VP ("DDPM") models with the SDE
    samplers (see [`DiscreteVPScore`][gpm_sde.scores.DiscreteVPScore]); use it with
    [`vp`][gpm_sde.vp]`(beta_min=N * beta_1, beta_max=N * beta_N, T=T)`."""
    if not isinstance(ddpm, DDPM):
        raise TypeError(
            f"`ddpm` must be a DDPM chain such as `gpm_sde.ddpm(n_steps=1000)`, got "
            f"{type(ddpm).__name__}."
        )
    check_callable("eps_model", eps_model, "(n, x) -> ε̂, n a 1-based step")
    check_scalar("T", T)
    if not (np.isfinite(T) and T > 0):
        raise ValueError(f"`T` must be finite and > 0, got {T!r}; pass e.g. T=1.0.")
    return DiscreteVPScore(ddpm, eps_model, float(T))
