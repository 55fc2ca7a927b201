"""Class-conditional score training: `fit_score(labels=..., label_dropout=...)`, the labels of
`dsm_loss`/`ddpm_eps_loss`, the conditional `UNet8` and the label pass-through of the
parameterisation wrappers.

The exact references are independent closed forms: a component of a Gaussian mixture noised
by the VP process is the Gaussian N(αμ_k, α²Σ_k + σ²), whose score is written out by hand, and
the DSM minimiser within a Gaussian family has the data mean as its mean (the expected score
vanishes, so at every t the optimal αm is E[x_t] = αE[x_0]).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gpm_sde
from gpm_sde import nn, train
from gpm_sde.losses import ddpm_eps_loss, dsm_loss
from gpm_sde.scores import MixtureMarginalScore, bind_label

# Classes 0 and 1 of unequal weight and variance; the data mean is 0.4·(-2) + 0.6·2 = 0.4.
LAW = gpm_sde.GaussianMixture(
    jnp.array([0.4, 0.6]), jnp.array([[-2.0], [2.0]]), jnp.array([[[0.25]], [[0.5]]])
)
DATA_MEAN = 0.4


class GaussianClassScore(eqx.Module):
    """Per-class VP scores of N(μ_y, v_y) data (rows 0..K-1 the classes, row K the null
    label): the family holds every exact conditional score of `LAW`."""

    mu: jax.Array
    log_var: jax.Array
    process: gpm_sde.processes.VP

    def __call__(self, t, x, y):
        a, s = self.process.alpha(t), self.process.sigma(t)
        return -(x - a * self.mu[y]) / (a**2 * jnp.exp(self.log_var[y]) + s**2)


def _component_score(process, k, t, x):
    """The noised component's score -(x - αμ_k)/(α²v_k + σ²), by hand."""
    a, s = process.alpha(t), process.sigma(t)
    return -(x - a * LAW.means[k]) / (a**2 * LAW.covs[k, 0, 0] + s**2)


@pytest.fixture(scope="module")
def fitted_gaussian_family():
    process = gpm_sde.vp()
    model = GaussianClassScore(jnp.zeros((3, 1)), jnp.zeros(3), process)
    fitted, history = train.fit_score(
        model,
        process,
        LAW,
        jr.key(3),
        steps=500,
        batch_size=512,
        lr=3e-2,
        ema=0.98,
        labels="components",
        label_dropout=0.3,
        num_classes=2,
        loss_options={"t_min": 1e-3},
        progress=False,
    )
    return process, fitted, history


def test_fit_score_with_labels_learns_each_class_and_the_null_label(fitted_gaussian_family):
    _, fitted, _ = fitted_gaussian_family
    # Optimisation budget: 0.1 on the means, 25% on the variances (measured at 1500 steps:
    # 0.02 and 6%). Labels swapped or ignored put every class near the data mean 0.4.
    np.testing.assert_allclose(fitted.mu[:2, 0], LAW.means[:, 0], atol=0.1)
    np.testing.assert_allclose(jnp.exp(fitted.log_var[:2]), LAW.covs[:, 0, 0], rtol=0.25)
    # The null row sees every class (dropout 0.3): its mean is the data mean, and its
    # variance that of the mixture (4.24 by moments), far from either class.
    assert abs(float(fitted.mu[2, 0]) - DATA_MEAN) < 0.15
    assert float(jnp.exp(fitted.log_var[2])) > 2.0


def test_trained_conditional_score_is_the_component_score_not_the_marginal(
    fitted_gaussian_family,
):
    """At a moderate time (VP t = 0.4: α ≈ 0.39, the noised classes overlap) the bound
    conditional score is the exact component score and far from the unconditional one."""
    process, fitted, _ = fitted_gaussian_family
    t = 0.4
    sigma = process.sigma(t)
    uncond = MixtureMarginalScore(process, LAW)

    @eqx.filter_jit
    def scores(fitted, x, k):
        exact = jax.vmap(lambda z: _component_score(process, k, t, z))(x)
        learned = jax.vmap(lambda z: bind_label(fitted, k)(t, z))(x)
        return exact, learned, jax.vmap(lambda z: uncond(t, z))(x)

    for k in range(2):
        comp = gpm_sde.GaussianMixture(jnp.ones(1), LAW.means[k : k + 1], LAW.covs[k : k + 1])
        x = process.marginal(comp, t).sample(jr.key(10 + k), 4000)
        exact, learned, marginal = scores(fitted, x, k)
        err = float(jnp.sqrt(jnp.mean((sigma * (learned - exact)) ** 2)))
        gap = float(jnp.sqrt(jnp.mean((sigma * (marginal - exact)) ** 2)))
        assert gap > 0.4, gap  # the classes really differ from the mixture at this t
        assert err < 0.25 * gap, (k, err, gap)


def _label_rows(dropout, steps=1):
    """The label-embedding rows of a conditional ScoreMLP before and after a few steps."""
    process = gpm_sde.vp()
    net = nn.ScoreMLP(1, 8, 1, 4, key=jr.key(0), num_classes=2)
    model = nn.EpsilonParam(net, process.sigma)
    fitted, _ = train.fit_score(
        model,
        process,
        LAW,
        jr.key(1),
        steps=steps,
        batch_size=16,
        labels="components",
        label_dropout=dropout,
        progress=False,
    )
    assert net.label_embedding is not None and fitted.net.label_embedding is not None
    before = np.asarray(net.label_embedding.weight)
    after = np.asarray(fitted.net.label_embedding.weight)
    return np.any(before != after, axis=1)


def test_label_dropout_one_trains_the_null_label_only_and_zero_never():
    """Adam moves a row only if it got a gradient: with dropout 1 every label is the null
    label K = 2 (read from the ScoreMLP's label embedding), with dropout 0 none is."""
    np.testing.assert_array_equal(_label_rows(1.0), [False, False, True])
    process = gpm_sde.vp()
    model = GaussianClassScore(jnp.zeros((3, 1)), jnp.zeros(3), process)
    fitted, _ = train.fit_score(
        model, process, LAW, jr.key(1), steps=1, batch_size=16, labels="components",
        progress=False,
    )  # fmt: skip
    np.testing.assert_array_equal(np.asarray(fitted.mu[:, 0] != 0.0), [True, True, False])


def test_losses_pass_each_label_to_its_own_point():
    """A model that predicts the constant c_y: the per-point loss is ‖ε + c_y‖² for DSM
    (σ s = c_y) and ‖ε - c_y‖² for DDPM, of mean d + c_y² for the points of label y (d = 1):
    1 for label 0 (c = 0) and 10 for label 1 (c = 3); misaligned labels would mix them."""
    n = 1000
    labels = jnp.arange(n) % 2
    x0 = jnp.zeros((n, 1))
    c = jnp.array([0.0, 3.0])
    process = gpm_sde.vp()
    chain = gpm_sde.ddpm(50)

    def score(t, x, y):
        return jnp.full_like(x, c[y]) / process.sigma(t)

    def eps(m, x, y):
        return jnp.full_like(x, c[y])

    @jax.jit
    def losses(key):
        return (
            dsm_loss(score, process, x0, key, labels=labels, reduction="none"),
            ddpm_eps_loss(eps, chain, x0, key, labels=labels, reduction="none"),
        )

    for per in losses(jr.key(5)):
        for y, expected in ((0, 1.0), (1, 10.0)):
            vals = per[labels == y]
            se = float(jnp.std(vals)) / np.sqrt(vals.size)
            assert abs(float(jnp.mean(vals)) - expected) < 5 * se + 1e-12


def test_wrappers_pass_the_label_through():
    """wrapper(t, x, y) applies the wrapper's formula to net(t, x, y); wrapper(t, x) calls the
    network at the null label; bind_label gives the pointwise score."""
    net = nn.ScoreMLP(2, 8, 1, 4, key=jr.key(0), num_classes=3)
    process = gpm_sde.vp()
    t, x, y = 0.3, jnp.array([0.5, -1.0]), 1
    a, s = process.alpha(t), process.sigma(t)
    sd = 0.5
    c_skip, c_out = sd**2 / (t**2 + sd**2), t * sd / np.sqrt(t**2 + sd**2)
    c_in, c_noise = 1 / np.sqrt(t**2 + sd**2), 0.25 * np.log(t)
    eps = nn.EpsilonParam(net, process.sigma)

    @eqx.filter_jit
    def calls(net, x):
        return {
            "out": net(t, x, y),
            "edm_net": net(c_noise, c_in * x, y),
            "score": nn.ScoreParam(net)(t, x, y),
            "eps": eps(t, x, y),
            "x0": nn.X0Param(net, process.alpha, process.sigma)(t, x, y),
            "edm": nn.EDMDenoiser(net, sigma_data=sd)(t, x, y),
            "bound": bind_label(eps, y)(t, x),
            "no_label": eps(t, x),
            "null": eps(t, x, 3),
            "class0": eps(t, x, 0),
        }

    r = calls(net, x)
    out = r["out"]
    np.testing.assert_allclose(r["score"], out)
    np.testing.assert_allclose(r["eps"], -out / s)
    np.testing.assert_allclose(r["x0"], (a * out - x) / s**2)
    d = c_skip * x + c_out * r["edm_net"]
    np.testing.assert_allclose(r["edm"], (d - x) / t**2, rtol=1e-10)
    np.testing.assert_allclose(r["bound"], -out / s)
    np.testing.assert_allclose(r["no_label"], r["null"])  # the null label
    assert not np.allclose(r["class0"], r["eps"])


def test_unet8_class_conditional():
    key = jr.key(0)
    # The widths of test_nn's U-Net: its initialisers are compiled once per process.
    plain = nn.UNet8(key=key, channels=(8, 8, 8), embed_dim=8)
    cond = nn.UNet8(key=key, channels=(8, 8, 8), embed_dim=8, num_classes=3)
    x = jr.normal(jr.key(1), (1, 8, 8))
    # The unconditional parameters are those of the unconditional network.
    strip = eqx.tree_at(lambda m: m.label_embedding, cond, None)
    for p, q in zip(jax.tree.leaves(plain), jax.tree.leaves(strip), strict=True):
        np.testing.assert_array_equal(p, q)
    assert cond.label_embedding is not None and cond.label_embedding.num_embeddings == 4
    # Zero label embedding: the conditional network is the unconditional one.
    zeroed = eqx.tree_at(lambda m: m.label_embedding.weight, cond, jnp.zeros((4, 8)))

    @eqx.filter_jit
    def calls(cond, plain, zeroed, x):
        by_label = jax.vmap(lambda y: cond(0.5, x, y))(jnp.arange(4))
        return by_label, cond(0.5, x), plain(0.5, x), zeroed(0.5, x, 2)

    by_label, null, unconditional, zero = calls(cond, plain, zeroed, x)
    assert by_label.shape == (4, 1, 8, 8)
    assert not np.allclose(by_label[0], by_label[1])
    np.testing.assert_allclose(null, by_label[3], rtol=1e-12)  # y=None is the null label
    np.testing.assert_allclose(zero, unconditional, rtol=1e-12)
    with pytest.raises(ValueError, match="unconditional"):
        plain(0.5, x, 0)


def test_conditional_errors():
    process = gpm_sde.vp()
    x0 = jnp.zeros((6, 1))
    score = GaussianClassScore(jnp.zeros((3, 1)), jnp.zeros(3), process)
    with pytest.raises(ValueError, match="`labels` must hold one label per point"):
        dsm_loss(score, process, x0, jr.key(0), labels=jnp.zeros(5, int))
    with pytest.raises(ValueError, match="`labels` must hold one label per point"):
        dsm_loss(score, process, x0, jr.key(0), labels=jnp.asarray(1))
    net = nn.EpsilonParam(nn.ScoreMLP(1, 8, 1, 4, key=jr.key(0), num_classes=2), 1.0)
    kw = {"steps": 1, "progress": False}
    with pytest.raises(ValueError, match="`labels` is None"):
        train.fit_score(net, process, LAW, jr.key(0), label_dropout=0.1, **kw)
    with pytest.raises(ValueError, match="`label_dropout` must be a probability"):
        train.fit_score(net, process, LAW, jr.key(0), labels="components", label_dropout=1.5, **kw)
    with pytest.raises(ValueError, match="disagrees with the model"):
        train.fit_score(net, process, LAW, jr.key(0), labels="components", num_classes=3, **kw)
    with pytest.raises(ValueError, match="labels run up to 4"):
        train.fit_score(net, process, x0, jr.key(0), labels=jnp.arange(6) % 5, **kw)
    with pytest.raises(TypeError, match="1-D integer array"):
        train.fit_score(net, process, x0, jr.key(0), labels=jnp.zeros((6, 1), int), **kw)

    def paired(key, n):
        return jnp.zeros((n, 1)), jnp.zeros(n, int)

    with pytest.raises(ValueError, match="pass `num_classes=K`"):
        train.fit_score(score, process, paired, jr.key(0), labels="paired", label_dropout=0.5, **kw)


@pytest.mark.slow
def test_fit_score_conditional_mlp_matches_component_scores():
    """A conditional ScoreMLP (ε-parameterised) trained with label dropout: the bound class
    score at a moderate time is the component score, the null-label score the mixture score
    (measured at 1000 steps: errors 0.11-0.20 against a gap of 0.63 between the two)."""
    process = gpm_sde.vp()
    law = gpm_sde.GaussianMixture(
        jnp.array([0.5, 0.5]), jnp.array([[-2.0], [2.0]]), jnp.array([[[0.25]], [[0.25]]])
    )
    model = nn.EpsilonParam(nn.ScoreMLP(1, 64, 2, 16, key=jr.key(0), num_classes=2), process.sigma)
    fitted, _ = train.fit_score(
        model,
        process,
        law,
        jr.key(1),
        steps=1500,
        batch_size=256,
        lr=3e-3,
        labels="components",
        label_dropout=0.3,
        loss_options={"t_min": 1e-3},
        progress=False,
    )
    t = 0.4
    sigma = process.sigma(t)
    uncond = MixtureMarginalScore(process, law)
    for k in range(2):
        comp = gpm_sde.GaussianMixture(jnp.ones(1), law.means[k : k + 1], law.covs[k : k + 1])
        marginal_k = process.marginal(comp, t)
        x = marginal_k.sample(jr.key(10 + k), 2000)
        exact = jax.vmap(marginal_k.score)(x)
        unc = jax.vmap(lambda z: uncond(t, z))(x)
        learned = jax.vmap(lambda z, k=k: bind_label(fitted, k)(t, z))(x)
        null = jax.vmap(lambda z: bind_label(fitted, 2)(t, z))(x)

        def rms(a, b):
            return float(jnp.sqrt(jnp.mean((sigma * (a - b)) ** 2)))

        gap = rms(unc, exact)
        assert rms(learned, exact) < 0.45 * gap
        assert rms(null, unc) < 0.5 * gap
