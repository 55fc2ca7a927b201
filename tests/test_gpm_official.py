"""The GPM authors' algorithms (github.com/White-Link/gpm) as this library's options and presets,
checked against re-derivations of their updates on fixed inputs:

- the noise-level law of their Score GAN (the Karras ρ-ramp at a uniform position) against its
  closed-form distribution function;
- one Score-GAN generator step, exact: with two Gaussian scores of the same variance the field
  at a noised point does not depend on the noise, so the update is a closed form in the drawn
  σ's (a fixed law here), which pins the power of σ, the per-point σ and the weights;
- where the field is evaluated (at the noised points), by the mean of a quadratic field;
- the plain denoiser loss of their generated score;
- the Discriminator-Flow path of their generation loop (`eta`, the time input `k/N`) to
  round-off, and the variance their `entropy_reg` adds.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest
from jaxtyping import Array

import gpm_sde
from gpm_sde import train
from gpm_sde.schedules import AbstractSigmaLaw, KarrasSigma


class FixedSigma(AbstractSigmaLaw):
    """A 'law' returning the given levels in order: per point (shape `(n,)`) the first `n`
    values, per batch (shape `()`) the first one."""

    values: Array

    def sample(self, key, shape, dtype=float):
        out = self.values[: shape[0]] if shape else self.values[0]
        return out.astype(dtype)


class Bias(eqx.Module):
    """$G(z) = b$: the generator's only parameter is the point it outputs."""

    b: Array
    latent_dim: int = eqx.field(static=True, default=1)

    def __call__(self, z):
        return self.b + 0.0 * z


class GaussianSigmaScore(eqx.Module):
    """$\\nabla\\log(\\mathcal{N}(m, I) * k_\\sigma)(x) = -(x - m)/(1 + \\sigma^2)$, with no
    trainable leaf (`m` static)."""

    m: tuple[float, ...] = eqx.field(static=True)

    def __call__(self, sigma, x):
        return -(x - jnp.asarray(self.m)) / (1.0 + sigma**2)


class MinusSquare(eqx.Module):
    """A 'score' $-x^2$ (elementwise): a field that is not affine in the point."""

    def __call__(self, sigma, x):
        return -(x**2)


class Zero(eqx.Module):
    def __call__(self, sigma, x):
        return jnp.zeros_like(x)


def _floats(v):
    return tuple(float(x) for x in v)


def _one_generator_step(b0, real, gen, sigmas, **options):
    g, _, _ = train.train_score_gan(
        Bias(jnp.asarray(b0)),
        gen,
        real,
        jr.key(options.pop("seed", 0)),
        steps=1,
        batch_size=len(sigmas),
        sigma_law=FixedSigma(jnp.asarray(sigmas)),
        g_optimizer=optax.sgd(1.0),
        s_optimizer=optax.sgd(1.0),
        progress=False,
        **options,
    )
    return np.asarray(g.b)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_karras_sigma_law_has_the_closed_form_distribution(seed):
    """$P(\\sigma \\le s) = (s^{1/\\rho} - \\sigma_{\\min}^{1/\\rho})/(\\sigma_{\\max}^{1/\\rho}
    - \\sigma_{\\min}^{1/\\rho})$ on [0.1, 10], ρ = 3 (the authors' setting). Kolmogorov-Smirnov
    on 20,000 draws: $\\sqrt{n}D_n < 1.95$ fails with probability 0.001 under the law; the
    EDM log-normal law, or ρ = 7 instead of 3, gives $\\sqrt{n}D_n > 10$."""
    law = KarrasSigma(0.1, 10.0, 3.0)
    s = np.sort(np.asarray(law.sample(jr.key(seed), (20_000,))))
    assert s.min() >= 0.1 - 1e-12 and s.max() <= 10.0 + 1e-12
    hi, lo = 10.0 ** (1 / 3), 0.1 ** (1 / 3)
    cdf = (s ** (1 / 3) - lo) / (hi - lo)
    n = len(s)
    d = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
    assert np.sqrt(n) * d < 1.95, np.sqrt(n) * d


@pytest.mark.parametrize(("field_weight", "power"), [("sigma", 1), ("sigma2", 2)])
def test_noised_score_gan_step_is_the_official_update(field_weight, power):
    """The authors' generator loss is `gen_loss_scale * mean_i <x̃_i, w_gen σ_i s_ρ(x̃_i) −
    w_data σ_i s_q(x̃_i)>` with $\\tilde x_i = G(z_i) + \\sigma_i\\varepsilon_i$ and the
    gradient flowing through $G$ only. With $s_q$, $s_\\rho$ the smoothed scores of
    $\\mathcal{N}(m, I)$ and $\\mathcal{N}(b_0, I)$ and $w = 1$, the field is
    $\\sigma_i^p (m - b_0)/(1 + \\sigma_i^2)$ whatever the noise, so one SGD step (lr 1) of
    $G(z) = b$ moves $b$ by `scale · mean_i` of it exactly (float64 round-off). Distinct
    σ_i catch one σ per batch; p = 1 vs 2 is the authors' field against the library's
    default."""
    sigmas = np.array([0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 0.3, 3.0])
    m, b0, scale = np.array([2.0, -1.0]), np.array([0.5, 0.25]), 3.0
    b = _one_generator_step(
        b0,
        GaussianSigmaScore(_floats(m)),
        GaussianSigmaScore(_floats(b0)),
        sigmas,
        field_at="noised",
        field_weight=field_weight,
        score_loss="denoiser",
        g_loss_scale=scale,
    )
    expected = b0 + scale * np.mean(sigmas**power / (1 + sigmas**2)) * (m - b0)
    np.testing.assert_allclose(b, expected, rtol=1e-13, atol=1e-13)


def test_generated_field_weights_and_one_sigma_per_batch():
    """At the generated point $x = b$ with one σ per batch (the first level), the field is
    $\\sigma^2[w_q s_q(b) - w_\\rho s_\\rho(b)]$: the weights `weight_data`, `weight_gen`
    enter as written (a swap changes the update)."""
    sigmas = np.array([0.7, 3.0, 5.0])
    m, b0, b_gen = np.array([2.0]), np.array([0.5]), np.array([-1.0])
    b = _one_generator_step(
        b0,
        GaussianSigmaScore(_floats(m)),
        GaussianSigmaScore(_floats(b_gen)),
        sigmas,
        field_at="generated",
        weight_data=2.0,
        weight_gen=0.5,
    )
    s = sigmas[0]
    field = s**2 * (2.0 * (m - b0) - 0.5 * (b_gen - b0)) / (1 + s**2)
    np.testing.assert_allclose(b, b0 + field, rtol=1e-13)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noised_field_is_evaluated_at_the_noised_points(seed):
    """With the field $\\sigma\\cdot(-\\tilde x^2)$ (σ = 1 for every point) the update of
    $b$ is $-\\mathrm{mean}_i (b + \\varepsilon_i)^2$, of mean $-(b^2 + 1)$ and standard
    error $\\sqrt{(2 + 4b^2)/n}$; the field at $G(z) = b$ itself would give $-b^2$, 1 away,
    > 70 standard errors at n = 20,000. Asserted within 5 SE (false alarm 6e-7 per key)."""
    n, b0 = 20_000, 0.5
    b = _one_generator_step(
        np.array([b0]),
        MinusSquare(),
        Zero(),
        np.ones(n),
        seed=seed,
        field_at="noised",
        field_weight="sigma",
    )
    se = np.sqrt((2 + 4 * b0**2) / n)
    moved = b[0] - b0
    assert abs(moved + (b0**2 + 1)) < 5 * se, (moved, se)
    assert abs(-(b0**2) + (b0**2 + 1)) > 70 * se


def test_denoiser_loss_is_the_plain_denoiser_error():
    """`dsm_loss(weighting="denoiser")` is $\\|D(x_0 + \\sigma\\varepsilon;\\sigma) - x_0\\|^2$
    with $D = \\tilde x + \\sigma^2 s$. With $x_0 = 0$ and $s = c\\,x$: $D - x_0 =
    (1 + c\\sigma^2)\\sigma\\varepsilon$, so per point loss(c)/loss(0) $= (1 + c\\sigma^2)^2$
    exactly and loss(0)/σ² averages $\\|\\varepsilon\\|^2$, of mean $d$ (within 5 SE,
    SE $= \\sqrt{2d/n}$); against the EDM weighting on the same draws the ratio is
    $\\sigma^2\\sigma_d^2/(\\sigma^2 + \\sigma_d^2)$ exactly."""
    n, d, c = 20_000, 2, 0.3
    sigmas = jnp.asarray(np.geomspace(0.1, 10.0, n))
    law = FixedSigma(sigmas)
    x0, key, edm = jnp.zeros((n, d)), jr.key(3), gpm_sde.edm()

    def loss(scale, weighting="denoiser"):
        def score(t, x):
            return scale * x

        return np.asarray(
            gpm_sde.losses.dsm_loss(
                score, edm, x0, key, weighting=weighting, sigma_law=law, reduction="none"
            )
        )

    s = np.asarray(sigmas)
    np.testing.assert_allclose(loss(c) / loss(0.0), (1 + c * s**2) ** 2, rtol=1e-12)
    eps2 = loss(0.0) / s**2
    assert abs(np.mean(eps2) - d) < 5 * np.sqrt(2 * d / n)
    ratio = loss(0.0) / loss(0.0, "edm")
    np.testing.assert_allclose(ratio, s**2 * 0.25 / (s**2 + 0.25), rtol=1e-12)


def _d(s, x):
    """A time-dependent logit whose gradient changes with s, so a time input one step late
    moves the path."""
    return (1.0 + 3.0 * s) * (0.8 * x[0] - 0.3 * x[1]) - 0.5 * jnp.sum(x**2) + jnp.sin(4 * s)


def _official_path(y0, eta, n_steps):
    """The authors' `partial_generate_like` in NumPy: `z += eta * grad / N` with `grad`
    minus the gradient of `BCE(D(z, k/N), 1) = softplus(-D)`, i.e. sigmoid(−D)∇D."""
    z, path = np.array(y0), [np.array(y0)]
    for k in range(n_steps):
        s = k / n_steps
        w = np.array([0.8, -0.3])
        d = (1 + 3 * s) * (z @ w) - 0.5 * np.sum(z**2, axis=1) + np.sin(4 * s)
        grad_d = (1 + 3 * s) * w[None, :] - z
        z = z + eta * (1 / (1 + np.exp(d)))[:, None] * grad_d / n_steps
        path.append(z)
    return np.stack(path)


def test_discriminator_flow_is_the_official_path_to_round_off():
    """`discriminator_flow_sample(D, y0, eta=20, flow_steps=56)` against the authors' loop
    written out in NumPy: equal to 1e-12 (float64, 56 steps of O(1) updates). The
    mutations "D's time one step late" and "η folded into t1" (which also scales the times
    D sees) are each O(1) away."""
    y0 = np.asarray(jr.normal(jr.key(1), (64, 2)))
    ours = np.asarray(
        train.discriminator_flow_sample(
            _d, jnp.asarray(y0), eta=20.0, flow_steps=56, save_path=True
        )
    )
    ref = _official_path(y0, 20.0, 56)
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    folded = np.asarray(
        train.discriminator_flow_sample(_d, jnp.asarray(y0), t1=20.0, flow_steps=56)
    )
    assert np.max(np.abs(folded - ref[-1])) > 0.1


@pytest.mark.parametrize("seed", [0, 1])
def test_entropy_reg_adds_the_official_noise(seed):
    """With a constant discriminator the path is the noise alone: `sqrt(entropy_reg / N)` on
    every step but the last, a variance of ε(N − 1)/N. 20,000 particles in 2-D: the sample
    variance has SE √(2/40,000) ≈ 0.7 % relative; noise on every step (ε) is 25 % away at
    N = 4. Asserted within 5 SE."""
    eps, n_steps, n = 0.8, 4, 20_000
    y0 = jnp.zeros((n, 2))
    x = train.discriminator_flow_sample(
        lambda s, x: jnp.zeros(()), y0, flow_steps=n_steps, entropy_reg=eps, key=jr.key(seed)
    )
    var = float(np.var(np.asarray(x)))
    expected = eps * (n_steps - 1) / n_steps
    assert abs(var / expected - 1) < 5 * np.sqrt(2 / (2 * n)), var
    with pytest.raises(ValueError, match="key"):
        train.discriminator_flow_sample(lambda s, x: jnp.zeros(()), y0, entropy_reg=eps)


def test_presets_are_the_official_settings():
    sg = train.official_score_gan()
    assert sg["sigma_law"] == KarrasSigma(0.1, 10.0, 3.0)
    assert (sg["field_at"], sg["field_weight"], sg["score_loss"]) == ("noised", "sigma", "denoiser")
    assert (sg["score_steps"], sg["batch_size"]) == (10, 128)
    assert (sg["weight_data"], sg["weight_gen"], sg["g_loss_scale"]) == (1.0, 1.0, 1.0)
    df = train.official_discriminator_flow()
    assert (df["flow_steps"], df["eta"], df["t1"], df["entropy_reg"]) == (56, 20.0, 1.0, 0.0)
    assert (df["loss"], df["penalty"], df["d_steps"]) == ("nonsaturating", None, 1)
    assert (df["n_particles"], df["batch_size"]) == (128, 128)
    # Adam(2e-4, b1 = 0.5): one step on a unit gradient moves by lr (bias-corrected Adam).
    params = jnp.zeros(3)
    state = df["optimizer"].init(params)
    updates, _ = df["optimizer"].update(jnp.ones(3), state, params)
    np.testing.assert_allclose(updates, -2e-4 * np.ones(3), rtol=1e-6)


def test_normal_init_is_dcgan_init():
    """`normal_init`: affine weights N(0, 0.02²) (sample std within 5 % over ~50k weights),
    zero biases, the Fourier frequencies of a time-conditioned discriminator untouched."""
    d = gpm_sde.nn.MLPDiscriminator(2, 128, 3, key=jr.key(0), time_conditioned=True)
    d2 = gpm_sde.nn.normal_init(d, key=jr.key(1))
    weights = np.concatenate([np.ravel(layer.weight) for layer in (d2.inp, *d2.layers, d2.out)])
    assert abs(np.std(weights) / 0.02 - 1) < 0.05 and abs(np.mean(weights)) < 1e-3
    assert all(np.all(np.asarray(layer.bias) == 0) for layer in (d2.inp, *d2.layers, d2.out))
    assert d.embedding is not None and d2.embedding is not None
    for before, after in zip(
        jax.tree_util.tree_leaves(d.embedding), jax.tree_util.tree_leaves(d2.embedding), strict=True
    ):
        np.testing.assert_array_equal(before, after)
