"""Composable SDE terms on the particle cloud, the `SDE` module and its transforms."""

from ._diffusion import AbstractDiffusion as AbstractDiffusion, ScalarDiffusion as ScalarDiffusion
from ._drift import (
    AbstractDrift as AbstractDrift,
    FunctionDrift as FunctionDrift,
    LinearDrift as LinearDrift,
    ScaledDrift as ScaledDrift,
    ScoreDrift as ScoreDrift,
    SumDrift as SumDrift,
)
from ._reverse import probability_flow as probability_flow, reverse as reverse
from ._reweight_noise import reweight_noise as reweight_noise
from ._sde import SDE as SDE
