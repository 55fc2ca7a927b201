r"""Ancestral sampling of the DDPM chain (Ho et al. 2020, Algorithm 2) and the exact noise
model of mixture data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from .._checks import IntLike, as_numpy, check_callable, check_int, is_concrete
from ..distributions import GaussianMixture
from ..processes import DDPM
from ..schedules import ddpm_timesteps
from ..scores import on_cloud
from ._common import start_cloud
from ._result import Samples


def check_ddpm(ddpm: Any) -> None:
    if not isinstance(ddpm, DDPM):
        raise TypeError(
            f"`ddpm` must be a DDPM chain such as `gpm_sde.ddpm(n_steps=1000)`, got "
            f"{type(ddpm).__name__}; for a continuous process use `reverse_sde_sample`."
        )


class ExactEpsModel(eqx.Module):
    r"""The exact noise prediction of mixture data under a DDPM chain, a pointwise
    `eps_model(n, x)`:

    $$\hat\varepsilon(n, x) = -\sqrt{1 - \bar\alpha_n}\,\nabla_x\log q_n(x), \qquad
    q_n = \sum_k w_k\,\mathcal{N}\big(\sqrt{\bar\alpha_n}\mu_k,\ \bar\alpha_n\Sigma_k
    + (1 - \bar\alpha_n) I\big),$$

    the minimiser $\mathbb{E}[\varepsilon \mid x_n = x]$ of the noise-prediction loss (Tweedie;
    Ho et al. 2020, §3.2; see [`DDPM.eps_from_score`][gpm_sde.processes.DDPM.eps_from_score]
    and [`DDPM.marginal`][gpm_sde.processes.DDPM.marginal]). Build it with
    [`exact_eps_model`][gpm_sde.samplers.exact_eps_model].
    """

    ddpm: DDPM
    law: GaussianMixture

    def __call__(self, n: Int[Array, ""] | int, x: Float[Array, " d"]) -> Float[Array, " d"]:
        n = jnp.asarray(n)
        return self.ddpm.eps_from_score(self.ddpm.marginal(self.law, n).score(x), n)


def exact_eps_model(ddpm: DDPM, law: GaussianMixture) -> ExactEpsModel:
    r"""The exact pointwise noise model `eps_model(n, x)` of mixture data `law` under the chain
    `ddpm`: $\hat\varepsilon = -\sqrt{1 - \bar\alpha_n}\,\nabla\log q_n(x)$ (see
    [`ExactEpsModel`][gpm_sde.samplers.ExactEpsModel])."""
    check_ddpm(ddpm)
    if not isinstance(law, GaussianMixture):
        raise TypeError(
            f"`law` must be a GaussianMixture (its DDPM marginals are exact), got "
            f"{type(law).__name__}."
        )
    return ExactEpsModel(ddpm, law)


VARIANCES = {
    "posterior": "posterior",
    "beta": "beta",
    "fixed_small": "posterior",
    "fixed_large": "beta",
}


def chain_timesteps(
    ddpm: DDPM, steps: IntLike | None, spacing: str | None, ts: Any
) -> Int[np.ndarray, " k"]:
    """The 0-based, strictly decreasing timesteps a discrete sampler runs: all `N` (`steps`
    and `ts` both `None`), `schedules.ddpm_timesteps(N, steps, spacing)`, or the given `ts`."""
    n_total = ddpm.n_steps
    if steps is not None and ts is not None:
        raise TypeError(
            "pass at most one of `steps` (a number of steps, spaced by `spacing`) and `ts` (the "
            "timesteps themselves)."
        )
    if ts is None:
        steps = n_total if steps is None else steps
        check_int("steps", steps, 1, "the number of sampling steps")
        if steps > n_total:
            raise ValueError(
                f"`steps` must be at most the chain's N = {n_total} (the sampling steps are a "
                f"sub-sequence of the chain's), got {steps}; pass steps <= {n_total} or None."
            )
        return ddpm_timesteps(n_total, int(steps), "linspace" if spacing is None else spacing)
    if spacing is not None:
        raise TypeError("`spacing` spaces `steps`; with `ts` (the timesteps themselves) omit it.")
    if not is_concrete(ts):
        raise TypeError(
            "`ts` must be concrete integer timesteps (they fix the loop), not a traced value."
        )
    t = np.asarray(as_numpy(ts))
    if t.ndim != 1 or t.shape[0] == 0 or t.dtype.kind not in "iu":
        raise TypeError(
            f"`ts` must be a non-empty 1-D array of integer timesteps (0-based, as diffusers' "
            f"`scheduler.timesteps`), got {t!r}."
        )
    t = t.astype(np.int64)
    if np.any(np.diff(t) >= 0) or t.min() < 0 or t.max() > n_total - 1:
        raise ValueError(
            f"`ts` must be strictly decreasing timesteps in 0..{n_total - 1} (0-based, in the "
            f"order they are run, as `gpm_sde.schedules.ddpm_timesteps` returns them), got "
            f"{t.tolist()}."
        )
    return t


def ddpm_ancestral(
    ddpm: DDPM,
    eps_model: Callable[..., Any],
    key: PRNGKeyArray,
    n: IntLike | None = None,
    event_shape: Sequence[int] | None = None,
    *,
    steps: IntLike | None = None,
    spacing: str | None = None,
    ts: Int[ArrayLike, " k"] | None = None,
    x_init: Float[Array, " m *event"] | None = None,
    variance: str = "posterior",
) -> Samples:
    r"""Ancestral sampling of the reverse DDPM chain (Ho et al. 2020, Algorithm 2): for
    $n = N, \dots, 1$,

    $$x_{n-1} = \frac{1}{\sqrt{\alpha_n}}\Big(x_n - \frac{\beta_n}{\sqrt{1 - \bar\alpha_n}}
    \,\hat\varepsilon(n, x_n)\Big) + \sigma_n z, \qquad z \sim \mathcal{N}(0, I),$$

    with $\sigma_n^2 = \tilde\beta_n = \frac{1 - \bar\alpha_{n-1}}{1 - \bar\alpha_n}\beta_n$
    (`variance="posterior"`) or $\beta_n$ (`"beta"`), the two choices of Ho et al. 2020, §3.2,
    and no noise at the last step: on all $N$ steps each step is
    [`DDPM.ancestral_step`][gpm_sde.processes.DDPM.ancestral_step].

    **On fewer steps** (`steps` or `ts`), as diffusers' `DDPMScheduler` with
    `num_inference_steps`: from step $n$ to the next step $n'$ of the sub-sequence, the same
    update with $\beta_n$ replaced by the skip's $1 - \bar\alpha_n/\bar\alpha_{n'}$ (and
    $\bar\alpha_{n-1}$ by $\bar\alpha_{n'}$ in $\tilde\beta$), $\bar\alpha_0 = 1$ after the
    last step.

    **The variance, against the references.** score_sde's `AncestralSamplingPredictor` (VP)
    takes $x = (x + \beta_n s_\theta)/\sqrt{1 - \beta_n} + \sqrt{\beta_n}\,z$: the same mean
    (with $\hat\varepsilon = -\sqrt{1-\bar\alpha_n}\,s_\theta$) and $\sigma_n^2 = \beta_n$,
    `variance="beta"`, and it adds that noise at every step, the last included, returning the
    noise-free mean there only through its `denoise` option (which then equals Ho et al.'s
    noise-free last step). diffusers' `DDPMScheduler` calls them `variance_type="fixed_small"`
    ($\tilde\beta$, its default) and `"fixed_large"` ($\beta$); both names are accepted here.
    The default is $\tilde\beta$, the posterior variance of $q(x_{n-1} \mid x_n, x_0)$.

    A `lax.scan` over the steps; step $n$ draws its noise from `jax.random.fold_in(noise_key,
    n)`.

    **Arguments:**

    - `ddpm`: the chain.
    - `eps_model`: the noise prediction `eps_model(n, x)`, `n` a 1-based integer step (a
      traced int32 scalar) and `x: (*event,)` one point (lifted to the cloud with
      [`on_cloud`][gpm_sde.scores.on_cloud]; a cloud model sees the whole cloud). For mixture
      data, [`exact_eps_model`][gpm_sde.samplers.exact_eps_model]; for a network of 0-based
      timesteps, [`from_eps_discrete`][gpm_sde.scores.from_eps_discrete].
    - `key`: split by `jax.random.split` into the prior draw (first) and the noise (second).
    - `n`, `event_shape`: the number of points and the shape of one point (read from `x_init`
      when it is given).
    - `steps`: the number of steps, $1..N$ (default: all $N$), spaced by `spacing` (see
      [`ddpm_timesteps`][gpm_sde.schedules.ddpm_timesteps]; default `"linspace"`); or
    - `ts`: the timesteps themselves, strictly decreasing and **0-based** as diffusers'
      `scheduler.timesteps` (timestep $t$ is step $n = t + 1$, at which `eps_model` is
      called).
    - `x_init`: a starting cloud `(m, *event)` at the first timestep instead of a draw of
      `ddpm.prior` ($\mathcal{N}(0, I)$).
    - `variance`: `"posterior"` (or `"fixed_small"`) for $\tilde\beta$, `"beta"` (or
      `"fixed_large"`) for $\beta$.

    **Returns:** [`Samples`][gpm_sde.samplers.Samples] with `.x` the cloud $x_0$ `(m, *event)`.
    """
    check_ddpm(ddpm)
    check_callable("eps_model", eps_model, "(n, x) -> ε̂")
    if variance not in VARIANCES:
        raise ValueError(
            f"`variance` must be one of {tuple(VARIANCES)} (σ_n² = β̃_n or β_n, Ho et al. 2020 "
            f"§3.2; diffusers' 'fixed_small' and 'fixed_large'), got {variance!r}."
        )
    kind = VARIANCES[variance]
    t = chain_timesteps(ddpm, steps, spacing, ts)
    x0, k_noise = start_cloud(ddpm.prior, key, n, event_shape, x_init, needs_noise=True)
    dtype = x0.dtype
    cur = t + 1  # 1-based steps n
    nxt = np.concatenate([cur[1:], [0]])  # the next step n', 0 after the last
    beta = jnp.where(
        jnp.asarray(nxt == cur - 1),
        ddpm.beta(cur),
        -jnp.expm1(jnp.log(ddpm.alpha_bar(cur)) - jnp.log(ddpm.alpha_bar(nxt))),
    )
    one_m_ab = ddpm.one_minus_alpha_bar(cur)
    var = ddpm.one_minus_alpha_bar(nxt) / one_m_ab * beta if kind == "posterior" else beta
    c_eps = (beta / jnp.sqrt(one_m_ab)).astype(dtype)
    inv_sqrt_alpha = (1.0 / jnp.sqrt(1.0 - beta)).astype(dtype)
    sigma = jnp.where(jnp.asarray(nxt > 0), jnp.sqrt(var), 0.0).astype(dtype)

    ns = jnp.asarray(cur, dtype=jnp.int32)
    return Samples(_ancestral_loop(eps_model, k_noise, x0, (ns, c_eps, inv_sqrt_alpha, sigma)))


@eqx.filter_jit
def _ancestral_loop(
    eps_model: Callable[..., Any], k_noise: PRNGKeyArray, x0: Array, per_step: tuple
) -> Array:
    """The ancestral loop over per-step coefficients, compiled once per model and shapes."""
    dtype = x0.dtype

    def step(x, inputs):
        n_k, c, inv, sig = inputs
        eps_hat = on_cloud(eps_model, n_k, x).astype(dtype)
        z = jr.normal(jr.fold_in(k_noise, n_k), x.shape, dtype=dtype)
        return inv * (x - c * eps_hat) + sig * z, None

    x, _ = jax.lax.scan(step, x0, per_step)
    return x
