"""The registry: every claim `python -m theory` knows, in report order."""

from __future__ import annotations

from collections.abc import Sequence

from .claim import Claim
from .claims import (
    convergence_orders,
    exact_marginals,
    generator_identity,
    lambda_family,
    pf_likelihood,
    reverse_marginals,
)

CLAIMS: tuple[Claim, ...] = (
    generator_identity.CLAIM,
    exact_marginals.CLAIM,
    reverse_marginals.CLAIM,
    lambda_family.CLAIM,
    pf_likelihood.CLAIM,
    convergence_orders.CLAIM,
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
