"""The registry: every claim `python -m theory` knows, in report order."""

from __future__ import annotations

from collections.abc import Sequence

from .claim import Claim
from .claims import (
    convergence_orders,
    diffflow_ends,
    diffflow_invariance_exact,
    diffflow_invariance_gaussian,
    diffflow_invariance_meanfield,
    discriminator_flow,
    exact_marginals,
    generator_identity,
    kl_dissipation,
    lambda_family,
    pf_likelihood,
    reverse_marginals,
    score_gan_field,
)

CLAIMS: tuple[Claim, ...] = (
    generator_identity.CLAIM,
    exact_marginals.CLAIM,
    reverse_marginals.CLAIM,
    lambda_family.CLAIM,
    pf_likelihood.CLAIM,
    convergence_orders.CLAIM,
    diffflow_invariance_exact.CLAIM,
    diffflow_invariance_gaussian.CLAIM,
    diffflow_invariance_meanfield.CLAIM,
    diffflow_ends.CLAIM,
    kl_dissipation.CLAIM,
    score_gan_field.CLAIM,
    discriminator_flow.CLAIM,
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
