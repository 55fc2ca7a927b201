"""Convergence orders of the solvers in generation time, and diffrax's backward-time bug.

**Orders.** Each study solves on one Brownian path per particle, the same at every step size:
`gpm_sde.verify.FineBrownianPath` draws $W$ (and its space-time Lévy area) on a grid of 1024
steps and every coarser grid sums the fine increments exactly. The solves are fixed steps of
each solver (`gpm_sde.verify.solve_on_path`) on the library's diffrax terms. The order
is the least-squares slope of log error on log step size over 4–5 step sizes; its Monte-Carlo
standard error is the bootstrap spread of the slope (resampling the paths, 400 resamples).
Measured with these seeds (float64): EM strong 0.470 ± 0.010, EM weak 0.961 ± 0.022, SRA1
strong 1.512 ± 0.008, ShARK strong 1.504 ± 0.009 (± one bootstrap SE); over six seeds the
slopes ranged 0.464–0.499, 0.947–0.982, 1.498–1.529 and 1.490–1.506, a spread consistent with
the bootstrap SEs. Each band below is ≥ 7 bootstrap SEs wide: the Monte-Carlo error is not what
limits it, the pre-asymptotic bias of a slope fitted over a finite range of step sizes is (for
the weak study it is known exactly: the exact Euler errors have slope 0.935 over these steps,
not 1), and the bands leave room for it.

**Backward time.** diffrax's stochastic Runge–Kutta solvers (`AbstractSRK`: SRA1, ShARK, SEA,
...) are wrong when `t1 < t0` (diffrax issue 598, fixed upstream by PR 746, not in 0.7.2): the
reverse-time VP SDE below, solved backwards with ShARK (or SRA1), explodes: sample mean ≈ −14
per coordinate for a target ≈ (0.5, 0.4), max |z| ≈ 31, while Euler and Heun on the very same
backward solve give |z| < 1 (reproduced with 50 to 1000 steps). Hence the library's rule:
generation time only. The ShARK canary (an expected failure) runs with the slow tests;
the default run keeps the Euler control and the generation-time ShARK solve.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gpm_sde
from gpm_sde.verify import fit_order, max_moment_z_score, strong_error, weak_error
from theory.laws import GBM, SineDrift, step_sizes, strong_errors_gbm, strong_errors_reference

N_PATHS = 4000
FINE = 1024
EM_STEPS = (8, 16, 32, 64, 128)
SRK_STEPS = (8, 16, 32, 64)


def test_euler_maruyama_strong_order_half(key):
    r"""GBM $dX = \tfrac12 X ds + X dW$ (multiplicative noise: EM's strong order is ½, not 1),
    against the exact solution $X_T = e^{(\mu - \sigma^2/2)T + \sigma W_T}$ on the same path.
    Measured 0.470 (bootstrap SE 0.010); band ±0.15 = 15 SE."""
    gbm = GBM(mu=0.5, sigma=1.0)
    diff, _ = strong_errors_gbm(gbm, key, N_PATHS, EM_STEPS, FINE)
    fit = fit_order(step_sizes(gbm.T, EM_STEPS), diff, strong_error, np.random.default_rng(0))
    assert fit.se < 0.03, fit
    assert abs(fit.slope - 0.5) < 0.15, fit


def test_euler_maruyama_weak_order_one(key):
    r"""Weak error $|\mathbb{E}\hat X_T^2 - \mathbb{E}X_T^2|$ of EM on GBM ($\mu = 1$,
    $\sigma = ½$), estimated with common random numbers (the mean over paths of
    $\hat X_T^2 - X_T^2$, whose noise shrinks with the strong error). Measured 0.961 (bootstrap
    SE 0.022); band ±0.15 ≈ 7 SE, around a pre-asymptotic exact slope of 0.935. The estimates
    also match EM's exact second moment $x_0^2((1 + \mu h)^2 + \sigma^2 h)^n$ within 5 SE at
    every step size: the solver is EM."""
    gbm = GBM(mu=1.0, sigma=0.5)
    _, sq = strong_errors_gbm(gbm, jr.fold_in(key, 1), N_PATHS, EM_STEPS, FINE)
    fit = fit_order(step_sizes(gbm.T, EM_STEPS), sq, weak_error, np.random.default_rng(1))
    assert fit.se < 0.05, fit
    assert abs(fit.slope - 1.0) < 0.15, fit
    exact = np.array([gbm.euler_second_moment(m) - gbm.second_moment() for m in EM_STEPS])
    z = (sq.mean(axis=1) - exact) / (sq.std(axis=1, ddof=1) / np.sqrt(N_PATHS))
    assert np.all(np.abs(z) < 5.0), z


@pytest.mark.parametrize("solver", [diffrax.SRA1(), diffrax.ShARK()], ids=["SRA1", "ShARK"])
def test_additive_noise_strong_order_three_halves(solver, key):
    r"""$dX = -\sin X\,ds + 2\,dW$ against the same solver with 1024 steps on the same path
    (its own error, $\approx (64/1024)^{3/2} \approx 1.6\%$ of the finest coarse error, biases
    the slope by < 0.01). Measured 1.512 (SRA1), 1.504 (ShARK), bootstrap SE 0.009; band
    ±0.2 ≈ 20 SE (wider than for EM: an order-1.5 scheme's $O(h^2)$ deterministic error bends the
    line at coarse steps)."""
    problem = SineDrift()
    err = strong_errors_reference(problem, solver, jr.fold_in(key, 2), N_PATHS, SRK_STEPS, FINE)
    fit = fit_order(step_sizes(problem.T, SRK_STEPS), err, strong_error, np.random.default_rng(2))
    assert fit.se < 0.03, fit
    assert abs(fit.slope - 1.5) < 0.2, fit


# ---------------------------------------------------------------------------------------------
# diffrax issue 598: stochastic Runge–Kutta solvers are wrong backwards in time.

N_REVERSE = 2000
REVERSE_STEPS = 100
EPS = 1e-3


def _reverse_problem(mixture, key):
    """VP with mixture data: the exact score, samples of the exact $p_T$ (so the prior's
    mismatch plays no part) and the exact target law $p_\\epsilon$."""
    process = gpm_sde.vp()
    score = gpm_sde.MixtureMarginalScore(process, mixture)
    y0 = process.marginal(mixture, process.T).sample(key, N_REVERSE)
    return process, score, y0, process.marginal(mixture, EPS)


@eqx.filter_jit
def _solve_backwards_in_diffrax(process, score, y0, key, solver):
    r"""The reverse-time SDE in diffusion time,
    $dx = [f x - g^2\nabla\log p_t(x)]\,dt + g\,d\bar W$, handed to `diffrax.diffeqsolve` as
    written: from $t_0 = T$ down to $t_1 = \epsilon$, with `dt0 < 0` and a
    `VirtualBrownianTree` (the library's terms, diffrax's backward loop)."""

    def drift(t, y, args):
        scores = jax.vmap(score, in_axes=(None, 0))(t, y)
        return process.drift_coeff(t) * y - process.diffusion_squared(t) * scores

    def diffusion(t, y, args):
        return jnp.broadcast_to(process.diffusion(t), y.shape)

    T = process.T
    brownian = diffrax.VirtualBrownianTree(
        EPS,
        T,
        tol=(T - EPS) / (16 * REVERSE_STEPS),
        shape=jax.ShapeDtypeStruct(y0.shape, y0.dtype),
        key=key,
        levy_area=diffrax.SpaceTimeLevyArea,  # Euler reads only W
    )
    terms = gpm_sde.SDE(drift, diffusion).terms(brownian)
    sol = diffrax.diffeqsolve(
        terms, solver, T, EPS, -(T - EPS) / REVERSE_STEPS, y0, max_steps=REVERSE_STEPS + 1
    )
    assert sol.ys is not None
    return sol.ys[0]


@pytest.mark.parametrize(
    "solver",
    [
        pytest.param(diffrax.Euler(), id="Euler"),
        pytest.param(
            diffrax.ShARK(),
            id="ShARK",
            marks=[
                # An upstream canary, not a property of the library: in the slow run only. The
                # default run keeps the Euler control and
                # `test_reverse_sde_in_generation_time_with_shark` (the library's rule).
                pytest.mark.slow,
                pytest.mark.xfail(
                    strict=True,
                    raises=AssertionError,
                    reason=(
                        "diffrax issue 598 (fixed upstream by PR 746, not in diffrax 0.7.2): "
                        "stochastic Runge-Kutta solvers are wrong for t1 < t0; here the samples "
                        "explode (mean ~ -14, max |z| ~ 31). When this XPASSes, upstream is fixed."
                    ),
                ),
            ],
        ),
    ],
)
def test_reverse_sde_backwards_in_diffrax(solver, mixture_2d, key):
    """Solved backwards in diffrax, the reverse SDE should land on $p_\\epsilon$ (moments within
    5 SE at N = 2000). Euler does (the control: the formulation is right); ShARK does not."""
    process, score, y0, target = _reverse_problem(mixture_2d, jr.fold_in(key, 3))
    ys = _solve_backwards_in_diffrax(process, score, y0, jr.fold_in(key, 4), solver)
    z = max_moment_z_score(ys, target.mean(), target.covariance())
    assert z < 5.0, z


def test_reverse_sde_in_generation_time_with_shark(mixture_2d, key):
    """The same reverse SDE as `gpm_sde.reverse` in generation time $s = T - t$, solved forward
    by `simulate` with ShARK on the same number of steps, lands on $p_\\epsilon$ (5 SE)."""
    process, score, y0, target = _reverse_problem(mixture_2d, jr.fold_in(key, 3))
    sol = gpm_sde.simulate(
        gpm_sde.reverse(process, score),
        y0,
        jr.fold_in(key, 4),
        t1=process.T - EPS,
        steps=REVERSE_STEPS,
        solver=diffrax.ShARK(),
    )
    assert sol.ys is not None
    z = max_moment_z_score(sol.ys[0], target.mean(), target.covariance())
    assert z < 5.0, z
