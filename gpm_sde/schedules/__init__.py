r"""Schedules: scalar functions of time $s \mapsto c(s)$, with the arithmetic the SDE algebra needs.

A schedule is anything callable as `c(s) -> scalar`. A float is a constant schedule. Library
code wraps what users pass with [`as_schedule`][gpm_sde.schedules.as_schedule], which returns an
`eqx.Module`, so that the parameters of a schedule (e.g. a process's $\beta_{\min}$, reached
through a bound method such as `process.diffusion`) are pytree leaves: `jax.jit` traces them
instead of recompiling for every value. Schedules add, multiply and raise to powers with `+`,
`*`, `**`, so that a drift coefficient reads like its equation:
`0.5 * (g_rev**2 + lam**2)`.
"""

from ._grids import (
    ddpm_timesteps as ddpm_timesteps,
    karras_sigmas as karras_sigmas,
    scaled_coefficients as scaled_coefficients,
    time_grid as time_grid,
    times_of_ratio as times_of_ratio,
)
from ._schedule import (
    AbstractSchedule as AbstractSchedule,
    Constant as Constant,
    Function as Function,
    Power as Power,
    Product as Product,
    ReversedSchedule as ReversedSchedule,
    Schedule as Schedule,
    Sum as Sum,
    as_schedule as as_schedule,
)
from ._sigma_laws import (
    AbstractSigmaLaw as AbstractSigmaLaw,
    KarrasSigma as KarrasSigma,
    LogNormalSigma as LogNormalSigma,
)
