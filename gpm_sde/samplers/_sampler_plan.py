"""`sampler_plan`: the step plan of a sampler, the code it runs, for tools that analyse it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..processes import AbstractLinearProcess
from ._dpm_solver import dpm_solver_pp_2m, dpm_solver_pp_2s, multistep_plan, singlestep_plan
from ._edm import edm_heun, edm_stochastic, heun_plan
from ._euler_ancestral import ancestral_plan, euler_ancestral
from ._plan import StepPlan

_PLANS: dict[Any, Callable[..., StepPlan]] = {
    edm_heun: heun_plan,
    edm_stochastic: heun_plan,
    dpm_solver_pp_2m: multistep_plan,
    dpm_solver_pp_2s: singlestep_plan,
    euler_ancestral: ancestral_plan,
}
_DEFAULTS: dict[Any, dict[str, Any]] = {
    edm_stochastic: {"s_churn": 40.0},
    euler_ancestral: {"eta": 1.0},
}


def sampler_plan(
    sampler: Callable[..., Any],
    process: AbstractLinearProcess,
    score: Callable[..., Any],
    *,
    x_init: bool = False,
    **options: Any,
) -> StepPlan:
    r"""The [`StepPlan`][gpm_sde.samplers.StepPlan] that `sampler(process, score, key, ...,
    **options)` runs: `sampler(...).x` is `plan.run(x0, noise_key)` for the starting cloud
    `x0` and the second key of `jax.random.split(key)`.

    **Arguments:**

    - `sampler`: one of [`edm_heun`][gpm_sde.samplers.edm_heun],
      [`edm_stochastic`][gpm_sde.samplers.edm_stochastic],
      [`dpm_solver_pp_2m`][gpm_sde.samplers.dpm_solver_pp_2m],
      [`dpm_solver_pp_2s`][gpm_sde.samplers.dpm_solver_pp_2s],
      [`euler_ancestral`][gpm_sde.samplers.euler_ancestral].
    - `process`, `score`: as for the sampler.
    - `x_init`: whether the run starts from a given cloud (a grid `ts` may then start after 0).
    - `options`: the sampler's keyword options (`steps` or `ts`, `eps`, `rho`, ...).
    """
    if sampler not in _PLANS:
        names = ", ".join(f.__name__ for f in _PLANS)
        raise ValueError(f"`sampler` must be one of {names}; got {sampler!r}.")
    kwargs = {**_DEFAULTS.get(sampler, {}), **options}
    return _PLANS[sampler](process, score, has_init=bool(x_init), **kwargs)
