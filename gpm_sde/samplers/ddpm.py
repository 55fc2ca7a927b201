r"""Ancestral sampling of the DDPM chain (Ho et al. 2020, Algorithm 2) and the exact noise
model of mixture data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..distributions import GaussianMixture
from ..processes import DDPM
from ..scores import on_cloud
from ._common import check_callable, check_cloud


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
    Ho et al. 2020, §3.2; see [`DDPM.eps_from_score`][gpm_sde.processes.ddpm.DDPM.eps_from_score]
    and [`DDPM.marginal`][gpm_sde.processes.ddpm.DDPM.marginal]). Build it with
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


def ddpm_ancestral(
    ddpm: DDPM,
    eps_model: Callable[..., Any],
    key: PRNGKeyArray,
    x_N: Float[Array, " m *event"],
    *,
    variance: str = "posterior",
) -> Float[Array, " m *event"]:
    r"""Ancestral sampling of the reverse DDPM chain (Ho et al. 2020, Algorithm 2): for
    $n = N, \dots, 1$,

    $$x_{n-1} = \frac{1}{\sqrt{\alpha_n}}\Big(x_n - \frac{\beta_n}{\sqrt{1 - \bar\alpha_n}}
    \,\hat\varepsilon(n, x_n)\Big) + \sigma_n z, \qquad z \sim \mathcal{N}(0, I),$$

    with $\sigma_n^2 = \tilde\beta_n$ (`variance="posterior"`) or $\beta_n$ (`"beta"`), and no
    noise at $n = 1$: each step is
    [`DDPM.ancestral_step`][gpm_sde.processes.ddpm.DDPM.ancestral_step].
    A `lax.scan` over the $N$ steps; step $n$ draws its noise from `jax.random.fold_in(key, n)`.

    **Arguments:**

    - `ddpm`: the chain.
    - `eps_model`: the pointwise noise prediction `eps_model(n, x)`, `n` a 1-based integer
      step (a traced int32 scalar) and `x: (*event,)` one point; lifted to the cloud with
      `jax.vmap`. For mixture data, [`exact_eps_model`][gpm_sde.samplers.exact_eps_model].
    - `key`: PRNG key.
    - `x_N`: the initial cloud `(m, *event)`, from `ddpm.prior` ($\mathcal{N}(0, I)$).
    - `variance`: `"posterior"` or `"beta"` (Ho et al. 2020, §3.2).

    **Returns:** the cloud $x_0$ `(m, *event)`.
    """
    check_ddpm(ddpm)
    check_callable("eps_model", eps_model, "(n, x) -> ε̂")
    check_cloud("x_N", x_N)
    if variance not in ("posterior", "beta"):
        raise ValueError(
            f"`variance` must be 'posterior' or 'beta' (σ_n² = β̃_n or β_n, Ho et al. 2020 "
            f"§3.2), got {variance!r}."
        )

    def step(x, n):
        eps_hat = on_cloud(eps_model, n, x)
        return ddpm.ancestral_step(jr.fold_in(key, n), x, eps_hat, n, variance), None

    ns = jnp.arange(ddpm.n_steps, 0, -1, dtype=jnp.int32)
    x, _ = jax.lax.scan(step, x_N, ns)
    return x
