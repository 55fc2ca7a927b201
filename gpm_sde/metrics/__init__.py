r"""Two-sample metrics between particle clouds `(n, *event)`: the unbiased kernel MMD² with its
calibrated permutation test, and the sliced Wasserstein distance.

This layer imports nothing from the rest of `gpm_sde` (only the argument checks), so any
other layer, and any user, can call it on plain arrays.

For the 8×8 digits, `digits_fd` is the analogue of the FID (the Fréchet distance of the features
of a small classifier shipped with the package) and `digits_class_coverage` the fraction of a
sample recognised as each digit.
"""

from ._digits_classifier import (
    DigitsClassifier as DigitsClassifier,
    digits_class_coverage as digits_class_coverage,
    digits_fd as digits_fd,
    digits_features as digits_features,
    digits_predict as digits_predict,
    load_digits_classifier as load_digits_classifier,
)
from ._energy_distance import energy_distance as energy_distance
from ._frechet_distance import frechet_distance as frechet_distance
from ._gaussian_w2 import gaussian_w2 as gaussian_w2, gaussian_w2_squared as gaussian_w2_squared
from ._mmd import (
    median_heuristic_bandwidths as median_heuristic_bandwidths,
    mmd as mmd,
    mmd_permutation_test as mmd_permutation_test,
)
from ._mode_weights import mode_weights as mode_weights
from ._sinkhorn import sinkhorn_divergence as sinkhorn_divergence
from ._sliced_wasserstein import sliced_wasserstein as sliced_wasserstein
