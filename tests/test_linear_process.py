"""Processes from the user's functions: `LinearProcess(alpha, sigma, T)` and
`vp_from_int_beta(int_beta, T)` reproduce the built-in processes to float64 round-off, and
refuse what is not a forward process, naming the argument."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gpm_sde
from gpm_sde.processes import LinearProcess, vp_from_int_beta

B_MIN, B_MAX = 0.1, 20.0
S_MIN, S_MAX = 0.01, 50.0


def big_b(t):
    """The integrated linear beta of VP and sub-VP (score_sde `sde_lib.py`, `marginal_prob`)."""
    return B_MIN * t + 0.5 * t**2 * (B_MAX - B_MIN)


# The built-ins, and LinearProcess from their alpha and sigma written out here.
CASES = {
    "vp": (
        gpm_sde.vp,
        dict(alpha=lambda t: jnp.exp(-0.5 * big_b(t)), variance=lambda t: -jnp.expm1(-big_b(t))),
    ),
    "subvp": (
        gpm_sde.subvp,
        dict(alpha=lambda t: jnp.exp(-0.5 * big_b(t)), sigma=lambda t: -jnp.expm1(-big_b(t))),
    ),
    "ve": (
        gpm_sde.ve,
        dict(alpha=lambda t: jnp.ones_like(t), sigma=lambda t: S_MIN * (S_MAX / S_MIN) ** t),
    ),
    "edm": (lambda: gpm_sde.edm(1.0), dict(alpha=lambda t: jnp.ones_like(t), sigma=lambda t: t)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_builtins_are_linear_processes_of_their_alpha_sigma(name):
    make, fns = CASES[name]
    builtin = make()
    mine = LinearProcess(T=1.0, **fns)
    t = jnp.linspace(0.0, 1.0, 41)
    for method in ("alpha", "sigma", "drift_coeff", "diffusion"):
        got, want = getattr(mine, method)(t), getattr(builtin, method)(t)
        err = jnp.max(jnp.abs(got - want) / jnp.maximum(jnp.abs(want), 1e-300))
        assert float(err) < 1e-13, (name, method, float(err))


def test_vp_sigma_form_is_refused_at_t0_with_the_fix():
    """sigma = sqrt(1 - alpha^2) has an infinite derivative at t = 0: g(0) would be NaN."""
    with pytest.raises(ValueError, match=r"t = 0.*pass `variance=`"):
        LinearProcess(
            alpha=lambda t: jnp.exp(-0.5 * big_b(t)),
            sigma=lambda t: jnp.sqrt(-jnp.expm1(-big_b(t))),
        )


def test_vp_from_int_beta_is_vp():
    vp = gpm_sde.vp()
    mine = vp_from_int_beta(big_b)
    t = jnp.linspace(0.0, 1.0, 41)
    for method in ("alpha", "sigma", "drift_coeff", "diffusion"):
        assert float(jnp.max(jnp.abs(getattr(mine, method)(t) - getattr(vp, method)(t)))) < 1e-12
    beta = B_MIN + t * (B_MAX - B_MIN)
    np.testing.assert_allclose(mine.drift_coeff(t), -0.5 * beta, rtol=1e-14)
    np.testing.assert_allclose(mine.diffusion(t), jnp.sqrt(beta), rtol=1e-14)


def test_vp_from_int_beta_equinox_example_convention():
    """The equinox example: int_beta(t) = t on [0, 10], so beta = 1: f = -1/2, g = 1,
    mean exp(-t/2), variance 1 - exp(-t)."""
    process = vp_from_int_beta(lambda t: t, T=10.0)
    t = jnp.linspace(0.0, 10.0, 11)
    np.testing.assert_allclose(process.drift_coeff(t), -0.5, rtol=1e-15)
    np.testing.assert_allclose(process.diffusion(t), 1.0, rtol=1e-15)
    np.testing.assert_allclose(process.alpha(t), jnp.exp(-0.5 * t), rtol=1e-15)
    np.testing.assert_allclose(process.variance(t), 1.0 - jnp.exp(-t), rtol=1e-14, atol=1e-16)


def test_linear_process_is_a_process(mixture_2d):
    """Exact marginals and the marginal score work through it like through the built-ins."""
    process = LinearProcess(alpha=lambda t: 1.0 - t, sigma=lambda t: t, T=0.9)
    marginal = process.marginal(mixture_2d, 0.5)
    np.testing.assert_allclose(marginal.means, 0.5 * mixture_2d.means, rtol=1e-15)
    np.testing.assert_allclose(
        marginal.covs, 0.25 * mixture_2d.covs + 0.25 * jnp.eye(2), rtol=1e-15
    )
    # f = -1/(1 - t), g^2 = 2 t + 2 t^2 / (1 - t)
    t = jnp.array([0.0, 0.3, 0.6])
    np.testing.assert_allclose(process.drift_coeff(t), -1.0 / (1.0 - t), rtol=1e-14)
    np.testing.assert_allclose(
        process.diffusion(t) ** 2, 2 * t + 2 * t**2 / (1 - t), rtol=1e-13, atol=1e-300
    )


def test_learned_schedule_under_jit_and_grad():
    """alpha and sigma may be equinox modules with parameters: jit and grad go through."""

    class Alpha(eqx.Module):
        rate: jax.Array

        def __call__(self, t):
            return jnp.exp(-self.rate * t)

    def drift(rate):
        process = LinearProcess(alpha=Alpha(rate), sigma=lambda t: t)
        return process.drift_coeff(0.5)

    np.testing.assert_allclose(jax.jit(drift)(jnp.asarray(2.0)), -2.0)
    np.testing.assert_allclose(jax.grad(drift)(jnp.asarray(2.0)), -1.0)

    def g2(rate):  # closure over a traced value: the checks are skipped inside the trace
        process = LinearProcess(alpha=lambda t: jnp.exp(-rate * t), sigma=lambda t: t)
        return process.diffusion(0.5) ** 2

    # g^2 = 2 sigma sigma' - 2 f sigma^2 = 2 t + 2 rate t^2
    np.testing.assert_allclose(jax.jit(g2)(2.0), 1.0 + 1.0, rtol=1e-14)


def test_linear_process_refusals():
    one, t_ = (lambda t: jnp.ones_like(t)), (lambda t: t)
    with pytest.raises(TypeError, match="exactly one of `sigma`"):
        LinearProcess(alpha=one)
    with pytest.raises(TypeError, match="exactly one of `sigma`"):
        LinearProcess(alpha=one, sigma=t_, variance=t_)
    with pytest.raises(TypeError, match="alpha"):
        LinearProcess(alpha=1.0, sigma=t_)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`alpha` must return one scalar"):
        LinearProcess(alpha=lambda t: jnp.ones(2) * t, sigma=t_)
    with pytest.raises(ValueError, match=r"`alpha` must be 1 at t = 0.*alpha\(0\) = 0\.5"):
        LinearProcess(alpha=lambda t: 0.5 + 0 * t, sigma=t_)
    with pytest.raises(ValueError, match="`alpha` must be finite and > 0"):
        LinearProcess(alpha=lambda t: 1.0 - t, sigma=t_, T=1.5)
    with pytest.raises(ValueError, match="`sigma` must be finite and >= 0"):
        LinearProcess(alpha=one, sigma=lambda t: -t)
    with pytest.raises(ValueError, match="`variance` must be finite and >= 0"):
        LinearProcess(alpha=one, variance=lambda t: t - 0.5)
    with pytest.raises(ValueError, match=r"g\(t\)² .* < 0 .*σ/α non-decreasing"):
        LinearProcess(alpha=one, sigma=lambda t: 2.0 - t)  # the noise shrinks
    for bad_T in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="`T`"):
            LinearProcess(alpha=one, sigma=t_, T=bad_T)
    with pytest.raises(ValueError, match="sigma"):  # sigma(T) = 0: degenerate prior
        LinearProcess(alpha=one, sigma=lambda t: 0.0 * t)


def test_vp_from_int_beta_refusals():
    with pytest.raises(TypeError, match="int_beta"):
        vp_from_int_beta("t")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`int_beta` must vanish at t = 0"):
        vp_from_int_beta(lambda t: t + 1.0)
    with pytest.raises(ValueError, match=r"vp_from_int_beta\(.*g\(t\)² .* < 0"):
        vp_from_int_beta(lambda t: t - t**2, T=1.0)  # beta = 1 - 2t < 0 after t = 1/2
    with pytest.raises(ValueError, match="`T`"):
        vp_from_int_beta(lambda t: t, T=-1.0)
