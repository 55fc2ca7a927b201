"""Generative particle models (Franceschi et al. 2023): the Score-GAN and discriminator fields,
the particle flow they drive, and the Int-PM loss that moves a generator along a field.

Tolerances: pointwise identities are float64 round-off (1e-10 relative); the flow checks use
the solver error of Tsit5 on a smooth ODE (stated where used); the SGD check uses the O(η²)
remainder of a first-order Taylor expansion, measured by halving η.
"""

from __future__ import annotations

from typing import Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

import gpm_sde
from gpm_sde.flows import gaussian_diffflow
from gpm_sde.scores import KernelScore, SmoothedMixtureScore

RTOL = 1e-10


def _close(a, b, rtol=RTOL):
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.max(np.abs(b)))


def _empirical_mixture(y, sigma):
    """ρ * k_σ for the empirical law ρ of the cloud `y`: equal weights, means at the particles,
    covariance σ² I. An independent route to ∇log(ρ * k_σ) through `GaussianMixture`."""
    n, d = y.shape
    return gpm_sde.GaussianMixture(
        jnp.full(n, 1.0 / n), y, sigma**2 * jnp.broadcast_to(jnp.eye(d), (n, d, d))
    )


# ----------------------------------------------------------------------------------------------
# Score-GAN field


@pytest.mark.parametrize("schedules", ["constant", "callable"])
def test_score_gan_field_is_smoothed_score_difference(schedules, mixture_2d, key):
    """α∇log(q * k_σ) − β∇log(ρ * k_σ), with KernelScore(bandwidth=σ) exactly the smoothed
    generated score of the cloud."""
    sigma = 0.7
    if schedules == "constant":
        alpha, beta = 1.3, 0.8
    else:
        alpha, beta = (lambda s: 1.0 + s), (lambda s: 2.0 - s**2)
    y = 2.0 * jr.normal(key, (37, 2))
    field = gpm_sde.score_gan_field(
        SmoothedMixtureScore(mixture_2d), KernelScore(bandwidth=sigma, block=8), alpha, beta, sigma
    )
    q_sigma = mixture_2d.convolve(sigma)
    emp = _empirical_mixture(y, sigma)
    for s in (0.0, 0.4):
        a = alpha(s) if callable(alpha) else alpha
        b = beta(s) if callable(beta) else beta
        expected = a * jax.vmap(q_sigma.score)(y) - b * jax.vmap(emp.score)(y)
        _close(field(s, y, None), expected)
    # A pointwise σ-conditioned generated score (e.g. a denoising network) takes the other path
    # of the field and gives the same answer.
    pointwise = gpm_sde.score_gan_field(
        SmoothedMixtureScore(mixture_2d),
        lambda sig, x: _empirical_mixture(y, sig).score(x),
        alpha,
        beta,
        sigma,
    )
    _close(pointwise(0.4, y, None), field(0.4, y, None))


def test_score_gan_field_with_equal_weights_at_data_is_stationary(mixture_2d, key):
    """Power check: with α = β and the cloud scored against itself (q = ρ), the field is 0;
    with α ≠ β it is (α − β)∇log(ρ * k_σ) ≠ 0. A swapped sign or a wrong σ breaks the first."""
    y = jr.normal(key, (25, 2))
    sigma = 0.5
    real = lambda sig, x: _empirical_mixture(y, sig).score(x)  # noqa: E731
    gen = KernelScore(bandwidth=sigma, block=8)
    zero = gpm_sde.score_gan_field(real, gen, 1.0, 1.0, sigma)(0.0, y, None)
    assert float(jnp.max(jnp.abs(zero))) < 1e-10
    nonzero = gpm_sde.score_gan_field(real, gen, 2.0, 1.0, sigma)(0.0, y, None)
    _close(nonzero, gen(0.0, y))
    wrong_sigma = gpm_sde.score_gan_field(real, KernelScore(bandwidth=0.6), 1.0, 1.0, sigma)
    assert float(jnp.max(jnp.abs(wrong_sigma(0.0, y, None)))) > 1e-2


# ----------------------------------------------------------------------------------------------
# Discriminator field


_W = jnp.array([0.7, -1.2])
_A = jnp.array([[0.5, 0.3], [0.3, -0.8]])


def _D(s, x):
    return _W @ x + 0.5 * x @ _A @ x + s * jnp.sin(x[0])


def _grad_D(s, x):
    return _W + _A @ x + s * jnp.cos(x[0]) * jnp.array([1.0, 0.0])


@pytest.mark.parametrize("low_on_data", [False, True])
@pytest.mark.parametrize("kind", ["nonsaturating", "ipm", "hinge"])
def test_discriminator_field_matches_hand_gradient(kind, low_on_data, key):
    """−∇c(±D) with c = softplus(−d): σ(−D)∇D; c = −d (IPM and hinge critics, high on data):
    +∇D. A critic low on data (`low_on_data=True`) enters as −D: σ(D)(−∇D) and −∇D."""
    y = 1.5 * jr.normal(key, (11, 2))
    field = gpm_sde.discriminator_field(_D, kind, low_on_data=low_on_data)
    sign = -1.0 if low_on_data else 1.0
    for s in (0.0, 0.7):
        d = sign * jax.vmap(lambda x, s=s: _D(s, x))(y)
        grad = sign * jax.vmap(lambda x, s=s: _grad_D(s, x))(y)
        weight = {
            "nonsaturating": 1.0 / (1.0 + jnp.exp(d)),  # sigmoid(−D)
            "ipm": jnp.ones_like(d),
            "hinge": jnp.ones_like(d),
        }[kind]
        _close(field(s, y, None), weight[:, None] * grad)


def test_discriminator_field_bad_kind():
    # The jaxtyping/beartype hooks under pytest reject the Literal first (TypeError naming
    # `kind`); without them the module's own ValueError fires.
    with pytest.raises((TypeError, ValueError), match="kind"):
        gpm_sde.discriminator_field(_D, "minimax")  # pyright: ignore[reportArgumentType]


# ----------------------------------------------------------------------------------------------
# Particle flow with the optimal discriminator, Gaussian to Gaussian

_M = jnp.array([1.0, -0.5])
_S = jnp.array([[0.6, 0.2], [0.2, 0.4]])


def _log_normal(x, mean, cov):
    diff = x - mean
    _, logdet = jnp.linalg.slogdet(cov)
    return -0.5 * (diff @ jnp.linalg.solve(cov, diff) + logdet + x.shape[0] * jnp.log(2 * jnp.pi))


class _OptimalField(eqx.Module):
    """The field of the optimal discriminator between q = N(m, S) and the Gaussian fitted to the
    current cloud, D = sign · logit D* = sign · (log q − log p̂_s), retrained at every
    evaluation, as Discriminator Flow retrains its discriminator on its own particles. A
    pytree with `sign` an array: the two IPM tests share one compiled solve."""

    kind: Literal["nonsaturating", "ipm", "hinge"] = eqx.field(static=True)
    sign: jax.Array
    low_on_data: bool = eqx.field(static=True, default=False)

    def __call__(self, s, y, args):
        mu, cov = jnp.mean(y, axis=0), jnp.cov(y.T)

        def D(s, x):
            return self.sign * (_log_normal(x, _M, _S) - _log_normal(x, mu, cov))

        field = gpm_sde.discriminator_field(D, self.kind, low_on_data=self.low_on_data)
        return field(s, y, args)


def _optimal_field(
    kind: Literal["nonsaturating", "ipm", "hinge"], sign: float = 1.0, low_on_data: bool = False
):
    return _OptimalField(kind, jnp.asarray(sign), low_on_data)


def _cloud0(key, n=2000):
    return jnp.array([-1.5, 1.0]) + jr.normal(key, (n, 2)) @ jnp.array([[1.2, 0.0], [0.5, 0.3]])


def _solve(field, y0, ts, steps=200):
    """Tsit5 on a fixed grid of `steps` steps over [0, ts[-1]]; every save time must be a grid
    point, or `simulate` falls back to an adaptive `diffeqsolve` (many times slower)."""
    sol = gpm_sde.simulate(
        gpm_sde.particle_flow(field),
        y0,
        None,
        t1=float(ts[-1]),
        steps=steps,
        solver=diffrax.Tsit5(),
        saveat=diffrax.SaveAt(ts=ts),
    )
    assert sol.ys is not None
    return sol.ys


@pytest.mark.parametrize(
    ("kind", "sign", "low_on_data"), [("hinge", 1.0, False), ("ipm", 1.0, False)]
)
def test_optimal_linear_cost_flow_follows_the_moment_ode(kind, sign, low_on_data, key):
    """With c linear (hinge or IPM on the critic logit D*, high on data; a critic low on data
    with `low_on_data=True` gives the same field, checked exactly by
    `test_discriminator_field_matches_hand_gradient`) the field is
    ∇log q − ∇log p̂_s: affine, with p̂_s the cloud's own Gaussian fit. Then the
    cloud's empirical mean and covariance solve *exactly* the DiffFlow moment ODE with β = 1
    (for v = −S⁻¹(x − m) + Σ̂⁻¹(x − μ̂): μ̂' = −S⁻¹(μ̂ − m),
    Σ̂' = −(S⁻¹Σ̂ + Σ̂S⁻¹) + 2I), for any start, Gaussian or not. Tsit5 with 200 steps on
    s ∈ [0, 2] has a global error ~1e-9 here; we assert 1e-6."""
    y0 = _cloud0(key)
    ts = jnp.array([0.5, 1.0, 2.0])
    ys = _solve(_optimal_field(kind, sign, low_on_data), y0, ts)
    ref = gaussian_diffflow(_M, _S, jnp.mean(y0, axis=0), jnp.cov(y0.T), 1.0, t1=2.0)
    for s, y in zip(ts, ys, strict=True):
        np.testing.assert_allclose(jnp.mean(y, axis=0), ref.mean(s), atol=1e-6)
        np.testing.assert_allclose(jnp.cov(y.T), ref.cov(s), atol=1e-6)


def _distances(ys):
    mean_gap = jnp.linalg.norm(jnp.mean(ys, axis=1) - _M, axis=-1)
    cov_gap = jnp.stack([jnp.linalg.norm(jnp.cov(y.T) - _S) for y in ys])
    return np.asarray(mean_gap), np.asarray(cov_gap)


def test_nonsaturating_optimal_flow_moves_cloud_to_data(key):
    """The non-saturating field σ(−D)∇D = (p̂/(p̂ + q)) ∇log(q/p̂) is not affine, so no closed
    form: the claim checked is that it carries the cloud to the data, with the distances of
    the mean and covariance to (m, S) decreasing at every saved time (a deterministic flow,
    no sampling noise along the path) and shrinking by a factor > 5 by s = 6."""
    y0 = _cloud0(key)
    ts = jnp.linspace(0.0, 6.0, 13)
    ys = _solve(_optimal_field("nonsaturating"), y0, ts, steps=240)  # saves every 20 steps
    mean_gap, cov_gap = _distances(ys)
    assert np.all(np.diff(mean_gap) < 0), mean_gap
    assert np.all(np.diff(cov_gap) < 0), cov_gap
    assert mean_gap[-1] < mean_gap[0] / 5 and cov_gap[-1] < cov_gap[0] / 5, (mean_gap, cov_gap)


def test_ipm_critic_on_the_wrong_side_moves_away(key):
    """Power check of the sign convention: the library's critics are high on data; a critic
    low on data (−logit D*) given without `low_on_data=True` makes the field −∇(logit D*),
    which pushes the mean away from the data."""
    y0 = _cloud0(key)
    # The save times of the moment-ODE test, so that the IPM solves share one compile.
    ys = _solve(_optimal_field("ipm", sign=-1.0), y0, jnp.array([0.5, 1.0, 2.0]))
    mean_gap, _ = _distances(jnp.stack([y0, ys[0]]))  # s = 0 and s = 0.5
    assert mean_gap[1] > mean_gap[0]


# ----------------------------------------------------------------------------------------------
# Int-PM


def _pointwise_field(s, y, args):
    """A nonlinear field on the cloud (the non-saturating field of the analytic D above)."""
    return gpm_sde.discriminator_field(_D)(s, y, args)


def test_int_pm_gradient_is_minus_jacobian_transpose_field(key):
    """∇_θ L = −(1/n) Σ_i J_iᵀ ∇h(g_θ(z_i)), J_i = ∂g_θ(z_i)/∂θ, for a linear generator
    g(z) = Wz + b: by hand, ∇_W L = −(1/n) Σ_i ∇h_i z_iᵀ and ∇_b L = −(1/n) Σ_i ∇h_i; and by
    explicit jacobians of the flattened parameters. Float64 round-off."""
    kg, kz = jr.split(key)
    gen = eqx.nn.Linear(3, 2, key=kg)
    z = jr.normal(kz, (16, 3))
    s = 0.3
    grads = eqx.filter_grad(lambda g: gpm_sde.int_pm_loss(g, _pointwise_field, z, s))(gen)
    x = jax.vmap(gen)(z)
    h = _pointwise_field(s, x, None)
    _close(grads.weight, -jnp.einsum("ni,nj->ij", h, z) / z.shape[0])
    _close(grads.bias, -jnp.mean(h, axis=0))

    params, static = eqx.partition(gen, eqx.is_array)
    flat, unravel = ravel_pytree(params)
    jac = jax.vmap(
        jax.jacobian(lambda th, zi: eqx.combine(unravel(th), static)(zi)), in_axes=(None, 0)
    )(flat, z)  # (n, 2, P)
    expected = -jnp.einsum("nkp,nk->p", jac, h) / z.shape[0]
    _close(ravel_pytree(eqx.filter(grads, eqx.is_array))[0], expected)

    # Power check: without the stop-gradient the field itself is differentiated, and the
    # gradient changes (by the term involving ∂∇h/∂x) — the comparison above would see it.
    def no_sg(g):
        xs = jax.vmap(g)(z)
        return jnp.sum(xs * -_pointwise_field(s, xs, None)) / z.shape[0]

    wrong = eqx.filter_grad(no_sg)(gen)
    assert float(jnp.max(jnp.abs(wrong.weight - grads.weight))) > 1e-2


@eqx.filter_jit
def _sgd_move(gen, z, s, eta):
    """Outputs after one optax SGD step on the Int-PM loss, minus the outputs before."""
    params = eqx.filter(gen, eqx.is_array)
    opt = optax.sgd(eta)
    grads = eqx.filter_grad(lambda g: gpm_sde.int_pm_loss(g, _pointwise_field, z, s))(gen)
    updates, _ = opt.update(grads, opt.init(params))
    moved = eqx.apply_updates(gen, updates)
    return jax.vmap(moved)(z) - jax.vmap(gen)(z)


@eqx.filter_jit
def _ntk_prediction(gen, z, s, eta):
    """η (1/n) Σ_j J_i J_jᵀ ∇h_j: the field projected by the neural tangent kernel."""
    params, static = eqx.partition(gen, eqx.is_array)
    flat, unravel = ravel_pytree(params)
    jac = jax.vmap(
        jax.jacobian(lambda th, zi: eqx.combine(unravel(th), static)(zi)), in_axes=(None, 0)
    )(flat, z)
    h = _pointwise_field(s, jax.vmap(gen)(z), None)
    ntk = jnp.einsum("ikp,jlp->ijkl", jac, jac)  # (n, n, out, out)
    return eta * jnp.einsum("ijkl,jl->ik", ntk, h) / z.shape[0]


def test_sgd_step_moves_outputs_along_ntk_projected_field(key):
    """θ ← θ − η∇L moves g_θ(z_i) by η (1/n) Σ_j J_i J_jᵀ ∇h_j + O(η²).

    - Linear generator: g is linear in θ, so the remainder is exactly 0 (round-off) — and the
      NTK is (z_i·z_j + 1) I, checked by hand.
    - Tanh MLP: the remainder is O(η²): halving η divides the error by ≈ 4 (asserted in
      [3, 5]), and it is < 1% of the move at η = 1e-2.
    """
    kg, km, kz = jr.split(key, 3)
    z = jr.normal(kz, (12, 3))
    s = 0.2
    lin = eqx.nn.Linear(3, 2, key=kg)
    eta = jnp.asarray(0.1)  # arrays, not Python floats: filter_jit compiles once per generator
    move = _sgd_move(lin, z, s, eta)
    _close(move, _ntk_prediction(lin, z, s, eta), rtol=1e-9)
    h = _pointwise_field(s, jax.vmap(lin)(z), None)
    by_hand = eta * ((z @ z.T + 1.0) @ h) / z.shape[0]
    _close(move, by_hand, rtol=1e-9)

    mlp = eqx.nn.MLP(3, 2, width_size=8, depth=2, activation=jnp.tanh, key=km)
    errors = []
    for eta in (1e-2, 5e-3):
        move = _sgd_move(mlp, z, s, jnp.asarray(eta))
        pred = _ntk_prediction(mlp, z, s, jnp.asarray(eta))
        errors.append(float(jnp.max(jnp.abs(move - pred))))
        if eta == 1e-2:
            assert errors[0] < 1e-2 * float(jnp.max(jnp.abs(move)))
    ratio = errors[0] / errors[1]
    assert 3.0 < ratio < 5.0, (errors, ratio)
