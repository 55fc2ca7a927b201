"""Composable SDE terms on the particle cloud, the `SDE` module and its transforms."""

from .diffusion import AbstractDiffusion as AbstractDiffusion, ScalarDiffusion as ScalarDiffusion
from .drift import (
    AbstractDrift as AbstractDrift,
    FunctionDrift as FunctionDrift,
    LinearDrift as LinearDrift,
    ScaledDrift as ScaledDrift,
    ScoreDrift as ScoreDrift,
    SumDrift as SumDrift,
)
from .reverse import probability_flow as probability_flow, reverse as reverse
from .reweight_noise import reweight_noise as reweight_noise
from .sde import SDE as SDE
