"""Forward processes: SDE coefficients, exact marginals, simulation against the marginals.

Coefficient checks compare autodiff-derived f, g with the closed forms of Song et al. 2021
(eq. 9, 11, 12, 30-34), Karras et al. 2022 and Nichol & Dhariwal 2021, to float64 round-off.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gpm_sde
from gpm_sde.sde import SDE, LinearDrift, ScalarDiffusion
from gpm_sde.verify import fokker_planck_rhs, max_moment_z_score

PROCESSES = {
    "vp": gpm_sde.vp(),
    "subvp": gpm_sde.subvp(),
    "ve": gpm_sde.ve(),
    "cosine": gpm_sde.cosine(),
    "edm": gpm_sde.edm(),
}


def _beta(t, beta_min=0.1, beta_max=20.0):
    return beta_min + t * (beta_max - beta_min)


def _B(t, beta_min=0.1, beta_max=20.0):
    return beta_min * t + 0.5 * t**2 * (beta_max - beta_min)


TIMES = jnp.linspace(0.0, 1.0, 11)


def test_vp_coefficients():
    p = gpm_sde.vp()
    assert jnp.allclose(p.drift_coeff(TIMES), -0.5 * _beta(TIMES), rtol=1e-12)
    assert jnp.allclose(p.diffusion(TIMES) ** 2, _beta(TIMES), rtol=1e-10)


def test_subvp_coefficients():
    p = gpm_sde.subvp()
    expected = _beta(TIMES) * (1.0 - jnp.exp(-2.0 * _B(TIMES)))
    assert jnp.allclose(p.drift_coeff(TIMES), -0.5 * _beta(TIMES), rtol=1e-12)
    assert jnp.allclose(p.diffusion(TIMES) ** 2, expected, rtol=1e-10, atol=1e-14)


def test_ve_coefficients():
    p = gpm_sde.ve(sigma_min=0.01, sigma_max=50.0)
    sigma = 0.01 * (50.0 / 0.01) ** TIMES
    assert jnp.allclose(p.sigma(TIMES), sigma, rtol=1e-12)
    assert jnp.allclose(p.drift_coeff(TIMES), 0.0, atol=1e-14)
    assert jnp.allclose(p.diffusion(TIMES), sigma * jnp.sqrt(2 * jnp.log(50.0 / 0.01)), rtol=1e-10)


def test_edm_coefficients():
    p = gpm_sde.edm(sigma_max=80.0)
    t = jnp.linspace(0.0, 80.0, 9)
    assert jnp.allclose(p.drift_coeff(t), 0.0, atol=1e-14)
    assert jnp.allclose(p.diffusion(t), jnp.sqrt(2 * t), rtol=1e-12)
    assert p.T == 80.0


def test_cosine_coefficients():
    s = 0.008
    p = gpm_sde.cosine(s=s)
    t = jnp.linspace(0.0, p.T, 11)
    phi = (t + s) / (1 + s) * jnp.pi / 2
    beta = jnp.pi / (1 + s) * jnp.tan(phi)  # -2 d/dt log cos(phi)
    assert jnp.allclose(p.drift_coeff(t), -0.5 * beta, rtol=1e-10)
    assert jnp.allclose(p.diffusion(t) ** 2, beta, rtol=1e-8)
    assert jnp.isclose(p.alpha(0.0), 1.0) and jnp.isclose(p.sigma(0.0), 0.0, atol=1e-12)


@eqx.filter_jit
def _fokker_planck_terms(p, law, ts, xs):
    """∂_t p_t(x), the Fokker–Planck right-hand side and its drift part at each (t, x): one
    compiled function per process, vmapped over the points (not one trace per point)."""
    sde = SDE(LinearDrift(p.drift_coeff), ScalarDiffusion(p.diffusion))
    drift_only = SDE(LinearDrift(p.drift_coeff))

    def one(t, x):
        def log_p(z):
            return p.marginal(law, t).log_prob(z)

        def density_at(u):
            return jnp.exp(p.marginal(law, u).log_prob(x))

        dp_dt = jax.jacfwd(density_at)(t)
        return (
            dp_dt,
            fokker_planck_rhs(sde, log_p, t, x),
            fokker_planck_rhs(drift_only, log_p, t, x),
        )

    return jax.vmap(one)(ts, xs)


@pytest.mark.parametrize("name", list(PROCESSES))
def test_marginal_solves_fokker_planck(name, mixture_2d):
    """∂_t p_t = -∇·(p_t f x) + ½ g² Δp_t for the exact mixture marginal (autodiff, no sampling).

    Relative error against the size of the terms; float64 round-off gives ~1e-13, a wrong g²
    (e.g. 2σσ' without -2fσ²) gives O(1).
    """
    p = PROCESSES[name]
    rng = np.random.default_rng(0)
    ts, xs = [], []
    for frac in (0.05, 0.3, 0.7, 0.95):
        t = frac * p.T
        scale = float(p.alpha(t)) * 2.0 + float(p.sigma(t))
        for x in rng.normal(scale=scale, size=(4, 2)):
            ts.append(t)
            xs.append(x)
    ts, xs = jnp.asarray(ts), jnp.asarray(np.stack(xs))
    dp_dt, rhs, div_term = _fokker_planck_terms(p, mixture_2d, ts, xs)
    size = jnp.abs(dp_dt) + jnp.abs(div_term) + jnp.abs(rhs - div_term)
    bad = ~(jnp.abs(dp_dt - rhs) <= 1e-9 * size)
    assert not jnp.any(bad), (name, ts[bad], xs[bad], dp_dt[bad], rhs[bad])


@pytest.mark.parametrize("name", list(PROCESSES))
def test_simulated_forward_sde_matches_marginals(name, mixture_2d, key):
    """Euler–Maruyama from x_0 ~ p_0 matches the exact marginal's mean and covariance within
    5 SE at three times. With 900 steps the weak Euler bias is below 1% of a variance,
    under half an SE at N = 4000 (SE of a variance ≈ √(2/N) ≈ 2.2%). The save times are grid
    points (steps of 0.001 T), so the solve stays on the fixed-grid scan."""
    p = PROCESSES[name]
    n = 4000
    times = jnp.array([0.2, 0.5, 0.9]) * p.T
    x0 = p.marginal(mixture_2d, 0.0).sample(jr.fold_in(key, 1), n)
    sde = SDE(LinearDrift(p.drift_coeff), ScalarDiffusion(p.diffusion))
    sol = gpm_sde.simulate(
        sde, x0, jr.fold_in(key, 2), t1=times[-1], steps=900, saveat=diffrax.SaveAt(ts=times)
    )
    assert sol.ys is not None
    for t, xt in zip(times, sol.ys, strict=True):
        law = p.marginal(mixture_2d, t)
        z = max_moment_z_score(xt, law.mean(), law.covariance())
        assert z < 5.0, (name, float(t), z)


def test_sample_marginal(mixture_2d, key):
    p = gpm_sde.vp()
    n = 100_000
    x0 = mixture_2d.sample(jr.fold_in(key, 1), n)
    xt = p.sample_marginal(jr.fold_in(key, 2), x0, 0.4)
    law = p.marginal(mixture_2d, 0.4)
    assert max_moment_z_score(xt, law.mean(), law.covariance()) < 5.0
    # One time per point: identical draws to the scalar call when all times agree.
    per_point = p.sample_marginal(jr.fold_in(key, 2), x0, jnp.full((n,), 0.4))
    assert jnp.allclose(per_point, xt, atol=1e-12)


def test_priors():
    assert jnp.isclose(gpm_sde.vp().prior.std, jnp.sqrt(-jnp.expm1(-_B(1.0))), rtol=1e-12)
    assert jnp.isclose(gpm_sde.ve().prior.std, 50.0, rtol=1e-12)
    assert jnp.isclose(gpm_sde.edm().prior.std, 80.0, rtol=1e-12)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: gpm_sde.vp(beta_min=-0.1), "beta_min.*> 0"),
        (lambda: gpm_sde.vp(beta_max=float("nan")), "beta_max.*finite"),
        (lambda: gpm_sde.subvp(beta_min=0.0), "beta_min.*> 0"),
        (lambda: gpm_sde.ve(sigma_min=1.0, sigma_max=0.5), "sigma_max.*exceed"),
        (lambda: gpm_sde.ve(sigma_min=-1.0), "sigma_min"),
        (lambda: gpm_sde.cosine(T=1.0), "T.*< 1"),
        (lambda: gpm_sde.edm(sigma_max=0.0), "sigma_max"),
        (lambda: gpm_sde.vp(T=float("inf")), "T.*finite"),
    ],
)
def test_bad_process_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_times(mixture_2d, key):
    p = gpm_sde.vp()
    with pytest.raises(ValueError, match=r"`t` must lie in \[0.0, 1.0\]"):
        p.marginal(mixture_2d, 1.5)
    with pytest.raises(ValueError, match=r"`t` must lie"):
        p.marginal(mixture_2d, -0.1)
    with pytest.raises(ValueError, match=r"`t` must be finite"):
        p.sample_marginal(key, jnp.zeros((3, 2)), jnp.nan)
    # Under the runtime type checker the shape mismatch is caught first, naming `t` as well.
    with pytest.raises((ValueError, TypeError), match=r"one time per point|parameter 't'"):
        p.sample_marginal(key, jnp.zeros((3, 2)), jnp.array([0.1, 0.2]))
    with pytest.raises(TypeError, match=r"law.*GaussianMixture"):
        p.marginal(jnp.zeros((3, 2)), 0.5)  # pyright: ignore[reportArgumentType]
