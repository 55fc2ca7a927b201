"""Solvers: `simulate` a particle cloud with diffrax on a fixed grid, and `shard_cloud` to run
it on many devices."""

from .brownian import GridBrownianPath as GridBrownianPath
from .sharding import shard_cloud as shard_cloud
from .simulate import NonFiniteSolutionError as NonFiniteSolutionError, simulate as simulate
