r"""Samplers: the classic generation algorithms, each a few lines on top of the SDE algebra.

- Continuous time, through [`simulate`][gpm_sde.simulate]:
  [`reverse_sde_sample`][gpm_sde.samplers.reverse_sde_sample] (any member of the reverse
  family), [`probability_flow_sample`][gpm_sde.samplers.probability_flow_sample] and
  [`annealed_langevin`][gpm_sde.samplers.annealed_langevin] (Song & Ermon 2019), which is
  Euler–Maruyama of a time-changed [`langevin_sde`][gpm_sde.samplers.langevin_sde].
- `lax.scan` loops: [`predictor_corrector`][gpm_sde.samplers.predictor_corrector] (Song et al.
  2021), [`ddpm_ancestral`][gpm_sde.samplers.ddpm_ancestral] (Ho et al. 2020) and
  [`ddim`][gpm_sde.samplers.ddim] (Song, Meng & Ermon 2021).
- [`tweedie_denoise`][gpm_sde.samplers.tweedie_denoise]: the final noise-free step
  $\mathbb{E}[x_0 \mid x_\epsilon]$ after a sampler that stops at $t = \epsilon$.

**What they return.** The two samplers that take a `saveat` (`reverse_sde_sample`,
`probability_flow_sample`) return the `diffrax.Solution` of `simulate`, so intermediate clouds
are at hand (`sol.ys[i]` at generation time `sol.ts[i]`); every other sampler returns the final
cloud `(N, *event)`.

**Conventions.** Scores and noise models are **pointwise**, on one point `x: (*event,)`, and
lifted to the cloud with `jax.vmap` by [`on_cloud`][gpm_sde.scores.on_cloud]: `score(t, x)`
in diffusion time for a process, `score(sigma, x)` for annealed Langevin, `eps_model(n, x)`
with a 1-based DDPM step `n`. A cloud score
([`AbstractCloudScore`][gpm_sde.scores.AbstractCloudScore], e.g. a mean-field
[`KernelScore`][gpm_sde.scores.KernelScore]) is accepted wherever a score is, and is called
on the whole cloud. Every sampler works on any event shape, is jittable (with the integer step
counts static) and takes an explicit PRNG key.
"""

from .ddim import ddim as ddim
from .ddpm import (
    ExactEpsModel as ExactEpsModel,
    ddpm_ancestral as ddpm_ancestral,
    exact_eps_model as exact_eps_model,
)
from .langevin import (
    annealed_langevin as annealed_langevin,
    geometric_sigmas as geometric_sigmas,
    langevin_sde as langevin_sde,
)
from .predictor_corrector import predictor_corrector as predictor_corrector
from .reverse_sde import (
    probability_flow_sample as probability_flow_sample,
    reverse_sde_sample as reverse_sde_sample,
)
from .tweedie import tweedie_denoise as tweedie_denoise
