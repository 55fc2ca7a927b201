"""Guidance combinators, exact on mixtures (class = mixture component), in float64.

Every check compares against an independent closed form: the component's own noised
Gaussian score, or a 1-D quadrature of the tilted law convolved with the forward kernel.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gpm_sde
from gpm_sde.scores import (
    MixtureComponentLogPosterior,
    MixtureMarginalScore,
    bind_label,
    classifier_free_guidance,
    classifier_guidance,
)


def _component(law, k):
    return gpm_sde.GaussianMixture(jnp.ones(1), law.means[k : k + 1], law.covs[k : k + 1])


def _component_score_closed_form(process, law, k, t, x):
    """-(α²Σ_k + σ²I)^{-1}(x - αμ_k): the noised component's score, written out by hand."""
    a, s = process.alpha(t), process.sigma(t)
    cov = a**2 * law.covs[k] + s**2 * jnp.eye(law.dim)
    return -jnp.linalg.solve(cov, x - a * law.means[k])


_TS = (0.0, 0.05, 0.3, 0.9)


@pytest.mark.parametrize("k", [0, 2])
def test_classifier_guidance_gamma_one_is_exact_conditional_score(mixture_2d, k):
    process = gpm_sde.vp()
    guided = classifier_guidance(
        MixtureMarginalScore(process, mixture_2d),
        MixtureComponentLogPosterior(process, mixture_2d, k),
        1.0,
    )
    xs = jax.random.normal(jax.random.key(1), (5, 2), dtype=jnp.float64) * 2.0
    for t in _TS:
        for x in xs:
            want = _component_score_closed_form(process, mixture_2d, k, t, x)
            np.testing.assert_allclose(guided(t, x), want, rtol=1e-9, atol=1e-9)


def test_classifier_guidance_gamma_scales_the_classifier_term(mixture_2d):
    """γ enters linearly: s_γ = s + γ (s_k - s), with s_k the component's closed form."""
    process = gpm_sde.vp()
    uncond = MixtureMarginalScore(process, mixture_2d)
    x, t = jnp.array([0.3, -0.7]), 0.2
    s = uncond(t, x)
    s_k = _component_score_closed_form(process, mixture_2d, 1, t, x)
    for gamma in (0.0, 0.5, 3.0):
        g = classifier_guidance(uncond, MixtureComponentLogPosterior(process, mixture_2d, 1), gamma)
        np.testing.assert_allclose(g(t, x), s + gamma * (s_k - s), rtol=1e-9, atol=1e-12)


def test_classifier_free_guidance_algebra(mixture_2d):
    process = gpm_sde.ve()
    k = 2
    cond = MixtureMarginalScore(process, _component(mixture_2d, k))
    uncond = MixtureMarginalScore(process, mixture_2d)
    x, t = jnp.array([1.1, 0.4]), 0.4
    s_k = _component_score_closed_form(process, mixture_2d, k, t, x)
    s = uncond(t, x)
    for w in (-1.0, 0.0, 0.7, 4.0):
        cfg = classifier_free_guidance(cond, uncond, w)
        np.testing.assert_allclose(cfg(t, x), (1 + w) * s_k - w * s, rtol=1e-9, atol=1e-12)
        # CFG with weight w is classifier guidance with γ = 1 + w on the exact classifier.
        cg = classifier_guidance(
            uncond, MixtureComponentLogPosterior(process, mixture_2d, k), 1 + w
        )
        np.testing.assert_allclose(cfg(t, x), cg(t, x), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(classifier_free_guidance(cond, uncond, -1.0)(t, x), s, rtol=1e-12)


def test_bind_label_passes_the_label_and_runs_in_a_sampler(mixture_2d):
    process = gpm_sde.vp()

    def cond(t, x, y):
        return MixtureMarginalScore(process, _component(mixture_2d, 0))(t, x) * 0 + y

    bound = bind_label(cond, jnp.array([3.0, -4.0]))
    np.testing.assert_array_equal(bound(0.1, jnp.zeros(2)), jnp.array([3.0, -4.0]))
    # A bound, guided score is an ordinary pointwise score: the reverse SDE accepts it.
    guided = classifier_guidance(
        MixtureMarginalScore(process, mixture_2d),
        MixtureComponentLogPosterior(process, mixture_2d, 0),
        1.0,
    )
    sde = gpm_sde.reverse(process, guided)
    y = jnp.ones((3, 2))
    assert sde.drift(0.5, y, None).shape == (3, 2)


def _tilted_noised_score_1d(process, law, k, gamma, t, x):
    """Score at x of (q(·|k)^γ q^{1-γ}/Z) pushed through the forward process to time t,
    by quadrature on a grid (independent of the library's mixture code)."""
    grid = np.linspace(-12, 12, 24001)
    w, m, v = (np.asarray(law.weights), np.asarray(law.means[:, 0]), np.asarray(law.covs[:, 0, 0]))
    comp = np.exp(-0.5 * (grid[:, None] - m) ** 2 / v) / np.sqrt(2 * np.pi * v)
    q = comp @ w
    tilted = comp[:, k] ** gamma * q ** (1 - gamma)
    tilted /= np.trapezoid(tilted, grid)
    a, s = float(process.alpha(t)), float(process.sigma(t))
    kern = np.exp(-0.5 * (x - a * grid) ** 2 / s**2)
    dkern = -(x - a * grid) / s**2 * kern
    return np.trapezoid(dkern * tilted, grid) / np.trapezoid(kern * tilted, grid)


def _tilted_score_at_zero_1d(law, k, gamma, x, h=1e-5):
    m, v, w = (np.asarray(law.means[:, 0]), np.asarray(law.covs[:, 0, 0]), np.asarray(law.weights))

    def log_tilted(z):
        c = np.exp(-0.5 * (z - m) ** 2 / v) / np.sqrt(2 * np.pi * v)
        return gamma * np.log(c[k]) + (1 - gamma) * np.log(c @ w)

    return (log_tilted(x + h) - log_tilted(x - h)) / (2 * h)


def test_guidance_is_not_the_score_of_the_noised_tilted_law():
    """γ ≠ 1: at t = 0 the guided score is the tilted law's score, but at t > 0 it is not the
    score of the tilted law noised by the forward process, so the reverse SDE does not sample
    q(x|y)^γ q(x)^{1-γ}/Z. γ = 1 is the control: there the two agree at every t."""
    law = gpm_sde.GaussianMixture(
        jnp.array([0.5, 0.5]), jnp.array([[-1.0], [1.5]]), jnp.array([[[0.4]], [[0.3]]])
    )
    process = gpm_sde.vp()
    uncond = MixtureMarginalScore(process, law)
    x = 0.2
    for gamma, t, expect_equal in ((1.0, 0.3, True), (3.0, 0.0, True), (3.0, 0.3, False)):
        g = classifier_guidance(uncond, MixtureComponentLogPosterior(process, law, 1), gamma)
        got = float(g(t, jnp.array([x]))[0])
        if t > 0:
            ref = _tilted_noised_score_1d(process, law, 1, gamma, t, x)
        else:  # the tilted law's own score, by finite differences of its log-density
            ref = _tilted_score_at_zero_1d(law, 1, gamma, x)
        if expect_equal:
            np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
        else:
            assert abs(got - ref) > 0.05, (got, ref)


def test_conditional_score_mlp_uses_its_label_and_null_label():
    from gpm_sde.nn import ScoreMLP

    key = jax.random.key(3)
    plain = ScoreMLP(2, 16, 2, 8, key=key)
    cond = ScoreMLP(2, 16, 2, 8, key=key, num_classes=3)
    t, x = 0.3, jnp.array([0.5, -1.0])
    outs = [cond(t, x, y) for y in range(4)]
    for i in range(4):  # every label, the null label included, changes the output
        for j in range(i):
            assert float(jnp.abs(outs[i] - outs[j]).max()) > 1e-6
    np.testing.assert_array_equal(cond(t, x), outs[3])  # y = None is the null label
    # Without a label embedding the network is the unconditional one, parameters unchanged.
    no_label = eqx_tree_without_label(cond)
    np.testing.assert_allclose(no_label(t, x), plain(t, x), rtol=1e-12)
    with pytest.raises(ValueError, match="unconditional"):
        plain(t, x, 1)
    # bound to a label it is a network `(t, x)` for the parameterisation wrappers
    np.testing.assert_array_equal(bind_label(cond, 1)(t, x), outs[1])


def eqx_tree_without_label(net):
    import equinox as eqx

    return eqx.tree_at(lambda m: m.label_embedding, net, None, is_leaf=lambda v: v is None)


def test_drop_labels_rate_and_null_label():
    from gpm_sde.losses import drop_labels

    labels = jnp.arange(200_000) % 5
    for i, p in enumerate((0.0, 0.1, 0.5)):
        out = drop_labels(jax.random.key(10 + i), labels, p, 5)
        dropped = out == 5
        # kept labels are unchanged; the dropped fraction is within 5 binomial SE of p
        # (false alarm < 6e-7 per rate)
        np.testing.assert_array_equal(out[~dropped], labels[~dropped])
        se = max(np.sqrt(p * (1 - p) / labels.size), 1e-12)
        assert abs(float(dropped.mean()) - p) <= 5 * se
    with pytest.raises(ValueError, match="`p`"):
        drop_labels(jax.random.key(0), labels, 1.5, 5)
