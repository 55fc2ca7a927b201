"""Exact probability laws: Gaussian mixtures and the isotropic Gaussian prior."""

from ._gaussian_mixture import GaussianMixture as GaussianMixture
from ._isotropic_normal import IsotropicNormal as IsotropicNormal
