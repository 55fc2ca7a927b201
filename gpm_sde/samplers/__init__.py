r"""Samplers: the classic generation algorithms, each a few lines on top of the SDE algebra.

- Continuous time, through [`simulate`][gpm_sde.simulate]:
  [`reverse_sde_sample`][gpm_sde.samplers.reverse_sde_sample] (any member of the reverse
  family), [`probability_flow_sample`][gpm_sde.samplers.probability_flow_sample] and
  [`annealed_langevin`][gpm_sde.samplers.annealed_langevin] (Song & Ermon 2019), which is
  Euler–Maruyama of the time-changed [`langevin_flow`][gpm_sde.flows.langevin_flow].
- `lax.scan` loops: [`predictor_corrector`][gpm_sde.samplers.predictor_corrector] (Song et al.
  2021), [`ddpm_ancestral`][gpm_sde.samplers.ddpm_ancestral] (Ho et al. 2020) and
  [`ddim`][gpm_sde.samplers.ddim] (Song, Meng & Ermon 2021).
- Few-step, high-order samplers in the noise-to-signal ratio $\tilde\sigma = \sigma/\alpha$
  (any linear process, on Karras et al.'s $\rho$-grid by default):
  [`edm_heun`][gpm_sde.samplers.edm_heun] and
  [`edm_stochastic`][gpm_sde.samplers.edm_stochastic] (Karras et al. 2022, Algorithms 1 and
  2), [`dpm_solver_pp_2m`][gpm_sde.samplers.dpm_solver_pp_2m] and
  [`dpm_solver_pp_2s`][gpm_sde.samplers.dpm_solver_pp_2s] (Lu et al. 2022, in
  $\lambda = \log(\alpha/\sigma)$), and [`euler_ancestral`][gpm_sde.samplers.euler_ancestral]
  (whose $\eta = 0$ is DDIM). Each is a [`StepPlan`][gpm_sde.samplers.StepPlan] of steps
  affine in their noise ([`sampler_plan`][gpm_sde.samplers.sampler_plan]), run by one
  `lax.scan`; [`sampler_gaussian_law`][gpm_sde.verify.sampler_gaussian_law] pushes a
  Gaussian law through it exactly.
- [`tweedie_denoise`][gpm_sde.samplers.tweedie_denoise]: the final noise-free step
  $\mathbb{E}[x_0 \mid x_\epsilon]$ after a sampler that stops at $t = \epsilon$.

**One calling convention.** Every sampler is called as

```python
out = sampler(model..., key, n, event_shape, *, steps=... | ts=..., x_init=None, ...)
```

- **Start.** By default the sampler draws `n` points of shape `event_shape` from its prior
  (`process.prior`, `ddpm.prior`, or $\mathcal{N}(0, \sigma_1^2 I)$ for annealed Langevin)
  with the first key of `jax.random.split(key)`, and drives its noise with the second. Pass a
  given starting cloud as `x_init` instead (then `n` and `event_shape` are read from it): the
  same key then gives the same noise, so `x_init = prior.sample(jax.random.split(key)[0], n,
  event_shape)` reproduces the default run, and a noised data cloud at an intermediate time
  (`ts[0] > 0`) gives SDEdit-style editing.
- **Grid.** `steps` equal steps, or an explicit grid `ts`. For the continuous samplers `ts` is
  an increasing grid of generation times $s = T - t$ in $[0, T]$ (build one with
  [`time_grid`][gpm_sde.schedules.time_grid]: uniform, quadratic or the Karras $\rho$-grid);
  for the DDPM chain it is the 0-based, decreasing integer timesteps of diffusers and DDIM
  ([`ddpm_timesteps`][gpm_sde.schedules.ddpm_timesteps]). Annealed Langevin's grid is its
  noise levels `sigmas` (e.g. [`karras_sigmas`][gpm_sde.schedules.karras_sigmas]) with
  `steps_per_level` steps each. `ts` equal to the grid that `steps` builds gives bitwise the
  same samples.

**What they return.** Every sampler returns a [`Samples`][gpm_sde.samplers.Samples]: `.x` is
the final cloud `(n, *event)`, the samples, as score_sde, k-diffusion and diffusers return
them. The samplers built on [`simulate`][gpm_sde.simulate] (`reverse_sde_sample`,
`probability_flow_sample`) also take a `saveat` and then fill `.ts` (generation times) and
`.ys` (the clouds there); elsewhere these are `None`. One small pytree, the same for all, with
a field that is never optional: `sampler(...).x`.

**Song et al. conventions.** [`predictor_corrector`][gpm_sde.samplers.predictor_corrector]
runs the corrector first and returns the last predictor step's noise-free mean by default
(`order="corrector_first"`, `denoise=True`), as score_sde's `pc_sampler` with its
`noise_removal`; `order="predictor_first"` (Algorithm 1 as printed) and `denoise=False` are
the alternatives. [`ddpm_ancestral`][gpm_sde.samplers.ddpm_ancestral] uses the posterior
variance $\tilde\beta_n$ by default (diffusers' `"fixed_small"`); score_sde's ancestral
predictor uses $\beta_n$, `variance="beta"`.

**Conventions.** Scores and noise models are **pointwise**, on one point `x: (*event,)`, and
lifted to the cloud with `jax.vmap` by [`on_cloud`][gpm_sde.scores.on_cloud]: `score(t, x)`
in diffusion time for a process, `score(sigma, x)` for annealed Langevin, `eps_model(n, x)`
with a 1-based DDPM step `n`. A cloud score
([`AbstractCloudScore`][gpm_sde.scores.AbstractCloudScore], e.g. a mean-field
[`KernelScore`][gpm_sde.scores.KernelScore]) is accepted wherever a score is, and is called
on the whole cloud. Every sampler works on any event shape, is jittable (with the integer step
counts static) and takes an explicit PRNG key.
"""

from ._ddgan import (
    ddgan_chain as ddgan_chain,
    ddgan_pairs as ddgan_pairs,
    ddgan_posterior_sample as ddgan_posterior_sample,
    ddgan_sample as ddgan_sample,
)
from ._ddim import ddim as ddim
from ._ddpm import (
    ExactEpsModel as ExactEpsModel,
    ddpm_ancestral as ddpm_ancestral,
    exact_eps_model as exact_eps_model,
)
from ._dpm_solver import dpm_solver_pp_2m as dpm_solver_pp_2m, dpm_solver_pp_2s as dpm_solver_pp_2s
from ._edm import edm_heun as edm_heun, edm_stochastic as edm_stochastic
from ._euler_ancestral import euler_ancestral as euler_ancestral
from ._langevin import (
    annealed_langevin as annealed_langevin,
    geometric_sigmas as geometric_sigmas,
)
from ._plan import StepPlan as StepPlan
from ._predictor_corrector import predictor_corrector as predictor_corrector
from ._result import Samples as Samples
from ._reverse_sde import (
    probability_flow_sample as probability_flow_sample,
    reverse_sde_sample as reverse_sde_sample,
)
from ._sampler_plan import sampler_plan as sampler_plan
from ._tdpm import tdpm_grid as tdpm_grid, tdpm_sample as tdpm_sample
from ._tweedie import tweedie_denoise as tweedie_denoise
