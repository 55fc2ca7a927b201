r"""Denoising diffusion implicit models (Song, Meng & Ermon 2021): the generalised reverse step
on a sub-sequence of the DDPM steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import check_positive
from ..processes import DDPM
from ..scores import on_cloud
from ._common import check_callable, check_cloud, check_int
from .ddpm import check_ddpm


def ddim_timesteps(n_steps: int, steps: int) -> np.ndarray:
    r"""The DDIM sub-sequence in the order it is run, $N = \tau_S > \dots > \tau_1$
    ($\tau_1 = 1$ when $S \ge 2$): $S$ = `steps` evenly spaced steps, rounded (static)."""
    return np.round(np.linspace(n_steps, 1, steps)).astype(np.int64)


def ddim(
    ddpm: DDPM,
    eps_model: Callable[..., Any],
    key: PRNGKeyArray,
    x_N: Float[Array, " m *event"],
    *,
    steps: int | None = None,
    eta: Float[ArrayLike, ""] = 0.0,
) -> Float[Array, " m *event"]:
    r"""DDIM sampling (Song, Meng & Ermon 2021, eq. 12) on the sub-sequence
    $1 = \tau_1 < \dots < \tau_S = N$ of $S$ = `steps` evenly spaced (rounded) DDPM steps
    (just $\tau_1 = N$ when $S = 1$): from
    $n = \tau_i$ to $n' = \tau_{i-1}$ ($\tau_0 = 0$, $\bar\alpha_0 = 1$),

    $$x_{n'} = \sqrt{\bar\alpha_{n'}}\,\hat x_0 + \sqrt{1 - \bar\alpha_{n'} - \sigma^2}\,
    \hat\varepsilon + \sigma z, \qquad \hat x_0 = \frac{x_n - \sqrt{1 - \bar\alpha_n}\,
    \hat\varepsilon}{\sqrt{\bar\alpha_n}},$$

    with $\hat\varepsilon = $ `eps_model(n, x_n)`, $z \sim \mathcal{N}(0, I)$ and (eq. 16)

    $$\sigma = \eta\,\sqrt{\frac{1 - \bar\alpha_{n'}}{1 - \bar\alpha_n}}\,
    \sqrt{1 - \frac{\bar\alpha_n}{\bar\alpha_{n'}}} .$$

    $\eta = 0$ is the deterministic DDIM (a discretisation of the probability-flow ODE);
    $\eta = 1$ on all $N$ steps is DDPM ancestral sampling with $\sigma_n^2 = \tilde\beta_n$.
    The last step ($n' = 0$) returns $\hat x_0$. The paper's $\alpha_t$ is $\bar\alpha_n$ here.
    A `lax.scan` over the $S$ steps; step $n$ draws its noise from
    `jax.random.fold_in(key, n)`.

    **Arguments:**

    - `ddpm`: the chain; `eps_model`: the pointwise noise model `eps_model(n, x)` (see
      [`ddpm_ancestral`][gpm_sde.samplers.ddpm_ancestral]).
    - `key`: PRNG key (unused when $\eta = 0$).
    - `x_N`: the initial cloud `(m, *event)`, from `ddpm.prior`.
    - `steps`: $S \in 1..N$; `None` uses all $N$ steps.
    - `eta`: $\eta \ge 0$.

    **Returns:** the cloud $x_0$ `(m, *event)`.
    """
    check_ddpm(ddpm)
    check_callable("eps_model", eps_model, "(n, x) -> ε̂")
    check_cloud("x_N", x_N)
    n_total = ddpm.n_steps
    steps = n_total if steps is None else steps
    check_int("steps", steps, 1, "the number of DDIM steps")
    if steps > n_total:
        raise ValueError(
            f"`steps` must be at most the chain's N = {n_total} (DDIM steps are a sub-sequence "
            f"of the DDPM steps), got {steps}; pass steps <= {n_total} or None."
        )
    check_positive("eta", eta, strict=False, fix="pass eta >= 0 (0: DDIM, 1: DDPM-like)")
    tau = ddim_timesteps(n_total, int(steps))
    prev = np.concatenate([tau[1:], [0]])
    dtype = x_N.dtype
    n_arr = jnp.asarray(tau, dtype=jnp.int32)
    ab = ddpm.alpha_bar(jnp.asarray(tau)).astype(dtype)
    ab_prev = ddpm.alpha_bar(jnp.asarray(prev)).astype(dtype)
    one_m_ab = ddpm.one_minus_alpha_bar(jnp.asarray(tau)).astype(dtype)
    one_m_ab_prev = ddpm.one_minus_alpha_bar(jnp.asarray(prev)).astype(dtype)
    eta_arr = jnp.asarray(eta, dtype=dtype)

    def step(x, inputs):
        n, a, a_prev, b, b_prev = inputs
        eps_hat = on_cloud(eps_model, n, x)
        x0_hat = (x - jnp.sqrt(b) * eps_hat) / jnp.sqrt(a)
        # 1 - ᾱ_n/ᾱ_n' = -expm1(log ᾱ_n - log ᾱ_n'): no cancellation for close steps.
        sigma = eta_arr * jnp.sqrt(b_prev / b) * jnp.sqrt(-jnp.expm1(jnp.log(a) - jnp.log(a_prev)))
        z = jr.normal(jr.fold_in(key, n), x.shape, dtype=dtype)
        direction = jnp.sqrt(jnp.maximum(b_prev - sigma**2, 0.0))
        return jnp.sqrt(a_prev) * x0_hat + direction * eps_hat + sigma * z, None

    x, _ = jax.lax.scan(step, x_N, (n_arr, ab, ab_prev, one_m_ab, one_m_ab_prev))
    return x
