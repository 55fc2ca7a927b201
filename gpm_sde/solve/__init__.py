"""Solvers: `simulate` a particle cloud with diffrax on a fixed grid, and `shard_cloud` to run
it on many devices."""

from ._brownian import GridBrownianPath as GridBrownianPath
from ._sharding import shard_cloud as shard_cloud
from ._simulate import NonFiniteSolutionError as NonFiniteSolutionError, simulate as simulate
