"""Cloud scores survive every transform, scores are checked once per solve, and a reverse
diffusion's score sees the exact diffusion time.

- Every transform (`reverse` with λ = None/0/0.5, `probability_flow`, `reweight_noise`,
  `diffflow`, `gan_flow`, `langevin_flow` (β(s), constant β), the GPM Score-GAN field) × every
  kind of score (pointwise, mean-field cloud, time-dependent cloud): the drift on a cloud equals the
  equation written out here, with the pointwise score evaluated point by point in a Python loop
  and the cloud score called once on the whole cloud. float64; the two sides differ only by the
  order of floating-point operations, so `rtol = 1e-12`.
- Every sampler gives the same cloud with a pointwise score and with the same score written as a
  cloud score (a vmap inside an `AbstractCloudScore`), to round-off.
- `ScoreDrift`'s shape check: a wrong shape, a function of a batch or of `(x, t)`, a wrong
  dtype raise an error naming the argument, eagerly and under `jax.jit`.
- Exact time: with x64 on, a float32 cloud and T = 10, the score of the reverse ODE sees
  t = 1e-5 at the end to 1e-9 relative (float32 time gives 9.54e-6).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import gpm_sde
from gpm_sde.flows import gan_flow, langevin_flow, score_gan_field
from gpm_sde.samplers import (
    annealed_langevin,
    predictor_corrector,
    probability_flow_sample,
    reverse_sde_sample,
    tweedie_denoise,
)
from gpm_sde.scores import (
    AbstractCloudScore,
    AnnealedScore,
    KernelScore,
    SmoothedCloudScore,
    SmoothedMixtureScore,
    TimeReversedScore,
    is_cloud_score,
)
from gpm_sde.sde import SDE, LinearDrift, ScalarDiffusion, ScoreDrift

RTOL = 1e-12
# 8 points: the expected drifts evaluate a pointwise score in a Python loop over the cloud,
# unrolled in the compiled check, so the compile time grows with N (24 took ~3x longer).
N, D = 8, 2


class VmapCloud(AbstractCloudScore):
    """A pointwise score written as a cloud score: it vmaps itself over the cloud."""

    score: Callable[..., Any]

    def __call__(self, s, y):
        return jax.vmap(self.score, in_axes=(None, 0))(s, y)


def _beta(t):
    return 0.1 + 19.9 * t  # VP, β_min = 0.1, β_max = 20 (Song et al. 2021, eq. 32-33)


def _pointwise(t, x):
    """A time-dependent pointwise score (of N(0, (1 + t) I) tilted by sin): any smooth field."""
    return -x / (1.0 + t) + 0.3 * jnp.sin(x + t)


# Each kind: (score, how to evaluate it on the cloud independently of `on_cloud`).
def _loop(score):
    return lambda t, y: jnp.stack([score(t, yi) for yi in y])


def _whole(score):
    return lambda t, y: score(t, y)


def _kinds() -> dict[str, tuple[Any, Any]]:
    law = gpm_sde.GaussianMixture(
        jnp.array([0.3, 0.7]),
        jnp.array([[-1.0, 0.5], [1.0, -0.5]]),
        jnp.stack([0.4 * jnp.eye(2), jnp.diag(jnp.array([0.6, 0.2]))]),
    )
    mixture_score = gpm_sde.MixtureMarginalScore(gpm_sde.vp(), law)
    kernel = KernelScore(bandwidth=0.5)
    smoothed = SmoothedCloudScore(lambda s: 0.3 + 0.2 * s)  # depends on its time argument
    return {
        "pointwise": (_pointwise, _loop(_pointwise)),
        "mixture": (mixture_score, _loop(mixture_score)),
        "kernel": (kernel, _whole(kernel)),
        "smoothed_cloud": (smoothed, _whole(smoothed)),
    }


KINDS = ["pointwise", "mixture", "kernel", "smoothed_cloud"]


def _close(got, want):
    scale = float(jnp.max(jnp.abs(want)))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=RTOL, atol=RTOL * scale)


def _transforms(score, other):
    """(name, SDE, expected drift (s, y) -> cloud) for `score` (and `other` as a second score),
    each expected drift written out from the equations in the docstrings."""
    p = gpm_sde.vp()
    T = p.T
    sc, ev = score  # the score, and its evaluation on the cloud written out
    oth, ev_o = other
    out = []
    for lam in (None, 0.0, 0.5):

        def rev(s, y, lam=lam):
            t = T - s
            g2 = _beta(t)
            lam2 = g2 if lam is None else lam**2
            return 0.5 * _beta(t) * y + 0.5 * (g2 + lam2) * ev(t, y)

        out.append((f"reverse(lam={lam})", gpm_sde.reverse(p, sc, lam=lam), rev))

    def pf(s, y):
        t = T - s
        return 0.5 * _beta(t) * y + 0.5 * _beta(t) * ev(t, y)

    out.append(("probability_flow", gpm_sde.probability_flow(p, sc), pf))

    base = SDE(LinearDrift(lambda s: -1.0 - s), ScalarDiffusion(0.3))

    def rw(s, y):
        return (-1.0 - s) * y + 0.5 * (0.7**2 - 0.3**2) * ev(s, y)

    out.append(("reweight_noise", gpm_sde.reweight_noise(base, sc, 0.7), rw))

    beta, g = (lambda s: 0.8 + s), 0.6

    def dflow(s, y):
        return -0.5 * y + (0.8 + s) * ev(s, y) - ((0.8 + s) - 0.5 * g**2) * ev_o(s, y)

    out.append(("diffflow(real)", gpm_sde.diffflow(sc, oth, beta, g, f=-0.5), dflow))

    def dflow_gen(s, y):
        return -0.5 * y + (0.8 + s) * ev_o(s, y) - ((0.8 + s) - 0.5 * g**2) * ev(s, y)

    out.append(("diffflow(gen)", gpm_sde.diffflow(oth, sc, beta, g, f=-0.5), dflow_gen))

    def gan(s, y):
        return (0.8 + s) * (ev_o(s, y) - ev(s, y))

    out.append(("gan_flow", gan_flow(oth, sc, beta), gan))

    def lang(s, y):
        return (0.8 + s) * ev(s, y)

    out.append(("langevin_flow", langevin_flow(sc, beta), lang))

    def lsde(s, y):
        return 0.4 * ev(s, y)

    out.append(("langevin_flow(0.4)", langevin_flow(sc, 0.4), lsde))

    sigma = lambda s: 0.2 + 0.5 * s  # noqa: E731

    def annealed(s, y):
        return (0.8 + s) * ev(sigma(s), y)

    out.append(("annealed", langevin_flow(AnnealedScore(sc, sigma), beta), annealed))

    def sgan(s, y):
        return 1.5 * ev_o(sigma(s), y) - 0.7 * ev(sigma(s), y)

    field = score_gan_field(oth, sc, 1.5, 0.7, sigma)
    out.append(("score_gan_field", gpm_sde.flows.particle_flow(field), sgan))
    return out


@functools.cache
def _compiled(kind: str):
    """The transforms for `kind`, and one jitted function of `(s, y)` returning every
    transform's (drift, expected drift): compiled once, reused by every example."""
    kinds = _kinds()
    other = kinds["kernel" if kind in ("pointwise", "mixture") else "pointwise"]
    cases = _transforms(kinds[kind], other)

    @jax.jit
    def run(s, y):
        return [(sde.drift(s, y, None), want(s, y)) for _, sde, want in cases]

    return [name for name, _, _ in cases], run


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), s=st.floats(0.02, 0.95))
def test_every_transform_keeps_the_score_kind(kind, seed, s):
    """Every transform's drift on a cloud equals its equation with the score evaluated on the
    whole cloud (cloud score) or point by point (pointwise score), for every score kind."""
    names, run = _compiled(kind)
    y = 1.5 * jr.normal(jr.key(seed), (N, D))
    for name, (got, want) in zip(names, run(jnp.asarray(s), y), strict=True):
        assert got.shape == y.shape and got.dtype == y.dtype, name
        try:
            _close(got, want)
        except AssertionError as err:
            raise AssertionError(f"{name} with a {kind} score: {err}") from None


def test_reverse_kernel_score_drift_error_is_round_off(key):
    """The issue's case: `reverse(process, KernelScore(h))` on a cloud. When the time reversal
    vmapped the kernel score, each particle's score came from a 'cloud' of its own coordinates
    (error 25 on this cloud, drift scale 17); now the error is float64 round-off."""
    p = gpm_sde.vp()
    kernel = KernelScore(bandwidth=0.5)
    y = jr.normal(key, (64, 2))
    s = 0.3
    t = p.T - s
    want = 0.5 * _beta(t) * y + _beta(t) * kernel(t, y)
    got = gpm_sde.reverse(p, kernel).drift(s, y, None)
    assert float(jnp.max(jnp.abs(got - want))) < 1e-12 * float(jnp.max(jnp.abs(want)))


@pytest.mark.parametrize(
    "wrapper",
    [lambda sc: TimeReversedScore(sc, 1.0), lambda sc: AnnealedScore(sc, 0.3)],
    ids=["TimeReversedScore", "AnnealedScore"],
)
def test_time_changed_score_follows_the_wrapped_score(wrapper):
    assert is_cloud_score(wrapper(KernelScore(0.5)))
    assert is_cloud_score(wrapper(wrapper(KernelScore(0.5))))
    assert not is_cloud_score(wrapper(_pointwise))
    assert not is_cloud_score(wrapper(wrapper(_pointwise)))


# --- samplers: a pointwise score and the same score as a cloud score give the same cloud ---


def _same(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12)


def test_samplers_treat_pointwise_and_cloud_scores_alike(mixture_2d, key):
    """A sampler that vmapped a cloud score would call `VmapCloud` on one point."""
    p = gpm_sde.vp()
    score = gpm_sde.MixtureMarginalScore(p, mixture_2d)
    cloud = VmapCloud(score)
    x_T = p.prior.sample(key, 16, (2,))
    runs: tuple[tuple[Callable[..., Any], dict[str, Any]], ...] = (
        (reverse_sde_sample, {"steps": 6}),
        (probability_flow_sample, {"steps": 6}),
        (predictor_corrector, {"steps": 4, "predictor": "reverse_diffusion"}),
        (predictor_corrector, {"steps": 4, "predictor": "euler_maruyama"}),
    )
    for sampler, kw in runs:
        a = sampler(p, score, key, x_init=x_T, **kw).x
        b = sampler(p, cloud, key, x_init=x_T, **kw).x
        _same(a, b)
    _same(tweedie_denoise(p, score, 0.1, x_T), tweedie_denoise(p, cloud, 0.1, x_T))
    sigma_score = SmoothedMixtureScore(mixture_2d)
    sigmas = jnp.array([1.0, 0.5, 0.2])
    kw: dict[str, Any] = {"steps_per_level": 3, "eps": 1e-3, "x_init": x_T}
    _same(
        annealed_langevin(sigma_score, sigmas, key, **kw).x,
        annealed_langevin(VmapCloud(sigma_score), sigmas, key, **kw).x,
    )


def test_tweedie_with_a_kernel_score_sees_the_cloud(key):
    p = gpm_sde.vp()
    kernel = KernelScore(bandwidth=0.4)
    y = jr.normal(key, (32, 2))
    t = 0.2
    want = (y + p.sigma(t) ** 2 * kernel(t, y)) / p.alpha(t)
    _close(tweedie_denoise(p, kernel, t, y), want)


# --- the shape check, once per solve ---


def _solve(sde, y0=None, **kw):
    y0 = jr.normal(jr.key(1), (8, 2)) if y0 is None else y0
    return gpm_sde.simulate(sde, y0, jr.key(2), t1=0.9, steps=3, **kw)


P = gpm_sde.vp()


@pytest.mark.parametrize(
    ("build", "exc", "match"),
    [
        # a pointwise score returning a scalar (e.g. a log-density)
        (
            lambda: gpm_sde.reverse(P, lambda t, x: jnp.sum(x**2)),
            ValueError,
            r"`score` of `reverse`.*one point x: \(2,\).*returned shape \(\), expected \(2,\)"
            r".*from_batched",
        ),
        # a function of (x, t) instead of (t, x)
        (
            lambda: gpm_sde.reverse(P, lambda x, t: -x),
            ValueError,
            r"`score` of `reverse`.*returned shape \(\).*time first.*\(x, t\), swap them",
        ),
        # a function written on a batch
        (
            lambda: gpm_sde.probability_flow(P, lambda t, x: -x.reshape(-1, 2)),  # (B, d) inside
            ValueError,
            r"`score` of `probability_flow`.*returned shape \(1, 2\).*works on a batch"
            r".*gpm_sde\.scores\.from_batched",
        ),
        (
            lambda: gpm_sde.reverse(P, lambda t, x: x[:, 0]),
            ValueError,
            r"`score` of `reverse`.*raised IndexError.*works on a batch",
        ),
        # wrong dtype
        (
            lambda: gpm_sde.reverse(P, lambda t, x: jnp.zeros(x.shape, jnp.int32)),
            TypeError,
            r"`score` of `reverse`.*returned dtype int32.*real floating",
        ),
        (
            lambda: gpm_sde.reverse(P, lambda t, x: (x, x)),
            TypeError,
            r"`score` of `reverse`.*not one array",
        ),
        # a cloud score returning one point's shape
        (
            lambda: gpm_sde.reverse(P, VmapCloud(lambda t, x: jnp.sum(x))),
            ValueError,
            r"`score` of `reverse`.*whole cloud y: \(8, 2\).*returned shape \(8,\), expected "
            r"\(8, 2\).*cloud score \(VmapCloud in TimeReversedScore",
        ),
        # the names of the other transforms' arguments
        (
            lambda: gpm_sde.reweight_noise(
                SDE(LinearDrift(-1.0), ScalarDiffusion(1.0)), lambda s, x: x[0], 0.5
            ),
            ValueError,
            r"`gen_score` of `reweight_noise`",
        ),
        (
            lambda: gpm_sde.diffflow(lambda s, x: x[0], KernelScore(0.5), 1.0, 0.5),
            ValueError,
            r"`real_score` of `diffflow`",
        ),
        (
            lambda: gpm_sde.diffflow(lambda s, x: x, lambda s, x: x[:1], 1.0, 0.5),
            ValueError,
            r"`gen_score` of `diffflow`",
        ),
    ],
)
def test_simulate_names_a_wrong_score(build, exc, match):
    sde = build()
    match = "(?s)" + match  # the message has several lines
    with pytest.raises(exc, match=match):
        _solve(sde)
    with pytest.raises(exc, match=match):  # the same check under jit
        jax.jit(lambda y: _solve(sde, y).ys)(jr.normal(jr.key(1), (8, 2)))


def test_check_scores_works_on_shapes_alone():
    """`SDE.check_scores` needs only the cloud's shape and dtype, and finds a `ScoreDrift`
    anywhere in the drift (here inside a sum and a scaling)."""
    y = jax.ShapeDtypeStruct((8, 2), jnp.float32)
    t = jax.ShapeDtypeStruct((), jnp.float64)
    good = gpm_sde.reverse(P, lambda t, x: -x)
    good.check_scores(t, y)
    bad = SDE(LinearDrift(1.0) + 2.0 * ScoreDrift(1.0, lambda s, x: x[0], "`my_score`"))
    with pytest.raises(ValueError, match=r"`my_score` was called"):
        bad.check_scores(t, y)


def test_good_scores_pass_the_check():
    y0 = jr.normal(jr.key(1), (8, 2), dtype=jnp.float32)
    for score in (
        lambda t, x: -x,
        lambda t, x: (-x * t).astype(jnp.float64),  # a wider float is cast to the cloud's
        KernelScore(0.5),
    ):
        sol = _solve(gpm_sde.reverse(P, score), y0)
        assert sol.ys is not None and sol.ys.dtype == jnp.float32


# --- exact time ---


def test_reverse_score_sees_the_exact_diffusion_time():
    """x64 on, float32 cloud, T = 10: the probability-flow ODE to s = T - 1e-5 hands the score
    t = 1e-5 at its last evaluation to 1e-9 relative, on the fixed grid (Heun evaluates the
    drift at the step's end) and adaptively. With float32 times it would be 9.54e-6."""
    assert jax.config.read("jax_enable_x64")
    p = gpm_sde.ve(T=10.0)
    seen: list[float] = []

    def score(t, x):
        jax.debug.callback(lambda tt: seen.append(float(tt)), t)
        return -x / (0.01 + p.sigma(t) ** 2)

    y0 = jnp.zeros((4, 2), jnp.float32)
    sde = gpm_sde.reverse(p, score, lam=0.0)
    eps = 1e-5
    runs: tuple[dict[str, Any], ...] = (
        {"solver": diffrax.Heun()},
        {"solver": diffrax.Tsit5(), "stepsize_controller": diffrax.PIDController(1e-3, 1e-6)},
    )
    for kw in runs:
        seen.clear()
        sol = gpm_sde.simulate(sde, y0, None, t1=p.T - eps, steps=20, **kw)
        np.testing.assert_allclose(min(seen), eps, rtol=1e-9, err_msg=str(kw))
        assert sol.ys is not None and sol.ys.dtype == jnp.float32
        assert sol.ts is not None and sol.ts.dtype == jnp.float64


def test_reverse_sde_euler_sees_the_grid_times():
    """Euler–Maruyama evaluates the drift at each step's start: the last diffusion time seen is
    T - s_{N-1} = eps + Δs, exact in float64 for a float32 cloud."""
    p = gpm_sde.ve(T=10.0)
    seen: list[float] = []

    def score(t, x):
        jax.debug.callback(lambda tt: seen.append(float(tt)), t)
        return -x / (0.01 + p.sigma(t) ** 2)

    steps, eps = 10, 1e-5
    t1 = p.T - eps
    y0 = jnp.zeros((4, 2), jnp.float32)
    sol = gpm_sde.simulate(gpm_sde.reverse(p, score), y0, jr.key(0), t1=t1, steps=steps)
    assert sol.ys is not None and sol.ys.dtype == jnp.float32
    last_start = np.linspace(0.0, t1, steps + 1)[-2]
    np.testing.assert_allclose(min(seen), p.T - last_start, rtol=1e-12)
