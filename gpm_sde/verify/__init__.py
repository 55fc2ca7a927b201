"""Numerical verification tools: the Fokker–Planck operator by autodiff."""

from .fokker_planck import fokker_planck_rhs as fokker_planck_rhs
