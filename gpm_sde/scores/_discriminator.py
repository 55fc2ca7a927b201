r"""The score difference read off a discriminator: $\nabla_x \operatorname{logit} D \approx
\nabla\log q - \nabla\log p$."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
from jaxtyping import Array, ArrayLike, Float


class DiscriminatorScoreDifference(eqx.Module):
    r"""$\nabla_x \operatorname{logit} D(s, x)$, the score difference estimated by a
    discriminator.

    For the optimal vanilla-GAN discriminator $D^* = q/(q + p)$ (Goodfellow et al. 2014,
    prop. 1), $\operatorname{logit} D^* = \log q - \log p$, so its gradient is exactly
    $\nabla\log q - \nabla\log p$: the drift of DiffFlow's GAN end.

    **Arguments:**

    - `logit`: `logit(s, x) -> scalar`, the discriminator's pre-sigmoid output on one point.
    """

    logit: Callable[..., Any]

    def __call__(
        self, s: Float[ArrayLike, ""], x: Float[Array, "*event"]
    ) -> Float[Array, "*event"]:
        return jax.grad(lambda z: self.logit(s, z))(x)
