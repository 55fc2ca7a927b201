"""The SDE algebra: terms, the reverse family, probability flow, and the generator identity.

Pointwise drift checks compare against the equations written out independently with the VP
closed forms β(t) = β_min + t(β_max - β_min) (Song et al. 2021, eq. 11, 32-33); float64.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import gpm_sde
from gpm_sde.schedules import as_schedule
from gpm_sde.sde import SDE, FunctionDrift, LinearDrift, ScalarDiffusion, ScoreDrift, SumDrift
from gpm_sde.verify import fokker_planck_rhs

from .test_gaussian_mixture import mixtures


def _beta(t):
    return 0.1 + t * 19.9


@pytest.mark.parametrize("lam", [None, 0.0, 0.7, lambda s: 0.3 + s])
def test_reverse_drift_pointwise(lam, mixture_2d, key):
    p = gpm_sde.vp()
    score = gpm_sde.MixtureMarginalScore(p, mixture_2d)
    sde = gpm_sde.reverse(p, score, lam=lam)
    y = jr.normal(key, (5, 2))
    for s in (0.0, 0.25, 0.9):
        t = 1.0 - s
        f, g2 = -0.5 * _beta(t), _beta(t)
        lam_s = g2**0.5 if lam is None else (lam(s) if callable(lam) else lam)
        lam2 = float(lam_s) ** 2  # pyright: ignore[reportArgumentType]
        scores = jnp.stack([p.marginal(mixture_2d, t).score(yi) for yi in y])
        expected = -f * y + 0.5 * (g2 + lam2) * scores
        assert jnp.allclose(sde.drift(s, y, None), expected, rtol=1e-10, atol=1e-12), (lam, s)
        if lam == 0.0:
            assert sde.diffusion is None
        else:
            assert sde.diffusion is not None
            assert jnp.allclose(sde.diffusion(s, y, None), jnp.sqrt(lam2), rtol=1e-10)


def test_probability_flow_is_lambda_zero(mixture_2d, key):
    p = gpm_sde.subvp()
    score = gpm_sde.MixtureMarginalScore(p, mixture_2d)
    pf = gpm_sde.probability_flow(p, score)
    assert pf.is_ode
    y = jr.normal(key, (6, 2))
    for s in (0.1, 0.6):
        t = 1.0 - s
        expected = -p.drift_coeff(t) * y + 0.5 * p.diffusion(t) ** 2 * jax.vmap(
            lambda x, t=t: score(t, x)
        )(y)
        assert jnp.allclose(pf.drift(s, y, None), expected, rtol=1e-10)


def test_reweight_reverse_sde_to_zero_noise_is_probability_flow(mixture_2d, key):
    p = gpm_sde.vp()
    score = gpm_sde.MixtureMarginalScore(p, mixture_2d)
    rev = gpm_sde.reverse(p, score)
    # The law of the reverse SDE at generation time s is p_{T-s}: its score is score(T - s, x).
    gen_score = gpm_sde.scores.TimeReversedScore(score, p.T)
    flow = gpm_sde.reweight_noise(rev, gen_score, 0.0)
    pf = gpm_sde.probability_flow(p, score)
    assert flow.is_ode
    y = 2.0 * jr.normal(key, (8, 2))
    for s in (0.0, 0.3, 0.8):
        assert jnp.allclose(flow.drift(s, y, None), pf.drift(s, y, None), rtol=1e-10, atol=1e-12)


def _random_sde(coeffs: jax.Array, other: gpm_sde.GaussianMixture) -> SDE:
    a, w, g0, g1 = coeffs
    drift = LinearDrift(lambda s: a * (1 + s)) + ScoreDrift(
        lambda s: w * jnp.cos(s), lambda s, x: other.score(x)
    )
    return SDE(drift, ScalarDiffusion(lambda s: abs(g0) + abs(g1) * s))


@jax.jit
def _generator_terms(p, other, coeffs, lam, s, x):
    """The Fokker–Planck right-hand sides of the SDE and of its reweighting, and Δp, at each
    (s, x): one compiled function per pair of mixture shapes, with the SDE's coefficients and
    λ as arguments (not a fresh closure, and a fresh compile, per hypothesis example)."""
    sde = _random_sde(coeffs, other)
    reweighted = gpm_sde.reweight_noise(sde, lambda s, x: p.score(x), lam)

    def one(s, x):
        a = fokker_planck_rhs(sde, p.log_prob, s, x)
        b = fokker_planck_rhs(reweighted, p.log_prob, s, x)
        lap = jnp.trace(jax.hessian(lambda z: jnp.exp(p.log_prob(z)))(x))
        return a, b, lap

    return jax.vmap(one)(s, x)


@given(mixtures(), mixtures(), st.integers(0, 2**31 - 1))
@settings(max_examples=20)
def test_generator_identity(p, other, seed):
    """−∇·(p b) + ½g²Δp is unchanged by reweight_noise, to float64 round-off.

    Relative to the size of the terms, whose cancellation leaves ~1e-14.
    """
    if other.dim != p.dim:
        other = gpm_sde.GaussianMixture(
            other.weights,
            other.means[:, :1] * jnp.ones(p.dim),
            jnp.eye(p.dim)[None].repeat(other.n_components, 0),
        )
    rng = np.random.default_rng(seed)
    coeffs = jnp.asarray(rng.normal(size=4))
    lam = float(abs(rng.normal()) * 2)
    ss, xs = [], []
    for _ in range(3):
        ss.append(float(rng.uniform(0, 1)))
        xs.append(rng.normal(scale=2.0, size=p.dim))
    a, b, lap = _generator_terms(p, other, coeffs, lam, jnp.asarray(ss), jnp.asarray(np.stack(xs)))
    size = jnp.abs(a) + jnp.abs(b) + jnp.abs(lap) * (1 + lam**2)
    assert jnp.all(jnp.abs(a - b) <= 1e-8 * size), (a, b)


def test_generator_identity_has_power(mixture_2d):
    """A reweighting without the ½ (a plausible slip) breaks the identity by O(1)."""
    sde = SDE(LinearDrift(-0.5), ScalarDiffusion(1.0))
    wrong = SDE(
        sde.drift + ScoreDrift(2.0**2 - 1.0**2, lambda s, x: mixture_2d.score(x)),
        ScalarDiffusion(2.0),
    )
    right = gpm_sde.reweight_noise(sde, lambda s, x: mixture_2d.score(x), 2.0)
    x = jnp.array([0.3, -0.2])
    # Compiled (one trace per SDE) rather than eager: eager jacfwd/hessian dispatch is slower.
    fp = eqx.filter_jit(fokker_planck_rhs)
    a = fp(sde, mixture_2d.log_prob, 0.0, x)
    assert abs(fp(right, mixture_2d.log_prob, 0.0, x) - a) < 1e-10 * abs(a)
    assert abs(fp(wrong, mixture_2d.log_prob, 0.0, x) - a) > 1e-2 * abs(a)


def test_term_algebra(key):
    y = jr.normal(key, (4, 3))
    d1 = LinearDrift(2.0)
    d2 = ScoreDrift(lambda s: s, lambda s, x: -x)
    total = d1 + d2 + FunctionDrift(lambda s, y, args: jnp.ones_like(y))
    assert isinstance(total, SumDrift) and len(total.terms) == 3
    s = 0.5
    assert jnp.allclose(total(s, y, None), 2.0 * y - s * y + 1.0)
    assert jnp.allclose((3.0 * d1)(s, y, None), 6.0 * y)
    assert jnp.allclose((d1 * (lambda s: s))(s, y, None), 2.0 * s * y)
    sched = 0.5 * (as_schedule(2.0) ** 2 + as_schedule(lambda s: s) ** 2) - 1.0
    assert jnp.isclose(sched(3.0), 0.5 * (4.0 + 9.0) - 1.0)


def test_sde_terms_are_diffrax_terms(key):
    sde = SDE(LinearDrift(-1.0), ScalarDiffusion(lambda s: 2.0 + s))
    y = jr.normal(key, (5, 2))
    bm = diffrax.VirtualBrownianTree(0.0, 1.0, tol=1e-3, shape=(5, 2), key=key)
    terms = sde.terms(bm)
    assert isinstance(terms, diffrax.MultiTerm)
    ode, control = terms.terms
    assert isinstance(ode, diffrax.ODETerm) and isinstance(control, diffrax.ControlTerm)
    op = control.vf(0.5, y, None)
    assert isinstance(op, lx.DiagonalLinearOperator)
    dw = jnp.ones((5, 2))
    assert jnp.allclose(control.prod(op, dw), 2.5 * dw)
    assert isinstance(SDE(LinearDrift(-1.0)).terms(), diffrax.ODETerm)
    with pytest.raises(ValueError, match=r"brownian.*required"):
        sde.terms()


def test_jit_over_process_parameters(mixture_2d, key):
    """Process parameters are pytree leaves: a jitted reverse drift traces β instead of
    baking it in, so changing β_max reuses the compiled function and changes the result."""
    y = jr.normal(key, (3, 2))
    traces = []

    @jax.jit
    def drift(process):
        traces.append(1)
        score = gpm_sde.MixtureMarginalScore(process, mixture_2d)
        return gpm_sde.reverse(process, score).drift(0.2, y, None)

    a = drift(gpm_sde.vp(beta_max=20.0))
    b = drift(gpm_sde.vp(beta_max=10.0))
    assert len(traces) == 1
    assert not jnp.allclose(a, b)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: gpm_sde.reverse("vp", lambda t, x: x), TypeError, "process"),  # pyright: ignore[reportArgumentType]
        (lambda: gpm_sde.reverse(gpm_sde.vp(), 3.0), TypeError, "score"),  # pyright: ignore[reportArgumentType]
        (lambda: gpm_sde.reverse(gpm_sde.vp(), lambda t, x: x, lam=-1.0), ValueError, "lam"),
        (lambda: gpm_sde.reweight_noise("sde", lambda s, x: x, 1.0), TypeError, "sde"),  # pyright: ignore[reportArgumentType]
        (
            lambda: gpm_sde.reweight_noise(SDE(LinearDrift(1.0)), lambda s, x: x, -2.0),
            ValueError,
            "diffusion",
        ),
        (lambda: SDE(3.0), TypeError, "drift"),  # pyright: ignore[reportArgumentType]
        (lambda: ScoreDrift(1.0, "score"), TypeError, "score"),  # pyright: ignore[reportArgumentType]
        (lambda: LinearDrift(jnp.ones(3)), ValueError, "scalar"),
    ],
)
def test_bad_sde_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("lam", [0.6, 2.5, lambda s: 0.2 + 3.0 * s])
def test_reverse_family_keeps_exact_gaussian_marginals(lam):
    """Every member of the reverse family has the marginals p_{T−s} of the forward process.
    Data N(m₀, s₀²) in 1-D under VP: p_t = N(α m₀, v_t), v_t = α²s₀² + σ² = 1 + α²(s₀² − 1),
    α = e^{−B/2}. The reverse drift is affine in y, b = a(s)y + c(s) (read off at two points),
    so a Gaussian N(μ, v) moves by dμ/ds = aμ + c, dv/ds = 2av + λ². Along the exact
    marginals these must equal −d/dt of the closed forms at t = T − s: −(αm₀)' = ½βαm₀ and
    −v_t' = βα²(s₀² − 1). A weight ½(g² − λ²) instead of ½(g² + λ²) shifts dv/ds by 2λ²
    (and dμ/ds too), so every λ ≠ 0 fails; λ = 0, the probability-flow ODE, cannot see it."""
    m0, s0 = 1.5, 0.4
    p = gpm_sde.vp()
    law = gpm_sde.GaussianMixture(jnp.ones(1), jnp.array([[m0]]), jnp.array([[[s0**2]]]))
    sde = gpm_sde.reverse(p, gpm_sde.MixtureMarginalScore(p, law), lam=lam)
    y = jnp.array([[-1.0], [2.0]])
    for s in (0.05, 0.4, 0.8):
        t = 1.0 - s
        beta, big_b = 0.1 + 19.9 * t, 0.1 * t + 0.5 * 19.9 * t**2
        alpha = np.exp(-0.5 * big_b)
        mu, v = alpha * m0, 1.0 + alpha**2 * (s0**2 - 1.0)
        b = np.asarray(sde.drift(s, y, None))[:, 0]
        a = (b[1] - b[0]) / 3.0
        c = b[0] + a
        lam2 = float(np.asarray(lam(s) if callable(lam) else lam)) ** 2
        assert a * mu + c == pytest.approx(0.5 * beta * alpha * m0, rel=1e-9, abs=1e-12)
        assert 2 * a * v + lam2 == pytest.approx(beta * alpha**2 * (s0**2 - 1.0), rel=1e-9)
