r"""The verification toolkit: numerical checks of a claim about a sampler, a process or a law,
with tolerances that can be justified.

- **Moment z-scores**: how many standard errors a cloud's mean and covariance are from exact
  ones ([`moment_z_scores`][gpm_sde.verify.moment_z_scores]) or from another cloud's
  ([`two_sample_z_scores`][gpm_sde.verify.two_sample_z_scores]), and the false-alarm rate of
  a bound on many of them ([`false_alarm_bound`][gpm_sde.verify.false_alarm_bound]). The
  kernel two-sample test calibrated by permutations is
  [`gpm_sde.metrics.mmd_permutation_test`][gpm_sde.metrics.mmd_permutation_test].
- **Convergence orders**: one Brownian path seen at every step size, and the fitted order
  with a bootstrap standard error.
- **Gaussian laws**: the KL divergence of two Gaussians and the exact moments of the
  Euler–Maruyama chain of an affine SDE (the time step's bias, unsampled).
- **Sampler laws**: the exact Gaussian output law of a sampler with an affine score
  ([`sampler_gaussian_law`][gpm_sde.verify.sampler_gaussian_law]), through its own steps.
- **Fokker–Planck residuals**: the right-hand side of the Fokker–Planck equation by autodiff.

This is a top layer: it imports the core of `gpm_sde`, nothing in the core imports it.
"""

from ._convergence import (
    FineBrownianPath as FineBrownianPath,
    OrderFit as OrderFit,
    fit_order as fit_order,
    solve_on_path as solve_on_path,
    strong_error as strong_error,
    weak_error as weak_error,
)
from ._fokker_planck import fokker_planck_rhs as fokker_planck_rhs
from ._gaussian import (
    euler_maruyama_moments as euler_maruyama_moments,
    gaussian_kl as gaussian_kl,
    linear_process_euler_moments as linear_process_euler_moments,
)
from ._moments import (
    covariance_z_scores as covariance_z_scores,
    false_alarm_bound as false_alarm_bound,
    max_moment_z_score as max_moment_z_score,
    mean_z_scores as mean_z_scores,
    moment_vector as moment_vector,
    moment_z_scores as moment_z_scores,
    sample_moments as sample_moments,
    two_sample_z_scores as two_sample_z_scores,
)
from ._sampler_law import sampler_gaussian_law as sampler_gaussian_law
