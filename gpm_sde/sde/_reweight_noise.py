r"""The marginal-preserving identity: trade drift for noise without changing any marginal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._checks import check_callable, check_nonnegative_schedule, is_literal_zero
from ..schedules import Constant, Schedule, as_schedule
from ._diffusion import ScalarDiffusion
from ._drift import ScoreDrift
from ._sde import SDE


def reweight_noise(sde: SDE, gen_score: Callable[..., Any], diffusion: Schedule) -> SDE:
    r"""Change the noise of `sde` to $\lambda(s)$ and keep every marginal.

    If $dx = b\,ds + g\,dW$ has marginals $p_s$, then

    $$dx = \big[b + \tfrac12(\lambda^2 - g^2)\,\nabla\log p_s\big]\,ds + \lambda\,dW$$

    has the same marginals for every $\lambda \ge 0$: both Fokker–Planck right-hand sides equal
    $-\nabla\cdot(p\,b) + \tfrac12 g^2\Delta p$, because $\nabla\cdot(p\nabla\log p) = \Delta p$
    (Song et al. 2021, appendix D.1; for DiffFlow, the invariance of the marginals to the score
    weights stated in Zhang et al. 2023, abstract).

    **Arguments:**

    - `sde`: an [`SDE`][gpm_sde.SDE] with isotropic state-independent noise
      ([`ScalarDiffusion`][gpm_sde.ScalarDiffusion]) or none.
    - `gen_score`: the score `(s, x) -> ∇log p_s(x)` of the law of `sde` itself, in its own
      (generation) time $s$: pointwise on one point, or a cloud score such as
      [`KernelScore`][gpm_sde.scores.KernelScore], called on the whole cloud.
    - `diffusion`: the new noise scale $\lambda(s)$, a float or callable; `0` gives an ODE.

    **Returns:** an [`SDE`][gpm_sde.SDE] with the `time_range` of `sde`.
    """
    if not isinstance(sde, SDE):
        raise TypeError(f"`sde` must be an SDE, got {type(sde).__name__}.")
    if sde.diffusion is None:
        g2 = Constant(0.0)
    elif isinstance(sde.diffusion, ScalarDiffusion):
        g2 = sde.diffusion.g**2
    else:
        raise TypeError(
            f"`sde.diffusion` must be a ScalarDiffusion (isotropic, state-independent noise) or "
            f"None for the identity b + ½(λ² − g²)∇log p, got {type(sde.diffusion).__name__}; "
            f"state-dependent noise needs the extra term ½∇·(g²) and is not supported."
        )
    check_callable(
        "gen_score",
        gen_score,
        "(s, x) -> ∇log p_s(x)",
        fix="pass a score on one point, or a cloud score (`gpm_sde.scores.AbstractCloudScore`)",
    )
    check_nonnegative_schedule("diffusion", diffusion, fix="λ is a noise scale")
    lam = as_schedule(diffusion)
    drift = sde.drift + ScoreDrift(
        0.5 * (lam**2 - g2), gen_score, "`gen_score` of `reweight_noise`"
    )
    return SDE(
        drift,
        None if is_literal_zero(diffusion) else ScalarDiffusion(lam),
        time_range=sde.time_range,
    )
