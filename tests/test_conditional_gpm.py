r"""Class-conditional particle models: Score GAN, Discriminator Flow and DiffFlow-GAN with a
label per point (issue 18, item 5).

Data: Gaussian mixtures with class = component, so the exact conditional data score is the
score of one component smoothed at $\sigma$, $\nabla\log(\mathcal{N}(\mu_y, \Sigma_y) *
k_\sigma)$, built here from `process.marginal` of a one-component mixture (independent of the
trainers). Per class $y$ each update is the unconditional one applied to $q(\cdot\mid y)$, so
the points of class $y$ must land on component $y$: a label shifted or flipped anywhere in
the field sends them to another component, many standard errors away.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array

import gpm_sde
from gpm_sde import nn, train
from gpm_sde.scores import SmoothedCloudScore

# Three well separated components in 2-D with unequal weights (Score GAN).
MEANS_2D = jnp.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
STD = 0.5
MIX_2D = gpm_sde.GaussianMixture(
    jnp.array([0.5, 0.3, 0.2]), MEANS_2D, jnp.broadcast_to(STD**2 * jnp.eye(2), (3, 2, 2))
)
# Two components in 1-D, symmetric about the prior's mean (Discriminator Flow, DiffFlow).
MEANS_1D = jnp.array([[-2.0], [2.0]])
MIX_1D = gpm_sde.GaussianMixture(jnp.array([0.6, 0.4]), MEANS_1D, jnp.full((2, 1, 1), STD**2))
EDM = gpm_sde.edm(80.0)


class ComponentScore(eqx.Module):
    r"""The exact conditional data score $\nabla\log(q(\cdot\mid y) * k_\sigma)(x)$: the EDM
    marginal at $t = \sigma$ of the one-component mixture $\mathcal{N}(\mu_y, \Sigma_y)$."""

    law: gpm_sde.GaussianMixture

    def __call__(self, sigma, x, y):
        one = gpm_sde.GaussianMixture(
            jnp.ones(1, x.dtype), self.law.means[y][None], self.law.covs[y][None]
        )
        return EDM.marginal(one, sigma).score(x)


class CondAffine(eqx.Module):
    """$G(z, y) = a_y z + b_y$, one affine map per class."""

    a: Array
    b: Array

    def __call__(self, z, y):
        return self.a[y] * z + self.b[y]


class CondGaussianScore(eqx.Module):
    r"""$\nabla\log(\mathcal{N}(m_y, v_y I) * k_\sigma)(x) = -(x - m_y)/(v_y + \sigma^2)$."""

    m: Array
    log_v: Array

    def __call__(self, sigma, x, y):
        return -(x - self.m[y]) / (jnp.exp(self.log_v[y]) + sigma**2)


class ConcatDiscriminator(eqx.Module):
    r"""`D(s, x, y)`: a time-conditioned `MLPDiscriminator` on $[x; \mathrm{onehot}(y)]$ (the
    conditional discriminator of Mirza & Osindero 2014, written here so the test does not
    depend on a network's own label option)."""

    net: nn.MLPDiscriminator
    k: int = eqx.field(static=True)

    def __init__(self, k: int, dim: int, key):
        self.net = nn.MLPDiscriminator(
            dim + k, 32, 2, key=key, time_conditioned=True, fourier_scale=1.0
        )
        self.k = k

    def __call__(self, s, x, y):
        return self.net(s, jnp.concatenate([x, jax.nn.one_hot(y, self.k, dtype=x.dtype)]))


def _class_means(g, k: int, dim: int, n: int = 4000):
    """Per class: the sample mean and its standard error over n fresh latents."""
    z = jr.normal(jr.key(11), (n, dim))
    out = []
    for y in range(k):
        x = np.asarray(jax.vmap(g)(z, jnp.full(n, y)))
        out.append((x.mean(0), x.std(0) / np.sqrt(n), x.std(0)))
    return out


@pytest.mark.parametrize("field_at", ["generated", pytest.param("noised", marks=pytest.mark.slow)])
def test_conditional_score_gan_sends_each_class_to_its_component(field_at):
    r"""Conditional Score GAN with the exact conditional data score and a per-class Gaussian
    generated score trained by DSM on $(G(z, y), y)$: class $y$ lands on component $y$.

    At lr 1e-2 the two-timescale game still orbits its fixed point (see the unconditional
    test in `tests/test_train.py`): after 800 steps, keys 0-2, the class means are within
    0.14 of their components per coordinate and the class stds within 0.17 of 0.5
    (measured; with `field_at="noised"`, slow: within 0.22 and 0.22). Bounds: 0.25 on
    both, plus 4 standard errors of the 4000-sample class mean (≈ 0.008). The nearest wrong
    component is 3√2 ≈ 4.2 away: a label shifted by one anywhere in the field or in the DSM
    pairs fails by far."""
    k, d = 3, 2
    g0 = CondAffine(jnp.ones((k, d)), jnp.zeros((k, d)))
    s0 = CondGaussianScore(jnp.zeros((k, d)), jnp.zeros(k))
    g, s, history = train.train_score_gan(
        g0,
        s0,
        ComponentScore(MIX_2D),
        jr.key(0),
        steps=800,
        batch_size=256,
        latent_dim=d,
        lr=1e-2,
        warmup=50,
        p_mean=-1.0,
        p_std=1.0,
        labels=MIX_2D,
        field_at=field_at,
        progress=False,
    )
    for y, (mean, se, std) in enumerate(_class_means(g, k, d)):
        err = np.abs(mean - np.asarray(MEANS_2D[y]))
        assert np.all(err < 0.25 + 4 * se), (y, mean, se)
        assert np.all(np.abs(std - STD) < 0.25), (y, std)
        # The generated score of class y fits the generator of class y (measured ≤ 0.12).
        assert np.all(np.abs(np.asarray(s.m[y]) - mean) < 0.25), (y, s.m[y], mean)
    assert np.all(np.isfinite(history["score_loss"]))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_conditional_discriminator_flow_sends_each_class_to_its_component(seed):
    r"""Conditional Discriminator Flow (a concatenation discriminator, labels = mixture
    components, weights 0.6/0.4) from $\mathcal{N}(0, 1)$, which sits between the two
    components: the particles labelled $y$ must reach $\mu_y = \mp 2$; the unconditional
    flow would split the prior without regard to the label. Settings of the unconditional
    test in `tests/test_train.py` (R1, γ = 0.1) but 60 rounds (slow).

    Measured (keys 0-2): class means within 0.25 of ∓2 (biased towards the prior), class
    stds 0.65-0.89 (25 rounds: up to 1.12). The two classes share one network and each sees
    about half of every batch: with a single class the same code reaches the unconditional
    test's std ≈ 0.5 (`test_conditional_discriminator_flow_with_one_class_is_unconditional`).
    Bounds: mean within 0.35 + 4 SE, std in (0.3, 1.0). A flipped particle label in the
    discriminator loss sends class 0 to −1.1, a flipped label in the field to the other
    component."""
    key = jr.key(seed)
    d0 = ConcatDiscriminator(2, 1, key)
    flow = {"t1": 3.0, "flow_steps": 12}
    dis, history = train.train_discriminator_flow(
        d0,
        MIX_1D,
        key,
        steps=60,
        n_particles=512,
        d_steps=10,
        batch_size=256,
        penalty="r1",
        penalty_weight=0.1,
        lr=3e-3,
        labels="components",
        progress=False,
        chunk=60,
        **flow,
    )
    n = 2000
    y0 = jr.normal(jr.key(7), (2 * n, 1))
    lab = jnp.repeat(jnp.arange(2), n)
    x = np.asarray(train.discriminator_flow_sample(dis, y0, labels=lab, **flow))[:, 0]
    for y in range(2):
        xs = x[y * n : (y + 1) * n]
        se = xs.std() / np.sqrt(n)
        assert abs(xs.mean() - float(MEANS_1D[y, 0])) < 0.35 + 4 * se, (y, xs.mean())
        assert 0.3 < xs.std() < 1.0, (y, xs.std())
    assert np.all(np.isfinite(history["d_loss"]))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_conditional_discriminator_flow_with_one_class_is_unconditional(seed):
    r"""With a single class the conditional round is the unconditional one (other random
    draws): the bounds of the unconditional test in `tests/test_train.py` (data
    $\mathcal{N}(2, 0.5^2)$, 25 rounds: mean in [1.7, 2.3], std in [0.35, 0.6]) hold.
    Measured: keys 0, 1 give (1.96, 0.52), (2.00, 0.48); the unconditional trainer on the
    same data (1.89, 0.49), (1.95, 0.49)."""
    one = gpm_sde.GaussianMixture(jnp.ones(1), jnp.array([[2.0]]), jnp.full((1, 1, 1), 0.25))
    key = jr.key(seed)
    flow = {"t1": 3.0, "flow_steps": 12}
    dis, _ = train.train_discriminator_flow(
        ConcatDiscriminator(1, 1, key),
        one,
        key,
        steps=25,
        n_particles=512,
        d_steps=10,
        batch_size=256,
        penalty="r1",
        penalty_weight=0.1,
        lr=3e-3,
        labels="components",
        progress=False,
        chunk=25,
        **flow,
    )
    y0 = jr.normal(jr.key(7), (2000, 1))
    x = np.asarray(train.discriminator_flow_sample(dis, y0, labels=jnp.zeros(2000, int), **flow))[
        :, 0
    ]
    assert 1.7 < x.mean() < 2.3 and 0.35 < x.std() < 0.6, (x.mean(), x.std())


def test_conditional_diffflow_gan_fixed_point_per_class():
    r"""Conditional DiffFlow-GAN at $g = 0$ with the exact conditional data score and the
    default per-class smoothed cloud score: the fixed point is, class by class,
    $p_\theta(\cdot\mid y) * k_\sigma = q(\cdot\mid y) * k_\sigma$, i.e. class $y$ at
    $\mathcal{N}(\mu_y, 0.5^2)$. Budget as the unconditional DiffFlow test (0.1 in the mean,
    10 % in the smoothed variance)."""
    g0 = CondAffine(jnp.ones((2, 1)), jnp.zeros((2, 1)))
    sigma = 0.3
    g, _ = train.train_diffflow_gan(
        g0,
        ComponentScore(MIX_1D),
        jr.key(0),
        steps=600,
        g=0.0,
        beta=1.0,
        sigma=sigma,
        batch_size=512,
        latent_dim=1,
        lr=1e-2,
        labels=MIX_1D,
        progress=False,
    )
    smoothed = STD**2 + sigma**2
    for y in range(2):
        mean, std = float(g.b[y, 0]), abs(float(g.a[y, 0]))
        assert abs(mean - float(MEANS_1D[y, 0])) < 0.1, (y, mean)
        assert abs(std**2 + sigma**2 - smoothed) < 0.1 * smoothed, (y, std)


def test_conditional_diffflow_gan_with_the_data_score_as_generated_score_stands_still():
    r"""A conditional pointwise `gen_score(s, x, y)` equal to the annealed data score of the
    same class makes the drift $\beta(s_q - s_p)$ vanish at g = 0: the generator does not
    move, to the bit. Handing the generated score the other class's label in the trainer
    (a wiring error) moves it."""

    def annealed_component(s, x, y):
        return ComponentScore(MIX_1D)(0.3, x, y)

    g0 = CondAffine(jnp.ones((2, 1)), jnp.zeros((2, 1)))
    still, _ = train.train_diffflow_gan(
        g0,
        ComponentScore(MIX_1D),
        jr.key(0),
        steps=5,
        sigma=0.3,
        batch_size=64,
        latent_dim=1,
        gen_score=annealed_component,
        labels=MIX_1D,
        progress=False,
    )
    np.testing.assert_array_equal(np.asarray(still.b), np.asarray(g0.b))
    np.testing.assert_array_equal(np.asarray(still.a), np.asarray(g0.a))


def test_conditional_discriminator_flow_sample_is_the_per_class_flow():
    """With labels, each particle follows the unconditional flow of `D(s, ·, y)`: the same
    cloud as flowing each class separately with its label bound (to round-off)."""
    dis = QuadraticD(jr.normal(jr.key(3), (2, 3)))
    y0 = jr.normal(jr.key(4), (64, 1))
    lab = jr.permutation(jr.key(5), jnp.repeat(jnp.arange(2), 32))  # equal shapes: one compile
    flow = {"t1": 2.0, "flow_steps": 5, "eta": 1.5}
    out = train.discriminator_flow_sample(dis, y0, labels=lab, **flow)
    for y in range(2):
        sel = np.asarray(lab) == y
        alone = train.discriminator_flow_sample(Bound(dis, jnp.asarray(y)), y0[sel], **flow)
        np.testing.assert_allclose(np.asarray(out)[sel], np.asarray(alone), rtol=1e-5, atol=1e-6)


class QuadraticD(eqx.Module):
    """`D(s, x, y) = w_{y0} x^2 + (w_{y1} + s) x + w_{y2}`: cheap to compile, one set per class."""

    w: Array

    def __call__(self, s, x, y):
        w = self.w[y]
        return jnp.sum(w[0] * x**2 + (w[1] + s) * x + w[2])


class Bound(eqx.Module):
    """`D(s, x, y)` with the label bound: an unconditional `D(s, x)`."""

    d: QuadraticD
    y: Array

    def __call__(self, s, x):
        return self.d(s, x, self.y)


def test_class_smoothed_cloud_score_is_the_score_of_each_class_cloud():
    r"""The default generated score of the conditional DiffFlow-GAN against the smoothed
    empirical score of each class's particles alone, written out in NumPy:
    $\nabla\log\frac1{N_c}\sum_{j:c_j=c}\mathcal{N}(x; y_j, h^2I) =
    (\sum_j w_j y_j - x)/h^2$."""
    from gpm_sde.train._particle_labels import ClassSmoothedCloudScore

    y = np.asarray(jr.normal(jr.key(0), (50, 2)))
    lab = np.asarray(jr.randint(jr.key(1), (50,), 0, 3))
    h = 0.4
    got = np.asarray(ClassSmoothedCloudScore(h, jnp.asarray(lab))(0.0, jnp.asarray(y)))
    for i in range(50):
        pts = y[lab == lab[i]]
        logw = -np.sum((y[i] - pts) ** 2, axis=1) / (2 * h**2)
        w = np.exp(logw - logw.max())
        want = (w @ pts / w.sum() - y[i]) / h**2
        np.testing.assert_allclose(got[i], want, rtol=1e-6, atol=1e-8)


def test_label_law_of_the_generator_follows_the_data():
    r"""`labels=` of the generator trainers: an integer array is drawn with its class
    frequencies, a mixture with its weights, a callable as given. Frequencies of 20000 draws
    within 5 standard errors $\sqrt{p(1-p)/n}$ of the weights."""
    from gpm_sde.train._particle_labels import label_sampler

    n = 20000
    data_labels = jnp.array([0, 0, 0, 1, 2, 2, 2, 2, 2, 2])  # frequencies 0.3, 0.1, 0.6
    for law, p in (
        (data_labels, np.array([0.3, 0.1, 0.6])),
        (MIX_2D, np.asarray(MIX_2D.weights)),
    ):
        y = np.asarray(jax.jit(label_sampler(law), static_argnums=1)(jr.key(0), n))
        freq = np.bincount(y, minlength=3) / n
        assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / n)), (freq, p)
    y = label_sampler(lambda key, m: jnp.full(m, 2))(jr.key(0), 5)
    np.testing.assert_array_equal(np.asarray(y), 2)


def test_conditional_options_refuse_bad_labels():
    with pytest.raises(TypeError, match="`labels`"):
        train.score_gan_make_step(
            ComponentScore(MIX_2D), latent_dim=2, labels=jnp.array([0.5, 1.0])
        )
    with pytest.raises(TypeError, match="`real_score` is a cloud score"):
        train.score_gan_make_step(SmoothedCloudScore(0.3), latent_dim=2, labels=MIX_2D)
    with pytest.raises(TypeError, match="labels"):
        train.discriminator_flow_sample(
            QuadraticD(jnp.zeros((2, 3))), jnp.zeros((4, 1)), labels=jnp.zeros(3, int)
        )
    with pytest.raises(TypeError, match="`labels='components'`"):
        train.discriminator_flow_make_step(jnp.zeros((4, 1)), labels="components")
