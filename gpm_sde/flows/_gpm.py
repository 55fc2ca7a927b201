r"""Generative particle models (Franceschi et al. 2023): fields that move particles (the Int-PM
loss that moves a generator along them is [`int_pm_loss`][gpm_sde.losses.int_pm_loss])."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from ..schedules import AbstractSchedule, Schedule, as_schedule
from ..scores import on_cloud
from ..sde import SDE, AbstractDrift


class ScoreGANField(AbstractDrift):
    r"""The Score-GAN / score-based-diffusion field of GPM (Franceschi et al. 2023, Table 1 and
    §4.1):

    $$\nabla h_{\rho_s}(x) = \alpha(s)\,\nabla\log(q * k_{\sigma(s)})(x)
    - \beta(s)\,\nabla\log(\rho_s * k_{\sigma(s)})(x).$$

    Both scores are $\sigma$-conditioned and evaluated with
    [`on_cloud`][gpm_sde.scores.on_cloud]: `real(sigma, x)` and `gen(sigma, x)` pointwise
    (e.g. a network trained by denoising score matching on generated samples), or a cloud
    score called as `gen(sigma, y)` on the whole cloud (e.g. `KernelScore(bandwidth=σ)`, which
    is exactly $\nabla\log(\rho_s * k_\sigma)$ of the cloud).
    """

    real: Callable[..., Any]
    gen: Callable[..., Any]
    alpha: AbstractSchedule
    beta: AbstractSchedule
    sigma: AbstractSchedule

    def __call__(self, s, y, args=None):
        sigma = self.sigma(s)
        real = on_cloud(self.real, sigma, y)
        gen = on_cloud(self.gen, sigma, y)
        out = jnp.asarray(self.alpha(s), y.dtype) * real - jnp.asarray(self.beta(s), y.dtype) * gen
        return out.astype(y.dtype)


def score_gan_field(
    real: Callable[..., Any],
    gen: Callable[..., Any],
    alpha: Schedule,
    beta: Schedule,
    sigma: Schedule,
) -> ScoreGANField:
    r"""The GPM Score-GAN field
    $\alpha\nabla\log(q * k_\sigma) - \beta\nabla\log(\rho_s * k_\sigma)$
    (see [`ScoreGANField`][gpm_sde.flows.ScoreGANField])."""
    return ScoreGANField(real, gen, as_schedule(alpha), as_schedule(beta), as_schedule(sigma))


_COSTS: dict[str, Callable[[Array], Array]] = {
    "nonsaturating": lambda d: jax.nn.softplus(-d),
    "ipm": lambda d: -d,
    "hinge": lambda d: -d,
}


class DiscriminatorField(AbstractDrift):
    r"""The GAN / Discriminator-Flow field of GPM (Franceschi et al. 2023, §3 and Table 1):

    $$\nabla h_{\rho_s}(x) = -\nabla_x\, c\big(D(s, x)\big),$$

    with the generator cost $c$ of the loss that trained $D$: $c(d) =
    \operatorname{softplus}(-d)$ (non-saturating, $D$ a logit), $c(d) = -d$ for an IPM/WGAN
    critic and for the hinge loss (Lim & Ye 2017).

    **One convention.** Every discriminator and critic of this library is high on data: the
    logit of [`NonSaturatingGAN`][gpm_sde.losses.NonSaturatingGAN], the critics of
    [`WassersteinGAN`][gpm_sde.losses.WassersteinGAN] (which maximises
    $\mathbb{E}_q D - \mathbb{E}_\rho D$) and [`HingeGAN`][gpm_sde.losses.HingeGAN]. With the
    matching `kind` the field climbs $D$, towards the data. A critic trained **low** on data,
    such as the GPM authors' IPM critic (their `ipm_gan_discr_loss` minimises
    $\mathbb{E}_q D - \mathbb{E}_\rho D$ and their generator cost is $c(d) = d$), is used with
    `low_on_data=True`, which replaces $D$ by $-D$.
    """

    discriminator: Callable[..., Any]
    kind: Literal["nonsaturating", "ipm", "hinge"] = eqx.field(static=True)
    low_on_data: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if self.kind not in _COSTS:
            raise ValueError(f"`kind` must be one of {sorted(_COSTS)}, got {self.kind!r}.")
        if not isinstance(self.low_on_data, bool):
            raise TypeError(
                f"`low_on_data` must be a bool (True for a critic trained low on data), got "
                f"{type(self.low_on_data).__name__}."
            )

    def __call__(self, s, y, args=None):
        cost = _COSTS[self.kind]
        sign = -1.0 if self.low_on_data else 1.0

        def point(x):
            return -jax.grad(lambda z: cost(sign * self.discriminator(s, z)))(x)

        return jax.vmap(point)(y).astype(y.dtype)


def discriminator_field(
    D: Callable[..., Any],
    kind: Literal["nonsaturating", "ipm", "hinge"] = "nonsaturating",
    *,
    low_on_data: bool = False,
) -> DiscriminatorField:
    r"""The field $-\nabla_x c(D(s, x))$ of a (time-conditioned) discriminator `D(s, x)`
    trained high on data, or of $-D$ with `low_on_data=True` (see
    [`DiscriminatorField`][gpm_sde.flows.DiscriminatorField])."""
    return DiscriminatorField(D, kind, low_on_data)


def particle_flow(field: AbstractDrift | Callable[..., Any]) -> SDE:
    r"""The particle model $dx/ds = \nabla h_{\rho_s}(x)$ (Franceschi et al. 2023, eq. 2) as an
    ODE [`SDE`][gpm_sde.SDE]; `field` acts on the whole cloud `(s, y, args)`."""
    return SDE(field, None)
