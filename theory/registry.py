"""The registry: every claim `python -m theory` knows, in report order."""

from __future__ import annotations

from collections.abc import Sequence

from .claims import (
    convergence_orders,
    ddpm_closed_form,
    ddpm_eps_mean,
    ddpm_exact_eps,
    ddpm_to_vp,
    diffflow_ends,
    diffflow_invariance_exact,
    diffflow_invariance_gaussian,
    diffflow_invariance_meanfield,
    diffflow_likelihood,
    diffflow_spectrum,
    discriminator_flow,
    dsm_minimiser,
    elbo_ppca,
    exact_marginals,
    fgan_tightness,
    generator_identity,
    guidance,
    int_pm_ntk,
    iwae_monotone,
    kl_dissipation,
    lambda_family,
    langevin_vs_annealed,
    lsgan_pearson,
    optimal_discriminator,
    pf_likelihood,
    reverse_marginals,
    sampler_orders,
    score_gan_field,
    wgan_gp_w1,
)
from .types import Claim

CLAIMS: tuple[Claim, ...] = (
    generator_identity.CLAIM,
    exact_marginals.CLAIM,
    reverse_marginals.CLAIM,
    lambda_family.CLAIM,
    pf_likelihood.CLAIM,
    convergence_orders.CLAIM,
    sampler_orders.CLAIM,
    ddpm_closed_form.CLAIM,
    ddpm_eps_mean.CLAIM,
    ddpm_exact_eps.CLAIM,
    ddpm_to_vp.CLAIM,
    langevin_vs_annealed.CLAIM,
    diffflow_invariance_exact.CLAIM,
    diffflow_invariance_gaussian.CLAIM,
    diffflow_invariance_meanfield.CLAIM,
    diffflow_ends.CLAIM,
    diffflow_spectrum.CLAIM,
    kl_dissipation.CLAIM,
    diffflow_likelihood.CLAIM,
    score_gan_field.CLAIM,
    discriminator_flow.CLAIM,
    optimal_discriminator.CLAIM,
    fgan_tightness.CLAIM,
    lsgan_pearson.CLAIM,
    wgan_gp_w1.CLAIM,
    dsm_minimiser.CLAIM,
    int_pm_ntk.CLAIM,
    guidance.CLAIM,
    elbo_ppca.CLAIM,
    iwae_monotone.CLAIM,
)


def select(names: Sequence[str]) -> list[Claim]:
    """The claims called `names`, in registry order (all of them when `names` is empty).

    Raises `KeyError` naming the valid claims if a name is unknown.
    """
    by_name = {claim.name: claim for claim in CLAIMS}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise KeyError(f"unknown claim(s) {', '.join(unknown)}; valid claims: {', '.join(by_name)}")
    return [claim for claim in CLAIMS if not names or claim.name in names]
