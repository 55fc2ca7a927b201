r"""The Fokker–Planck operator of an SDE, by autodiff, for checking marginal identities exactly."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ..sde import SDE, ScalarDiffusion


def fokker_planck_rhs(
    sde: SDE,
    log_density: Callable[[Array], Array],
    s: Float[ArrayLike, ""],
    x: Float[Array, " d"],
) -> Float[Array, ""]:
    r"""The Fokker–Planck right-hand side of `sde` applied to a density $p$ at one point,

    $$\mathcal{L}^* p\,(s, x) = -\nabla\cdot\big(p\, b(s, \cdot)\big)(x)
    + \tfrac12 g(s)^2\,\Delta p(x),$$

    so that the law $p_s$ of `sde` solves $\partial_s p = \mathcal{L}^* p$ (Risken 1989,
    eq. 4.1). Computed with forward-over-reverse autodiff: no sampling, exact to round-off. The
    drift is evaluated on the one-particle cloud `x[None]`, so mean-field drifts are not
    meant here.

    **Arguments:**

    - `sde`: an [`SDE`][gpm_sde.SDE] with a [`ScalarDiffusion`][gpm_sde.ScalarDiffusion] or none.
    - `log_density`: `x -> log p(x)` on one point `x: (d,)`.
    - `s`: the time at which to evaluate the drift and diffusion.
    - `x`: the point.
    """
    if sde.diffusion is not None and not isinstance(sde.diffusion, ScalarDiffusion):
        raise TypeError(
            "`sde.diffusion` must be a ScalarDiffusion or None: the operator ½g²Δp assumes "
            f"isotropic, state-independent noise, got {type(sde.diffusion).__name__}."
        )

    def density(z):
        return jnp.exp(log_density(z))

    def flux(z):
        return density(z) * sde.drift(s, z[None], None)[0]

    divergence = jnp.trace(jax.jacfwd(flux)(x))
    out = -divergence
    if isinstance(sde.diffusion, ScalarDiffusion):
        laplacian = jnp.trace(jax.hessian(density)(x))
        out = out + 0.5 * sde.diffusion.g(s) ** 2 * laplacian
    return out
