"""Losses (`gpm_sde.losses`) against exact optima and closed forms.

Tolerances are of two kinds, each stated where it is used:
- round-off: float64, so an exact identity holds to ~1e-12 relative;
- sampling: K_SE = 5 standard errors, the SE computed from the per-sample terms of the same
  Monte-Carlo average (fixed keys, so the tests are deterministic). A comparison of two losses on
  the same draws uses the SE of the paired per-sample differences.

Exact references: mixture data make every marginal score exact (`MixtureMarginalScore`); for two
1-D Gaussians p, q the log-ratio log p − log q is exact and divergences come from trapezoidal
quadrature on a fine grid (error far below the SEs).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.stats import norm

import gpm_sde
from gpm_sde.losses import (
    FGAN,
    HingeGAN,
    LeastSquaresGAN,
    MinimaxGAN,
    NonSaturatingGAN,
    WassersteinGAN,
    clip_weights,
    ddpm_eps_loss,
    dsm_loss,
    f_divergence,
    gan_loss,
    gradient_penalty,
    r1_penalty,
)
from gpm_sde.nn import EDMDenoiser, MLPDiscriminator, edm_preconditioning

K_SE = 5.0
N_DSM = 8192  # points per score-matching estimate
N_GAN = 20000  # points per side for the GAN estimates


def _mean_se(v) -> tuple[float, float]:
    v = np.asarray(v, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size))


def _assert_zero_within_se(v, what: str) -> None:
    m, se = _mean_se(v)
    assert abs(m) <= K_SE * se, f"{what}: mean {m:.3e} is {abs(m) / se:.1f} SE from 0"


def _assert_positive_beyond_se(v, what: str) -> None:
    m, se = _mean_se(v)
    assert m > K_SE * se, f"{what}: mean {m:.3e} is only {m / se:.1f} SE above 0"


# ----------------------------------------------------------------------------------------------
# Denoising score matching at the exact score


def _setting(name: str) -> tuple[Any, str, dict[str, Any]]:
    """(process, weighting, keyword arguments) for each weighting."""
    if name == "std2":
        return gpm_sde.vp(), "std2", {}
    if name == "likelihood":
        # g²/σ² ~ 1/t near 0 for VP: a moderate t_min keeps the tails of the plain estimator
        # light enough for an SE-based check (Song et al. 2021b sample t by importance).
        return gpm_sde.vp(), "likelihood", {"t_min": 1e-2}
    return gpm_sde.edm(), "edm", {}


@pytest.mark.parametrize("weighting", ["std2", "likelihood", "edm"])
def test_dsm_exact_score_is_stationary_and_minimal(weighting, mixture_2d, key):
    """L(c·s*) has zero derivative in c at c = 1 (within SE), and scaled or shifted scores give
    a larger loss on the same draws by more than K_SE paired SEs."""
    process, w, kw = _setting(weighting)
    exact = gpm_sde.MixtureMarginalScore(process, mixture_2d)
    k_data, k_loss = jr.split(key)
    x0 = mixture_2d.sample(k_data, N_DSM)

    # The additive perturbation acts on the score for the uniform weightings and on the
    # denoiser D = x + σ²s for EDM (a shift of D is a shift of s by δ/σ²): the natural units of
    # each parameterisation, and finite-variance loss differences under each weighting.
    edm = weighting == "edm"

    def per_point(c, shift):
        return dsm_loss(
            lambda t, x: c * exact(t, x) + (shift / t**2 if edm else shift),
            process,
            x0,
            k_loss,
            weighting=w,
            reduction="none",
            **kw,
        )

    @jax.jit
    def with_dc(c, shift):  # the per-point losses and their derivative in c (forward mode)
        return jax.jvp(lambda cc: per_point(cc, shift), (c,), (jnp.ones_like(c),))

    zero = jnp.zeros(2)
    one = jnp.asarray(1.0)
    base, dloss_dc = with_dc(one, zero)  # one compilation serves every call below
    assert base.shape == (N_DSM,)
    # The batch mean is the "mean" reduction on the same draws.
    mean = jax.jit(lambda: dsm_loss(exact, process, x0, k_loss, weighting=w, **kw))()
    np.testing.assert_allclose(float(mean), float(jnp.mean(base)), rtol=1e-12)
    # Stationarity: d/dc L(c s*) at c = 1, per point, has mean 0.
    _assert_zero_within_se(dloss_dc, f"dL/dc at the exact score ({weighting})")
    # Minimality: perturbed scores lose on the same draws.
    for c, shift in ((0.5, zero), (1.5, zero), (1.0, jnp.array([0.3, -0.2]))):
        _assert_positive_beyond_se(
            with_dc(c * one, shift)[0] - base, f"L(perturbed) − L(exact), c={c} ({weighting})"
        )


@pytest.mark.parametrize("weighting", ["std2", "edm"])
def test_dsm_minimum_equals_the_irreducible_constant(weighting, mixture_2d, key):
    """At the exact score the loss is E_t w(t)·E[d − σ²‖∇log p_t(x_t)‖²] (the conditional
    variance of ε given x_t), estimated here from independent draws made by the test itself:
    t (or σ) and x_t sampled here, not by the loss."""
    process, w, kw = _setting(weighting)
    exact = gpm_sde.MixtureMarginalScore(process, mixture_2d)
    k_data, k_loss, k_ref = jr.split(key, 3)
    x0 = mixture_2d.sample(k_data, N_DSM)
    loss = jax.jit(
        lambda: dsm_loss(exact, process, x0, k_loss, weighting=w, reduction="none", **kw)
    )()

    k_t, k_x0, k_eps = jr.split(k_ref, 3)
    d = 2
    if weighting == "std2":
        t = jr.uniform(k_t, (N_DSM,), minval=1e-5, maxval=process.T)
        alpha, sigma = process.alpha(t), process.sigma(t)
        weight = jnp.ones_like(t)
    else:
        sigma = jnp.exp(-1.2 + 1.2 * jr.normal(k_t, (N_DSM,)))  # Karras et al. 2022, Table 1
        t, alpha = sigma, jnp.ones_like(sigma)
        weight = (sigma**2 + 0.25) / 0.25  # λ(σ)σ², with σ_d = 0.5
    xt = alpha[:, None] * mixture_2d.sample(k_x0, N_DSM) + sigma[:, None] * jr.normal(
        k_eps, (N_DSM, d)
    )
    s = jax.jit(jax.vmap(exact))(t, xt)
    reference = weight * (d - sigma**2 * jnp.sum(s**2, axis=1))
    m1, se1 = _mean_se(loss)
    m2, se2 = _mean_se(reference)
    assert abs(m1 - m2) <= K_SE * np.hypot(se1, se2), (m1, m2, se1, se2)


def test_dsm_edm_weighting_with_the_preconditioned_denoiser(mixture_2d, key):
    """An `EDMDenoiser` around the exact F* is the exact score, so the EDM loss through it equals
    the loss of the exact score on the same draws (round-off of the preconditioning)."""
    process = gpm_sde.edm()
    exact = gpm_sde.MixtureMarginalScore(process, mixture_2d)

    def f_star(c_noise, y):
        sigma = jnp.exp(4.0 * c_noise)
        c_skip, c_out, c_in, _ = edm_preconditioning(sigma, 0.5)
        x = y / c_in
        return (x + sigma**2 * exact(sigma, x) - c_skip * x) / c_out

    x0 = mixture_2d.sample(key, 512)
    a, b = jax.jit(
        lambda: (
            dsm_loss(EDMDenoiser(f_star), process, x0, key, weighting="edm"),
            dsm_loss(exact, process, x0, key, weighting="edm"),
        )
    )()
    # The per-point terms are O(1); the wrapper's cancellation (D − x)/σ² costs at most ~1e3 ulps
    # at the smallest σ drawn (σ ≳ e^{-1.2-4·1.2} ≈ 2.5e-3 for 512 draws).
    np.testing.assert_allclose(float(a), float(b), rtol=1e-9)


def test_dsm_rejects_bad_arguments(mixture_2d, key):
    exact = gpm_sde.MixtureMarginalScore(gpm_sde.vp(), mixture_2d)
    x0 = mixture_2d.sample(key, 8)
    with pytest.raises(TypeError, match=r"needs the EDM process.*gpm_sde.edm\(\)"):
        dsm_loss(exact, gpm_sde.vp(), x0, key, weighting="edm")
    with pytest.raises(ValueError, match="`weighting` must be one of"):
        dsm_loss(exact, gpm_sde.vp(), x0, key, weighting="sigma")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`t_min` must be below the time horizon"):
        dsm_loss(exact, gpm_sde.vp(), x0, key, t_min=2.0)
    with pytest.raises((TypeError, ValueError), match=r"`x0` must be a non-empty batch|'x0'"):
        dsm_loss(exact, gpm_sde.vp(), x0[0], key)
    # Wrong types: the library's own message, or first the runtime type checker's.
    with pytest.raises(TypeError, match=r"for the DDPM chain use `ddpm_eps_loss`|'process'"):
        dsm_loss(exact, gpm_sde.ddpm(10), x0, key)  # type: ignore[arg-type]


def test_dsm_trains_a_score_network(mixture_2d, key):
    """A few Adam steps on the DSM loss lower it, on a fixed evaluation batch, by more than
    K_SE paired SEs: the loss is differentiable in the parameters of a wrapped network."""
    import optax

    process = gpm_sde.vp()
    k_net, k_data, k_eval, k_train = jr.split(key, 4)
    model = gpm_sde.nn.EpsilonParam(
        gpm_sde.nn.ScoreMLP(2, 16, 1, 8, key=k_net, fourier_scale=1.0), process.sigma
    )
    x_eval = mixture_2d.sample(k_data, 2048)
    opt = optax.adam(1e-2)
    state = opt.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def evaluate(m):
        return dsm_loss(m, process, x_eval, k_eval, reduction="none")

    @eqx.filter_jit
    def step(m, state, k):
        kx, kl = jr.split(k)
        x = mixture_2d.sample(kx, 128)
        loss, grads = eqx.filter_value_and_grad(lambda mm: dsm_loss(mm, process, x, kl))(m)
        updates, state = opt.update(grads, state, eqx.filter(m, eqx.is_inexact_array))
        return eqx.apply_updates(m, updates), state, loss

    before = evaluate(model)
    for k in jr.split(k_train, 40):
        model, state, loss = step(model, state, k)
        assert np.isfinite(float(loss))
    _assert_positive_beyond_se(before - evaluate(model), "DSM loss decrease after training")


# ----------------------------------------------------------------------------------------------
# DDPM ε-loss at the exact ε


def test_ddpm_eps_loss_at_the_exact_noise_predictor(mixture_2d, key):
    chain = gpm_sde.ddpm(100)

    def eps_star(n, x):
        return chain.eps_from_score(chain.marginal(mixture_2d, n).score(x), n)

    k_data, k_loss, k_ref = jr.split(key, 3)
    x0 = mixture_2d.sample(k_data, N_DSM)

    def per_point(c, shift):
        return ddpm_eps_loss(
            lambda n, x: c * eps_star(n, x) + shift, chain, x0, k_loss, reduction="none"
        )

    @jax.jit
    def with_dc(c, shift):  # the per-point losses and their derivative in c (forward mode)
        return jax.jvp(lambda cc: per_point(cc, shift), (c,), (jnp.ones_like(c),))

    zero = jnp.zeros(2)
    one = jnp.asarray(1.0)
    base, dloss_dc = with_dc(one, zero)  # one compilation serves every call below
    mean = jax.jit(lambda: ddpm_eps_loss(eps_star, chain, x0, k_loss))()
    np.testing.assert_allclose(float(mean), float(jnp.mean(base)), rtol=1e-12)
    _assert_zero_within_se(dloss_dc, "dL/dc at the exact ε")
    for c, shift in ((0.5, zero), (1.5, zero), (1.0, jnp.array([0.2, 0.1]))):
        _assert_positive_beyond_se(
            with_dc(c * one, shift)[0] - base, f"L(perturbed ε) − L(ε*), c={c}"
        )

    # The minimum is E[d − ‖ε*(n, x_n)‖²], estimated from independent draws made here, with
    # ᾱ_n from a plain numpy cumulative product and n ~ U{1..N}.
    alpha_bars = np.cumprod(1.0 - np.asarray(chain.betas))
    k_n, k_x0, k_eps = jr.split(k_ref, 3)
    n = jr.randint(k_n, (N_DSM,), 1, 101)
    ab = jnp.asarray(alpha_bars)[n - 1][:, None]
    xn = jnp.sqrt(ab) * mixture_2d.sample(k_x0, N_DSM) + jnp.sqrt(1 - ab) * jr.normal(
        k_eps, (N_DSM, 2)
    )
    reference = 2.0 - jnp.sum(jax.jit(jax.vmap(eps_star))(n, xn) ** 2, axis=1)
    m1, se1 = _mean_se(base)
    m2, se2 = _mean_se(reference)
    assert abs(m1 - m2) <= K_SE * np.hypot(se1, se2), (m1, m2, se1, se2)


# ----------------------------------------------------------------------------------------------
# GAN losses on two 1-D Gaussians, against quadrature

# p (real) = N(0, 1), q (generated) = N(0.5, 1.2²): q has the heavier tail, so every f-divergence
# below and the variances of its Monte-Carlo estimates are finite (Pearson χ² needs
# ∫p⁴/q³ < ∞, i.e. 4/σ_p² > 3/σ_q²).
MU_P, SD_P, MU_Q, SD_Q = 0.0, 1.0, 0.5, 1.2
GRID = np.linspace(-20.0, 20.0, 200001)


def _log_ratio(x):
    return norm.logpdf(x, MU_P, SD_P) - norm.logpdf(x, MU_Q, SD_Q)


def _quad(values) -> float:
    return float(np.trapezoid(values, GRID))


def _js() -> float:
    """JS(p‖q) = ½KL(p‖m) + ½KL(q‖m), m = (p + q)/2, by quadrature."""
    p, q = norm.pdf(GRID, MU_P, SD_P), norm.pdf(GRID, MU_Q, SD_Q)
    m = 0.5 * (p + q)
    return 0.5 * _quad(p * np.log(p / m)) + 0.5 * _quad(q * np.log(q / m))


@pytest.fixture(scope="module")
def gan_samples():
    k_p, k_q = jr.split(jr.key(42))
    real = MU_P + SD_P * np.asarray(jr.normal(k_p, (N_GAN,)))
    fake = MU_Q + SD_Q * np.asarray(jr.normal(k_q, (N_GAN,)))
    return real, fake


def _two_sample_se(a, b) -> float:
    return float(np.hypot(np.std(a, ddof=1) / np.sqrt(a.size), np.std(b, ddof=1) / np.sqrt(b.size)))


def test_minimax_value_at_the_optimal_discriminator(gan_samples):
    """At D* = p/(p + q), i.e. logit log p − log q, the value V = −d_loss is
    2 JS(p‖q) − log 4 (Goodfellow et al. 2014, Theorem 1)."""
    real, fake = gan_samples
    lr, lf = _log_ratio(real), _log_ratio(fake)
    loss = MinimaxGAN()
    d_loss, g_loss = loss(jnp.asarray(lr), jnp.asarray(lf))
    # The per-side terms of d_loss: softplus(−ℓ) on real, softplus(ℓ) on fake.
    a, b = np.logaddexp(0, -lr), np.logaddexp(0, lf)
    np.testing.assert_allclose(float(d_loss), a.mean() + b.mean(), rtol=1e-12)
    target = 2.0 * _js() - np.log(4.0)
    assert abs(-float(d_loss) - target) <= K_SE * _two_sample_se(a, b), (-float(d_loss), target)
    # The generator losses: minimax E log(1 − D), non-saturating −E log D.
    d = 1.0 / (1.0 + np.exp(-lf))
    np.testing.assert_allclose(float(g_loss), np.mean(np.log1p(-d)), rtol=1e-10)
    d_ns, g_ns = NonSaturatingGAN()(jnp.asarray(lr), jnp.asarray(lf))
    assert float(d_ns) == float(d_loss)
    np.testing.assert_allclose(float(g_ns), -np.mean(np.log(d)), rtol=1e-10)
    # D* minimises the discriminator loss: perturbed logits lose, pointwise-paired per side.
    for perturb in (lambda v: v + 0.5, lambda v: v - 0.5, lambda v: 1.5 * v):
        da = np.logaddexp(0, -perturb(lr)) - a
        db = np.logaddexp(0, perturb(lf)) - b
        gap = float(loss.discriminator_loss(perturb(lr), perturb(lf)) - d_loss)
        assert gap > K_SE * _two_sample_se(da, db), gap


@pytest.mark.parametrize("name", ["kl", "reverse_kl", "js", "pearson"])
def test_fgan_conjugates_and_activations_match_nowozin_tables(name):
    div = f_divergence(name)
    # f(1) = 0.
    assert abs(float(div.f(1.0))) < 1e-15
    # f*(t) = sup_u (t u − f(u)), by bounded scalar maximisation, at points t = f'(u₀).
    for u0 in (0.2, 0.7, 1.0, 2.5, 6.0):
        t = float(jax.grad(div.f)(u0))
        res: Any = minimize_scalar(
            lambda u: -(t * u - float(div.f(u))),
            bounds=(1e-6, 100.0),
            method="bounded",
            options={"xatol": 1e-10},
        )
        # The maximiser is u₀ (f strictly convex); the sup's error is ~f''·xatol².
        np.testing.assert_allclose(float(div.conjugate(t)), -res.fun, rtol=1e-8, atol=1e-8)
        # The output activation reaches f'(u₀) at the optimal output v* for log u₀.
        v_star = div.optimal_output(np.log(u0))
        np.testing.assert_allclose(float(div.activation(v_star)), t, rtol=1e-12, atol=1e-14)
    # The stable composition equals f*(g_f(v)) where both are finite.
    v = jnp.linspace(-3.0, 3.0, 13)
    np.testing.assert_allclose(
        np.asarray(div.conjugate_of_activation(v)),
        np.asarray(div.conjugate(div.activation(v))),
        rtol=1e-12,
        atol=1e-12,
    )


@pytest.mark.parametrize("name", ["kl", "reverse_kl", "js", "pearson"])
def test_fgan_bound_is_tight_at_the_optimal_critic(name, gan_samples):
    """F(V*) = D_f(P‖Q) at T* = f'(p/q) (Nowozin et al. 2016, §2.2), D_f by quadrature of
    ∫q f(p/q); shifted critics give a lower bound, by more than K_SE paired SEs."""
    real, fake = gan_samples
    div = f_divergence(name)
    loss = FGAN(div)
    q = norm.pdf(GRID, MU_Q, SD_Q)
    d_f = _quad(q * np.asarray(div.f(np.exp(_log_ratio(GRID)))))
    v_real, v_fake = div.optimal_output(_log_ratio(real)), div.optimal_output(_log_ratio(fake))
    a = np.asarray(div.activation(v_real))
    b = np.asarray(div.conjugate_of_activation(v_fake))
    bound = float(loss.variational_bound(v_real, v_fake))
    np.testing.assert_allclose(bound, a.mean() - b.mean(), rtol=1e-12)
    assert abs(bound - d_f) <= K_SE * _two_sample_se(a, b), (bound, d_f)
    d_loss, g_loss = loss(v_real, v_fake)
    assert float(d_loss) == -bound
    np.testing.assert_allclose(float(g_loss), -b.mean(), rtol=1e-12)
    for delta in (0.3, -0.3):
        da = np.asarray(div.activation(v_real + delta)) - a
        db = np.asarray(div.conjugate_of_activation(v_fake + delta)) - b
        drop = bound - float(loss.variational_bound(v_real + delta, v_fake + delta))
        assert drop > K_SE * _two_sample_se(da, db), (name, delta, drop)
    if name == "js":
        # D_f = 2 JS for Nowozin's JS generator function, and F = V_minimax + log 4.
        np.testing.assert_allclose(d_f, 2.0 * _js(), rtol=1e-10)
        d_minimax = MinimaxGAN().discriminator_loss(v_real, v_fake)
        np.testing.assert_allclose(bound, -float(d_minimax) + np.log(4.0), rtol=1e-12)


@pytest.mark.parametrize("abc", [(0.0, 1.0, 1.0), (-1.0, 1.0, 0.0)])
def test_lsgan_optimum(abc, gan_samples):
    """The discriminator loss is minimised at D* = (b p + a q)/(p + q) (Mao et al. 2017): zero
    derivative along shifts and scalings of D* (within SE), larger loss for perturbed D, and the
    value ½∫ p q (b − a)²/(p + q) by quadrature."""
    a_lab, b_lab, c_lab = abc
    real, fake = gan_samples
    loss = LeastSquaresGAN(*abc)
    assert gan_loss("lsgan", a=a_lab, b=b_lab, c=c_lab) == loss

    def d_star(x):
        r = 1.0 / (1.0 + np.exp(-_log_ratio(x)))  # p/(p + q)
        return b_lab * r + a_lab * (1.0 - r)

    dr, df = d_star(real), d_star(fake)
    tr, tf = 0.5 * (dr - b_lab) ** 2, 0.5 * (df - a_lab) ** 2
    d_loss, g_loss = loss(jnp.asarray(dr), jnp.asarray(df))
    np.testing.assert_allclose(float(d_loss), tr.mean() + tf.mean(), rtol=1e-12)
    np.testing.assert_allclose(float(g_loss), np.mean(0.5 * (df - c_lab) ** 2), rtol=1e-12)
    p, q = norm.pdf(GRID, MU_P, SD_P), norm.pdf(GRID, MU_Q, SD_Q)
    value = 0.5 * (b_lab - a_lab) ** 2 * _quad(p * q / (p + q))
    assert abs(float(d_loss) - value) <= K_SE * _two_sample_se(tr, tf), (float(d_loss), value)
    # Stationarity along h(x) = 1 and h(x) = x: d/dε of d_loss(D* + ε h) at 0 per side.
    for h_real, h_fake in ((np.ones_like(real), np.ones_like(fake)), (real, fake)):
        _two = _two_sample_se((dr - b_lab) * h_real, (df - a_lab) * h_fake)
        deriv = np.mean((dr - b_lab) * h_real) + np.mean((df - a_lab) * h_fake)
        assert abs(deriv) <= K_SE * _two, deriv
    for delta in (0.2, -0.2):
        gap = float(loss.discriminator_loss(dr + delta, df + delta) - d_loss)
        da = 0.5 * (dr + delta - b_lab) ** 2 - tr
        db = 0.5 * (df + delta - a_lab) ** 2 - tf
        assert gap > K_SE * _two_sample_se(da, db), gap


def test_wasserstein_sign_and_value():
    """Sign convention: the critic is trained high on data. For p = N(1, 1), q = N(−1, 1) the
    critic f(x) = x is an optimal 1-Lipschitz critic, and −d_loss = W₁(p, q) = 2; d_loss falls as
    the critic separates real (high) from fake (low), and the generator loss falls as the
    critic's value on generated points rises."""
    k_p, k_q = jr.split(jr.key(3))
    real = 1.0 + jr.normal(k_p, (N_GAN,))
    fake = -1.0 + jr.normal(k_q, (N_GAN,))
    loss = WassersteinGAN()
    assert gan_loss("wgan") == loss
    d_loss, g_loss = loss(real, fake)
    se = _two_sample_se(np.asarray(real), np.asarray(fake))
    assert abs(-float(d_loss) - 2.0) <= K_SE * se
    assert float(g_loss) == -float(jnp.mean(fake))
    # d/dw d_loss(w·x) = E_q x − E_p x < 0: a steeper separating critic lowers the loss.
    slope = jax.grad(lambda w: loss.discriminator_loss(w * real, w * fake))(1.0)
    assert float(slope) < -K_SE * se
    # The reversed critic (high on fake) has a positive loss.
    assert float(loss.discriminator_loss(-real, -fake)) > K_SE * se
    # Gradient descent on g_loss raises the critic on generated points.
    assert np.all(np.asarray(jax.grad(loss.generator_loss)(fake)) < 0)


def test_hinge_sign_and_margins():
    """Critic high on data: d_loss = E relu(1 − D(x)) + E relu(1 + D(x̃)), exact values."""
    loss = HingeGAN()
    assert gan_loss("hinge") == loss
    real, fake = jnp.array([1.0, 2.5, 1.2]), jnp.array([-1.0, -3.0])
    d_loss, g_loss = loss(real, fake)
    assert float(d_loss) == 0.0  # margins reached
    assert float(g_loss) == 2.0  # −mean(fake)
    assert float(loss.discriminator_loss(jnp.zeros(3), jnp.zeros(2))) == 2.0
    assert float(loss.discriminator_loss(-real, -fake)) == pytest.approx(
        np.mean(1 + np.asarray(real)) + np.mean(1 - np.asarray(fake)), rel=1e-15
    )
    # Inside the margins the loss falls as the separation w grows: 2(1 − w) for w ∈ [0, 1].
    for w in (0.0, 0.25, 0.5, 0.9):
        value = float(loss.discriminator_loss(jnp.full(3, w), jnp.full(2, -w)))
        assert value == pytest.approx(2.0 * (1.0 - w), rel=1e-15)
    assert np.all(np.asarray(jax.grad(loss.generator_loss)(fake)) < 0)


def test_gan_loss_factory_and_errors():
    assert isinstance(gan_loss("minimax"), MinimaxGAN)
    assert isinstance(gan_loss("nonsaturating"), NonSaturatingGAN)
    fgan = gan_loss("fgan", divergence="pearson")
    assert isinstance(fgan, FGAN) and fgan.divergence == f_divergence("pearson")
    with pytest.raises(ValueError, match="`kind` must be one of"):
        gan_loss("vanilla")
    with pytest.raises(TypeError, match=r"gan_loss\('wgan'\) takes the options none"):
        gan_loss("wgan", a=1.0)
    with pytest.raises(TypeError, match="needs `divergence`"):
        gan_loss("fgan")
    with pytest.raises(ValueError, match="`divergence` must be one of"):
        f_divergence("hellinger")


# ----------------------------------------------------------------------------------------------
# Gradient penalties and weight clipping


def test_r1_penalty_closed_forms(key):
    k_x, k_w, k_a = jr.split(key, 3)
    x = jr.normal(k_x, (64, 3))
    w = jr.normal(k_w, (3,))
    # Linear D = w·x + b: ∇D = w everywhere, R1 = γ/2 ‖w‖², to round-off.
    r1 = r1_penalty(lambda z: w @ z + 0.7, x, gamma=4.0)
    np.testing.assert_allclose(float(r1), 2.0 * float(w @ w), rtol=1e-14)
    # Quadratic D = ½ xᵀAx (A symmetric): ∇D = A x, R1 = γ/2 mean ‖A x_i‖².
    a = jr.normal(k_a, (3, 3))
    a = a + a.T
    r1 = r1_penalty(lambda z: 0.5 * z @ a @ z, x, gamma=10.0)
    expected = 5.0 * np.mean(np.sum((np.asarray(x) @ np.asarray(a)) ** 2, axis=1))
    np.testing.assert_allclose(float(r1), expected, rtol=1e-13)
    # Differentiable in the parameters (double backprop): for an eqx.nn.Linear critic,
    # ∂R1/∂w = γ w.
    lin = eqx.nn.Linear(3, "scalar", key=k_w)
    grads = eqx.filter_grad(lambda m: r1_penalty(m, x, gamma=3.0))(lin)
    np.testing.assert_allclose(np.asarray(grads.weight), 3.0 * np.asarray(lin.weight), rtol=1e-14)


def test_wgan_gp_penalty_closed_forms(key):
    k_r, k_f, k_w, k_gp = jr.split(key, 4)
    real, fake = jr.normal(k_r, (64, 2, 2)), 3.0 + jr.normal(k_f, (64, 2, 2))
    u = jr.normal(k_w, (2, 2))
    u = u / jnp.linalg.norm(u)
    # Linear critic with unit-norm weight: 1-Lipschitz, penalty 0 (round-off of ‖u‖ − 1).
    gp = gradient_penalty(lambda z: jnp.sum(u * z), real, fake, k_gp, lam=10.0)
    assert float(gp) < 1e-28
    # Weight of norm r: penalty λ(r − 1)² at every interpolate.
    for r in (0.5, 2.0):
        gp = gradient_penalty(lambda z: r * jnp.sum(u * z), real, fake, k_gp, lam=10.0)
        np.testing.assert_allclose(float(gp), 10.0 * (r - 1.0) ** 2, rtol=1e-13)
    # D = ½‖x‖²: ∇D(x̂) = x̂. With real = fake the interpolates are the points themselves.
    gp = gradient_penalty(lambda z: 0.5 * jnp.sum(z**2), real, real, k_gp, lam=2.0)
    norms = np.linalg.norm(np.asarray(real).reshape(64, -1), axis=1)
    np.testing.assert_allclose(float(gp), 2.0 * np.mean((norms - 1.0) ** 2), rtol=1e-13)
    # A constant critic: ‖∇D‖ = 0, penalty λ, and a finite (zero) gradient through the norm.
    lin = eqx.nn.Linear(4, "scalar", key=k_w)
    flat_r, flat_f = real.reshape(64, 4), fake.reshape(64, 4)
    zero = eqx.tree_at(lambda m: m.weight, lin, jnp.zeros_like(lin.weight))
    value, grads = eqx.filter_value_and_grad(
        lambda m: gradient_penalty(m, flat_r, flat_f, k_gp, lam=10.0)
    )(zero)
    assert float(value) == 10.0
    assert np.all(np.isfinite(np.asarray(grads.weight)))
    # The library's own check, or first the runtime type checker (`n` bound twice).
    with pytest.raises((TypeError, ValueError), match=r"must have the same shape|'x_fake'"):
        gradient_penalty(lambda z: jnp.sum(z), flat_r, flat_f[:10], k_gp)


def test_clip_weights_bounds_every_layer_and_spares_the_embedding(key):
    critic = MLPDiscriminator(2, 16, 2, key=key, time_conditioned=True, embed_dim=8)
    c = 0.01
    clipped = clip_weights(critic, c)
    layers = [
        leaf
        for leaf in jax.tree_util.tree_leaves(
            clipped, is_leaf=lambda n: isinstance(n, eqx.nn.Linear)
        )
        if isinstance(leaf, eqx.nn.Linear)
    ]
    assert len(layers) == 1 + 1 + 1 + 1 + 2  # inp, 1 hidden, out, time_proj, 2 conditioners
    original = [
        leaf
        for leaf in jax.tree_util.tree_leaves(
            critic, is_leaf=lambda n: isinstance(n, eqx.nn.Linear)
        )
        if isinstance(leaf, eqx.nn.Linear)
    ]
    assert any(float(jnp.max(jnp.abs(layer.weight))) > c for layer in original)
    for before, after in zip(original, layers, strict=True):
        for name in ("weight", "bias"):
            old, new = np.asarray(getattr(before, name)), np.asarray(getattr(after, name))
            assert np.all(np.abs(new) <= c)
            np.testing.assert_array_equal(new, np.clip(old, -c, c))
    # The fixed Fourier frequencies are not parameters: left as they are.
    assert clipped.embedding is not None and critic.embedding is not None
    np.testing.assert_array_equal(
        np.asarray(clipped.embedding.frequencies), np.asarray(critic.embedding.frequencies)
    )
    # Same structure: the clipped critic is a drop-in replacement.
    assert jax.tree_util.tree_structure(clipped) == jax.tree_util.tree_structure(critic)
    with pytest.raises(ValueError, match="`c` must be > 0"):
        clip_weights(critic, 0.0)


def _closed_form_divergence(name: str) -> float:
    """D_f(P‖Q) for the two Gaussians above, written from its definition, not from `div.f`.

    KL between Gaussians; Pearson χ² = ∫p²/q − 1 = σ_q/(σ_p²√A)·exp(Δ²/(σ_p²σ_q²A)) − 1 with
    A = 2/σ_p² − 1/σ_q² > 0 (complete the square in the exponent); f-GAN's JS generator gives
    2·JS, JS from its own definition by quadrature."""
    delta = MU_P - MU_Q
    if name == "kl":
        return np.log(SD_Q / SD_P) + (SD_P**2 + delta**2) / (2 * SD_Q**2) - 0.5
    if name == "reverse_kl":
        return np.log(SD_P / SD_Q) + (SD_Q**2 + delta**2) / (2 * SD_P**2) - 0.5
    if name == "pearson":
        a = 2 / SD_P**2 - 1 / SD_Q**2
        return SD_Q / (SD_P**2 * np.sqrt(a)) * np.exp(delta**2 / (SD_P**2 * SD_Q**2 * a)) - 1
    return 2.0 * _js()


@pytest.mark.parametrize("name", ["kl", "reverse_kl", "js", "pearson"])
def test_f_divergence_value_equals_the_closed_form(name):
    """∫q f(p/q) with the library's f equals the divergence computed from its definition (a
    generator function off by a constant factor, e.g. a Pearson at half of χ², fails here: the
    table test above checks f against its own conjugate, which a consistent rescaling passes).
    Trapezoidal quadrature on a 2e-4 grid over ±20: error far below the 1e-9 tolerance."""
    div = f_divergence(name)
    p, q = norm.pdf(GRID, MU_P, SD_P), norm.pdf(GRID, MU_Q, SD_Q)
    d_f = _quad(q * np.asarray(div.f(p / q)))
    np.testing.assert_allclose(d_f, _closed_form_divergence(name), rtol=1e-9)


def test_dsm_likelihood_weighting_value(key):
    """With the zero score, the per-point loss is (g²/σ²)‖ε‖² for the likelihood weighting
    λ = g² (the loss is E λ‖s + ε/σ‖², computed as (λ/σ²)‖σs + ε‖²). For VP, g² = β = B'
    and σ² = 1 − e^{−B}, so E_t[g²/σ²] = [log(e^B − 1)]_{t_min}^{T} / (T − t_min) in closed
    form, times E‖ε‖² = d. Mean within K_SE standard errors of the per-point values; dropping
    the 1/σ² (weight g²) moves the mean to d·B(T)/(T − t_min), 21–26 SE away. Keys 0–9 tried:
    |z| ≤ 1.4 at the right weight, so the 5-SE bar leaves a false-failure rate of order 1e-6
    (normal mean)."""
    process, t_min, n, d = gpm_sde.vp(), 1e-2, N_DSM, 2
    x0 = jnp.zeros((n, d))
    per_point = dsm_loss(
        lambda t, x: jnp.zeros_like(x),
        process,
        x0,
        key,
        weighting="likelihood",
        t_min=t_min,
        reduction="none",
    )

    def big_b(t: float) -> float:
        return 0.1 * t + 0.5 * t**2 * (20.0 - 0.1)

    expected = d * (np.log(np.expm1(big_b(1.0))) - np.log(np.expm1(big_b(t_min)))) / (1 - t_min)
    m, se = _mean_se(per_point)
    assert abs(m - expected) <= K_SE * se, (m, expected, se)


def test_dsm_likelihood_weighting_is_exact_per_point(key):
    """Deterministic companion of the test above. Data at the origin, so under VP
    x_t = σ(t)ε and the conditional score is −ε/σ = −x/σ². A score off it by e₁/g(t),
    s(t, x) = −x/σ(t)² + e₁/g(t), has the per-point loss λ(t)‖s + ε/σ‖² = g²·(1/g²) = 1 for
    the likelihood weighting λ = g², whatever t and ε were drawn (σ² = 1 − e^{−B}, g² = β in
    closed form, not from the process). Dropping the 1/σ² of the code's (λ/σ²)‖σs + ε‖² gives
    σ(t)² < 1 instead; a λ = g⁴ or λ = g gives g² or 1/g."""
    process, n = gpm_sde.vp(), 64

    def score(t, x):
        big_b = 0.1 * t + 0.5 * t**2 * (20.0 - 0.1)
        sigma2, g = -jnp.expm1(-big_b), jnp.sqrt(0.1 + t * (20.0 - 0.1))
        return -x / sigma2 + jnp.array([1.0, 0.0]) / g

    per_point = dsm_loss(
        score, process, jnp.zeros((n, 2)), key, weighting="likelihood", t_min=1e-3, reduction="none"
    )
    np.testing.assert_allclose(np.asarray(per_point), np.ones(n), rtol=1e-9)


def test_fgan_pearson_bound_equals_chi2_on_discrete_laws():
    """Pearson χ² of two laws on three atoms, p = (1/2, 1/4, 1/4) and q = (1/4, 1/4, 1/2):
    χ²(P‖Q) = Σ(p − q)²/q = 0.25 + 0 + 0.125 = 0.375 exactly. Samples with exactly these
    frequencies (4 each), so the bound's means are exact expectations. At the optimal critic
    T* = f'(p/q) = 2(p/q − 1) (written here, not taken from the library) the f-GAN bound
    E_p T − E_q f*(T) equals χ², and so does it at the library's `optimal_output`; any other
    critic gives less. A Pearson consistently at half of χ² (f = (u − 1)²/2, f* = t²/2 + t,
    v* = p/q − 1) gives 0.1875 and fails here."""
    p, q = np.array([0.5, 0.25, 0.25]), np.array([0.25, 0.25, 0.5])
    chi2 = float(np.sum((p - q) ** 2 / q))
    assert chi2 == 0.375
    real_atoms, fake_atoms = np.array([0, 0, 1, 2]), np.array([0, 1, 2, 2])
    loss = gan_loss("fgan", divergence="pearson")
    assert isinstance(loss, FGAN)
    t_star = 2.0 * (p / q - 1.0)
    v_lib = np.asarray(loss.divergence.optimal_output(jnp.log(p / q)))
    np.testing.assert_allclose(v_lib, t_star, rtol=1e-12)
    for v in (t_star, v_lib):
        bound = float(loss.variational_bound(v[real_atoms], v[fake_atoms]))
        assert bound == pytest.approx(chi2, rel=1e-12)
        d_loss, _ = loss(v[real_atoms], v[fake_atoms])
        assert float(d_loss) == pytest.approx(-chi2, rel=1e-12)
    for delta in (np.array([0.1, 0.0, 0.0]), np.array([0.0, -0.2, 0.3])):
        v = t_star + delta
        assert float(loss.variational_bound(v[real_atoms], v[fake_atoms])) < chi2 - 1e-6
    # The divergence itself, Σ q f(p/q):
    assert float(jnp.sum(q * loss.divergence.f(p / q))) == pytest.approx(chi2, rel=1e-12)
