"""The model adapters of `gpm_sde.scores` are exact: a network that predicts the noise, the data,
the velocity or an EDM denoiser *exactly* gives the exact marginal score.

The exact predictions of mixture data are written here from the Gaussian posterior of each
component, independently of the adapters (never through their inverse formulas) and of
`GaussianMixture.score`; the exact score is `MixtureMarginalScore`. Tolerances are float64
round-off: the score is a difference of terms of size |x| / sigma(t)^2 (e.g. (alpha x0 - x) /
sigma^2), so both the exact predictions and the exact score carry round-off of
eps_machine * |x| / sigma^2; errors are measured relative to that size (or to the score's
own size, when larger), and 1e-12 is then ~ 1e4 eps_machine.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.scipy.stats import multivariate_normal

import gpm_sde
from gpm_sde.processes import LinearProcess
from gpm_sde.samplers import exact_eps_model
from gpm_sde.scores import (
    BatchedScore,
    DiscreteEpsModel,
    MixtureMarginalScore,
    PredictionScore,
    from_batched,
    from_denoiser,
    from_eps,
    from_eps_discrete,
    from_v,
    from_v_discrete,
    from_x0,
    from_x0_discrete,
    on_cloud,
    vp_score_from_discrete,
)

RTOL = 1e-12  # relative to the largest score component, float64


def posterior_x0(law, alpha, sigma, x):
    r"""E[x0 | alpha x0 + sigma eps = x] for x0 ~ law (a Gaussian mixture), eps ~ N(0, I):
    per component N(mu, S), the posterior mean is mu + alpha S C^{-1} (x - alpha mu) with
    C = alpha^2 S + sigma^2 I, weighted by the responsibilities w_k N(x; alpha mu_k, C_k)."""
    eye = jnp.eye(x.shape[0])

    def component(mu, cov):
        c = alpha**2 * cov + sigma**2 * eye
        mean = mu + alpha * cov @ jnp.linalg.solve(c, x - alpha * mu)
        return multivariate_normal.logpdf(x, alpha * mu, c), mean

    logp, means = jax.vmap(component)(law.means, law.covs)
    r = jax.nn.softmax(jnp.log(law.weights) + logp)
    return r @ means


def exact_predictions(process, law):
    """The exact x0, eps and v predictions `(t, x)` and the exact EDM denoiser `(sigma, x)`."""

    def x0(t, x):
        return posterior_x0(law, process.alpha(t), process.sigma(t), x)

    def eps(t, x):
        return (x - process.alpha(t) * x0(t, x)) / process.sigma(t)

    def v(t, x):
        return process.alpha(t) * eps(t, x) - process.sigma(t) * x0(t, x)

    def denoiser(sigma, x):  # E[x0 | x0 + sigma n = x]: no process in it
        return posterior_x0(law, 1.0, sigma, x)

    return {"x0": x0, "eps": eps, "v": v, "denoiser": denoiser}


ADAPTERS = {"eps": from_eps, "x0": from_x0, "v": from_v, "denoiser": from_denoiser}

PROCESSES = {
    "vp": lambda: gpm_sde.vp(),
    "subvp": lambda: gpm_sde.subvp(),
    "ve": lambda: gpm_sde.ve(),
    "edm": lambda: gpm_sde.edm(),
    # A rectified-flow-like path, alpha^2 + sigma^2 != 1: the general v form matters here.
    "linear": lambda: LinearProcess(alpha=lambda t: 1.0 - t, sigma=lambda t: t, T=0.9),
}


def grid(process, key, n_points=6):
    """Pairs (t, x) over times spanning (0, T] and points on the scale of the marginal."""
    ts = process.T * jnp.array([0.02, 0.1, 0.4, 0.8, 1.0])
    scale = 2.0 * process.alpha(ts) + process.sigma(ts)
    xs = jr.normal(key, (ts.shape[0], n_points, 2)) * scale[:, None, None]
    return jnp.repeat(ts, n_points), xs.reshape(-1, 2)


def max_rel_error(score, reference, t, x, sigma2=None):
    """max |got - want| relative to the size of the terms: max(|want|, 1), and |x| / sigma^2
    when `sigma2` is given (the size of the x / sigma^2 that the conversions cancel)."""
    got = jax.jit(jax.vmap(score))(t, x)
    want = jax.jit(jax.vmap(reference))(t, x)
    scale = jnp.maximum(jnp.max(jnp.abs(want), axis=-1), 1.0)
    if sigma2 is not None:
        scale = jnp.maximum(scale, jnp.max(jnp.abs(x), axis=-1) / sigma2)
    return float(jnp.max(jnp.max(jnp.abs(got - want), axis=-1) / scale))


@pytest.mark.parametrize("kind", list(ADAPTERS))
@pytest.mark.parametrize("name", list(PROCESSES))
def test_continuous_adapter_is_exact(name, kind, mixture_2d, key):
    process = PROCESSES[name]()
    score = ADAPTERS[kind](process, exact_predictions(process, mixture_2d)[kind])
    assert isinstance(score, PredictionScore)
    t, x = grid(process, key)
    err = max_rel_error(score, MixtureMarginalScore(process, mixture_2d), t, x, process.variance(t))
    assert err < RTOL, (name, kind, err)


def test_v_general_form_differs_from_vp_form_off_vp(mixture_2d, key):
    """On a process with alpha^2 + sigma^2 != 1, dropping the factor alpha^2 + sigma^2 (the VP
    form diffusers uses) is wrong by far more than round-off: the test above sees the factor."""
    process = PROCESSES["linear"]()
    v = exact_predictions(process, mixture_2d)["v"]

    def vp_form(t, x):  # x0 = alpha x - sigma v, eps = sigma x + alpha v, valid for VP only
        a, s = process.alpha(t), process.sigma(t)
        return -(s * x + a * v(t, x)) / s

    t, x = grid(process, key)
    err = max_rel_error(vp_form, MixtureMarginalScore(process, mixture_2d), t, x)
    assert err > 1e-2


def test_denoiser_gives_the_edm_authors_ode(mixture_2d, key):
    """NVlabs/edm `generate.py` (`ablation_sampler`) integrates
    dx/dt = (sigma_E'/sigma_E + s'/s) x - sigma_E' s / sigma_E * D(x / s; sigma_E), with the
    scaling s = alpha and the EDM noise level sigma_E = sigma / alpha. The probability-flow ODE
    f x - g^2/2 * score with the `from_denoiser` score must be the same field."""
    process = gpm_sde.vp()
    D = exact_predictions(process, mixture_2d)["denoiser"]
    score = from_denoiser(process, D)

    def edm_field(t, x):
        s, ds = jax.jvp(process.alpha, (t,), (jnp.ones_like(t),))
        sig_e, dsig_e = jax.jvp(lambda u: process.sigma(u) / process.alpha(u), (t,), (1.0,))
        return (dsig_e / sig_e + ds / s) * x - dsig_e * s / sig_e * D(sig_e, x / s)

    def pf_field(t, x):
        g2 = process.diffusion(t) ** 2
        return process.drift_coeff(t) * x - 0.5 * g2 * score(t, x)

    t, x = grid(process, key)
    t = jnp.clip(t, 0.05, None)  # sigma_E' ~ 1/sigma_E blows up at t = 0 in both
    err = max_rel_error(pf_field, edm_field, t, x)
    assert err < 1e-12, err  # measured 3e-15


def test_k_diffusion_eps_wrapper_is_a_denoiser_of_ours(mixture_2d, key):
    """k-diffusion's `DiscreteEpsDDPMDenoiser` turns an eps-net into a denoiser on the scaled
    variable: D(x~; sigma~) = x~ - sigma~ * eps(x~ / sqrt(sigma~^2 + 1), t(sigma~)). On the VP
    process, `from_denoiser` of that wrapper is `from_eps` of the net."""
    process = gpm_sde.vp()
    eps = exact_predictions(process, mixture_2d)["eps"]
    b0, b1 = 0.1, 20.0

    def t_of_sigma(sig):  # B(t) = log(1 + sigma~^2) solved for t (NVlabs/edm `vp_sigma_inv`)
        big_b = jnp.log1p(sig**2)
        return (jnp.sqrt(b0**2 + 2.0 * (b1 - b0) * big_b) - b0) / (b1 - b0)

    def kd_denoiser(sig, x_scaled):
        return x_scaled - sig * eps(t_of_sigma(sig), x_scaled / jnp.sqrt(sig**2 + 1.0))

    t, x = grid(process, key)
    err = max_rel_error(from_denoiser(process, kd_denoiser), from_eps(process, eps), t, x)
    assert err < 1e-12, err  # measured 1.3e-14: the round trip t -> sigma~ -> t is exact-ish


def test_adapters_jit_and_differentiate(mixture_2d, key):
    """An equinox network inside an adapter: jittable, and gradients reach its parameters."""
    process = gpm_sde.vp()
    net = eqx.nn.MLP(3, 2, 16, 2, key=key)

    def eps_fn(t, x):
        return net(jnp.concatenate([x, jnp.reshape(t, (1,))]))

    score = from_eps(process, eps_fn)
    x = jnp.array([0.3, -0.4])
    assert jnp.allclose(POINT(score, 0.5, x), score(0.5, x), rtol=1e-14)

    class Model(eqx.Module):
        net: eqx.nn.MLP

        def __call__(self, t, x):
            return self.net(jnp.concatenate([x, jnp.reshape(t, (1,))]))

    def loss(model):
        return jnp.sum(from_x0(process, model)(0.5, x) ** 2)

    # Differentiated under jit (op by op, every primitive of the network would compile).
    grads = eqx.filter_jit(eqx.filter_grad(loss))(Model(net))
    leaves = jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_inexact_array))
    assert leaves and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert any(float(jnp.max(jnp.abs(g))) > 0 for g in leaves)
    dx = jax.jit(jax.grad(lambda y: jnp.sum(score(0.5, y))))(x)
    assert dx.shape == x.shape and bool(jnp.all(jnp.isfinite(dx)))


def test_adapter_argument_errors(mixture_2d):
    process = gpm_sde.vp()
    # (beartype may refuse a wrong type first, under pytest; either error names the argument)
    with pytest.raises(TypeError, match="process"):
        from_eps(object(), lambda t, x: x)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="process"):
        from_eps(gpm_sde.ddpm(n_steps=10), lambda t, x: x)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="x0_fn"):
        from_x0(process, 3.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`t`"):
        from_eps(process, lambda t, x: x)(2.0, jnp.zeros(2))


# ---------------------------------------------------------------------------------------------
# from_batched


CLOUD = eqx.filter_jit(on_cloud)
POINT = eqx.filter_jit(lambda score, t, x: score(t, x))
VMAP = eqx.filter_jit(lambda score, t, y: jax.vmap(score, in_axes=(None, 0))(t, y))


def batched(pointwise):
    """A function on a batch, (x: (B, *event), t: (B,)) -> (B, *event)."""
    return lambda x, t: jax.vmap(pointwise)(t, x)


def test_from_batched_both_orders_exact_on_point_and_cloud(mixture_2d, key):
    process = gpm_sde.vp()
    exact = MixtureMarginalScore(process, mixture_2d)
    fn_xt = batched(exact)

    def fn_tx(t, x):
        return fn_xt(x, t)

    y = jr.normal(key, (7, 2))
    ts = jnp.linspace(0.1, 0.9, 7)
    want = CLOUD(exact, 0.3, y)
    for fn, order in ((fn_xt, "x,t"), (fn_tx, "t,x"), (fn_tx, "t, x")):
        score = from_batched(fn, order, (2,))
        assert isinstance(score, BatchedScore) and gpm_sde.scores.is_cloud_score(score)
        np.testing.assert_allclose(CLOUD(score, 0.3, y), want, rtol=1e-14, atol=0)
        np.testing.assert_allclose(POINT(score, 0.3, y[2]), want[2], rtol=1e-14, atol=0)
        per_point = POINT(score, ts, y)  # one time per particle
        np.testing.assert_allclose(per_point[3], POINT(exact, ts[3], y[3]), rtol=1e-14)
        # under vmap (a pointwise path) the batch-of-one call gives the same
        np.testing.assert_allclose(VMAP(score, 0.3, y), want, rtol=1e-14)


def test_from_batched_calls_fn_once_on_the_cloud(mixture_2d, key):
    process = gpm_sde.vp()
    exact = batched(MixtureMarginalScore(process, mixture_2d))
    seen = []

    def fn(x, t):
        seen.append(x.shape)
        return exact(x, t)

    score = from_batched(fn, "x,t", (2,))
    seen.clear()
    jax.jit(on_cloud, static_argnums=0)(score, 0.5, jr.normal(key, (11, 2)))
    assert seen == [(11, 2)]


def test_from_batched_composes_with_the_prediction_adapters(mixture_2d, key):
    """A batched network that predicts eps, x0, v or a denoiser, on a non-VP process: the
    conversion runs on the whole batch (one time per row) and is exact."""
    y = jr.normal(key, (9, 2))
    process = PROCESSES["linear"]()
    want = CLOUD(MixtureMarginalScore(process, mixture_2d), 0.4, y)
    preds = exact_predictions(process, mixture_2d)
    for kind, adapter in ADAPTERS.items():
        score = adapter(process, from_batched(batched(preds[kind]), "x,t", (2,)))
        assert isinstance(score, BatchedScore) and score.prediction == kind
        got = CLOUD(score, 0.4, y)
        err = float(jnp.max(jnp.abs(got - want)) / jnp.maximum(jnp.max(jnp.abs(want)), 1.0))
        assert err < RTOL, (kind, err)
    np.testing.assert_allclose(POINT(score, 0.4, y[0]), want[0], rtol=1e-12)
    with pytest.raises(ValueError, match="already a score"):
        from_eps(process, from_x0(process, from_batched(batched(preds["x0"]), "x,t", (2,))))


def test_from_batched_detects_a_wrong_order():
    """The probe names `order` and the order that fits, instead of a broadcasting error."""

    def net_xt(x, t):  # a typical network input: features and time concatenated
        return jnp.concatenate([x, t[:, None]], axis=-1)[:, :2] * 2.0

    with pytest.raises(ValueError, match=r"`order='t,x'` does not fit `fn`.*pass order='x,t'"):
        from_batched(net_xt, "t,x", (2,))

    def net_tx(t, x):  # returns the wrong shape, rather than failing, when swapped
        return x * t[:, None, None]

    from_batched(net_tx, "t,x", (3, 4))
    with pytest.raises(ValueError, match=r"`order='x,t'`.*returns.*pass order='t,x'"):
        from_batched(net_tx, "x,t", (3, 4))
    with pytest.raises(ValueError, match="neither argument order"):
        from_batched(net_xt, "x,t", (5,))  # wrong event shape: no order fits
    with pytest.raises(ValueError, match="`order`"):
        from_batched(net_xt, "xt", (2,))
    with pytest.raises((TypeError, ValueError), match="event_shape"):
        from_batched(net_xt, "x,t", 2)  # type: ignore[arg-type]
    score = from_batched(net_xt, "x,t", (2,))
    with pytest.raises(ValueError, match="one point of shape"):
        score(0.5, jnp.zeros((3, 3)))


# ---------------------------------------------------------------------------------------------
# The discrete DDPM chain


@pytest.fixture
def chain():
    return gpm_sde.ddpm(n_steps=40, beta_1=1e-3, beta_N=0.1)


def zero_based_nets(ddpm, law):
    """Exact x0, eps and v networks that number the steps k = 0..N-1, as diffusers does:
    `alphas_cumprod = cumprod(1 - betas)`, `alphas_cumprod[k]` at timestep k."""
    ac = jnp.asarray(np.cumprod(1.0 - np.asarray(ddpm.betas)))

    def x0(k, x):
        return posterior_x0(law, jnp.sqrt(ac[k]), jnp.sqrt(1.0 - ac[k]), x)

    def eps(k, x):
        return (x - jnp.sqrt(ac[k]) * x0(k, x)) / jnp.sqrt(1.0 - ac[k])

    def v(k, x):  # diffusers' get_velocity
        return jnp.sqrt(ac[k]) * eps(k, x) - jnp.sqrt(1.0 - ac[k]) * x0(k, x)

    return {"eps": eps, "x0": x0, "v": v}, ac


DISCRETE = {"eps": from_eps_discrete, "x0": from_x0_discrete, "v": from_v_discrete}


def eval_steps(model, ns, x):
    return jax.jit(jax.vmap(jax.vmap(model, in_axes=(None, 0)), in_axes=(0, None)))(ns, x)


@pytest.mark.parametrize("kind", list(DISCRETE))
def test_discrete_adapters_zero_and_one_based_agree(kind, chain, mixture_2d, key):
    nets, _ = zero_based_nets(chain, mixture_2d)
    net0 = nets[kind]

    def net1(n, x):  # the same network, numbering the steps 1..N
        return net0(n - 1, x)

    ns = jnp.arange(1, chain.n_steps + 1)
    x = jr.normal(key, (5, 2)) * 2.0
    want = eval_steps(exact_eps_model(chain, mixture_2d), ns, x)
    m0 = DISCRETE[kind](chain, net0, index_base=0)
    m1 = DISCRETE[kind](chain, net1, index_base=1)
    assert isinstance(m0, DiscreteEpsModel)
    scale = float(jnp.max(jnp.abs(want)))
    for model in (m0, m1):
        assert float(jnp.max(jnp.abs(eval_steps(model, ns, x) - want))) < 1e-12 * scale
    # The off-by-one: the 0-based net declared 1-based is wrong beyond round-off.
    shifted = DISCRETE[kind](chain, net0, index_base=1)
    ns_inner = ns[:-1]  # n = N would call the 0-based net at k = N, out of its range
    off = float(jnp.max(jnp.abs(eval_steps(shifted, ns_inner, x) - want[:-1])))
    assert off > 1e-4 * scale, off


def test_discrete_model_samples_like_the_exact_one(chain, mixture_2d, key):
    """Ancestral sampling (Ho et al. 2020, Algorithm 2, `DDPM.ancestral_step`) driven by the
    adapter of a 0-based v-network follows the exact noise model's chain, noise for noise."""
    nets, ac = zero_based_nets(chain, mixture_2d)
    model = from_v_discrete(chain, nets["v"], index_base=0)
    exact = exact_eps_model(chain, mixture_2d)

    @eqx.filter_jit
    def sample(eps_model, x_N):
        def step(x, n):
            eps_hat = on_cloud(eps_model, n, x)
            return chain.ancestral_step(jr.fold_in(jr.key(1), n), x, eps_hat, n), None

        return jax.lax.scan(step, x_N, jnp.arange(chain.n_steps, 0, -1))[0]

    x_N = jr.normal(key, (16, 2))
    assert float(jnp.max(jnp.abs(sample(model, x_N) - sample(exact, x_N)))) < 1e-11
    score_7, eps_7 = eqx.filter_jit(lambda x: (model.score(7, x), exact(7, x)))(x_N[0])
    np.testing.assert_allclose(score_7, -eps_7 / jnp.sqrt(1.0 - ac[6]), rtol=1e-12)


def test_discrete_step_and_index_base_errors(chain):
    net = lambda k, x: x  # noqa: E731
    for bad in (2, -1, True, None, 0.0):
        with pytest.raises((TypeError, ValueError), match="index_base"):
            from_eps_discrete(chain, net, index_base=bad)  # type: ignore[arg-type]
    model = from_eps_discrete(chain, net, index_base=0)
    for n in (0, chain.n_steps + 1):
        with pytest.raises(ValueError, match=r"`n` must lie in 1\.\.40.*0\.\.39"):
            model(n, jnp.zeros(2))
    with pytest.raises(TypeError, match=r"integer|'n'"):
        model(jnp.asarray(3.0), jnp.zeros(2))
    with pytest.raises(TypeError, match="ddpm"):
        from_eps_discrete(gpm_sde.vp(), net, index_base=0)  # type: ignore[arg-type]


def test_discrete_adapter_takes_a_batched_integer_net(chain, mixture_2d, key):
    """A diffusers-style network `unet(sample, timestep)` on a batch with integer timesteps."""
    nets, _ = zero_based_nets(chain, mixture_2d)
    unet = batched(nets["eps"])
    model = from_eps_discrete(
        chain, from_batched(unet, "x,t", (2,), time_dtype=jnp.int32), index_base=0
    )
    x = jr.normal(key, (5, 2))
    ns = jnp.arange(1, chain.n_steps + 1)
    want = eval_steps(exact_eps_model(chain, mixture_2d), ns, x)
    assert float(jnp.max(jnp.abs(eval_steps(model, ns, x) - want))) < 1e-12 * float(
        jnp.max(jnp.abs(want))
    )


def test_vp_score_from_discrete_is_score_sde_mapping(chain, mixture_2d, key):
    """score_sde (`models/utils.py`, `get_score_fn`, discrete VP): labels = t * (N - 1),
    std = sqrt_1m_alphas_cumprod[labels.long()], score = -model(x, labels) / std."""
    nets, ac = zero_based_nets(chain, mixture_2d)
    model = from_eps_discrete(chain, nets["eps"], index_base=0)
    score = vp_score_from_discrete(chain, model)
    n_steps = chain.n_steps
    for t in (0.0, 0.013, 0.5, 0.77, 1.0):
        label = int(np.floor(t * (n_steps - 1)))
        x = jr.normal(jr.fold_in(key, label), (2,))
        want = -nets["eps"](label, x) / jnp.sqrt(1.0 - ac[label])
        np.testing.assert_allclose(score(t, x), want, rtol=1e-13)
    with pytest.raises(ValueError, match="`t`"):
        score(1.5, jnp.zeros(2))


def test_vp_score_from_discrete_converges_to_vp(mixture_2d, key):
    """With betas linear from beta_min / N to beta_max / N (score_sde's `discrete_betas`), the
    discrete score approaches the exact VP score at rate O(1/N)."""
    vp = gpm_sde.vp()
    exact = MixtureMarginalScore(vp, mixture_2d)
    t = jnp.array([0.1, 0.3, 0.6, 0.9])
    x = jr.normal(key, (4, 2))

    def error(n_steps):
        chain = gpm_sde.ddpm(n_steps=n_steps, beta_1=0.1 / n_steps, beta_N=20.0 / n_steps)
        score = vp_score_from_discrete(chain, exact_eps_model(chain, mixture_2d))
        return float(jnp.max(jnp.abs(jax.vmap(score)(t, x) - jax.vmap(exact)(t, x))))

    e1, e4 = error(250), error(1000)
    assert e4 < 0.05 and 2.5 < e1 / e4 < 6.0, (e1, e4)
