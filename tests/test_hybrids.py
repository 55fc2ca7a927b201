"""GAN–diffusion hybrids: Denoising Diffusion GAN (chain, real pairs, posterior step, sampler
with an oracle generator, trainer) and truncated diffusion (TDPM) with an exact generator.

Every statistical check is a z-test: (estimate - exact) / standard error, with the exact value
from an independent float64 closed form (Bayes' rule for Gaussians, DDGAN's schedule written
out in NumPy) and |z| < 4.5 over at most ~60 scores (false alarm < 4e-4 by the union bound)."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gpm_sde
from gpm_sde import nn, samplers, train, verify
from gpm_sde.scores import AbstractCloudScore, MixtureMarginalScore

Z = 4.5


def ddgan_alpha_bars(T: int, beta_min: float = 0.1, beta_max: float = 20.0) -> np.ndarray:
    """ᾱ_0..ᾱ_T of DDGAN's chain, as their `var_func_vp` and `get_sigma_schedule` write it:
    ᾱ(t) = 1 - var(t) with log_mean_coeff = -t²(β_max - β_min)/4 - t β_min/2 and
    var = 1 - exp(2 log_mean_coeff), t_k = k/T (1 - 1e-3) + 1e-3, normalised by ᾱ(t_0)."""
    t = np.arange(T + 1) / T * (1 - 1e-3) + 1e-3
    lmc = -0.25 * t**2 * (beta_max - beta_min) - 0.5 * t * beta_min
    ab = 1.0 - (1.0 - np.exp(2.0 * lmc))
    return ab / ab[0]


def test_ddgan_chain_matches_their_schedule():
    for T in (1, 2, 4, 8):
        ab = ddgan_alpha_bars(T)
        chain = samplers.ddgan_chain(T)  # float64: the test session enables x64 (conftest)
        np.testing.assert_allclose(np.asarray(chain.betas), 1.0 - ab[1:] / ab[:-1], rtol=1e-12)
        np.testing.assert_allclose(
            np.exp(np.cumsum(np.log1p(-np.asarray(chain.betas)))), ab[1:], rtol=1e-12
        )


def bayes_posterior(ab_prev, ab_n, x0, xn):
    """q(x_{n-1} | x_n, x_0) by Bayes' rule: prior N(√ᾱ_{n-1} x0, 1 - ᾱ_{n-1}) times the
    likelihood N(x_n; √α_n x_{n-1}, β_n), α_n = ᾱ_n/ᾱ_{n-1}."""
    alpha = ab_n / ab_prev
    beta = 1.0 - alpha
    prec = 1.0 / (1.0 - ab_prev) + alpha / beta
    var = 1.0 / prec
    mean = var * (np.sqrt(ab_prev) * x0 / (1.0 - ab_prev) + np.sqrt(alpha) * xn / beta)
    return mean, var


def test_ddgan_posterior_closed_form_and_draws():
    T, m = 4, 20000
    ab = ddgan_alpha_bars(T)
    x0 = np.array([1.3, -0.4])
    xn = np.array([-0.7, 2.1])
    chain = samplers.ddgan_chain(T)
    for n in range(1, T + 1):
        mean, var = chain.posterior_mean_variance(jnp.asarray(x0)[None], jnp.asarray(xn)[None], n)
        if n == 1:
            np.testing.assert_allclose(np.asarray(mean)[0], x0, rtol=1e-12)
            assert float(var) == 0.0
            continue
        ref_mean, ref_var = bayes_posterior(ab[n - 1], ab[n], x0, xn)
        np.testing.assert_allclose(np.asarray(mean)[0], ref_mean, rtol=1e-10)
        np.testing.assert_allclose(float(var), ref_var, rtol=1e-10)
        if n != T:
            continue
        # the draws at n = T: one step per point (n repeated), m copies of the same (x0, x_n)
        steps = jnp.full((m,), n)
        draws = samplers.ddgan_posterior_sample(
            chain, jr.key(n), jnp.tile(x0, (m, 1)), jnp.tile(xn, (m, 1)), steps
        )
        z = verify.moment_z_scores(draws, ref_mean, ref_var * np.eye(2))
        assert np.max(np.abs(np.asarray(z))) < Z, (n, z)


@pytest.mark.parametrize("n", [2, 4])
def test_ddgan_pairs_joint_law(n):
    """(x_{n-1}, x_n) given x0: means √ᾱ x0, variances 1 - ᾱ, covariance √α_n (1 - ᾱ_{n-1})."""
    T, m, x0 = 4, 20000, 0.8
    ab = ddgan_alpha_bars(T)
    chain = samplers.ddgan_chain(T)
    x_prev, x_n = samplers.ddgan_pairs(chain, jr.key(n), jnp.full((m, 1), x0), jnp.full((m,), n))
    pairs = jnp.concatenate([x_prev, x_n], axis=1)
    mean = np.sqrt([ab[n - 1], ab[n]]) * x0
    c = np.sqrt(ab[n] / ab[n - 1]) * (1.0 - ab[n - 1])
    cov = np.array([[1.0 - ab[n - 1], c], [c, 1.0 - ab[n]]])
    z = verify.moment_z_scores(pairs, mean, cov)
    assert np.max(np.abs(np.asarray(z))) < Z, z


MEAN = np.array([1.5, -1.0])
STD = np.array([0.5, 1.2])


class OracleGenerator(eqx.Module):
    """G(x_n, z, n) = a draw of the exact q(x_0 | x_n) for data N(MEAN, diag(STD²)):
    x_0 | x_n ~ N(m + K (x_n - √ᾱ_n m), s²(1 - ᾱ_n)/v), K = s²√ᾱ_n/v, v = ᾱ_n s² + 1 - ᾱ_n.
    `shift=1` uses ᾱ_{n-1} instead (an index shift); `noise=0` returns the posterior mean
    (a generator that ignores its latent: a Gaussian reverse step of the wrong variance)."""

    chain: gpm_sde.processes.DDPM
    shift: int = eqx.field(static=True, default=0)
    noise: float = eqx.field(static=True, default=1.0)
    latent_dim: int = eqx.field(static=True, default=2)

    def __call__(self, x_n, z, n):
        ab = self.chain.alpha_bar(n - self.shift)
        s2 = jnp.asarray(STD**2, x_n.dtype)
        m = jnp.asarray(MEAN, x_n.dtype)
        v = ab * s2 + 1.0 - ab
        gain = s2 * jnp.sqrt(ab) / v
        return m + gain * (x_n - jnp.sqrt(ab) * m) + self.noise * jnp.sqrt(s2 * (1.0 - ab) / v) * z


def oracle_output_law(T: int) -> tuple[np.ndarray, np.ndarray]:
    """The law of x_0 from x_T ~ N(0, I) through exact reverse kernels: ∫ q(x_0 | x_T)
    N(x_T; 0, I) dx_T, mean m(1 - K√ᾱ_T), variance s²(1 - ᾱ_T)/v + K²."""
    ab = ddgan_alpha_bars(T)[T]
    s2 = STD**2
    v = ab * s2 + 1.0 - ab
    gain = s2 * np.sqrt(ab) / v
    return MEAN * (1.0 - gain * np.sqrt(ab)), s2 * (1.0 - ab) / v + gain**2


@pytest.mark.parametrize("T", [pytest.param(2, marks=pytest.mark.slow), 4])
def test_ddgan_sample_with_oracle_generator_reproduces_the_data_law(T):
    chain = samplers.ddgan_chain(T)
    mean, var = oracle_output_law(T)
    for seed in range(2):
        x = samplers.ddgan_sample(OracleGenerator(chain), chain, jr.key(seed), 20000, (2,)).x
        z = verify.moment_z_scores(x, mean, np.diag(var))
        assert np.max(np.abs(np.asarray(z))) < Z, (T, seed, z)
    # from the exact q(x_T) instead of N(0, I): exactly the data law
    ab_T = ddgan_alpha_bars(T)[T]
    noise = jr.normal(jr.key(9), (20000, 2))
    x_T = jnp.asarray(np.sqrt(ab_T) * MEAN) + jnp.asarray(np.sqrt(ab_T * STD**2 + 1 - ab_T)) * noise
    x = samplers.ddgan_sample(OracleGenerator(chain), chain, jr.key(5), x_init=x_T).x
    z = verify.moment_z_scores(x, MEAN, np.diag(STD**2))
    assert np.max(np.abs(np.asarray(z))) < Z, z


@pytest.mark.parametrize("shift, noise", [(1, 1.0), pytest.param(0, 0.0, marks=pytest.mark.slow)])
def test_ddgan_sample_with_a_wrong_posterior_fails_the_same_test(shift, noise):
    T = 4
    chain = samplers.ddgan_chain(T)
    mean, var = oracle_output_law(T)
    wrong = OracleGenerator(chain, shift=shift, noise=noise)
    x = samplers.ddgan_sample(wrong, chain, jr.key(0), 20000, (2,)).x
    z = verify.moment_z_scores(x, mean, np.diag(var))
    assert np.max(np.abs(np.asarray(z))) > 3 * Z, z


@pytest.mark.slow  # compiling the step (R1 is a double backward pass) takes ~20 s here
def test_train_ddgan_runs_and_samples():
    T = 2
    G = nn.DDGANGenerator(2, 2, T, 16, 2, key=jr.key(0))
    D = nn.DDGANDiscriminator(2, T, 16, 2, key=jr.key(1))
    law = gpm_sde.data.five_gaussians()
    G2, _, hist = train.train_ddgan(
        G, D, law, jr.key(2), steps=4, num_steps=T, batch_size=32, progress=False, chunk=2
    )
    assert set(hist) >= {"d_loss", "r1", "g_loss"} and hist["d_loss"].shape == (4,)
    assert all(np.all(np.isfinite(v)) for v in hist.values())
    assert np.all(hist["r1"] > 0)
    moved = jax.tree_util.tree_leaves(eqx.filter(G2, eqx.is_array))[0]
    assert not np.allclose(moved, jax.tree_util.tree_leaves(eqx.filter(G, eqx.is_array))[0])
    x = samplers.ddgan_sample(G2, samplers.ddgan_chain(T), jr.key(3), 8, (2,)).x
    assert x.shape == (8, 2) and np.all(np.isfinite(np.asarray(x)))
    with pytest.raises(ValueError, match="num_steps=2"):
        train.train_ddgan(G, D, law, jr.key(2), steps=1, num_steps=4, progress=False)


@pytest.mark.slow  # building the U-Net eagerly takes ~9 s here (one small compilation a layer)
def test_conv_ddgan_networks():
    """The 8×8 Denoising Diffusion GAN pair: G's latent is pixel-normalised (so G is exactly
    invariant to rescaling z, which a missing normalisation breaks) and G ends in tanh; the
    latent enters the U-Net only through `cond` (a zero `cond` is no conditioning); the
    discriminator reads the ordered pair and the step; a 1-channel ConvDiscriminator8 keeps
    the parameters it had before `in_channels` existed."""
    T = 4
    G = nn.DDGANUNet8(3, T, key=jr.key(0), channels=(4, 8, 8), embed_dim=8, mapping_depth=1)
    D = nn.DDGANConvDiscriminator8(T, key=jr.key(1), channels=4, embed_dim=8)
    x, x2 = jr.normal(jr.key(2), (2, 1, 8, 8))
    z = jr.normal(jr.key(3), (3,))
    # one compilation each (steps as arrays: a Python int would be static), not op-by-op calls
    jit_g, jit_d = eqx.filter_jit(G), eqx.filter_jit(D)
    g = lambda x, z, n: jit_g(x, z, jnp.asarray(n))  # noqa: E731
    d = lambda a, b, n: jit_d(a, b, jnp.asarray(n))  # noqa: E731
    out = g(x, z, 2)
    assert out.shape == (1, 8, 8) and np.all(np.abs(np.asarray(out)) <= 1.0)
    np.testing.assert_allclose(g(x, 7.0 * z, 2), out, rtol=1e-6, atol=1e-7)
    assert not np.allclose(g(x, -z, 2), out) and not np.allclose(g(x, z, 3), out)
    u = eqx.filter_jit(G.unet)
    np.testing.assert_array_equal(u(0.5, x, cond=jnp.zeros(8)), u(0.5, x))
    assert d(x, x2, 1).shape == ()
    assert not np.isclose(d(x, x2, 1), d(x2, x, 1)) and not np.isclose(d(x, x2, 1), d(x, x2, 4))
    for name, call in [("x_n", lambda: G(x[0], z, 1)), ("z", lambda: G(x, z[:2], 1))]:
        with pytest.raises((ValueError, TypeError), match=name):  # ours, or the type checker's
            call()
    with pytest.raises((ValueError, TypeError), match="x_prev"):
        D(x[0], x2, 1)
    with pytest.raises(ValueError, match="`cond` must be one point"):
        G.unet(0.5, x, cond=jnp.zeros(3))
    old, new = (
        nn.ConvDiscriminator8(key=jr.key(4)),
        nn.ConvDiscriminator8(key=jr.key(4), in_channels=1),
    )
    for a, b in zip(jax.tree.leaves(old), jax.tree.leaves(new), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # compiling a convolutional step with R1 (a double backward pass)
def test_train_ddgan_with_the_conv_networks_runs():
    T = 2
    G = nn.DDGANUNet8(4, T, key=jr.key(0), channels=(4, 8, 8), embed_dim=8, mapping_depth=1)
    D = nn.DDGANConvDiscriminator8(T, key=jr.key(1), channels=4, embed_dim=8)
    data = jr.uniform(jr.key(2), (64, 1, 8, 8), minval=-1.0, maxval=1.0)
    G2, _, hist = train.train_ddgan(
        G, D, data, jr.key(3), steps=3, num_steps=T, batch_size=8, progress=False
    )
    assert all(np.all(np.isfinite(v)) for v in hist.values()) and np.all(hist["r1"] > 0)
    x = samplers.ddgan_sample(G2, samplers.ddgan_chain(T), jr.key(4), 5, (1, 8, 8)).x
    assert x.shape == (5, 1, 8, 8) and np.all(np.abs(np.asarray(x)) <= 1.0)


# --- TDPM -------------------------------------------------------------------------------


def gaussian_law():
    return gpm_sde.GaussianMixture(
        jnp.ones(1), jnp.asarray(MEAN)[None], jnp.diag(jnp.asarray(STD**2))[None]
    )


@pytest.mark.parametrize(
    "sampler",
    [pytest.param(samplers.euler_ancestral, marks=pytest.mark.slow), samplers.dpm_solver_pp_2m],
)
def test_tdpm_with_the_exact_marginal_has_the_samplers_exact_law(sampler):
    """Start from the exact p_{t_trunc}: the output law is the sampler's law pushed exactly
    from p_{t_trunc} through its own steps (`verify.sampler_gaussian_law`)."""
    process, law, t_trunc, steps = gpm_sde.vp(), gaussian_law(), 0.4, 4
    score = MixtureMarginalScore(process, law)
    start = process.marginal(law, t_trunc)
    grid = samplers.tdpm_grid(process, t_trunc, steps)
    plan = samplers.sampler_plan(sampler, process, score, x_init=True, ts=grid)
    m, c = verify.sampler_gaussian_law(plan, start.means[0], start.covs[0])
    x = samplers.tdpm_sample(
        start, process, score, jr.key(0), 20000, t_trunc=t_trunc, steps=steps, sampler=sampler
    ).x
    z = verify.moment_z_scores(x, np.asarray(m), np.asarray(c))
    assert np.max(np.abs(np.asarray(z))) < Z, z


@pytest.mark.slow  # a 60-step plan's exact law and two 20000-point runs
def test_tdpm_with_the_exact_marginal_and_enough_steps_gives_the_data_law():
    """DPM-Solver++(2M), 60 steps from t_trunc = 0.4: the data law within sampling error
    (its exact discretisation bias is checked far below the standard errors first); a
    generator of the marginal at another time (0.6) is detected."""
    process, law, t_trunc, steps = gpm_sde.vp(), gaussian_law(), 0.4, 60
    score = MixtureMarginalScore(process, law)
    start = process.marginal(law, t_trunc)
    grid = samplers.tdpm_grid(process, t_trunc, steps)
    plan = samplers.sampler_plan(samplers.dpm_solver_pp_2m, process, score, x_init=True, ts=grid)
    m, c = verify.sampler_gaussian_law(plan, start.means[0], start.covs[0])
    # bias below a third of the standard errors of 20000 draws (s/√n, √2 s²/√n)
    assert np.all(np.abs(np.asarray(m) - MEAN) < STD / np.sqrt(20000) / 3)
    assert np.all(
        np.abs(np.diag(np.asarray(c)) - STD**2) < np.sqrt(2) * STD**2 / np.sqrt(20000) / 3
    )
    options: dict[str, Any] = dict(t_trunc=t_trunc, steps=steps, sampler=samplers.dpm_solver_pp_2m)
    x = samplers.tdpm_sample(start, process, score, jr.key(1), 20000, **options).x
    z = verify.moment_z_scores(x, MEAN, np.diag(STD**2))
    assert np.max(np.abs(np.asarray(z))) < Z, z
    late = process.marginal(law, 0.6)
    x = samplers.tdpm_sample(late, process, score, jr.key(2), 20000, **options).x
    z = verify.moment_z_scores(x, MEAN, np.diag(STD**2))
    assert np.max(np.abs(np.asarray(z))) > 2 * Z, z


class CountingScore(AbstractCloudScore):
    """The exact score, counting its evaluations on the host."""

    inner: MixtureMarginalScore
    calls: list = eqx.field(static=True)
    per_point = True

    def __call__(self, s, y):
        jax.debug.callback(lambda: self.calls.append(1))
        return jax.vmap(self.inner, in_axes=(None, 0))(s, y)


class CountingLaw(eqx.Module):
    law: gpm_sde.GaussianMixture
    calls: list = eqx.field(static=True)

    def sample(self, key, n):
        self.calls.append(1)
        return self.law.sample(key, n)


@pytest.mark.parametrize(
    "sampler, per_step",
    [pytest.param(samplers.euler_ancestral, 1, marks=pytest.mark.slow), (samplers.edm_heun, 2)],
)
def test_tdpm_nfe_is_one_generator_call_plus_the_samplers(sampler, per_step):
    process, law = gpm_sde.vp(), gaussian_law()
    score = CountingScore(MixtureMarginalScore(process, law), [])
    gen = CountingLaw(process.marginal(law, 0.5), [])
    steps = 5
    x = samplers.tdpm_sample(
        gen, process, score, jr.key(0), 16, t_trunc=0.5, steps=steps, sampler=sampler
    ).x
    jax.block_until_ready(x)
    jax.effects_barrier()
    expected = steps if per_step == 1 else 2 * steps - 1  # the last step to t = 0 is Euler
    assert len(gen.calls) == 1
    assert len(score.calls) == expected


def test_tdpm_grid_and_errors():
    process = gpm_sde.vp()
    grid = np.asarray(samplers.tdpm_grid(process, 0.3, 4))
    assert grid.shape == (5,) and np.isclose(grid[0], 1.0 - 0.3) and grid[-1] == 1.0
    assert np.all(np.diff(grid) > 0)
    np.testing.assert_allclose(
        np.asarray(samplers.tdpm_grid(process, 0.3, 4, "uniform")),
        1.0 - np.linspace(0.3, 1e-3, 5), rtol=1e-6,
    )  # fmt: skip
    law = gaussian_law()
    with pytest.raises(ValueError, match="t_trunc"):
        samplers.tdpm_grid(process, 1.5, 4)
    with pytest.raises(TypeError, match="exactly one of"):
        samplers.tdpm_sample(
            law, process, MixtureMarginalScore(process, law), jr.key(0), 4, t_trunc=0.3
        )


@pytest.mark.slow  # about a minute: 2000 training steps
def test_train_ddgan_learns_the_five_gaussians_in_two_steps():
    """T = 2 on the five Gaussians (the settings of benchmarks/hybrids.py, half the steps): every
    mode is found and the MMD to held-out data is a fraction of that of the best Gaussian
    reverse step on the same chain with the exact noise model (0.56 there)."""
    T = 2
    law = gpm_sde.data.five_gaussians()
    G = nn.DDGANGenerator(2, 2, T, 128, 3, key=jr.key(0))
    D = nn.DDGANDiscriminator(2, T, 128, 3, key=jr.key(1))
    G, _, _ = train.train_ddgan(
        G, D, law, jr.key(2), steps=2000, num_steps=T, g_lr=2e-4, d_lr=2e-4, ema=0.999,
        progress=False, chunk=500,
    )  # fmt: skip
    chain = samplers.ddgan_chain(T)
    x = samplers.ddgan_sample(G, chain, jr.key(3), 2000, (2,)).x
    held = law.sample(jr.key(4), 2000)
    mmd = float(jnp.sqrt(gpm_sde.metrics.mmd(x, held, biased=True)))
    weights = np.asarray(gpm_sde.metrics.mode_weights(x, law.means))
    gaussian = samplers.ddpm_ancestral(
        chain, samplers.exact_eps_model(chain, law), jr.key(3), 2000, (2,)
    ).x
    gaussian_mmd = float(jnp.sqrt(gpm_sde.metrics.mmd(gaussian, held, biased=True)))
    assert np.all(weights > 0.12), weights
    assert mmd < 0.3 * gaussian_mmd, (mmd, gaussian_mmd)
