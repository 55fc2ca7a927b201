"""Determinism (see docs/determinism.md): what is bitwise-reproducible and what is equal only to
round-off.

- Bitwise: the same key, arguments, machine and versions give the same samples.
- Round-off (asserted to 1e-12 relative, float64): the kernel score computed in different
  tiles (`KernelScore(block=...)`), and a cloud solved in two halves instead of at once, when
  the halves see the same Brownian increments as the whole. Tiles change the order of the
  online log-sum-exp's sums, so these agree to ~1e-15, not bitwise.
- Not equal: two halves each solved by `simulate` with the same key. The increments are drawn
  for the shape of the cloud passed in, so both halves get the *same* noise (with JAX's
  default partitionable Threefry a draw of N/2 rows is the first N/2 rows of a draw of N: the
  first half reproduces the whole run's first half, the second does not).
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gpm_sde
from gpm_sde.scores import AnnealedScore, KernelScore, SmoothedMixtureScore
from gpm_sde.solve import GridBrownianPath
from gpm_sde.solve._brownian import _PATH_TAG
from gpm_sde.solve._fixed_grid import plan_saves, scan_solve

RTOL = 1e-12
N, STEPS, EPS = 64, 50, 1e-3


def _rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(a)))


@pytest.fixture
def reverse_vp(mixture_2d):
    vp = gpm_sde.vp()
    return vp, gpm_sde.reverse(vp, gpm_sde.MixtureMarginalScore(vp, mixture_2d))


def test_same_key_gives_bitwise_identical_samples(reverse_vp, mixture_2d, key):
    vp, sde = reverse_vp
    y0 = vp.prior.sample(jr.fold_in(key, 1), N, (2,))
    real = AnnealedScore(SmoothedMixtureScore(mixture_2d), 0.3)
    flow = gpm_sde.diffflow(real, KernelScore("scott", block=16), 1.0, 0.5)
    for problem, t1, steps in ((sde, vp.T - EPS, STEPS), (flow, 1.0, 10)):
        first, second = (
            gpm_sde.simulate(problem, y0, jr.fold_in(key, 2), t1=t1, steps=steps).ys
            for _ in range(2)
        )
        assert first is not None and second is not None
        assert jnp.array_equal(first, second)


@pytest.mark.parametrize("bandwidth", [0.3, "scott"])
def test_kernel_score_does_not_depend_on_the_tiles(bandwidth, key):
    y = 1.5 * jr.normal(key, (200, 2))
    scores = [KernelScore(bandwidth, block=b)(0.0, y) for b in (1, 7, 16, 64, 256)]
    for other in scores[1:]:
        assert _rel(scores[0], other) <= RTOL


def test_probability_flow_on_two_halves_equals_the_whole(reverse_vp, mixture_2d, key):
    """An ODE with a pointwise score moves each particle on its own: halves == whole."""
    vp = gpm_sde.vp()
    ode = gpm_sde.probability_flow(vp, gpm_sde.MixtureMarginalScore(vp, mixture_2d))
    y0 = vp.prior.sample(key, N, (2,))

    def run(y):
        ys = gpm_sde.simulate(ode, y, None, t1=vp.T - EPS, steps=STEPS).ys
        assert ys is not None
        return ys

    halves = jnp.concatenate([run(y0[: N // 2]), run(y0[N // 2 :])], axis=1)
    assert _rel(run(y0), halves) <= RTOL


class _Rows(diffrax.AbstractPath):
    """Rows `start:stop` of the increments of a whole-cloud Brownian path."""

    path: GridBrownianPath
    start: int
    stop: int

    @property
    def t0(self):
        return self.path.t0

    @property
    def t1(self):
        return self.path.t1

    def evaluate(self, t0, t1=None, left=True):
        return self.path.evaluate(t0, t1, left)[self.start : self.stop]  # pyright: ignore[reportIndexIssue]


def test_sde_on_two_halves_with_the_same_increments_equals_the_whole(reverse_vp, key):
    """The reverse SDE solved on two halves, each driven by its rows of the whole cloud's
    increments (`fold_in(key, n)` drawn at the whole cloud's shape), equals the whole run."""
    vp, sde = reverse_vp
    y0 = vp.prior.sample(jr.fold_in(key, 1), N, (2,))
    noise_key = jr.fold_in(key, 2)
    t1 = vp.T - EPS
    whole = gpm_sde.simulate(sde, y0, noise_key, t1=t1, steps=STEPS).ys
    t0_arr, t1_arr = jnp.asarray(0.0), jnp.asarray(t1)
    path = GridBrownianPath(jax.ShapeDtypeStruct(y0.shape, y0.dtype), noise_key, 0.0, t1, STEPS)
    plan = plan_saves(diffrax.SaveAt(t1=True), 0.0, t1, STEPS)
    assert plan is not None
    parts = []
    for start, stop in ((0, N // 2), (N // 2, N)):
        terms = sde.terms(_Rows(path, start, stop))
        sol = scan_solve(
            terms,
            diffrax.Euler(),
            t0_arr,
            t1_arr,
            STEPS,
            y0[start:stop],
            None,
            plan,
            diffrax.NoProgressMeter(),
        )
        parts.append(sol.ys)
    assert _rel(whole, jnp.concatenate(parts, axis=1)) <= RTOL
    # Each half solved by `simulate` with the same key draws its own (N/2, d) increments: the
    # second half then gets the first half's noise and does not reproduce the whole run.
    second = gpm_sde.simulate(sde, y0[N // 2 :], noise_key, t1=t1, steps=STEPS).ys
    assert whole is not None and second is not None
    assert not jnp.allclose(whole[:, N // 2 :], second)


def test_brownian_keys_are_fold_in_of_the_step(key):
    """Step n's increment is sqrt(Δs) · normal(fold_in(fold_in(key, TAG), n)): a pure function
    of the key and the step index, at the shape of the whole cloud."""
    path = GridBrownianPath(jax.ShapeDtypeStruct((5, 2), jnp.float64), key, 0.0, 1.0, 10)
    stream = jr.fold_in(key, _PATH_TAG)
    for n in (0, 3, 9):
        want = jnp.sqrt(0.1) * jr.normal(jr.fold_in(stream, n), (5, 2), jnp.float64)
        got = path.increment(jnp.asarray(n), 0.1).W  # pyright: ignore[reportAttributeAccessIssue]
        assert jnp.array_equal(got, want)
