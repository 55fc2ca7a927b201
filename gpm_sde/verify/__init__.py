"""Numerical verification tools: the Fokker–Planck operator by autodiff, moment z-scores."""

from .fokker_planck import fokker_planck_rhs as fokker_planck_rhs
from .moments import (
    covariance_z_scores as covariance_z_scores,
    max_moment_z_score as max_moment_z_score,
    mean_z_scores as mean_z_scores,
)
