r"""The Gaussian case of DiffFlow in closed form: the moment ODE and the exact generated score."""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._checks import check_finite, check_positive
from ..distributions import GaussianMixture
from ..schedules import AbstractSchedule, Schedule, as_schedule


class _MomentField(eqx.Module):
    data_mean: Array
    data_cov: Array
    beta: AbstractSchedule
    sigma: AbstractSchedule
    a: AbstractSchedule

    def __call__(self, s, state, args):
        mu, cov = state
        d = mu.shape[0]
        eye = jnp.eye(d, dtype=mu.dtype)
        smoothed = self.data_cov + self.sigma(s) ** 2 * eye
        prec = jnp.linalg.inv(smoothed)
        a, beta = self.a(s), self.beta(s)
        dmu = a * mu - beta * prec @ (mu - self.data_mean)
        dcov = 2 * a * cov - beta * (prec @ cov + cov @ prec) + 2 * beta * eye
        return dmu, dcov


class GaussianDiffFlow(eqx.Module):
    r"""The law $p_s = \mathcal{N}(\mu_s, \Sigma_s)$ of DiffFlow with Gaussian data and start,
    in closed form. With $q_\sigma = \mathcal{N}(m, S_{\sigma(s)})$, $S_\sigma = S_0 + \sigma^2 I$,
    $p_0 = \mathcal{N}(\mu_0, \Sigma_0)$ and $f = a(s)x$, the velocity
    $f + \beta\nabla\log(q_\sigma/p)$ is affine, so $p_s$ stays Gaussian with

    $$\mu' = a\mu - \beta S^{-1}(\mu - m),\qquad
    \Sigma' = 2a\Sigma - \beta\big(S^{-1}\Sigma + \Sigma S^{-1}\big) + 2\beta I,$$

    for every $g$. The ODE is solved once with diffrax (Tsit5, tolerance `rtol`) with dense
    output; `mean(s)`, `cov(s)` interpolate it, `law(s)` is $p_s$ itself, and `score(s, x)`
    $= -\Sigma_s^{-1}(x - \mu_s)$ is the exact generated score, a pointwise score for
    [`diffflow`][gpm_sde.diffflow]. Build it with
    [`gaussian_diffflow`][gpm_sde.flows.gaussian_diffflow].
    """

    solution: diffrax.Solution

    def mean(self, s: Float[ArrayLike, ""]) -> Float[Array, " d"]:
        r"""$\mu_s$."""
        return self.solution.evaluate(jnp.asarray(s))[0]  # pyright: ignore[reportIndexIssue]

    def cov(self, s: Float[ArrayLike, ""]) -> Float[Array, "d d"]:
        r"""$\Sigma_s$ (symmetrised)."""
        c = self.solution.evaluate(jnp.asarray(s))[1]  # pyright: ignore[reportIndexIssue]
        return 0.5 * (c + c.T)

    def law(self, s: Float[ArrayLike, ""]) -> GaussianMixture:
        r"""The law $p_s = \mathcal{N}(\mu_s, \Sigma_s)$ as a one-component
        [`GaussianMixture`][gpm_sde.GaussianMixture]: its `log_prob` is the closed-form density
        of the flow's particles at time $s$, its `sample` draws them."""
        mean = self.mean(s)
        return GaussianMixture(jnp.ones((1,), dtype=mean.dtype), mean[None], self.cov(s)[None])

    def __call__(self, s: Float[ArrayLike, ""], x: Float[Array, " d"]) -> Float[Array, " d"]:
        r"""The generated score $\nabla\log p_s(x) = -\Sigma_s^{-1}(x - \mu_s)$."""
        # The precision does not depend on x: under vmap over a cloud it is computed once.
        return -jnp.linalg.inv(self.cov(s)) @ (x - self.mean(s))


def gaussian_diffflow(
    data_mean: Float[ArrayLike, " d"],
    data_cov: Float[ArrayLike, "d d"],
    mean0: Float[ArrayLike, " d"],
    cov0: Float[ArrayLike, "d d"],
    beta: Schedule,
    sigma: Schedule = 0.0,
    a: Schedule = 0.0,
    *,
    t1: float,
    rtol: float = 1e-9,
) -> GaussianDiffFlow:
    r"""Solve the DiffFlow moment ODE on $[0, t_1]$ (see
    [`GaussianDiffFlow`][gpm_sde.flows.GaussianDiffFlow]).

    **Arguments:** the data law $\mathcal{N}(m, S_0)$ (`data_mean`, `data_cov`), the start
    $\mathcal{N}(\mu_0, \Sigma_0)$ (`mean0`, `cov0`), the schedules $\beta(s)$, $\sigma(s)$ and
    $a(s)$ (floats or callables), the horizon `t1` and the solver tolerance `rtol`.
    """
    check_finite("data_mean", data_mean)
    check_finite("mean0", mean0)
    check_positive("t1", t1)
    m = jnp.asarray(data_mean, dtype=float)
    field = _MomentField(
        m,
        jnp.asarray(data_cov, dtype=m.dtype),
        as_schedule(beta),
        as_schedule(sigma),
        as_schedule(a),
    )
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        diffrax.Tsit5(),
        0.0,
        t1,
        dt0=None,
        y0=(jnp.asarray(mean0, dtype=m.dtype), jnp.asarray(cov0, dtype=m.dtype)),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=rtol),
        saveat=diffrax.SaveAt(dense=True),
        max_steps=100_000,
    )
    return GaussianDiffFlow(sol)
