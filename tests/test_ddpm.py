"""The discrete DDPM chain (Ho et al. 2020) against closed forms computed independently.

Tolerances are of two kinds, each stated where it is used:
- round-off: float64 (enabled in conftest), so an exact identity holds to ~1e-12 relative;
- sampling: k = 5 standard errors, the SE computed from the sample size M as stated at each
  comparison (fixed keys, so the tests are deterministic).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from gpm_sde.processes import DDPM, ddpm

K_SE = 5.0  # sampled comparisons must agree within K_SE standard errors


def _np_alpha_bars(chain: DDPM) -> np.ndarray:
    """ᾱ_n for n = 0..N at index n, by a plain float64 cumulative product (independent of
    the module's log-sum)."""
    betas = np.asarray(chain.betas, dtype=np.float64)
    return np.concatenate([[1.0], np.cumprod(1.0 - betas)])


def _assert_mean_within_se(samples: np.ndarray, mean: np.ndarray, var: np.ndarray) -> None:
    """Sample mean over axis 0 vs `mean`, SE = sqrt(var / M) with the exact variance `var`."""
    m = samples.shape[0]
    se = np.sqrt(var / m)
    err = np.abs(samples.mean(axis=0) - mean)
    assert np.all(err <= K_SE * se), (err / se, "SEs")


def _assert_var_within_se(samples: np.ndarray, var: np.ndarray) -> None:
    """Sample variance (ddof=1) over axis 0 vs the exact Gaussian variance `var`; for Gaussian
    data its SE is var * sqrt(2 / (M - 1))."""
    m = samples.shape[0]
    se = var * np.sqrt(2.0 / (m - 1))
    err = np.abs(samples.var(axis=0, ddof=1) - var)
    assert np.all(err <= K_SE * se), (err / se, "SEs")


# --- schedules -------------------------------------------------------------------------------


def test_linear_schedule_and_alpha_bars():
    chain = ddpm()
    betas = np.asarray(chain.betas)
    assert betas.shape == (1000,)
    # Ho et al. 2020 §4: β linear from 1e-4 to 0.02, β_n stored at index n - 1.
    np.testing.assert_allclose(betas, np.linspace(1e-4, 0.02, 1000), rtol=1e-14)
    assert float(chain.beta(1)) == pytest.approx(1e-4, rel=1e-14)
    assert float(chain.beta(1000)) == pytest.approx(0.02, rel=1e-14)
    np.testing.assert_allclose(np.asarray(chain.alphas), 1.0 - betas, rtol=1e-15)
    ab = _np_alpha_bars(chain)
    # float64 round-off: a product of 1000 factors, ~1000 ulp at most.
    np.testing.assert_allclose(np.asarray(chain.alpha_bars), ab[1:], rtol=1e-12)
    ns = np.arange(0, 1001)
    np.testing.assert_allclose(np.asarray(chain.alpha_bar(ns)), ab, rtol=1e-12)
    assert float(chain.alpha_bar(0)) == 1.0
    assert float(chain.one_minus_alpha_bar(0)) == 0.0
    # 1 - ᾱ_1 = β_1 exactly up to round-off (no cancellation in the expm1 form).
    assert float(chain.one_minus_alpha_bar(1)) == pytest.approx(1e-4, rel=1e-14)


def test_cosine_schedule_matches_nichol_dhariwal_eq17():
    n_steps, s = 100, 0.008
    chain = ddpm(n_steps, schedule="cosine", s=s)

    def f(n):
        return np.cos((n / n_steps + s) / (1 + s) * np.pi / 2) ** 2

    betas = np.asarray(chain.betas)
    assert np.all(betas <= 0.999) and betas[-1] == pytest.approx(0.999)
    unclipped = np.nonzero(betas < 0.999)[0]
    assert unclipped.size == n_steps - 1  # only the last step, f(N) = 0, is clipped
    ns = unclipped + 1
    # ᾱ_n = f(n)/f(0) wherever no earlier β was clipped; round-off over ≤ 100 factors.
    np.testing.assert_allclose(np.asarray(chain.alpha_bar(ns)), f(ns) / f(0), rtol=1e-12)


# --- 1. the iterated one-step chain has the closed-form marginal (eq. 2 ⇒ eq. 4) -----------


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_iterated_forward_step_matches_marginal_exactly(key, schedule):
    chain = ddpm(1000, schedule=schedule)
    n_steps = chain.n_steps
    ns = jnp.arange(1, n_steps + 1)
    # forward_step is affine in (x_prev, ε) with ε = normal(key, shape): read its coefficients
    # a_n (on x_prev) and b_n (on ε) off the method itself, for every n at once (one step per
    # point, point n - 1 at step n).
    ones, zeros = jnp.ones((n_steps, 1)), jnp.zeros((n_steps, 1))
    eps = jr.normal(key, (n_steps, 1))
    noise_only = chain.forward_step(key, zeros, ns)
    a = np.asarray(chain.forward_step(key, ones, ns) - noise_only)[:, 0]
    b = np.asarray(noise_only / eps)[:, 0]
    # Propagate mean coefficient c and variance v of x_n | x_0 through the recursion
    # x_n = a_n x_{n-1} + b_n ε_n: c_n = a_n c_{n-1}, v_n = a_n² v_{n-1} + b_n², c_0 = 1, v_0 = 0.
    c, v = 1.0, 0.0
    cs, vs = [], []
    for a_n, b_n in zip(a, b, strict=True):
        c, v = a_n * c, a_n**2 * v + b_n**2
        cs.append(c)
        vs.append(v)
    # float64 round-off: ~N ulp accumulated over N = 1000 steps, far below 1e-12.
    np.testing.assert_allclose(cs, np.sqrt(np.asarray(chain.alpha_bar(ns))), rtol=1e-12)
    np.testing.assert_allclose(vs, np.asarray(chain.one_minus_alpha_bar(ns)), rtol=1e-12)


def test_iterated_forward_step_matches_marginal_sampled(key):
    chain = ddpm(50, beta_1=1e-3, beta_N=0.2)
    m = 20_000
    k0, key = jr.split(key)
    x0 = jnp.array([3.0, -2.0]) + 0.5 * jr.normal(k0, (m, 2))
    check_at = {1, 5, 20, 50}
    x = x0
    for n in range(1, 51):
        key, sub = jr.split(key)
        x = chain.forward_step(sub, x, n)
        if n in check_at:
            # Given x_0, x_n - √ᾱ_n x_0 ~ N(0, (1 - ᾱ_n) I) (eq. 4): mean SE = sqrt((1-ᾱ)/M),
            # variance SE = (1-ᾱ) sqrt(2/(M-1)). x_0 ≈ (3, -2) makes a wrong √ᾱ visible.
            ab = _np_alpha_bars(chain)[n]
            resid = np.asarray(x - np.sqrt(ab) * x0)
            _assert_mean_within_se(resid, np.zeros(2), np.full(2, 1.0 - ab))
            _assert_var_within_se(resid, np.full(2, 1.0 - ab))


def test_sample_marginal_and_marginal(key, mixture_2d):
    chain = ddpm(50, beta_1=1e-3, beta_N=0.2)
    ab = _np_alpha_bars(chain)
    # marginal(law, n) is law pushed through eq. 4: means √ᾱ μ_k, covs ᾱ Σ_k + (1 - ᾱ) I.
    for n in (0, 1, 17, 50):
        law_n = chain.marginal(mixture_2d, n)
        np.testing.assert_allclose(
            law_n.means, np.sqrt(ab[n]) * np.asarray(mixture_2d.means), rtol=1e-13
        )
        np.testing.assert_allclose(
            law_n.covs,
            ab[n] * np.asarray(mixture_2d.covs) + (1.0 - ab[n]) * np.eye(2)[None],
            rtol=1e-12,
        )
    # sample_marginal: one step for the cloud, and one step per point.
    m = 20_000
    x0 = jnp.broadcast_to(jnp.array([3.0, -2.0]), (m, 2))
    for n in (1, 17, 50):
        xn = np.asarray(chain.sample_marginal(key, x0, n))
        _assert_mean_within_se(xn, np.sqrt(ab[n]) * np.array([3.0, -2.0]), np.full(2, 1 - ab[n]))
        _assert_var_within_se(xn, np.full(2, 1.0 - ab[n]))
    ns = jnp.array([0, 3, 50, 3])
    x0_small = jnp.array([[1.0, 2.0], [0.5, -1.0], [2.0, 2.0], [0.5, -1.0]])
    per_point = chain.sample_marginal(key, x0_small, ns)
    # The same key draws the same ε for every point; so each row is √ᾱ_{n_i} x0_i + √(1-ᾱ) ε_i.
    eps = np.asarray(jr.normal(key, (4, 2)))
    expected = np.sqrt(ab[ns])[:, None] * np.asarray(x0_small) + np.sqrt(1 - ab[ns])[:, None] * eps
    np.testing.assert_allclose(per_point, expected, rtol=1e-12, atol=1e-14)


# --- 2. posterior q(x_{n-1} | x_n, x_0) against Gaussian conditioning (eq. 6-7) ---------------


def test_posterior_equals_gaussian_conditioning():
    chain = ddpm()
    ab = _np_alpha_bars(chain)
    betas = np.asarray(chain.betas)
    x0 = np.array([1.3, -0.7, 2.0])
    xn = np.array([0.4, 1.1, -2.5])
    for n in (1, 2, 37, 500, 1000):
        # Given x_0 (1-D): x_{n-1} = √ᾱ_{n-1} x_0 + √(1-ᾱ_{n-1}) ε', x_n = √α_n x_{n-1} + √β_n ε''.
        # Joint Gaussian of (x_{n-1}, x_n): means (m1, m2), covariance [[V11, V12], [V12, V22]].
        alpha_n = 1.0 - betas[n - 1]
        m1, m2 = np.sqrt(ab[n - 1]) * x0, np.sqrt(ab[n - 1] * alpha_n) * x0
        v11 = 1.0 - ab[n - 1]
        v12 = np.sqrt(alpha_n) * v11
        v22 = alpha_n * v11 + betas[n - 1]
        cond_mean = m1 + v12 / v22 * (xn - m2)
        cond_var = v11 - v12**2 / v22
        mean, var = chain.posterior_mean_variance(jnp.asarray(x0), jnp.asarray(xn), n)
        # Round-off: the numpy side forms 1 - ᾱ by subtraction, losing up to log10(1/(1-ᾱ))
        # digits (1 - ᾱ ≥ 1e-4 here, so ≲ 1e-12 relative); 1e-10 leaves a wide margin.
        np.testing.assert_allclose(mean, cond_mean, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(var, cond_var, rtol=1e-10, atol=1e-14)
    # n = 1: x_0 is known, so the posterior is the point x_0 (β̃_1 = 0).
    mean1, var1 = chain.posterior_mean_variance(jnp.asarray(x0), jnp.asarray(xn), 1)
    np.testing.assert_allclose(mean1, x0, rtol=1e-15)
    assert float(var1) == 0.0


def test_posterior_one_step_per_point():
    chain = ddpm(100, beta_1=1e-3, beta_N=0.1)
    x0 = jnp.array([[1.0, -1.0], [0.3, 0.2], [2.0, 0.5]])
    xn = jnp.array([[0.1, 0.4], [-1.0, 1.5], [0.7, -0.2]])
    ns = jnp.array([1, 40, 100])
    mean, var = chain.posterior_mean_variance(x0, xn, ns)
    assert var.shape == (3,)
    for i, n in enumerate([1, 40, 100]):
        mi, vi = chain.posterior_mean_variance(x0[i : i + 1], xn[i : i + 1], n)
        np.testing.assert_allclose(mean[i], mi[0], rtol=1e-15)
        np.testing.assert_allclose(var[i], vi, rtol=1e-15)


# --- 3. ε-parameterisation: eq. 11 with the true noise is the posterior mean ------------------


def test_eps_mean_predict_x0_and_eps_from_score_with_true_noise(key):
    chain = ddpm()
    k0, ke = jr.split(key)
    x0 = jr.normal(k0, (64, 2)) * 2.0 + 1.0
    eps = jr.normal(ke, (64, 2))
    for n in (1, 2, 37, 500, 1000):
        ab = _np_alpha_bars(chain)[n]
        xn = np.sqrt(ab) * x0 + np.sqrt(1.0 - ab) * eps
        post_mean, _ = chain.posterior_mean_variance(x0, xn, n)
        # Round-off only: all three are exact identities (float64, rtol 1e-10 with margin for
        # the 1/√(1-ᾱ_1) = 100 amplification at n = 1).
        np.testing.assert_allclose(chain.eps_mean(xn, eps, n), post_mean, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(chain.predict_x0(xn, eps, n), x0, rtol=1e-10, atol=1e-10)
        # The score of q(x_n | x_0) = N(√ᾱ x_0, (1-ᾱ) I) is -(x_n - √ᾱ x_0)/(1-ᾱ) = -ε/√(1-ᾱ).
        score = -(xn - np.sqrt(ab) * x0) / (1.0 - ab)
        np.testing.assert_allclose(chain.eps_from_score(score, n), eps, rtol=1e-10, atol=1e-10)


# --- 4. one ancestral step: posterior moments, and no noise at n = 1 (Algorithm 2) -----------


@pytest.mark.parametrize("variance", ["posterior", "beta"])
def test_ancestral_step_moments(key, variance):
    chain = ddpm(100, beta_1=1e-3, beta_N=0.1)
    m = 20_000
    x0 = jnp.array([1.5, -0.5])
    eps = jnp.array([0.8, -1.2])
    for n in (2, 30, 100):
        ab = float(chain.alpha_bar(n))
        xn = jnp.broadcast_to(np.sqrt(ab) * x0 + np.sqrt(1.0 - ab) * eps, (m, 2))
        eps_hat = jnp.broadcast_to(eps, (m, 2))
        mean, post_var = chain.posterior_mean_variance(x0[None], xn[:1], n)
        var = float(post_var) if variance == "posterior" else float(chain.beta(n))
        out = np.asarray(chain.ancestral_step(jr.fold_in(key, n), xn, eps_hat, n, variance))
        # Mean SE = sqrt(σ²/M), variance SE = σ² sqrt(2/(M-1)) with σ² = β̃_n or β_n.
        _assert_mean_within_se(out, np.asarray(mean[0]), np.full(2, var))
        _assert_var_within_se(out, np.full(2, var))


def test_ancestral_step_adds_no_noise_at_n1_even_traced(key):
    chain = ddpm(100, beta_1=1e-3, beta_N=0.1)
    xn = jr.normal(key, (8, 2))
    eps_hat = jr.normal(jr.fold_in(key, 1), (8, 2))
    for variance in ("posterior", "beta"):
        step = jax.jit(lambda k, x, e, n, v=variance: chain.ancestral_step(k, x, e, n, v))
        expected = chain.eps_mean(xn, eps_hat, 1)
        # Round-off only: exactly the mean, whatever the key.
        for k in (key, jr.fold_in(key, 7)):
            np.testing.assert_allclose(
                chain.ancestral_step(k, xn, eps_hat, 1, variance), expected, rtol=1e-15
            )
            np.testing.assert_allclose(step(k, xn, eps_hat, jnp.asarray(1)), expected, rtol=1e-15)
        # At n > 1 the traced step adds noise, and equals the eager step.
        traced = step(key, xn, eps_hat, jnp.asarray(7))
        eager = chain.ancestral_step(key, xn, eps_hat, 7, variance)
        np.testing.assert_allclose(traced, eager, rtol=1e-12)
        assert np.all(np.abs(np.asarray(traced - chain.eps_mean(xn, eps_hat, 7))) > 0)
    # One step per point: the point at n = 1 gets no noise, the others do.
    ns = jnp.array([1, 2, 1, 50, 3, 1, 9, 100])
    out = chain.ancestral_step(key, xn, eps_hat, ns)
    diff = np.abs(np.asarray(out - chain.eps_mean(xn, eps_hat, ns)))
    at_one = np.asarray(ns) == 1
    assert np.all(diff[at_one] == 0.0) and np.all(diff[~at_one] > 0.0)


# --- 5. exact mixture scores: full ancestral sampling recovers the data law ------------------


@pytest.mark.parametrize("variance", ["posterior", "beta"])
def test_ancestral_sampling_with_exact_scores_recovers_mixture(key, mixture_2d, variance):
    # Short schedule with ᾱ_N ≈ 3e-5, so starting from N(0, I) instead of q_N is negligible.
    # Even with exact scores the Gaussian reverse kernels carry a discretisation bias; measured
    # with 200k particles it is ≲ 0.5 SE (at M = 4000) per moment here, ≈ 1.3 SE with
    # 200 steps and beta_N = 0.1, so 500 steps keep most of the 5-SE budget for noise.
    chain = ddpm(500, beta_1=1e-3, beta_N=0.04)
    n_steps, m = chain.n_steps, 4000
    assert float(chain.alpha_bar(n_steps)) < 1e-4

    def eps_hat(x, n):
        law_n = chain.marginal(mixture_2d, n)
        return chain.eps_from_score(jax.vmap(law_n.score)(x), n)

    @jax.jit
    def sample(key):
        k_prior, k_steps = jr.split(key)
        x = chain.prior.sample(k_prior, m, (2,))

        def body(i, x):
            n = n_steps - i
            return chain.ancestral_step(jr.fold_in(k_steps, n), x, eps_hat(x, n), n, variance)

        return jax.lax.fori_loop(0, n_steps, body, x)

    x = np.asarray(sample(key))
    mean, cov = np.asarray(mixture_2d.mean()), np.asarray(mixture_2d.covariance())
    # Mean: SE_i = sqrt(Σ_ii / M) with the mixture's exact covariance Σ.
    _assert_mean_within_se(x, mean, np.diag(cov))
    # Covariance entry (i, j): SE = sqrt(Var[(x_i - x̄_i)(x_j - x̄_j)] / M), the variance of the
    # products estimated from the samples themselves.
    centred = x - x.mean(axis=0)
    prods = centred[:, :, None] * centred[:, None, :]
    se = np.sqrt(prods.var(axis=0, ddof=1) / m)
    err = np.abs(np.cov(x, rowvar=False) - cov)
    assert np.all(err <= K_SE * se), (err / se, "SEs")


# --- 6. bad input: errors name the argument -------------------------------------------------


@pytest.mark.parametrize(
    "betas",
    [[0.1, 1.0], [0.0, 0.1], [0.1, -0.2], [0.1, float("nan")], [float("inf"), 0.1]],
)
def test_betas_out_of_range_or_non_finite(betas):
    with pytest.raises(ValueError, match=r"`betas` must be finite and in \(0, 1\)"):
        DDPM(jnp.asarray(betas))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match=r"`betas` must hold at least one step"):
        DDPM(jnp.zeros((0,)))
    for n_steps in (0, -3):
        with pytest.raises(ValueError, match=r"`n_steps` must be an int >= 1"):
            ddpm(n_steps=n_steps)
    for bad in (0.0, -1e-3, 1.0, float("nan")):
        with pytest.raises(ValueError, match=r"`beta_1` must be finite and in \(0, 1\)"):
            ddpm(beta_1=bad)
    for bad in (1.5, float("inf")):
        with pytest.raises(ValueError, match=r"`beta_N` must be finite and in \(0, 1\)"):
            ddpm(beta_N=bad)
    with pytest.raises(ValueError, match=r"`schedule` must be one of"):
        ddpm(schedule="quadratic")
    with pytest.raises(ValueError, match=r"`beta_1` and `beta_N` set the linear schedule only"):
        ddpm(schedule="cosine", beta_N=0.05)
    with pytest.raises(ValueError, match=r"`s` must be finite and >= 0"):
        ddpm(schedule="cosine", s=-0.1)


def test_step_index_out_of_range(key, mixture_2d):
    chain = ddpm(10)
    x = jnp.ones((3, 2))
    out_of_1n = "`n` must lie in 1..10"
    for bad in (0, 11, -1, jnp.array([1, 0, 2])):
        with pytest.raises(ValueError, match=out_of_1n):
            chain.forward_step(key, x, bad)
        with pytest.raises(ValueError, match=out_of_1n):
            chain.ancestral_step(key, x, x, bad)
        with pytest.raises(ValueError, match=out_of_1n):
            chain.posterior_mean_variance(x, x, bad)
        with pytest.raises(ValueError, match=out_of_1n):
            chain.eps_mean(x, x, bad)
        with pytest.raises(ValueError, match=out_of_1n):
            chain.predict_x0(x, x, bad)
        with pytest.raises(ValueError, match=out_of_1n):
            chain.eps_from_score(x, bad)
        with pytest.raises(ValueError, match=out_of_1n):
            chain.beta(bad)
    out_of_0n = "`n` must lie in 0..10"
    for bad in (-1, 11):
        with pytest.raises(ValueError, match=out_of_0n):
            chain.alpha_bar(bad)
        with pytest.raises(ValueError, match=out_of_0n):
            chain.marginal(mixture_2d, bad)
        with pytest.raises(ValueError, match=out_of_0n):
            chain.sample_marginal(key, x, bad)
    with pytest.raises(ValueError, match=r"`variance` must be one of"):
        chain.ancestral_step(key, x, x, 2, variance="learned")
