"""Networks and score parameterisations (`gpm_sde.nn`).

Tolerances:
- networks: shapes, dtypes and transformation invariance (vmap and jit against plain calls),
  compared to float64 round-off (1e-12 relative: a few hundred flops per output);
- parameterisation wrappers fed the exact optimal network output on mixture data: round-off
  amplified by the cancellation in (α x̂₀ − x)/σ², bounded as `_CANCEL` ulps of
  (|x| + σ²|s|)/σ² per component (stated at `_assert_cancel_close`).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gpm_sde
from gpm_sde.nn import (
    ConvDiscriminator8,
    ConvGenerator8,
    EDMDenoiser,
    EpsilonParam,
    FourierEmbedding,
    MLPDiscriminator,
    MLPGenerator,
    ScoreMLP,
    ScoreParam,
    UNet8,
    X0Param,
    edm_preconditioning,
)

RTOL = 1e-12  # float64 round-off over a few hundred flops
EPS = np.finfo(np.float64).eps
_CANCEL = 64.0  # ulps allowed on the terms of (α x̂₀ − x)/σ² (a handful of roundings each)

# Small networks with few distinct array shapes: every new parameter shape costs one XLA
# compilation of its initialiser (up to a second on the 2-core CI machine).
W = 8  # width / channels
E = 8  # time-embedding size


def _close(a, b, rtol=RTOL):
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(1.0, float(np.max(np.abs(b)))))


# ----------------------------------------------------------------------------------------------
# Fourier embedding


def test_fourier_embedding_formula_and_fixed_frequencies(key):
    emb = FourierEmbedding(E, key=key, scale=3.0)
    t = 0.37
    w = np.asarray(emb.frequencies)
    assert w.shape == (E // 2,)
    expected = np.concatenate([np.sin(2 * np.pi * w * t), np.cos(2 * np.pi * w * t)])
    out = emb(t)
    assert out.shape == (E,) and out.dtype == jnp.float64
    _close(out, expected)
    # Frequencies are drawn once and not trained (Song et al. 2021): zero gradient.
    grads = eqx.filter_grad(lambda m: jnp.sum(m(t)))(emb)
    assert np.all(np.asarray(grads.frequencies) == 0.0)
    # Scale: the frequencies are N(0, scale²) draws — same key, scale 1 gives w / 3.
    _close(FourierEmbedding(E, key=key, scale=1.0).frequencies, w / 3.0)


def test_fourier_embedding_rejects_bad_arguments(key):
    with pytest.raises(ValueError, match="`embed_dim` must be even"):
        FourierEmbedding(7, key=key)
    with pytest.raises(ValueError, match="`scale` must be > 0"):
        FourierEmbedding(8, key=key, scale=0.0)
    # A batch of times is refused, naming `t` (by the library's own check, or first by the
    # runtime type checker that the test suite installs).
    with pytest.raises((TypeError, ValueError), match=r"`t` must be a scalar|parameter 't'"):
        FourierEmbedding(8, key=key)(jnp.ones(3))


# ----------------------------------------------------------------------------------------------
# Score networks


def _check_pointwise_net(net, t, x, batch_t, batch_x):
    """Shape and dtype on one point; vmap equals the loop of single calls; jit with the module
    as an argument works; a change of t changes the output. Everything runs jitted: op-by-op
    calls of a conv net compile every primitive and are slow on the CI machine."""
    single = jax.jit(lambda m, tt, xx: m(tt, xx))
    out = single(net, t, x)
    assert out.shape == x.shape and out.dtype == jnp.float64
    batched = jax.jit(lambda m, tt, xx: jax.vmap(m)(tt, xx))(net, batch_t, batch_x)
    looped = jnp.stack([single(net, ti, xi) for ti, xi in zip(batch_t, batch_x, strict=True)])
    _close(batched, looped)
    other = single(net, t + 0.25, x)
    # Time conditioning is live: the output moves by far more than round-off.
    assert float(jnp.max(jnp.abs(other - out))) > 1e-3 * float(jnp.max(jnp.abs(out)))


def test_score_mlp_shapes_transforms_and_time_conditioning(key):
    k_net, k_x = jr.split(key)
    net = ScoreMLP(3, W, 2, E, key=k_net)
    xs = jr.normal(k_x, (5, 3))
    ts = jnp.linspace(0.1, 0.9, 5)
    _check_pointwise_net(net, 0.3, xs[0], ts, xs)
    with pytest.raises(ValueError, match=r"`x` must be one point of shape \(3,\)"):
        net(0.3, jnp.ones(4))
    with pytest.raises(ValueError, match="`depth` must be an int >= 1"):
        ScoreMLP(3, W, 0, E, key=k_net)


@pytest.fixture(scope="module")
def unet():
    """One small U-Net for the module: building it draws ~30 parameter arrays, each a fresh
    XLA compilation of the initialiser (seconds on a 2-core machine)."""
    return UNet8(key=jr.key(1), channels=(W, W, W), embed_dim=E)


def test_unet8_shapes_transforms_time_conditioning_and_gradients(unet, key):
    """Shapes, vmap against single calls, time conditioning, and: every trainable array (all
    but the fixed Fourier frequencies) influences the output — its gradient is not identically
    zero, so no block or skip connection is dead. Few compilations: they are the cost on the
    CI machine."""
    xs = jr.normal(key, (3, 1, 8, 8))
    ts = jnp.array([0.1, 0.5, 0.9])

    @eqx.filter_jit
    def batched_and_grad(m):
        def loss(mm):
            out = jax.vmap(mm)(ts, xs)
            return jnp.sum(out**2), out

        (_, out), grads = eqx.filter_value_and_grad(loss, has_aux=True)(m)
        return out, grads

    batched, grads = batched_and_grad(unet)
    assert batched.shape == (3, 1, 8, 8) and batched.dtype == jnp.float64
    single = jax.jit(lambda m, t, x: m(t, x))
    looped = jnp.stack([single(unet, ti, xi) for ti, xi in zip(ts, xs, strict=True)])
    _close(batched, looped)
    out, other = looped[0], single(unet, ts[0] + 0.25, xs[0])
    assert float(jnp.max(jnp.abs(other - out))) > 1e-3 * float(jnp.max(jnp.abs(out)))

    leaves = jax.tree_util.tree_leaves_with_path(eqx.filter(grads, eqx.is_inexact_array))
    for path, g in leaves:
        name = jax.tree_util.keystr(path)
        if "frequencies" in name:
            assert np.all(np.asarray(g) == 0.0)
        else:
            assert np.any(np.asarray(g) != 0.0), name

    # The library's own check, or first the runtime type checker of the test suite.
    with pytest.raises((TypeError, ValueError), match=r"`x` must be one point|parameter 'x'"):
        unet(0.3, jnp.ones((8, 8)))
    with pytest.raises(ValueError, match="`channels` must be 3 positive ints"):
        UNet8(key=key, channels=(8, 16))


# ----------------------------------------------------------------------------------------------
# Generators and discriminators


def _batched(module, *args, in_axes=0):
    """`jax.vmap(module)` under `jax.jit`, the module passed as an argument (op-by-op calls of
    a conv net compile every primitive and are slow on the CI machine)."""
    return jax.jit(lambda m, *a: jax.vmap(m, in_axes=in_axes)(*a))(module, *args)


def test_mlp_generator(key):
    k_net, k_z = jr.split(key)
    gen = MLPGenerator(W, 2, W, 2, key=k_net)
    z = jr.normal(k_z, (6, W))
    x = _batched(gen, z)
    assert x.shape == (6, 2) and x.dtype == jnp.float64
    bounded = MLPGenerator(W, 8 * W, W, 2, key=k_net, out_activation=jnp.tanh)
    y = _batched(bounded, 5.0 * z)
    assert np.all(np.abs(np.asarray(y)) <= 1.0)
    with pytest.raises(ValueError, match=r"`z` must be one point of shape \(8,\)"):
        gen(jnp.ones(3))


def test_conv_generator8_shape_and_range(key):
    k_net, k_z = jr.split(key)
    gen = ConvGenerator8(W, key=k_net, channels=W)
    z = 3.0 * jr.normal(k_z, (4, W))
    x = _batched(gen, z)
    assert x.shape == (4, 1, 8, 8) and x.dtype == jnp.float64
    assert np.all(np.abs(np.asarray(x)) <= 1.0)  # tanh output
    assert float(jnp.std(x)) > 1e-3  # not collapsed to a constant image


@pytest.mark.parametrize("conv", [False, True], ids=["mlp", "conv"])
def test_discriminators_plain_and_time_conditioned(conv, key):
    k1, k2, k_x = jr.split(key, 3)
    if conv:
        plain = ConvDiscriminator8(key=k1, channels=W)
        timed = ConvDiscriminator8(key=k2, channels=W, time_conditioned=True, embed_dim=E)
        xs = jr.normal(k_x, (4, 1, 8, 8))
    else:
        plain = MLPDiscriminator(2, W, 2, key=k1)
        timed = MLPDiscriminator(2, W, 2, key=k2, time_conditioned=True, embed_dim=E)
        xs = jr.normal(k_x, (4, 2))

    @jax.jit
    def evaluate(plain, timed, xs):
        """Plain and timed outputs on the batch, at two times, and ∇_x of the timed one: one
        compilation (each costs up to a second on the CI machine)."""
        d = jax.vmap(plain)(xs)
        ds = jax.vmap(timed, in_axes=(None, 0))(0.2, xs)
        ds_later = jax.vmap(timed, in_axes=(None, 0))(0.7, xs)
        g = jax.grad(lambda z: timed(0.2, z))(xs[0])
        return d, ds, ds_later, g

    d, ds, ds_later, g = evaluate(plain, timed, xs)
    assert d.shape == (4,) and d.dtype == jnp.float64
    assert ds.shape == (4,)
    # Time conditioning is live.
    assert float(jnp.max(jnp.abs(ds_later - ds))) > 1e-3 * float(jnp.max(jnp.abs(ds)))
    # Gradients in x exist (the particle fields and penalties need them) and are finite.
    assert g.shape == xs[0].shape and np.all(np.isfinite(np.asarray(g)))
    assert float(jnp.max(jnp.abs(g))) > 0.0
    with pytest.raises(TypeError, match=r"time-conditioned.*`D\(s, x\)`"):
        timed(xs[0])
    with pytest.raises(TypeError, match=r"not time-conditioned: call it as `D\(x\)`"):
        plain(0.2, xs[0])


# ----------------------------------------------------------------------------------------------
# Score parameterisations, fed the exact optimal output on mixture data


def _assert_cancel_close(score, exact, x, sigma2):
    """|score − exact| ≤ _CANCEL·eps·(|x| + σ²|exact|)/σ² per component: the round-off of
    forming (α x̂₀ − x)/σ² from terms of size |x| and σ²|s|."""
    score, exact, x = np.asarray(score), np.asarray(exact), np.asarray(x)
    bound = _CANCEL * EPS * (np.abs(x) + sigma2 * np.abs(exact)) / sigma2
    assert np.all(np.abs(score - exact) <= bound), np.max(np.abs(score - exact) / bound)


@pytest.fixture
def points(key):
    return 2.0 * jr.normal(key, (16, 2))


@pytest.mark.parametrize("t", [0.05, 0.4, 1.0])
def test_epsilon_x0_score_params_recover_the_exact_score(t, mixture_2d, points):
    process = gpm_sde.vp()
    exact = gpm_sde.MixtureMarginalScore(process, mixture_2d)
    s_star = jax.vmap(exact, in_axes=(None, 0))(t, points)
    alpha, sigma = float(process.alpha(t)), float(process.sigma(t))

    # ε* = −σ ∇log p_t (Tweedie): EpsilonParam gives −ε*/σ back, to a couple of ulps.
    eps_param = EpsilonParam(lambda u, x: -process.sigma(u) * exact(u, x), process.sigma)
    _close(jax.vmap(eps_param, in_axes=(None, 0))(t, points), s_star, rtol=1e-14)

    # x̂₀* = (x + σ²∇log p_t)/α (Tweedie): X0Param gives (α x̂₀ − x)/σ² back.
    x0_param = X0Param(
        lambda u, x: (x + process.variance(u) * exact(u, x)) / process.alpha(u),
        process.alpha,
        process.sigma,
    )
    _assert_cancel_close(jax.vmap(x0_param, in_axes=(None, 0))(t, points), s_star, points, sigma**2)
    # Constant coefficients are accepted in place of callables.
    x0_const = X0Param(lambda u, x: (x + sigma**2 * exact(u, x)) / alpha, alpha, sigma)
    _assert_cancel_close(jax.vmap(x0_const, in_axes=(None, 0))(t, points), s_star, points, sigma**2)
    # The identity parameterisation is exact.
    ident = jax.vmap(ScoreParam(exact), in_axes=(None, 0))(t, points)
    assert np.array_equal(np.asarray(ident), np.asarray(s_star))


def test_edm_preconditioning_matches_karras_table_1():
    sigma = np.array([0.002, 0.1, 0.5, 1.0, 7.0, 80.0])
    sd = 0.5
    c_skip, c_out, c_in, c_noise = (np.asarray(c) for c in edm_preconditioning(sigma, sd))
    # Table 1 ("ours"), written out independently in numpy.
    _close(c_skip, sd**2 / (sigma**2 + sd**2), rtol=1e-15)
    _close(c_out, sigma * sd / np.sqrt(sigma**2 + sd**2), rtol=1e-15)
    _close(c_in, 1.0 / np.sqrt(sigma**2 + sd**2), rtol=1e-15)
    _close(c_noise, 0.25 * np.log(sigma), rtol=1e-15)
    # Unit input variance: c_in²(σ² + σ_d²) = 1. Unit target variance: the target
    # (x₀ − c_skip x)/c_out of F has variance [c_skip²(σ² + σ_d²) − 2 c_skip σ_d² + σ_d²]/c_out²
    # for x = x₀ + σε, Var x₀ = σ_d²; it is 1 (Karras et al. 2022, appendix B.6).
    _close(c_in**2 * (sigma**2 + sd**2), np.ones_like(sigma), rtol=1e-14)
    target_var = (c_skip**2 * (sigma**2 + sd**2) - 2 * c_skip * sd**2 + sd**2) / c_out**2
    _close(target_var, np.ones_like(sigma), rtol=1e-9)  # cancellation ~ σ_d²/σ² · eps at σ=0.002


def test_edm_denoiser_skip_path_and_exact_score(mixture_2d, points):
    sd = 0.5
    # F = 0: D(x; σ) = c_skip x exactly, and the score is (c_skip − 1) x / σ².
    zero = EDMDenoiser(lambda c, y: jnp.zeros_like(y), sigma_data=sd)
    for sigma in (0.05, 1.0, 20.0):
        c_skip = sd**2 / (sigma**2 + sd**2)
        _close(zero.denoise(sigma, points[0]), c_skip * points[0], rtol=1e-15)
        _close(zero(sigma, points[0]), (c_skip - 1.0) * points[0] / sigma**2, rtol=1e-14)

    # The exact F* = (D* − c_skip x)/c_out with D* = x + σ² ∇log p_σ (Tweedie), read back from
    # the network's inputs (c_noise, c_in x): the wrapper returns the exact score.
    process = gpm_sde.edm()
    exact = gpm_sde.MixtureMarginalScore(process, mixture_2d)

    def f_star(c_noise, y):
        sigma = jnp.exp(4.0 * c_noise)
        c_skip, c_out, c_in, _ = edm_preconditioning(sigma, sd)
        x = y / c_in
        return (x + sigma**2 * exact(sigma, x) - c_skip * x) / c_out

    denoiser = EDMDenoiser(f_star, sigma_data=sd)
    for sigma in (0.1, 1.0, 10.0):
        s_star = jax.vmap(exact, in_axes=(None, 0))(sigma, points)
        score = jax.vmap(denoiser, in_axes=(None, 0))(sigma, points)
        # exp(4 · ¼ln σ) and y/c_in return σ and x to a few ulps; the rest is the cancellation
        # of (D − x)/σ², as for X0Param.
        _assert_cancel_close(score, s_star, points, sigma**2)


def test_edm_denoiser_on_a_scaled_process(mixture_2d, points):
    """For VP, x/α = x₀ + (σ/α)ε: with F* built from E[x₀|x_t] = (x + σ²∇log p_t)/α at
    σ̂ = σ/α the wrapper returns the exact VP score."""
    sd = 0.5
    process = gpm_sde.vp()
    exact = gpm_sde.MixtureMarginalScore(process, mixture_2d)
    t = 0.3
    alpha, sigma = process.alpha(t), process.sigma(t)

    def f_star(c_noise, y):
        sigma_hat = sigma / alpha
        c_skip, c_out, c_in, _ = edm_preconditioning(sigma_hat, sd)
        x_hat = y / c_in
        x = alpha * x_hat
        x0_hat = (x + sigma**2 * exact(t, x)) / alpha
        return (x0_hat - c_skip * x_hat) / c_out

    denoiser = EDMDenoiser(f_star, sigma_data=sd, alpha=process.alpha, sigma=process.sigma)
    s_star = jax.vmap(exact, in_axes=(None, 0))(t, points)
    score = jax.vmap(denoiser, in_axes=(None, 0))(t, points)
    _assert_cancel_close(score, s_star, points, float(sigma) ** 2)


def test_wrappers_plug_into_reverse(mixture_2d, points):
    """A wrapper is a pointwise score: `reverse` built on it has the drift of `reverse` built
    on the exact score."""
    process = gpm_sde.vp()
    exact = gpm_sde.MixtureMarginalScore(process, mixture_2d)
    wrapped = EpsilonParam(lambda u, x: -process.sigma(u) * exact(u, x), process.sigma)
    s = 0.6
    drift_exact = gpm_sde.reverse(process, exact).drift(s, points, None)
    drift_wrapped = gpm_sde.reverse(process, wrapped).drift(s, points, None)
    _close(drift_wrapped, drift_exact, rtol=1e-13)


def test_wrappers_reject_bad_coefficients():
    net = lambda t, x: x  # noqa: E731
    # Wrong types are refused naming the argument: by the library's own check, or first by the
    # runtime type checker that the test suite installs.
    with pytest.raises(TypeError, match=r"`sigma` must be a callable of time|parameter 'sigma'"):
        EpsilonParam(net, "sigma")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"`net` must be a callable|parameter 'net'"):
        ScoreParam(3.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`alpha` must be > 0"):
        X0Param(net, -1.0, 1.0)
    with pytest.raises(ValueError, match="`sigma_data` must be > 0"):
        EDMDenoiser(net, sigma_data=0.0)
