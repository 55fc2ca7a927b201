r"""Exact log-likelihoods along the probability-flow ODE (Song et al. 2021, §4.3, app. D.2)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import check_finite, check_float_array, check_positive
from ..processes import AbstractLinearProcess
from ..sde import SDE, probability_flow


class _AugmentedField(eqx.Module):
    """$(x, \\ell) \\mapsto (v(t, x), \\nabla\\cdot v(t, x))$ for the forward-time PF ODE."""

    flow: SDE
    T: float = eqx.field(static=True)
    trace: str = eqx.field(static=True)

    def velocity(self, t, x):
        # The generation-time flow at s = T - t runs backwards: v(t, x) = -b(T - t, x).
        return -self.flow.drift(self.T - t, x[None], None)[0]

    def __call__(self, t, state, probes):
        x, _ = state

        def divergence(xi, probe):
            flat = xi.reshape(-1)

            def v_flat(z):
                return self.velocity(t, z.reshape(xi.shape)).reshape(-1)

            if self.trace == "exact":
                return v_flat(flat), jnp.trace(jax.jacfwd(v_flat)(flat))
            # Hutchinson: E[ε^T (∂v/∂x) ε] = tr(∂v/∂x) for Rademacher ε (Hutchinson 1989).
            vel, jvps = jax.vmap(lambda e: jax.jvp(v_flat, (flat,), (e,)), out_axes=(None, 0))(
                probe.reshape(probe.shape[0], -1)
            )
            quad = jnp.sum(probe.reshape(probe.shape[0], -1) * jvps, axis=1)
            return vel, jnp.mean(quad)

        vel, div = jax.vmap(divergence)(x, probes)
        return vel.reshape(x.shape), div


def log_likelihood(
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    x: Float[Array, " n *event"],
    *,
    key: PRNGKeyArray | None = None,
    trace: Literal["exact", "hutchinson"] = "exact",
    probes: int = 1,
    eps: float = 1e-5,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    solver: diffrax.AbstractSolver | None = None,
    max_steps: int = 4096,
    prior: Any = None,
) -> Float[Array, " n"]:
    r"""Log-density of each point of `x` under the model defined by `score`, in nats.

    Along the probability-flow ODE $\dot x_t = v(t, x_t)$, $v = f(t)x - \tfrac12 g(t)^2
    \nabla\log p_t(x)$, the density obeys $\frac{d}{dt}\log p_t(x_t) = -\nabla\cdot v(t, x_t)$
    (instantaneous change of variables; Chen et al. 2018, thm. 1). Integrating data to noise,
    forward in diffusion time from $t = \epsilon$ to $T$ (no reversal is needed for an ODE),

    $$\log p_\epsilon(x_\epsilon) = \log \pi(x_T) + \int_\epsilon^T \nabla\cdot v(t, x_t)\,dt,$$

    with $\pi$ the process's prior (Song et al. 2021, eq. 39). The velocity is the
    [`probability_flow`][gpm_sde.probability_flow] drift read backwards, $v(t, x) = -b(T - t,
    x)$. The divergence is exact (`trace="exact"`, a Jacobian per point: small dimensions) or
    the Hutchinson estimate $\varepsilon^\top (\partial v/\partial x)\,\varepsilon$ averaged over
    `probes` Rademacher vectors held fixed along the path (Grathwohl et al. 2019), which is
    unbiased for the integral.

    **Arguments:**

    - `process`: the forward process; `score`: its pointwise score `score(t, x)`.
    - `x`: data points `(N, *event)`, read as samples at $t = \epsilon$.
    - `key`: PRNG key for the Hutchinson probes (required then).
    - `trace`: `"exact"` or `"hutchinson"`; `probes`: the number of Hutchinson probes.
    - `eps`: the start time $\epsilon > 0$; `rtol`, `atol`: tolerances of the adaptive solver
      (default `diffrax.Tsit5()` with a PID controller); `max_steps`: its step budget.
    - `prior`: the law $\pi$ at $T$, anything with a pointwise `log_prob`; default
      `process.prior`. The gap between $\pi$ and the true $p_T$ is the method's only bias
      besides the solver's (for VP at $T = 1$, $\alpha(T) \approx 0.007$, it is below
      $10^{-2}$ nats for data of unit scale); pass the exact $p_T$ to remove it in tests.

    **Returns:** $\log p(x_i)$ per point, in nats. See [`bits_per_dim`][gpm_sde.bits_per_dim].
    """
    if not isinstance(process, AbstractLinearProcess):
        raise TypeError(f"`process` must be a forward process, got {type(process).__name__}.")
    check_float_array("x", x)
    if jnp.ndim(x) < 2 or jnp.shape(x)[0] == 0:
        raise ValueError(f"`x` must be a non-empty cloud (N, *event), got shape {jnp.shape(x)}.")
    check_finite("x", x)
    check_positive("eps", eps, fix="start the flow slightly after t = 0, e.g. eps=1e-5")
    if not eps < process.T:
        raise ValueError(f"`eps` must be < T = {process.T}, got {eps}.")
    if trace not in ("exact", "hutchinson"):
        raise ValueError(f"`trace` must be 'exact' or 'hutchinson', got {trace!r}.")
    if not isinstance(probes, int) or probes < 1:
        raise ValueError(f"`probes` must be an int >= 1, got {probes!r}.")
    if trace == "hutchinson":
        if key is None:
            raise ValueError("`key` is required for trace='hutchinson'; pass jax.random.key(0).")
        noise = jr.rademacher(key, (x.shape[0], probes, *x.shape[1:]), dtype=x.dtype)
    else:
        noise = jnp.zeros((x.shape[0], 1, *x.shape[1:]), dtype=x.dtype)
    field = _AugmentedField(probability_flow(process, score), process.T, trace)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        diffrax.Tsit5() if solver is None else solver,
        t0=eps,
        t1=process.T,
        dt0=None,
        y0=(x, jnp.zeros(x.shape[0], dtype=x.dtype)),
        args=noise,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
    )
    assert sol.ys is not None
    x_T, integral = sol.ys[0][0], sol.ys[1][0]
    prior = process.prior if prior is None else prior
    return jax.vmap(prior.log_prob)(x_T) + integral


def bits_per_dim(
    log_prob: Float[ArrayLike, "*n"], event_size: int, scale: float = 1.0
) -> Float[Array, "*n"]:
    r"""Bits per dimension, $-\big(\log p(x) + D\log s\big) / (D \ln 2)$.

    `log_prob` is in nats for the model's variable $x = s\,u$ of the data $u$; the change of
    variables $\log p_u(u) = \log p_x(x) + D\log s$ reports it in the data's units (e.g.
    $s = 2/256$ for 8-bit data rescaled to $[-1, 1]$, with uniform dequantisation; Ho et al.
    2020, §4.2). $D$ is `event_size`, the number of entries of one point.
    """
    if event_size < 1:
        raise ValueError(f"`event_size` must be >= 1, got {event_size}.")
    check_positive("scale", scale)
    log_prob = jnp.asarray(log_prob)
    return -(log_prob + event_size * math.log(scale)) / (event_size * math.log(2.0))
