"""The few-step samplers (EDM Heun and stochastic, DPM-Solver++ 2M/2S, Euler ancestral):
exact Gaussian output laws through their own steps, their orders in NFE, and the calling
convention shared with the other samplers.

With Gaussian data and the exact score every step is affine in the state and the noise, so
`verify.sampler_gaussian_law` gives each sampler's output law exactly (float64, no sampling);
it is compared with the exact marginal `process.marginal(law, eps)`, a closed form that does
not go through the samplers."""

from __future__ import annotations

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gpm_sde
from gpm_sde import metrics, samplers, verify
from gpm_sde.processes import LinearProcess, ddpm
from gpm_sde.scores import MixtureMarginalScore, from_batched, on_cloud

MEAN = jnp.array([1.0, -0.5])
COV = jnp.array([[0.5, 0.2], [0.2, 0.3]])
LAW = gpm_sde.GaussianMixture(jnp.ones(1), MEAN[None], COV[None])
EPS = 0.002

# (sampler, options, order of the method)
SAMPLERS = {
    "heun": (samplers.edm_heun, {}, 2.0),
    "dpm++2m": (samplers.dpm_solver_pp_2m, {}, 2.0),
    "dpm++2s": (samplers.dpm_solver_pp_2s, {}, 2.0),
    "ddim": (samplers.euler_ancestral, {"eta": 0.0}, 1.0),
    "euler-ancestral": (samplers.euler_ancestral, {"eta": 1.0}, 1.0),
}


def w2_to_marginal(process, sampler, steps, **options):
    """W2 between the sampler's exact output law (from the exact p_T, grid ending at EPS) and
    the exact marginal p_EPS."""
    score = MixtureMarginalScore(process, LAW)
    start, target = process.marginal(LAW, process.T), process.marginal(LAW, EPS)
    plan = samplers.sampler_plan(
        sampler, process, score, steps=steps, eps=EPS, to_zero=False, **options
    )
    m, c = verify.sampler_gaussian_law(plan, start.means[0], start.covs[0])
    return float(metrics.gaussian_w2(m, c, target.means[0], target.covs[0])), plan.nfe


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_exact_law_converges_at_the_order_of_the_method(name):
    """W2 of the exact output law to p_eps falls as NFE^-p: Heun and DPM-Solver++ p = 2,
    DDIM and Euler ancestral p = 1. The errors are exact (no sampling noise), so the only
    slack is pre-asymptotic: over NFE 16..64 steps the local slopes are 2.09/2.05 (Heun),
    2.16/2.10 (2M), 1.89/1.95 (2S), 0.94/0.97 (DDIM), 0.79/0.89 (Euler ancestral) on the EDM
    process, approaching p from the side the band allows. Mutations tried and caught:
    dropping Heun's correction (slope 1.05), 2M without its correction (DDIM, slope 0.03 on
    VP), 2M's w0 sign flipped, and 2M's h_{i-1} doubled (slope 1.13). Not caught: using
    h_{i+1} for h_{i-1} (on a smooth grid the ratio r -> 1 either way, still second order)."""
    sampler, options, order = SAMPLERS[name]
    process = gpm_sde.edm()
    results = [w2_to_marginal(process, sampler, n, **options) for n in (16, 32, 64)]
    errs, nfes = (np.array(v) for v in zip(*results, strict=True))
    slope = -np.polyfit(np.log(nfes), np.log(errs), 1)[0]
    assert abs(slope - order) < 0.25, (name, slope, errs)
    assert errs[-1] < (5e-3 if order == 2 else 0.1), (name, errs)


@pytest.mark.parametrize(
    "process, name", [(gpm_sde.vp(), "dpm++2m"), (gpm_sde.ve(), "heun")], ids=["vp", "ve"]
)
def test_second_order_on_vp_and_ve(process, name):
    """The same samplers on VP and VE (they work in sigma/alpha for any linear process):
    doubling the steps divides the exact W2 by ~4 (local slopes 2.05-2.10 for Heun and 2M on
    both)."""
    sampler, options, _ = SAMPLERS[name]
    (e1, n1), (e2, n2) = (w2_to_marginal(process, sampler, n, **options) for n in (32, 64))
    slope = np.log(e1 / e2) / np.log(n2 / n1)
    assert 1.8 < slope < 2.3, (name, slope)
    assert e2 < 5e-3


@pytest.mark.parametrize(
    "sampler, options",
    [
        pytest.param(samplers.edm_stochastic, {"s_churn": 10.0}, marks=pytest.mark.slow),
        (samplers.euler_ancestral, {"eta": 1.0}),
        pytest.param(samplers.dpm_solver_pp_2s, {"eta": 1.0}, marks=pytest.mark.slow),
    ],
    ids=["edm-stochastic", "euler-ancestral", "dpm++2s-ancestral"],
)
def test_exact_law_is_the_law_of_the_samples(sampler, options):
    """The tracer's law (few steps, far from converged, so it differs from p_0) is the law of
    the sampler's own samples: 5 moment z-scores of 20 000 samples below 5 (a false alarm has
    probability <= 3e-6 per test, `verify.false_alarm_bound(5, 5.0)`)."""
    process = gpm_sde.vp()
    score = MixtureMarginalScore(process, LAW)
    plan = samplers.sampler_plan(sampler, process, score, steps=4, **options)
    var = float(process.variance(process.T))  # the sampler's own start: the prior N(0, σ(T)²I)
    m, c = verify.sampler_gaussian_law(plan, jnp.zeros(2), var * jnp.eye(2))
    assert float(metrics.gaussian_w2(m, c, MEAN, COV)) > 0.05  # not the data law: a real check
    x = sampler(process, score, jr.key(3), 20_000, (2,), steps=4, **options).x
    z = verify.moment_z_scores(x, m, c)
    assert float(jnp.max(jnp.abs(z))) < 5.0, z


def test_pointwise_and_cloud_scores_and_grids_agree():
    """A batched (cloud) score gives the samples of the pointwise one, with the same key; `ts`
    equal to the grid that `steps` builds gives the same samples."""
    process = gpm_sde.vp()
    score = MixtureMarginalScore(process, LAW)

    def batched(x, t):
        return on_cloud(score, t[0], x)

    cloud = from_batched(batched, "x,t", (2,))
    key = jr.key(0)
    a = samplers.edm_stochastic(process, score, key, 64, (2,), steps=5, s_churn=10.0).x
    b = samplers.edm_stochastic(process, cloud, key, 64, (2,), steps=5, s_churn=10.0).x
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    grid = gpm_sde.schedules.time_grid(process, 4, "karras", eps=1e-3)
    ts = jnp.concatenate([grid, jnp.array([process.T])])
    a = samplers.dpm_solver_pp_2m(process, score, key, 64, (2,), steps=5).x
    b = samplers.dpm_solver_pp_2m(process, score, key, 64, (2,), ts=ts).x
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_euler_ancestral_eta0_is_ddim_on_a_ddpm_chain():
    """Independent implementation: `ddim` on a DDPM chain (eq. 12 of Song, Meng & Ermon, in
    alpha-bar) equals `euler_ancestral(eta=0)` on the linear process through the chain's
    alpha-bar (time = 1-based step), from the same cloud, on the same steps."""
    chain = ddpm(100)
    eps_model = samplers.exact_eps_model(chain, LAW)
    steps_1b = np.arange(0, 101)
    log_ab = np.asarray(jnp.log(chain.alpha_bar(jnp.asarray(steps_1b))))

    def alpha(t):
        return jnp.exp(0.5 * jnp.interp(t, steps_1b, log_ab))

    def variance(t):
        return -jnp.expm1(jnp.interp(t, steps_1b, log_ab))

    def sigma(t):
        return jnp.sqrt(variance(t))

    process = LinearProcess(alpha, variance=variance, T=100.0)

    def score(t, x):  # the chain's eps model at the (integer) time t = n
        n = jnp.round(t).astype(jnp.int32)
        return -eps_model(n, x) / sigma(t)

    timesteps = np.array([99, 74, 49, 24])  # 0-based, as ddim's `ts`; steps n = t + 1
    x0 = jr.normal(jr.key(1), (16, 2))
    ref = samplers.ddim(chain, eps_model, None, x_init=x0, ts=timesteps).x
    ts = 100.0 - np.concatenate([timesteps + 1.0, [0.0]])
    out = samplers.euler_ancestral(process, score, None, x_init=x0, ts=ts, eta=0.0).x
    np.testing.assert_allclose(out, ref, rtol=1e-9, atol=1e-9)


def test_nfe_and_errors():
    process = gpm_sde.edm()
    score = MixtureMarginalScore(process, LAW)
    nfe = {
        name: samplers.sampler_plan(s, process, score, steps=10, **o).nfe
        for name, (s, o, _) in SAMPLERS.items()
    }
    assert nfe == {"heun": 19, "dpm++2m": 10, "dpm++2s": 19, "ddim": 10, "euler-ancestral": 10}
    with pytest.raises(TypeError, match="exactly one of `steps`"):
        samplers.edm_heun(process, score, jr.key(0), 4, (2,), steps=3, ts=jnp.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="key"):
        samplers.euler_ancestral(process, score, None, x_init=jnp.zeros((3, 2)), steps=3)
    with pytest.raises(ValueError, match="sampler"):
        samplers.sampler_plan(samplers.ddim, process, score, steps=3)
