"""Unified flows: the DiffFlow SDE and its ends, and generative particle models (GPM)."""

from ._diffflow import diffflow as diffflow, gan_flow as gan_flow, langevin_flow as langevin_flow
from ._gaussian import GaussianDiffFlow as GaussianDiffFlow, gaussian_diffflow as gaussian_diffflow
from ._gpm import (
    DiscriminatorField as DiscriminatorField,
    ScoreGANField as ScoreGANField,
    discriminator_field as discriminator_field,
    particle_flow as particle_flow,
    score_gan_field as score_gan_field,
)
