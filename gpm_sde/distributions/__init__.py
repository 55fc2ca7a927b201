"""Exact probability laws: Gaussian mixtures and the isotropic Gaussian prior."""

from .gaussian_mixture import GaussianMixture as GaussianMixture
from .isotropic_normal import IsotropicNormal as IsotropicNormal
