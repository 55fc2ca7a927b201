"""Forward (noising) processes: linear SDEs fixed by their marginals, and the DDPM chain."""

from ._linear import LinearProcess as LinearProcess, vp_from_int_beta as vp_from_int_beta
from .base import AbstractLinearProcess as AbstractLinearProcess
from .cosine import Cosine as Cosine, cosine as cosine
from .ddpm import DDPM as DDPM, ddpm as ddpm
from .edm import EDM as EDM, edm as edm
from .subvp import SubVP as SubVP, subvp as subvp
from .ve import VE as VE, ve as ve
from .vp import VP as VP, integrated_beta as integrated_beta, vp as vp
