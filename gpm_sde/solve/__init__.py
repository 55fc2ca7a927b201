"""Solvers: `simulate` a particle cloud with diffrax on a fixed grid."""

from .brownian import GridBrownianPath as GridBrownianPath
from .simulate import simulate as simulate
