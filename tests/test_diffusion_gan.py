"""Diffusion-GAN instance noise (`train_gan(..., instance_noise=InstanceNoise(...))`).

- The noising is exactly $\\alpha(t)x + \\sigma(t)\\varepsilon$ with the closed-form VP
  coefficients $\\alpha = e^{-B/2}$, $B(t) = \\beta_{\\min}t + \\tfrac12 t^2(\\beta_{\\max} -
  \\beta_{\\min})$, $\\sigma = \\sqrt{1 - \\alpha^2}$.
- The adaptive length follows $T \\leftarrow \\operatorname{clip}(T + \\operatorname{sign}(r_d -
  d_{\\rm target})C, 0, T_{\\max})$ step by step in the training history; it rises while the
  discriminator separates a fixed generator from the data and falls while it cannot.
- The generator's gradient flows through the noising: with a fixed linear critic
  $D(x) = x$, the WGAN generator step moves a constant generator $G(z) = b$ by
  $\\eta\\,\\overline{\\alpha(t_i)}$, whose expectation is $\\eta\\,T^{-1}\\int_0^T\\alpha$ (by
  quadrature), instead of $\\eta$ without noise.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest
from hypothesis import given, settings, strategies as st
from jaxtyping import Array
from scipy.integrate import quad

import gpm_sde
from gpm_sde import nn, train

BETA_MIN, BETA_MAX = 0.1, 20.0


def _alpha(t):
    return np.exp(-0.5 * (BETA_MIN * t + 0.5 * t**2 * (BETA_MAX - BETA_MIN)))


class Constant(eqx.Module):
    """G(z) = b, whatever z."""

    b: Array
    latent_dim: int = eqx.field(static=True, default=1)

    def __call__(self, z):
        return self.b + 0.0 * z


class Identity(eqx.Module):
    """G(z) = z."""

    latent_dim: int = eqx.field(static=True, default=1)

    def __call__(self, z):
        return z


class LinearCritic(eqx.Module):
    """D(x) = x[0], a fixed linear critic."""

    def __call__(self, x):
        return x[0]


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), t_max=st.floats(0.05, 1.0))
def test_noising_closed_form(seed, t_max):
    noise = train.InstanceNoise(gpm_sde.vp(BETA_MIN, BETA_MAX), t_max=t_max)
    key = jr.key(seed)
    x = jr.normal(jr.fold_in(key, 1), (6, 1, 2, 2))
    t = jr.uniform(jr.fold_in(key, 2), (6,)) * t_max
    got = np.asarray(noise.noise(key, x, t))
    eps = np.asarray(jr.normal(key, x.shape, x.dtype))
    a = _alpha(np.asarray(t))[:, None, None, None]
    expected = a * np.asarray(x) + np.sqrt(1.0 - a**2) * eps
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_update_rule():
    noise = train.InstanceNoise(gpm_sde.vp(), t_max=0.8, d_target=0.6, rate=0.1)
    upd = lambda length, r: float(noise.update(jnp.asarray(length), jnp.asarray(r)))  # noqa: E731
    assert upd(0.5, 0.9) == pytest.approx(0.6)
    assert upd(0.5, 0.2) == pytest.approx(0.4)
    assert upd(0.75, 1.0) == pytest.approx(0.8)  # clipped at t_max
    assert upd(0.05, -1.0) == pytest.approx(0.0)  # clipped at 0
    with pytest.raises(ValueError, match="t_max"):
        train.InstanceNoise(gpm_sde.vp(), t_max=2.0)


def _check_recurrence(hist, target, rate, t_max):
    length, r_d = hist["noise_length"], hist["r_d"]
    expected = np.clip(length[:-1] + np.sign(r_d[:-1] - target) * rate, 0.0, t_max)
    np.testing.assert_allclose(length[1:], expected, atol=1e-12)


def test_length_rises_when_discriminator_overfits():
    """A fixed generator at -3, data at +3: the discriminator separates them (r_d near 1),
    so T grows by C per step until the noise hides the gap."""
    data = gpm_sde.GaussianMixture(jnp.ones(1), jnp.full((1, 1), 3.0), jnp.full((1, 1, 1), 0.01))
    g = Constant(jnp.full((1,), -3.0))
    d = nn.MLPDiscriminator(1, 16, 1, key=jr.key(0))
    noise = train.InstanceNoise(gpm_sde.vp(), t_max=1.0, rate=0.02)
    _, _, hist = train.train_gan(
        g, d, data, jr.key(1), steps=30, batch_size=64, lr=1e-2, instance_noise=noise,
        g_trainable=lambda _: False, progress=False,
    )  # fmt: skip
    _check_recurrence(hist, 0.6, 0.02, 1.0)
    assert hist["noise_length"][0] == 0.0
    assert np.mean(hist["r_d"] > 0.6) > 0.8
    assert hist["noise_length"][-1] > 0.4


@pytest.mark.slow
def test_length_falls_when_discriminator_cannot_separate():
    """A generator that already is the data law (G(z) = z, data N(0, 1)): r_d stays well
    below the target and T shrinks from its initial value to 0."""
    data = gpm_sde.GaussianMixture(jnp.ones(1), jnp.zeros((1, 1)), jnp.ones((1, 1, 1)))
    d = nn.MLPDiscriminator(1, 16, 1, key=jr.key(2))
    noise = train.InstanceNoise(gpm_sde.vp(), t_max=1.0, rate=0.02, t_init=0.5)
    _, _, hist = train.train_gan(
        Identity(), d, data, jr.key(3), steps=30, batch_size=64, lr=1e-3,
        instance_noise=noise, progress=False,
    )  # fmt: skip
    _check_recurrence(hist, 0.6, 0.02, 1.0)
    assert hist["noise_length"][0] == 0.5
    assert np.mean(hist["r_d"] < 0.6) > 0.8
    assert hist["noise_length"][-1] < 0.1


@pytest.mark.parametrize("with_noise", [False, True])
def test_generator_gradient_through_noising(with_noise):
    """One WGAN generator step (SGD, lr 1) on G(z) = b against the fixed critic D(x) = x:
    b moves by the batch mean of alpha(t_i) (mean over n = 4096, t ~ U[0, T]), 1 without
    noise."""
    n, length = 4096, 0.5
    noise = train.InstanceNoise(gpm_sde.vp(), t_max=length, rate=1e-9, t_init=length)
    g = Constant(jnp.zeros(1))
    data = gpm_sde.GaussianMixture(jnp.ones(1), jnp.zeros((1, 1)), jnp.ones((1, 1, 1)))
    g, _, _ = train.train_gan(
        g, LinearCritic(), data, jr.key(4), steps=1, loss="wgan", batch_size=n,
        g_optimizer=optax.sgd(1.0), d_optimizer=optax.sgd(1.0),
        instance_noise=noise if with_noise else None, progress=False,
    )  # fmt: skip
    moved = float(g.b[0])
    if not with_noise:
        assert moved == pytest.approx(1.0, rel=1e-12)
        return
    mean = quad(_alpha, 0.0, length)[0] / length
    second = quad(lambda t: _alpha(t) ** 2, 0.0, length)[0] / length
    se = np.sqrt((second - mean**2) / n)
    assert abs(moved - mean) < 4 * se, (moved, mean, se)


def test_off_keeps_state_and_history():
    """Without instance noise the state carries no length and the history no extra keys."""
    g = nn.MLPGenerator(1, 1, 8, 1, key=jr.key(5))
    d = nn.MLPDiscriminator(1, 8, 1, key=jr.key(6))
    state = train.gan_init(g, d)
    assert state.noise_length is None and state.d_state is None
    data = jr.normal(jr.key(7), (32, 1))
    step = train.gan_make_step(data, batch_size=8, latent_dim=1)
    new, metrics = eqx.filter_jit(step)(state, jr.key(8))
    assert set(metrics) == {"d_loss", "penalty", "g_loss"}
    assert new.noise_length is None and new.d_state is None
    noise = train.InstanceNoise(gpm_sde.vp(), t_max=0.5)
    step = train.gan_make_step(data, batch_size=8, latent_dim=1, instance_noise=noise)
    with pytest.raises(ValueError, match="instance_noise"):
        step(state, jr.key(9))
