r"""Two-sample metrics between particle clouds `(n, *event)`: the unbiased kernel MMD² with its
calibrated permutation test, and the sliced Wasserstein distance.

This layer imports nothing from the rest of `gpm_sde` (only the argument checks), so any
other layer, and any user, can call it on plain arrays.
"""

from .mmd import (
    median_heuristic_bandwidths as median_heuristic_bandwidths,
    mmd as mmd,
    mmd_permutation_test as mmd_permutation_test,
)
from .sliced_wasserstein import sliced_wasserstein as sliced_wasserstein
