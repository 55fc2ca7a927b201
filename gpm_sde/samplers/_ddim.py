r"""Denoising diffusion implicit models (Song, Meng & Ermon 2021): the generalised reverse step
on a sub-sequence of the DDPM steps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from .._checks import IntLike, as_numpy, check_callable, check_positive, is_concrete
from ..processes import DDPM
from ..scores import on_cloud
from ._common import start_cloud
from ._ddpm import chain_timesteps, check_ddpm
from ._result import Samples


def ddim(
    ddpm: DDPM,
    eps_model: Callable[..., Any],
    key: PRNGKeyArray | None,
    n: IntLike | None = None,
    event_shape: Sequence[int] | None = None,
    *,
    steps: IntLike | None = None,
    spacing: str | None = None,
    ts: Int[ArrayLike, " k"] | None = None,
    x_init: Float[Array, " m *event"] | None = None,
    eta: Float[ArrayLike, ""] = 0.0,
) -> Samples:
    r"""DDIM sampling (Song, Meng & Ermon 2021, eq. 12) on a sub-sequence
    $\tau_S > \dots > \tau_1$ of the DDPM steps: from $n = \tau_i$ to $n' = \tau_{i-1}$
    ($\tau_0 = 0$, $\bar\alpha_0 = 1$),

    $$x_{n'} = \sqrt{\bar\alpha_{n'}}\,\hat x_0 + \sqrt{1 - \bar\alpha_{n'} - \sigma^2}\,
    \hat\varepsilon + \sigma z, \qquad \hat x_0 = \frac{x_n - \sqrt{1 - \bar\alpha_n}\,
    \hat\varepsilon}{\sqrt{\bar\alpha_n}},$$

    with $\hat\varepsilon = $ `eps_model(n, x_n)`, $z \sim \mathcal{N}(0, I)$ and (eq. 16)

    $$\sigma = \eta\,\sqrt{\frac{1 - \bar\alpha_{n'}}{1 - \bar\alpha_n}}\,
    \sqrt{1 - \frac{\bar\alpha_n}{\bar\alpha_{n'}}} .$$

    $\eta = 0$ is the deterministic DDIM (a discretisation of the probability-flow ODE);
    $\eta = 1$ on all $N$ steps is DDPM ancestral sampling with $\sigma_n^2 = \tilde\beta_n$.
    The last step ($n' = 0$) returns $\hat x_0$. The paper's $\alpha_t$ is $\bar\alpha_n$ here.

    **The sub-sequence** is `steps` timesteps spaced by `spacing`
    ([`ddpm_timesteps`][gpm_sde.schedules.ddpm_timesteps]: diffusers' `"linspace"` (default,
    from the first step to the last), `"leading"`, `"trailing"`, or DDIM's `"uniform"` and
    `"quad"`), or the 0-based timesteps `ts` themselves. Each step goes to the *next timestep
    of the sequence*, as DDIM's code (`seq_next`) and diffusers' `DDPMScheduler` do; diffusers'
    `DDIMScheduler.step` instead goes to $t - \lfloor N/S\rfloor$, which is the next timestep
    for `"leading"` spacing but not always for the others (e.g. `"trailing"`, $N = 1000$,
    $S = 3$: timesteps 999, 666, 332, and its step from 332 goes to $-1$ while 666 goes to
    333).

    A `lax.scan` over the $S$ steps; step $n$ draws its noise from
    `jax.random.fold_in(noise_key, n)`.

    **Arguments:**

    - `ddpm`: the chain; `eps_model`: the noise model `eps_model(n, x)`, 1-based `n` (see
      [`ddpm_ancestral`][gpm_sde.samplers.ddpm_ancestral]).
    - `key`: split by `jax.random.split` into the prior draw (first) and the noise (second);
      may be `None` with `x_init` and $\eta = 0$.
    - `n`, `event_shape`: the number of points and the shape of one point (read from `x_init`
      when it is given).
    - `steps`: $S \in 1..N$ (default: all $N$ steps), spaced by `spacing`; or
    - `ts`: strictly decreasing 0-based timesteps (diffusers' `scheduler.timesteps`; timestep
      $t$ is step $n = t + 1$).
    - `x_init`: a starting cloud `(m, *event)` at the first timestep instead of a draw of
      `ddpm.prior`.
    - `eta`: $\eta \ge 0$.

    **Returns:** [`Samples`][gpm_sde.samplers.Samples] with `.x` the cloud $x_0$ `(m, *event)`.
    """
    check_ddpm(ddpm)
    check_callable("eps_model", eps_model, "(n, x) -> ε̂")
    check_positive("eta", eta, strict=False, fix="pass eta >= 0 (0: DDIM, 1: DDPM-like)")
    deterministic = is_concrete(eta) and float(as_numpy(eta)) == 0.0
    t = chain_timesteps(ddpm, steps, spacing, ts)
    x0, k_noise = start_cloud(
        ddpm.prior, key, n, event_shape, x_init, needs_noise=not deterministic
    )
    tau = t + 1  # 1-based steps n
    prev = np.concatenate([tau[1:], [0]])
    dtype = x0.dtype
    n_arr = jnp.asarray(tau, dtype=jnp.int32)
    ab = ddpm.alpha_bar(jnp.asarray(tau)).astype(dtype)
    ab_prev = ddpm.alpha_bar(jnp.asarray(prev)).astype(dtype)
    one_m_ab = ddpm.one_minus_alpha_bar(jnp.asarray(tau)).astype(dtype)
    one_m_ab_prev = ddpm.one_minus_alpha_bar(jnp.asarray(prev)).astype(dtype)
    eta_arr = jnp.asarray(eta, dtype=dtype)
    per_step = (n_arr, ab, ab_prev, one_m_ab, one_m_ab_prev)
    return Samples(_ddim_loop(eps_model, k_noise, x0, eta_arr, per_step))


@eqx.filter_jit
def _ddim_loop(
    eps_model: Callable[..., Any],
    k_noise: PRNGKeyArray | None,
    x0: Array,
    eta: Array,
    per_step: tuple,
) -> Array:
    """The DDIM loop over per-step ᾱ values, compiled once per model and shapes."""
    dtype = x0.dtype

    def step(x, inputs):
        n, a, a_prev, b, b_prev = inputs
        eps_hat = on_cloud(eps_model, n, x).astype(dtype)
        x0_hat = (x - jnp.sqrt(b) * eps_hat) / jnp.sqrt(a)
        # 1 - ᾱ_n/ᾱ_n' = -expm1(log ᾱ_n - log ᾱ_n'): no cancellation for close steps.
        sigma = eta * jnp.sqrt(b_prev / b) * jnp.sqrt(-jnp.expm1(jnp.log(a) - jnp.log(a_prev)))
        direction = jnp.sqrt(jnp.maximum(b_prev - sigma**2, 0.0))
        x_next = jnp.sqrt(a_prev) * x0_hat + direction * eps_hat
        if k_noise is None:
            return x_next, None
        z = jr.normal(jr.fold_in(k_noise, n), x.shape, dtype=dtype)
        return x_next + sigma * z, None

    x, _ = jax.lax.scan(step, x0, per_step)
    return x
