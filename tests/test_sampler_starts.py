"""Every sampler: starting cloud `x_init`, explicit grid `ts`, one return type, and the Song et
al. conventions of `predictor_corrector` (order, denoise) written out by hand.

Tolerances: identities that hold bit for bit are checked with `array_equal`; written-out
updates in a different association of the same float64 operations agree to 1e-12 relative;
the law reached from a given start is checked by moment z-scores within 5 SE.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gpm_sde
from gpm_sde import samplers
from gpm_sde.schedules import ddpm_timesteps, time_grid
from gpm_sde.verify import max_moment_z_score

N_PTS, EVENT = 24, (2,)


class _StandardNormalEps(eqx.Module):
    """The exact noise model of N(0, I) data under a DDPM chain: sqrt(1 - ᾱ_n) x."""

    chain: gpm_sde.DDPM

    def __call__(self, n, x):
        return jnp.sqrt(self.chain.one_minus_alpha_bar(n)) * x


@pytest.fixture(scope="module")
def setup():
    """VP and a 20-step DDPM chain. Plumbing and written-out updates use cheap closed-form
    models (data N(0, I): the VP score is -x at every t, the noise model sqrt(1 - ᾱ_n) x,
    the σ-smoothed score -x/(1 + σ²); a time-dependent -x/(1 + t) where only the arithmetic
    matters); the laws reached are checked on a one-component 2-D Gaussian law."""
    law = gpm_sde.GaussianMixture(
        jnp.array([1.0]), jnp.array([[1.0, -0.5]]), jnp.array([[[0.4, 0.1], [0.1, 0.3]]])
    )
    process = gpm_sde.vp()
    chain = gpm_sde.ddpm(n_steps=20, beta_N=0.3)
    return {
        "law": law,
        "process": process,
        "exact_score": gpm_sde.MixtureMarginalScore(process, law),
        "score": lambda t, x: -x / (1.0 + t),
        "chain": chain,
        "eps_model": _StandardNormalEps(chain),
        "sigma_score": lambda sigma, x: -x / (1.0 + sigma**2),
        "sigmas": samplers.geometric_sigmas(2.0, 0.1, 3),
    }


def _runs(c):
    """Each sampler as `(prior, run(key, n, event_shape, x_init, **grid))`, with its grid
    arguments for `steps` and for the equivalent explicit `ts`."""
    p, score, chain, eps_model = c["process"], c["score"], c["chain"], c["eps_model"]
    cont = ({"steps": 6}, {"ts": time_grid(p, 6)})
    disc = ({"steps": 5}, {"ts": ddpm_timesteps(chain.n_steps, 5, "linspace")})
    return {
        "reverse_sde": (
            p.prior,
            lambda k, n, e, x, **g: samplers.reverse_sde_sample(p, score, k, n, e, x_init=x, **g),
            cont,
        ),
        "pf_ode": (
            p.prior,
            lambda k, n, e, x, **g: samplers.probability_flow_sample(
                p, score, k, n, e, x_init=x, **g
            ),
            cont,
        ),
        "pc": (
            p.prior,
            lambda k, n, e, x, **g: samplers.predictor_corrector(
                p, score, k, n, e, x_init=x, corrector_steps=2, **g
            ),
            cont,
        ),
        "ddpm": (
            chain.prior,
            lambda k, n, e, x, **g: samplers.ddpm_ancestral(
                chain, eps_model, k, n, e, x_init=x, **g
            ),
            disc,
        ),
        "ddim": (
            chain.prior,
            lambda k, n, e, x, **g: samplers.ddim(
                chain, eps_model, k, n, e, x_init=x, eta=0.5, **g
            ),
            disc,
        ),
        "annealed_langevin": (
            gpm_sde.IsotropicNormal(c["sigmas"][0]),
            lambda k, n, e, x, **g: samplers.annealed_langevin(
                c["sigma_score"], c["sigmas"], k, n, e, x_init=x, steps_per_level=4, eps=1e-2
            ),
            ({}, {}),
        ),
    }


@pytest.mark.parametrize(
    "name", ["reverse_sde", "pf_ode", "pc", "ddpm", "ddim", "annealed_langevin"]
)
def test_x_init_and_ts_reproduce_the_default_run(setup, name):
    """For every sampler: (a) it returns a `Samples` with the cloud in `.x`; (b) the prior
    cloud drawn by hand from `jax.random.split(key)[0]` and passed as `x_init` gives bitwise
    the default run; (c) `ts` equal to the grid of `steps` gives bitwise the `steps` run."""
    prior, run, (by_steps, by_ts) = _runs(setup)[name]
    key = jr.key(3)
    out = run(key, N_PTS, EVENT, None, **by_steps)
    assert isinstance(out, samplers.Samples)
    assert out.x.shape == (N_PTS, *EVENT) and bool(jnp.all(jnp.isfinite(out.x)))
    x0 = prior.sample(jr.split(key)[0], N_PTS, EVENT)
    assert jnp.array_equal(run(key, None, None, x0, **by_steps).x, out.x)
    assert not jnp.allclose(run(key, None, None, x0 + 1.0, **by_steps).x, out.x)
    assert jnp.array_equal(run(key, N_PTS, EVENT, None, **by_ts).x, out.x)


@pytest.mark.parametrize("sampler", ["reverse_sde", "pf_ode", "pc"])
def test_start_from_a_given_cloud_at_an_intermediate_time_reaches_the_data_law(setup, sampler):
    """x_init = an exact draw of p_{t0}, t0 = 0.4, run on the grid ts from s = T - t0 to
    T - 1e-3 with the exact score: the cloud has the law p_{1e-3} (mean and covariance within
    5 SE at 2000 points; 150 steps keep the discretisation bias below 1 SE)."""
    p, law, score = setup["process"], setup["law"], setup["exact_score"]
    m, t0, eps = 2000, 0.4, 1e-3
    x0 = p.marginal(law, t0).sample(jr.key(10), m)
    ts = jnp.linspace(p.T - t0, p.T - eps, 151)
    if sampler == "reverse_sde":
        x = samplers.reverse_sde_sample(p, score, jr.key(11), ts=ts, x_init=x0).x
    elif sampler == "pf_ode":
        x = samplers.probability_flow_sample(p, score, None, ts=ts, x_init=x0).x
    else:
        x = samplers.predictor_corrector(p, score, jr.key(11), ts=ts, x_init=x0, snr=0.05).x
    target = p.marginal(law, eps)
    assert max_moment_z_score(x, target.mean(), target.covariance()) < 5.0


# --- predictor-corrector: Song et al.'s update, by hand -------------------------------------


def _score_sde_pc(p, score, key, x, s_grid, *, m, snr, predictor, order, denoise):
    """score_sde's `pc_sampler` loop, written out: `(x, x_mean)` from each update (their
    `update_fn`s), the corrector's Langevin step (`LangevinCorrector.update_fn`), the reverse
    diffusion predictor `x_mean = x - rev_f` with the exact transition of consecutive grid
    times as `discretize`, or Euler–Maruyama of the reverse SDE; the keys as documented."""
    t = p.T - np.asarray(s_grid)
    k_noise = jr.split(key)[1]
    norm = lambda v: jnp.mean(jnp.linalg.norm(v.reshape(v.shape[0], -1), axis=-1))  # noqa: E731
    lift = lambda tt, y: jax.vmap(lambda xi: score(tt, xi))(y)  # noqa: E731
    x_mean = x

    def corrector(tc, alpha, kc, x, x_mean):
        for j in range(m):
            grad = lift(tc, x)
            noise = jr.normal(jr.fold_in(kc, j), x.shape)
            step_size = (snr * norm(noise) / norm(grad)) ** 2 * 2 * alpha
            x_mean = x + step_size * grad
            x = x_mean + jnp.sqrt(step_size * 2) * noise
        return x, x_mean

    def predict(tc, tn, kp, x):
        z = jr.normal(kp, x.shape)
        if predictor == "reverse_diffusion":
            a = p.alpha(tc) / p.alpha(tn)
            f = a * x - x  # forward: x_{t_k} = a x_{t_{k+1}} + G z
            big_g = jnp.sqrt(p.variance(tc) - a**2 * p.variance(tn))
            rev_f = f - big_g**2 * lift(tc, x)
            x_mean = x - rev_f
            return x_mean + big_g * z, x_mean
        dt = tc - tn
        drift = -p.drift_coeff(tc) * x + p.diffusion(tc) ** 2 * lift(tc, x)
        x_mean = x + drift * dt
        return x_mean + p.diffusion(tc) * jnp.sqrt(dt) * z, x_mean

    for k in range(len(t) - 1):
        k_pred, k_corr = jr.split(jr.fold_in(k_noise, k))
        alpha = (p.alpha(t[k]) / p.alpha(t[k + 1])) ** 2
        if order == "corrector_first":
            x, x_mean = corrector(t[k], alpha, k_corr, x, x_mean)
            x, x_mean = predict(t[k], t[k + 1], k_pred, x)
        else:
            x, x_mean = predict(t[k], t[k + 1], k_pred, x)
            x, x_mean = corrector(t[k + 1], alpha, k_corr, x, x_mean)
    return x_mean if denoise else x


@pytest.mark.parametrize("predictor", ["reverse_diffusion", "euler_maruyama"])
@pytest.mark.parametrize("order", ["corrector_first", "predictor_first"])
def test_pc_is_score_sde_update_by_hand(setup, order, predictor):
    """3 steps of a quadratic grid, M = 2 corrector steps, on the same noise: the sampler
    equals the hand-written loop to float64 round-off, with `denoise` off and on; and the
    two orders are different algorithms (here by far more than round-off)."""
    p, score = setup["process"], setup["score"]
    key, snr, m = jr.key(5), 0.3, 2
    ts = time_grid(p, 3, "quadratic", eps=0.05)
    x0 = p.prior.sample(jr.key(6), 16, EVENT)
    kw = {"m": m, "snr": snr, "predictor": predictor, "order": order}
    for denoise in (False, True):
        got = samplers.predictor_corrector(
            p,
            score,
            key,
            ts=ts,
            x_init=x0,
            corrector_steps=m,
            snr=snr,
            predictor=predictor,
            order=order,
            denoise=denoise,
        ).x
        want = _score_sde_pc(p, score, key, x0, ts, denoise=denoise, **kw)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-12)
    other = "predictor_first" if order == "corrector_first" else "corrector_first"
    swapped = _score_sde_pc(p, score, key, x0, ts, denoise=False, **{**kw, "order": other})
    assert float(jnp.max(jnp.abs(swapped - want))) > 1e-2


def test_pc_orders_agree_without_a_corrector(setup):
    """With M = 0 the two orders are the same predictor loop, bit for bit."""
    p, score = setup["process"], setup["score"]
    first, second = (
        samplers.predictor_corrector(
            p, score, jr.key(1), N_PTS, EVENT, steps=4, corrector_steps=0, order=order
        ).x
        for order in ("corrector_first", "predictor_first")
    )
    assert jnp.array_equal(first, second)


def test_pc_denoise_returns_the_predictor_mean(setup):
    """One reverse-diffusion step T → ε without corrector: denoise=True returns
    x̄ = (2 - a) x + G² ∇log p_T(x), denoise=False returns x̄ + G z, z from the predictor's key."""
    p, score = setup["process"], setup["score"]
    key, eps = jr.key(2), 0.3
    x = p.prior.sample(jr.key(0), 8, EVENT)

    def run(denoise):
        return samplers.predictor_corrector(
            p, score, key, x_init=x, steps=1, eps=eps, corrector_steps=0, denoise=denoise
        ).x

    t1 = p.T - (p.T - eps)
    a = p.alpha(p.T) / p.alpha(t1)
    g2 = p.variance(p.T) - a**2 * p.variance(t1)
    mean = (2 - a) * x + g2 * jax.vmap(lambda y: score(p.T, y))(x)
    k_pred, _ = jr.split(jr.fold_in(jr.split(key)[1], 0))
    z = jr.normal(k_pred, x.shape)
    np.testing.assert_allclose(np.asarray(run(True)), np.asarray(mean), rtol=1e-13)
    np.testing.assert_allclose(
        np.asarray(run(False)), np.asarray(mean + jnp.sqrt(g2) * z), rtol=1e-13
    )


# --- the DDPM chain on fewer steps --------------------------------------------------------------


def test_ddpm_ancestral_on_a_sub_sequence_is_the_diffusers_step(setup):
    """Timesteps (0-based) 15 → 6 → end: each step is DDPMScheduler.step of diffusers (ε
    prediction, no clipping) written out: x̂_0, the posterior mean
    √ᾱ_prev β_t/(1-ᾱ_t) x̂_0 + √α_t (1-ᾱ_prev)/(1-ᾱ_t) x_t with α_t = ᾱ_t/ᾱ_prev, plus
    √(fixed_small variance) z for t > 0 (fixed_large: β_t), the noise of 1-based step n from
    fold_in(noise_key, n)."""
    chain, eps_model = setup["chain"], setup["eps_model"]
    key = jr.key(9)
    x0 = chain.prior.sample(jr.key(1), 8, EVENT)
    ab = np.concatenate([np.asarray(chain.alpha_bars)])  # alphas_cumprod, 0-based
    ts = [15, 6]
    for variance in ("fixed_small", "fixed_large"):
        got = samplers.ddpm_ancestral(
            chain, eps_model, key, ts=np.array(ts), x_init=x0, variance=variance
        ).x
        x = x0
        for i, t in enumerate(ts):
            prev = ts[i + 1] if i + 1 < len(ts) else -1
            ab_t, ab_prev = ab[t], ab[prev] if prev >= 0 else 1.0
            beta_t = 1 - ab_t / ab_prev
            eps_hat = jax.vmap(lambda y, n=t + 1: eps_model(n, y))(x)
            x0_hat = (x - (1 - ab_t) ** 0.5 * eps_hat) / ab_t**0.5
            c0 = ab_prev**0.5 * beta_t / (1 - ab_t)
            ct = (1 - beta_t) ** 0.5 * (1 - ab_prev) / (1 - ab_t)
            x_new = c0 * x0_hat + ct * x
            if prev >= 0:
                var = (1 - ab_prev) / (1 - ab_t) * beta_t if variance == "fixed_small" else beta_t
                z = jr.normal(jr.fold_in(jr.split(key)[1], t + 1), x.shape)
                x_new = x_new + var**0.5 * z
            x = x_new
        np.testing.assert_allclose(np.asarray(got), np.asarray(x), rtol=1e-11, atol=1e-12)


def test_ddpm_ancestral_on_all_steps_is_ancestral_step(setup):
    """On all N steps each step is `DDPM.ancestral_step` (Ho et al., Algorithm 2), with step
    n's noise from fold_in(noise_key, n): the same arithmetic (to 1 ulp: the scan is
    compiled, the loop here is not)."""
    chain, eps_model = setup["chain"], setup["eps_model"]
    key = jr.key(8)
    x = chain.prior.sample(jr.key(2), 8, EVENT)
    got = samplers.ddpm_ancestral(chain, eps_model, key, x_init=x, variance="beta").x
    for n in range(chain.n_steps, 0, -1):
        eps_hat = jax.vmap(lambda y, n=n: eps_model(n, y))(x)
        x = chain.ancestral_step(jr.fold_in(jr.split(key)[1], n), x, eps_hat, n, "beta")
    np.testing.assert_allclose(np.asarray(got), np.asarray(x), rtol=1e-14, atol=1e-14)


def test_ddpm_ancestral_sub_sequence_equals_ddim_eta_one(setup):
    """DDIM's σ at η = 1 (eq. 16) is the posterior variance of the skip: on the same
    sub-sequence the two samplers agree to round-off."""
    chain, eps_model = setup["chain"], setup["eps_model"]
    a = samplers.ddpm_ancestral(
        chain, eps_model, jr.key(4), N_PTS, EVENT, steps=6, spacing="trailing"
    )
    b = samplers.ddim(
        chain, eps_model, jr.key(4), N_PTS, EVENT, steps=6, spacing="trailing", eta=1.0
    )
    np.testing.assert_allclose(np.asarray(a.x), np.asarray(b.x), rtol=1e-10, atol=1e-10)
    c = samplers.ddpm_ancestral(chain, eps_model, jr.key(4), N_PTS, EVENT, variance="beta")
    d = samplers.ddpm_ancestral(chain, eps_model, jr.key(4), N_PTS, EVENT, variance="fixed_large")
    assert jnp.array_equal(c.x, d.x)


# --- argument checks --------------------------------------------------------------------------


def test_start_and_grid_errors(setup):
    p, score, chain, eps_model = (setup[k] for k in ("process", "score", "chain", "eps_model"))
    x = jnp.zeros((4, 2))
    key = jr.key(0)
    with pytest.raises(ValueError, match="disagrees"):
        samplers.reverse_sde_sample(p, score, key, 5, (2,), steps=3, x_init=x)
    with pytest.raises(ValueError, match="event_shape"):
        samplers.reverse_sde_sample(p, score, key, 4, (3,), steps=3, x_init=x)
    with pytest.raises(ValueError, match="finite"):
        samplers.reverse_sde_sample(p, score, key, steps=3, x_init=x.at[0, 0].set(jnp.nan))
    with pytest.raises(TypeError, match=r"n.*event_shape"):
        samplers.reverse_sde_sample(p, score, key, steps=3)
    with pytest.raises(TypeError, match="exactly one"):
        samplers.probability_flow_sample(p, score, key, 4, (2,))
    with pytest.raises(ValueError, match="starts at s"):
        samplers.predictor_corrector(p, score, key, 4, (2,), ts=jnp.linspace(0.2, 0.9, 4))
    with pytest.raises(ValueError, match="strictly increasing"):
        samplers.reverse_sde_sample(p, score, key, 4, (2,), ts=jnp.linspace(0.9, 0.0, 4))
    with pytest.raises(ValueError, match="disagrees"):
        samplers.reverse_sde_sample(p, score, key, 4, (2,), ts=time_grid(p, 3), eps=0.1)
    with pytest.raises(ValueError, match="order"):
        samplers.predictor_corrector(p, score, key, 4, (2,), steps=3, order="both")
    with pytest.raises(ValueError, match="strictly decreasing"):
        samplers.ddim(chain, eps_model, key, 4, (2,), ts=np.array([3, 5]))
    with pytest.raises(ValueError, match="strictly decreasing"):
        samplers.ddim(chain, eps_model, key, 4, (2,), ts=np.array([20, 5]))
    with pytest.raises(TypeError, match="ts"):  # integer timesteps
        samplers.ddpm_ancestral(chain, eps_model, key, 4, (2,), ts=np.array([5.0, 1.0]))
    with pytest.raises(TypeError, match="spacing"):
        samplers.ddim(chain, eps_model, key, 4, (2,), ts=np.array([5, 1]), spacing="leading")
    with pytest.raises(ValueError, match="variance"):
        samplers.ddpm_ancestral(chain, eps_model, key, 4, (2,), variance="learned")
    with pytest.raises(TypeError, match="key"):
        samplers.reverse_sde_sample(p, score, None, steps=3, x_init=x)  # pyright: ignore[reportArgumentType]
