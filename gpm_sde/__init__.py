"""gpm_sde: GANs and score-based diffusion as one object, a particle cloud moved by an SDE.

See DESIGN §3 for the public names. Everything here is a pure function or an `eqx.Module`.
"""

from . import (
    data as data,
    distributions as distributions,
    flows as flows,
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
from .distributions import GaussianMixture as GaussianMixture, IsotropicNormal as IsotropicNormal
from .flows import (
    diffflow as diffflow,
    discriminator_field as discriminator_field,
    gan_flow as gan_flow,
    int_pm_loss as int_pm_loss,
    langevin_flow as langevin_flow,
    particle_flow as particle_flow,
    score_gan_field as score_gan_field,
)
from .likelihood import (
    bits_per_dim as bits_per_dim,
    flow_log_likelihood as flow_log_likelihood,
    log_likelihood as log_likelihood,
)
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

__version__ = "0.1.0"
