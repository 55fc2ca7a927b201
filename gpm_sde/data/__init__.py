r"""Data laws to train on and to measure against: 2-D toy laws and the 8×8 digits.

- Mixtures, exact [`GaussianMixture`][gpm_sde.GaussianMixture]s (so every smoothed or noised
  marginal and its score are exact too): [`five_gaussians`][gpm_sde.data.five_gaussians]
  (GPM's toy), [`eight_gaussians`][gpm_sde.data.eight_gaussians],
  [`grid_gaussians`][gpm_sde.data.grid_gaussians].
- Samplers `(key, n) -> (n, 2)`, pure JAX and keyed: [`two_moons`][gpm_sde.data.two_moons],
  [`swiss_roll`][gpm_sde.data.swiss_roll], [`checkerboard`][gpm_sde.data.checkerboard].
- Real data: [`digits`][gpm_sde.data.digits], scikit-learn's bundled 8×8 handwritten digits
  scaled to $[-1, 1]$, with a fixed stratified train/test split.
"""

from ._digits import (
    DIGITS_SIZES as DIGITS_SIZES,
    digits as digits,
    digits_split as digits_split,
)
from ._toy import (
    checkerboard as checkerboard,
    eight_gaussians as eight_gaussians,
    five_gaussians as five_gaussians,
    grid_gaussians as grid_gaussians,
    swiss_roll as swiss_roll,
    two_moons as two_moons,
)
