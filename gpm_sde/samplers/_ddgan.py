r"""Denoising Diffusion GAN (Xiao, Kreis & Vahdat 2022): the few-step chain, its real pairs,
the posterior step, and the sampler of a trained generator."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from .._checks import IntLike, check_int, check_positive
from ..processes import DDPM
from ._common import start_cloud
from ._ddpm import check_ddpm
from ._result import Samples


def ddgan_chain(
    num_steps: IntLike = 4,
    beta_min: float = 0.1,
    beta_max: float = 20.0,
    eps: float = 1e-3,
) -> DDPM:
    r"""The $T$-step DDPM chain of Denoising Diffusion GAN (Xiao, Kreis & Vahdat 2022): the VP
    process discretised at $T + 1$ equally spaced times of $[\epsilon, 1]$,

    $$t_k = \epsilon + \tfrac{k}{T}(1 - \epsilon),\qquad \bar\alpha(t) =
    \exp\!\big(-\tfrac12 t^2(\beta_{\max} - \beta_{\min}) - t\beta_{\min}\big),$$

    $$\beta_n = 1 - \bar\alpha(t_n)/\bar\alpha(t_{n-1}),\qquad n = 1, \dots, T,$$

    so that the chain's $\bar\alpha_n = \bar\alpha(t_n)/\bar\alpha(t_0)$. This is the
    `get_sigma_schedule` of the authors' `train_ddgan.py` (`var_func_vp`, $\epsilon = 10^{-3}$,
    without its `use_geometric` variant); their extra first entry $\beta_0 = 10^{-8}$ only
    scales $x_0$ by $\sqrt{1 - 10^{-8}}$ and is left out. Their default is $T = 4$.

    **Arguments:**

    - `num_steps`: $T \ge 1$, the number of denoising steps (the NFE of sampling).
    - `beta_min`, `beta_max`: the VP rates ($0.1$ and $20$ by default, as theirs).
    - `eps`: the first time $t_0$, in $(0, 1)$.

    **Returns:** a [`DDPM`][gpm_sde.processes.DDPM] chain of $T$ steps.
    """
    T = check_int("num_steps", num_steps, 1, "the number of denoising steps T", example=4)
    for name, value in (("beta_min", beta_min), ("beta_max", beta_max)):
        check_positive(name, value, fix="pass the VP rates, e.g. beta_min=0.1, beta_max=20.0")
    if not float(beta_max) >= float(beta_min):
        raise ValueError(
            f"`beta_max` must be >= `beta_min`, got beta_min={beta_min!r}, "
            f"beta_max={beta_max!r}; pass e.g. beta_min=0.1, beta_max=20.0."
        )
    if not 0.0 < float(eps) < 1.0:
        raise ValueError(f"`eps` must lie in (0, 1), the first time t_0; got {eps!r}, pass 1e-3.")
    t = float(eps) + np.arange(T + 1, dtype=np.float64) / T * (1.0 - float(eps))
    log_ab = -0.5 * t**2 * (float(beta_max) - float(beta_min)) - t * float(beta_min)
    betas = -np.expm1(np.diff(log_ab))
    return DDPM(jnp.asarray(betas, dtype=float))


def _per_point(coef: Array, x: Array) -> Array:
    # A scalar, or one value per point `(m,)` shaped to broadcast against the cloud `x`.
    if coef.ndim == 1:
        coef = jnp.reshape(coef, (-1,) + (1,) * (x.ndim - 1))
    return coef.astype(x.dtype)


def ddgan_pairs(
    chain: DDPM,
    key: PRNGKeyArray,
    x0: Float[Array, " m *event"],
    n: Int[ArrayLike, ""] | Int[Array, " m"],
) -> tuple[Float[Array, " m *event"], Float[Array, " m *event"]]:
    r"""Real pairs $(x_{n-1}, x_n) \sim q(x_{n-1}, x_n \mid x_0)$ of the forward chain, what
    the discriminator of Denoising Diffusion GAN sees as real (the authors' `q_sample_pairs`):

    $$x_{n-1} = \sqrt{\bar\alpha_{n-1}}\,x_0 + \sqrt{1 - \bar\alpha_{n-1}}\,\varepsilon,
    \qquad x_n = \sqrt{1 - \beta_n}\,x_{n-1} + \sqrt{\beta_n}\,\varepsilon',$$

    for steps $n \in 1..T$ (one for the cloud, or one per point, `(m,)`). The first key of
    `jax.random.split(key)` draws $\varepsilon$, the second $\varepsilon'$.

    **Returns:** `(x_prev, x_n)`, each of the shape of `x0`.
    """
    check_ddpm(chain)
    k1, k2 = jr.split(key)
    n = jnp.asarray(n)
    x_prev = chain.sample_marginal(k1, x0, n - 1)
    return x_prev, chain.forward_step(k2, x_prev, n)


def ddgan_posterior_sample(
    chain: DDPM,
    key: PRNGKeyArray,
    x0_hat: Float[Array, " m *event"],
    x_n: Float[Array, " m *event"],
    n: Int[ArrayLike, ""] | Int[Array, " m"],
) -> Float[Array, " m *event"]:
    r"""A draw of the forward posterior at a predicted $\hat x_0$, the generator's fake
    $x_{n-1}$ in Denoising Diffusion GAN (Xiao, Kreis & Vahdat 2022; the authors'
    `sample_posterior`):

    $$x_{n-1} = \tilde\mu_n(\hat x_0, x_n) + \sqrt{\tilde\beta_n}\,z,\qquad
    z \sim \mathcal{N}(0, I),$$

    with $\tilde\mu_n$, $\tilde\beta_n$ of $q(x_{n-1} \mid x_n, x_0)$ (Ho et al. 2020, eq. 6–7;
    [`DDPM.posterior_mean_variance`][gpm_sde.processes.DDPM.posterior_mean_variance]). At
    $n = 1$, $\tilde\beta_1 = 0$ and $x_0 = \hat x_0$.

    **Arguments:** the chain; `key` of $z$; `x0_hat`, `x_n` clouds `(m, *event)`; `n` one
    step in $1..T$ or one per point `(m,)`.
    """
    check_ddpm(chain)
    mean, var = chain.posterior_mean_variance(x0_hat, x_n, n)
    z = jr.normal(key, x_n.shape, dtype=x_n.dtype)
    return mean + _per_point(jnp.sqrt(var), x_n) * z


def _latent_dim(generator: Any, latent_dim: Any) -> int:
    if latent_dim is None:
        latent_dim = getattr(generator, "latent_dim", None)
        if latent_dim is None:
            raise ValueError(
                "`latent_dim` is needed: the generator has no `latent_dim` attribute; pass "
                "`latent_dim=k` for a generator `G(x_n, z, n)` with `z: (k,)`."
            )
    return check_int("latent_dim", latent_dim, 1, "the size of one latent z", example=2)


@eqx.filter_jit
def _run_chain(generator: Any, chain: DDPM, x: Array, key: PRNGKeyArray, latent_dim: int) -> Array:
    for step in range(chain.n_steps, 0, -1):
        kz, kp = jr.split(jr.fold_in(key, step))
        z = jr.normal(kz, (x.shape[0], latent_dim), dtype=x.dtype)
        n = jnp.full((x.shape[0],), step, dtype=jnp.int32)
        x0_hat = jax.vmap(generator)(x, z, n).astype(x.dtype)
        x = ddgan_posterior_sample(chain, kp, x0_hat, x, step)
    return x


def ddgan_sample(
    generator: Callable[..., Any],
    chain: DDPM,
    key: PRNGKeyArray,
    n: IntLike | None = None,
    event_shape: Sequence[int] | None = None,
    *,
    latent_dim: IntLike | None = None,
    x_init: Float[Array, " m *event"] | None = None,
) -> Samples:
    r"""Sampling of Denoising Diffusion GAN (Xiao, Kreis & Vahdat 2022; the authors'
    `sample_from_model`): from $x_T \sim \mathcal{N}(0, I)$, for $n = T, \dots, 1$,

    $$\hat x_0 = G(x_n, z, n),\quad z \sim \mathcal{N}(0, I_k),\qquad
    x_{n-1} \sim q(x_{n-1} \mid x_n, \hat x_0)$$

    ([`ddgan_posterior_sample`][gpm_sde.samplers.ddgan_posterior_sample]; no noise at $n = 1$,
    so the output is the last $\hat x_0$). $T$ generator evaluations. When $G(x_n, \cdot, n)$
    draws $x_0$ from the true $q(x_0 \mid x_n)$, each step draws from the true $q(x_{n-1} \mid
    x_n)$ (the posterior mixed over $q(x_0 \mid x_n)$), and the chain reproduces the data law
    up to the mismatch between $q(x_T)$ and $\mathcal{N}(0, I)$.

    Step $n$ draws its latent and its posterior noise from `jax.random.fold_in(noise_key, n)`.

    **Arguments:**

    - `generator`: `G(x_n, z, n)` on one point `x_n: (*event,)`, one latent `z: (k,)` and a
      1-based integer step `n` (an int32 scalar), returning $\hat x_0$ of the shape of `x_n`
      (e.g. [`DDGANGenerator`][gpm_sde.nn.DDGANGenerator]; vmapped over the cloud).
    - `chain`: the chain it was trained on ([`ddgan_chain`][gpm_sde.samplers.ddgan_chain]).
    - `key`: split by `jax.random.split` into the prior draw (first) and the noise (second).
    - `n`, `event_shape`: the number of points and the shape of one point (read from `x_init`
      when it is given).
    - `latent_dim`: $k$ (default: `generator.latent_dim`).
    - `x_init`: a starting cloud `(m, *event)` at step $T$ instead of a draw of
      $\mathcal{N}(0, I)$.

    **Returns:** [`Samples`][gpm_sde.samplers.Samples] with `.x` the cloud $x_0$.
    """
    check_ddpm(chain)
    if not callable(generator):
        raise TypeError(
            f"`generator` must be a callable `G(x_n, z, n) -> x0_hat`, got "
            f"{type(generator).__name__}."
        )
    k = _latent_dim(generator, latent_dim)
    x, k_noise = start_cloud(chain.prior, key, n, event_shape, x_init, needs_noise=True)
    return Samples(_run_chain(generator, chain, x, k_noise, k))
