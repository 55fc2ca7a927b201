"""gpm_sde: GANs and score-based diffusion as one object, a particle cloud moved by an SDE.

The top level holds the subpackages and the names a user needs first (the layers are described
on the documentation's architecture page). Everything here is a pure function or an
`eqx.Module`.

The imports are lazy (PEP 562): `import gpm_sde` loads no JAX, and `gpm_sde.NAME` imports the
subpackage that defines `NAME` on first use. Static type checkers see the plain imports below
`TYPE_CHECKING`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The subpackages, importable as attributes (`gpm_sde.flows`).
_SUBPACKAGES = (
    "data",
    "distributions",
    "flows",
    "likelihood",
    "losses",
    "metrics",
    "nn",
    "processes",
    "samplers",
    "schedules",
    "scores",
    "sde",
    "solve",
    "train",
    "verify",
)

# Each top-level name and the subpackage that defines it.
_NAMES = {
    "GaussianMixture": "distributions",
    "IsotropicNormal": "distributions",
    "diffflow": "flows",
    "discriminator_field": "flows",
    "gan_flow": "flows",
    "langevin_flow": "flows",
    "particle_flow": "flows",
    "score_gan_field": "flows",
    "int_pm_loss": "losses",
    "bits_per_dim": "likelihood",
    "flow_log_likelihood": "likelihood",
    "log_likelihood": "likelihood",
    "DDPM": "processes",
    "AbstractLinearProcess": "processes",
    "cosine": "processes",
    "ddpm": "processes",
    "edm": "processes",
    "subvp": "processes",
    "ve": "processes",
    "vp": "processes",
    "MixtureMarginalScore": "scores",
    "SDE": "sde",
    "LinearDrift": "sde",
    "ScalarDiffusion": "sde",
    "ScoreDrift": "sde",
    "probability_flow": "sde",
    "reverse": "sde",
    "reweight_noise": "sde",
    "simulate": "solve",
    "fokker_planck_rhs": "verify",
}

__all__ = [  # noqa: RUF022 (the order of the table above)
    "__version__",
    "data",
    "distributions",
    "flows",
    "likelihood",
    "losses",
    "metrics",
    "nn",
    "processes",
    "samplers",
    "schedules",
    "scores",
    "sde",
    "solve",
    "train",
    "verify",
    "GaussianMixture",
    "IsotropicNormal",
    "diffflow",
    "discriminator_field",
    "gan_flow",
    "langevin_flow",
    "particle_flow",
    "score_gan_field",
    "int_pm_loss",
    "bits_per_dim",
    "flow_log_likelihood",
    "log_likelihood",
    "DDPM",
    "AbstractLinearProcess",
    "cosine",
    "ddpm",
    "edm",
    "subvp",
    "ve",
    "vp",
    "MixtureMarginalScore",
    "SDE",
    "LinearDrift",
    "ScalarDiffusion",
    "ScoreDrift",
    "probability_flow",
    "reverse",
    "reweight_noise",
    "simulate",
    "fokker_planck_rhs",
]


def __getattr__(name: str) -> Any:
    """Import a subpackage, or the subpackage that defines a top-level name, on first use."""
    if name in _SUBPACKAGES:
        value = importlib.import_module(f".{name}", __name__)
    elif name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from . import (
        data as data,
        distributions as distributions,
        flows as flows,
        likelihood as likelihood,
        losses as losses,
        metrics as metrics,
        nn as nn,
        processes as processes,
        samplers as samplers,
        schedules as schedules,
        scores as scores,
        sde as sde,
        solve as solve,
        train as train,
        verify as verify,
    )
    from .distributions import (
        GaussianMixture as GaussianMixture,
        IsotropicNormal as IsotropicNormal,
    )
    from .flows import (
        diffflow as diffflow,
        discriminator_field as discriminator_field,
        gan_flow as gan_flow,
        langevin_flow as langevin_flow,
        particle_flow as particle_flow,
        score_gan_field as score_gan_field,
    )
    from .likelihood import (
        bits_per_dim as bits_per_dim,
        flow_log_likelihood as flow_log_likelihood,
        log_likelihood as log_likelihood,
    )
    from .losses import int_pm_loss as int_pm_loss
    from .processes import (
        DDPM as DDPM,
        AbstractLinearProcess as AbstractLinearProcess,
        cosine as cosine,
        ddpm as ddpm,
        edm as edm,
        subvp as subvp,
        ve as ve,
        vp as vp,
    )
    from .scores import MixtureMarginalScore as MixtureMarginalScore
    from .sde import (
        SDE as SDE,
        LinearDrift as LinearDrift,
        ScalarDiffusion as ScalarDiffusion,
        ScoreDrift as ScoreDrift,
        probability_flow as probability_flow,
        reverse as reverse,
        reweight_noise as reweight_noise,
    )
    from .solve import simulate as simulate
    from .verify import fokker_planck_rhs as fokker_planck_rhs
