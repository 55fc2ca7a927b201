r"""Two-sample metrics between particle clouds `(n, *event)`: the unbiased kernel MMD² with its
calibrated permutation test, and the sliced Wasserstein distance.

This layer imports nothing from the rest of `gpm_sde` (only the argument checks), so any
other layer, and any user, can call it on plain arrays.
"""

from .energy_distance import energy_distance as energy_distance
from .frechet_distance import frechet_distance as frechet_distance
from .gaussian_w2 import gaussian_w2 as gaussian_w2, gaussian_w2_squared as gaussian_w2_squared
from .mmd import (
    median_heuristic_bandwidths as median_heuristic_bandwidths,
    mmd as mmd,
    mmd_permutation_test as mmd_permutation_test,
)
from .sinkhorn import sinkhorn_divergence as sinkhorn_divergence
from .sliced_wasserstein import sliced_wasserstein as sliced_wasserstein
