"""Forward (noising) processes: linear SDEs fixed by their marginals, and the DDPM chain."""

from ._base import AbstractLinearProcess as AbstractLinearProcess
from ._cosine import Cosine as Cosine, cosine as cosine
from ._ddpm import DDPM as DDPM, ddpm as ddpm
from ._edm import EDM as EDM, edm as edm
from ._linear import LinearProcess as LinearProcess, vp_from_int_beta as vp_from_int_beta
from ._subvp import SubVP as SubVP, subvp as subvp
from ._ve import VE as VE, ve as ve
from ._vp import VP as VP, integrated_beta as integrated_beta, vp as vp
