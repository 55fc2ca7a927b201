# ruff: noqa: E501  (the table keeps one case per line)
# pyright: reportArgumentType=false, reportOptionalMemberAccess=false, reportOptionalCall=false, reportCallIssue=false
"""Hostile-input probes of the library: a table of cases, each a public call with a hostile
argument and its expected verdict.

- `Refused(exc, *names)`: the call raises `exc` (or a subclass) whose message names the
  offending argument (every substring in `names` must occur in the message).
- `Correct(check)`: the call succeeds and `check(result)` compares it with an independent
  closed form (NumPy integers where a Python int is expected, a raw `uint32` key, ...).

A case that returns a number where a refusal was expected, or a wrong number where a result
was expected, fails: no case may end in a silent wrong result or a raw traceback (an
exception of another type, or one that does not name the argument).

Under pytest the annotations are also checked at run time (jaxtyping + beartype, see
`addopts`), and some hostile arguments are refused by that checker first, with a `TypeError`
naming the parameter; the count separates them. To exercise the library's own checks on every
case, run without it: `python -m pytest -o addopts="" tests/test_probes_library.py` (all
cases then end refused by the library's named error or correct).

Kept cheap: tiny clouds, few steps, module-level models; the few cases that compile a solve
of their own are marked slow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import gpm_sde as g
from gpm_sde import losses, metrics, samplers, schedules, scores
from gpm_sde.sde import SDE, LinearDrift

# ----------------------------------------------------------------------------------------
# Verdicts


@dataclasses.dataclass(frozen=True)
class Refused:
    exc: type[BaseException] | tuple[type[BaseException], ...]
    names: tuple[str, ...]

    def __init__(self, exc, *names: str):
        object.__setattr__(self, "exc", exc)
        object.__setattr__(self, "names", names)


@dataclasses.dataclass(frozen=True)
class Correct:
    check: Callable[[Any], None]


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    call: Callable[[], Any]
    verdict: Refused | Correct
    slow: bool = False  # compiles a solve of its own: run with the slow tests


# ----------------------------------------------------------------------------------------
# Shared, cheap objects

KEY = jr.key(0)
PROC = g.vp()
M0, S0 = np.array([1.0, -0.5]), 0.6  # data law N(M0, S0² I)
LAW = g.GaussianMixture(jnp.ones(1), jnp.asarray(M0)[None], (S0**2 * jnp.eye(2))[None])
SCORE = g.MixtureMarginalScore(PROC, LAW)
REV = g.reverse(PROC, SCORE)
PF = g.probability_flow(PROC, SCORE)
Y0 = jnp.zeros((3, 2))
X = jnp.array([[0.5, -1.0], [1.5, 0.0], [1.0, -0.2]])
ONES_ODE = SDE(lambda s, y, a: jnp.ones_like(y))  # dy/ds = 1: y(t1) = y0 + t1 - t0


def _eps_model(n, x):
    return jnp.zeros_like(x)


def _wrong_shape_score(t, x):
    return jnp.zeros(3)


def _nan_at(x, i=0):
    return jnp.asarray(x).at[i, 0].set(jnp.nan)


def _sim(**kw):
    kw.setdefault("t1", 0.5)
    kw.setdefault("steps", 2)
    sde = kw.pop("sde", REV)
    y0 = kw.pop("y0", Y0)
    key = kw.pop("key", KEY)
    return g.simulate(sde, y0, key, **kw)


_jit_ys = jax.jit(lambda t0, t1: g.simulate(REV, Y0, KEY, t0=t0, t1=t1, steps=2).ys)
_jit_pf = jax.jit(lambda t1: g.simulate(PF, X, None, t1=t1, steps=2).ys)


def _grad_t1(t1):
    return jax.grad(lambda t: _sim(t1=t).ys.sum())(t1)


def _grad_t0(t0):
    return jax.grad(lambda t: _sim(t0=t, t1=0.5).ys.sum())(t0)


def _close(expected, rtol=1e-9, atol=1e-12):
    def check(out):
        np.testing.assert_allclose(np.asarray(out), np.asarray(expected), rtol=rtol, atol=atol)

    return check


def _ys_close(expected, rtol=1e-12):
    def check(sol):
        np.testing.assert_allclose(np.asarray(sol.ys[-1]), expected, rtol=rtol)

    return check


def _tweedie_closed_form(t, y):
    """E[x0 | x_t = y] for x0 ~ N(M0, S0² I) under VP: M0 + α S0²/(α² S0² + σ²) (y − α M0)."""
    big_b = 0.1 * t + 0.5 * t**2 * (20.0 - 0.1)
    alpha = np.exp(-0.5 * big_b)
    var = alpha**2 * S0**2 + 1.0 - alpha**2
    return M0 + alpha * S0**2 / var * (np.asarray(y) - alpha * M0)


def _reverse_drift_closed_form(s, y):
    """−f y + g² ∇log p_t(y) at t = 1 − s for VP (f = −β/2, g² = β) and p_t = N(α M0, v I)."""
    t = 1.0 - s
    beta, alpha2 = 0.1 + 19.9 * t, np.exp(-(0.1 * t + 0.5 * t**2 * 19.9))
    v = alpha2 * S0**2 + 1.0 - alpha2
    y = np.asarray(y)
    return 0.5 * beta * y - beta * (y - np.sqrt(alpha2) * M0) / v


def _karras(n, lo, hi, rho):
    i = np.arange(n)
    return (hi ** (1 / rho) + i / (n - 1) * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho


def _mmd_closed_form():
    """Unbiased MMD² of x = {0, 1}, y = {0, 3} (1-D) with k = exp(−d²/2)."""
    k = lambda a, b: np.exp(-((a - b) ** 2) / 2)  # noqa: E731
    cross = np.mean([k(a, b) for a in (0.0, 1.0) for b in (0.0, 3.0)])
    return k(0.0, 1.0) + k(0.0, 3.0) - 2 * cross


X1 = jnp.array([[0.0], [1.0]])
Y1 = jnp.array([[0.0], [3.0]])
CLOUD8 = jr.normal(jr.key(3), (8, 2))


def _sinkhorn_translate():
    return metrics.sinkhorn_divergence(CLOUD8, CLOUD8 + jnp.array([3.0, -3.0]), epsilon=1.0)


def _samples_equal(reference: Callable[[], Any]):
    def check(out):
        np.testing.assert_array_equal(np.asarray(out.x), np.asarray(reference().x))

    return check


def _rsde(**kw):
    kw.setdefault("steps", 2)
    score = kw.pop("score", SCORE)
    key = kw.pop("key", KEY)
    n = kw.pop("n", 3)
    event = kw.pop("event_shape", (2,))
    if "x_init" in kw:
        n, event = None, None
    return samplers.reverse_sde_sample(PROC, score, key, n, event, **kw)


def _few(sampler, **kw):
    kw.setdefault("steps", 2)
    score = kw.pop("score", SCORE)
    key = kw.pop("key", KEY)
    if "x_init" in kw:
        return sampler(PROC, score, key, **kw)
    return sampler(PROC, score, key, 3, (2,), **kw)


def _pc(**kw):
    kw.setdefault("steps", 2)
    return samplers.predictor_corrector(PROC, SCORE, KEY, 3, (2,), **kw)


def _ddpm():
    return g.processes.ddpm(10)


def _anneal(**kw):
    sigmas = kw.pop("sigmas", jnp.array([1.0, 0.5]))
    kw.setdefault("steps_per_level", 1)
    kw.setdefault("eps", 1e-2)
    return samplers.annealed_langevin(
        lambda s, x: -x / (1.0 + s**2), sigmas, KEY, kw.pop("n", 3), (2,), **kw
    )


def _ll(**kw):
    x = kw.pop("x", X)
    score = kw.pop("score", SCORE)
    return g.log_likelihood(PROC, score, x, **kw)


def _model_logpdf(x, eps=1e-5):
    """The exact log-density that `log_likelihood` estimates for data N(M0, S0² I) under VP:
    the probability-flow map is affine per coordinate (it keeps (x − μ_t)/√v_t, with
    μ_t = α M0 and v_t = α²S0² + σ²), so x at t = eps goes to z_T = μ_T + √(v_T/v_eps)(x − μ_eps)
    and log p(x) = log p_eps(x) + log prior(z_T) − log p_T(z_T), the prior N(0, σ_T² I)."""

    def moments(t):
        alpha2 = np.exp(-(0.1 * t + 0.5 * t**2 * 19.9))
        return np.sqrt(alpha2) * M0, alpha2 * S0**2 + 1.0 - alpha2, 1.0 - alpha2

    def logn(z, mean, var):
        return np.sum(-0.5 * (z - mean) ** 2 / var - 0.5 * np.log(2 * np.pi * var), axis=-1)

    x = np.asarray(x)
    mu_e, v_e, _ = moments(eps)
    mu_T, v_T, s2_T = moments(1.0)
    z = mu_T + np.sqrt(v_T / v_e) * (x - mu_e)
    return logn(x, mu_e, v_e) + logn(z, 0.0, s2_T) - logn(z, mu_T, v_T)


def _dsm(**kw):
    score = kw.pop("score_fn", lambda t, x: -x)
    x0 = kw.pop("x0", X)
    key = kw.pop("key", KEY)
    return losses.dsm_loss(score, kw.pop("process", PROC), x0, key, **kw)


# Small models for the trainers' settings checks (refused before any compile).
GEN = g.nn.MLPGenerator(2, 2, 8, 1, key=jr.key(1))
DISC = g.nn.MLPDiscriminator(2, 8, 1, key=jr.key(2))
DATA = jr.normal(jr.key(4), (16, 2))


def _train_gan(**kw):
    kw.setdefault("steps", 1)
    return g.train.train_gan(GEN, DISC, DATA, KEY, **kw)


# ----------------------------------------------------------------------------------------
# The table

# fmt: off
CASES: list[Case] = [
    # --- simulate: types and values ----------------------------------------------------
    Case("simulate/sde-not-SDE", lambda: g.simulate("sde", Y0, KEY, t1=0.5, steps=2), Refused(TypeError, "sde")),
    Case("simulate/y0-int", lambda: _sim(y0=jnp.zeros((3, 2), int)), Refused(TypeError, "y0")),
    Case("simulate/y0-nan", lambda: _sim(y0=_nan_at(Y0)), Refused(ValueError, "y0")),
    Case("simulate/y0-inf", lambda: _sim(y0=Y0.at[1, 1].set(jnp.inf)), Refused(ValueError, "y0")),
    Case("simulate/y0-empty", lambda: _sim(y0=jnp.zeros((0, 2))), Refused(ValueError, "y0")),
    Case("simulate/y0-scalar", lambda: _sim(y0=jnp.zeros(())), Refused(ValueError, "y0")),
    Case("simulate/y0-event-mismatch", lambda: _sim(y0=jnp.zeros((3, 3))), Refused((TypeError, ValueError), "y0", "score")),
    Case("simulate/steps-0", lambda: _sim(steps=0), Refused(ValueError, "steps")),
    Case("simulate/steps-negative", lambda: _sim(steps=-3), Refused(ValueError, "steps")),
    Case("simulate/steps-float", lambda: _sim(steps=2.5), Refused(TypeError, "steps")),
    Case("simulate/steps-bool", lambda: _sim(steps=True), Refused(TypeError, "steps")),
    Case("simulate/steps-huge", lambda: _sim(steps=2**40), Refused(ValueError, "steps")),
    Case("simulate/steps-np.int64", lambda: _sim(sde=ONES_ODE, key=None, steps=np.int64(3)), Correct(_ys_close(np.full((3, 2), 0.5)))),
    Case("simulate/steps-np.int32", lambda: _sim(sde=ONES_ODE, key=None, steps=np.int32(2), t0=np.float32(0.25), t1=np.float64(1.0)), Correct(_ys_close(np.full((3, 2), 0.75)))),
    Case("simulate/t1-before-t0", lambda: _sim(t0=0.5, t1=0.2), Refused(ValueError, "t1", "t0")),
    Case("simulate/t1-equal-t0", lambda: _sim(t0=0.5, t1=0.5), Refused(ValueError, "t1")),
    Case("simulate/t1-nan", lambda: _sim(t1=float("nan")), Refused(ValueError, "t1")),
    Case("simulate/t1-missing", lambda: g.simulate(REV, Y0, KEY, steps=2), Refused(TypeError, "t1")),
    Case("simulate/reverse-t1-beyond-T", lambda: _sim(t1=2.0), Refused(ValueError, "t1", "[0.0, 1.0]")),
    Case("simulate/reverse-t0-negative", lambda: _sim(t0=-0.5, t1=0.5), Refused(ValueError, "t0")),
    Case("simulate/pf-t1-beyond-T", lambda: _sim(sde=PF, key=None, t1=1.5), Refused(ValueError, "t1")),
    Case("simulate/reverse-ts-beyond-T", lambda: g.simulate(REV, Y0, KEY, ts=jnp.array([0.0, 0.5, 1.2])), Refused(ValueError, "ts")),
    Case("simulate/jit-t1-beyond-T", lambda: _jit_ys(0.0, 2.0), Refused(RuntimeError, "`t1`", "time range")),
    Case("simulate/jit-t0-negative", lambda: _jit_ys(-0.3, 0.5), Refused(RuntimeError, "`t0`", "time range")),
    Case("simulate/jit-pf-t1-beyond-T", lambda: _jit_pf(1.5), Refused(RuntimeError, "`t1`", "time range"), slow=True),
    Case("simulate/jit-pf-in-range", lambda: _jit_pf(0.5), Correct(lambda ys: _close(g.simulate(PF, X, None, t1=0.5, steps=2).ys, rtol=1e-10)(ys)), slow=True),
    Case("simulate/grad-t1-names-t1", lambda: _grad_t1(0.5), Refused(ValueError, "`t1`", "differentiated")),
    Case("simulate/grad-t0-names-t0", lambda: _grad_t0(0.1), Refused(ValueError, "`t0`", "differentiated")),
    Case("simulate/ode-grad-t1", lambda: jax.grad(lambda t1: g.simulate(ONES_ODE, Y0, None, t1=t1, steps=2).ys.sum())(0.5), Correct(_close(6.0)), slow=True),
    Case("simulate/key-int", lambda: _sim(key=0), Refused(TypeError, "key")),
    Case("simulate/key-missing", lambda: _sim(key=None), Refused((TypeError, ValueError), "key")),
    Case("simulate/key-batch", lambda: _sim(key=jr.split(KEY, 2)), Refused(ValueError, "key")),
    Case("simulate/raw-uint32-key", lambda: _sim(key=jr.PRNGKey(0)), Correct(lambda sol: np.testing.assert_array_equal(np.asarray(sol.ys), np.asarray(_sim(key=jr.wrap_key_data(jr.PRNGKey(0))).ys)))),
    Case("simulate/score-wrong-shape", lambda: _sim(sde=g.reverse(PROC, _wrong_shape_score)), Refused(ValueError, "score", "(3,)")),
    Case("simulate/solver-not-solver", lambda: _sim(solver="euler"), Refused(TypeError, "solver")),
    Case("simulate/saveat-wrong-type", lambda: _sim(saveat=[0.1]), Refused(TypeError, "saveat")),
    Case("simulate/saveat-outside", lambda: _sim(saveat=diffrax.SaveAt(ts=jnp.array([0.1, 0.9]))), Refused(ValueError, "saveat")),
    Case("simulate/ts-decreasing", lambda: g.simulate(REV, Y0, KEY, ts=jnp.array([0.0, 0.5, 0.3])), Refused(ValueError, "ts")),
    Case("simulate/ts-one-point", lambda: g.simulate(REV, Y0, KEY, ts=jnp.array([0.0])), Refused(ValueError, "ts")),
    Case("simulate/steps-and-ts", lambda: _sim(ts=jnp.array([0.0, 0.5])), Refused(TypeError, "steps", "ts")),
    Case("simulate/max_steps-0", lambda: _sim(stepsize_controller=diffrax.PIDController(rtol=1e-3, atol=1e-3), max_steps=0), Refused(ValueError, "max_steps")),
    Case("simulate/controller-not-controller", lambda: _sim(stepsize_controller="pid"), Refused(TypeError, "stepsize_controller")),
    Case("simulate/check_finite-not-bool", lambda: _sim(check_finite="yes"), Refused(TypeError, "check_finite")),
    Case("simulate/reweighted-reverse-keeps-range", lambda: _sim(sde=g.reweight_noise(REV, lambda s, x: -x, 0.5), t1=1.5), Refused(ValueError, "t1")),
    # --- SDE transforms ---------------------------------------------------------------
    Case("reverse/process-not-process", lambda: g.reverse("vp", SCORE), Refused(TypeError, "process")),
    Case("reverse/score-not-callable", lambda: g.reverse(PROC, 3.0), Refused(TypeError, "score")),
    Case("reverse/lam-negative", lambda: g.reverse(PROC, SCORE, lam=-1.0), Refused(ValueError, "lam")),
    Case("reverse/lam-nan", lambda: g.reverse(PROC, SCORE, lam=float("nan")), Refused(ValueError, "lam")),
    Case("reverse/lam-string", lambda: g.reverse(PROC, SCORE, lam="g"), Refused(TypeError, "lam")),
    Case("reverse/lam-np.float64", lambda: g.reverse(PROC, SCORE, lam=np.float64(0.5)).diffusion(0.2, Y0, None), Correct(_close(0.5))),
    Case("reverse/drift-at-s-beyond-T", lambda: REV.drift(1.5, Y0, None), Refused(ValueError, "`s`", "[0.0, 1.0]")),
    Case("reverse/drift-at-s-negative", lambda: REV.drift(-0.2, Y0, None), Refused(ValueError, "`s`")),
    Case("reverse/drift-closed-form", lambda: REV.drift(0.5, X, None), Correct(_close(_reverse_drift_closed_form(0.5, X), rtol=1e-10))),
    Case("reverse/time-range", lambda: REV.time_range, Correct(lambda r: r == (0.0, 1.0) or pytest.fail(str(r)))),
    Case("probability_flow/score-not-callable", lambda: g.probability_flow(PROC, None), Refused(TypeError, "score")),
    Case("reweight_noise/sde-not-SDE", lambda: g.reweight_noise(PROC, SCORE, 1.0), Refused(TypeError, "sde")),
    Case("reweight_noise/diffusion-negative", lambda: g.reweight_noise(REV, SCORE, -0.1), Refused(ValueError, "diffusion")),
    Case("reweight_noise/gen_score-not-callable", lambda: g.reweight_noise(REV, "score", 1.0), Refused(TypeError, "gen_score")),
    Case("diffflow/real_score-not-callable", lambda: g.diffflow(1.0, SCORE, 1.0, 0.0), Refused(TypeError, "real_score")),
    Case("diffflow/beta-negative", lambda: g.diffflow(SCORE, SCORE, -1.0, 0.0), Refused(ValueError, "beta")),
    Case("diffflow/g-negative", lambda: g.diffflow(SCORE, SCORE, 1.0, -2.0), Refused(ValueError, "g")),
    Case("SDE/time_range-reversed", lambda: SDE(LinearDrift(1.0), time_range=(1.0, 0.0)), Refused(ValueError, "time_range")),
    Case("SDE/time_range-not-pair", lambda: SDE(LinearDrift(1.0), time_range="all"), Refused(TypeError, "time_range")),
    Case("SDE/drift-not-callable", lambda: SDE(3.0), Refused(TypeError, "drift")),
    # --- samplers ---------------------------------------------------------------------
    Case("reverse_sde_sample/steps-0", lambda: _rsde(steps=0), Refused(ValueError, "steps")),
    Case("reverse_sde_sample/steps-np.int64", lambda: _rsde(steps=np.int64(2)), Correct(_samples_equal(lambda: _rsde(steps=2)))),
    Case("reverse_sde_sample/eps-negative", lambda: _rsde(eps=-0.1), Refused(ValueError, "eps")),
    Case("reverse_sde_sample/eps-beyond-T", lambda: _rsde(eps=1.5), Refused(ValueError, "eps")),
    Case("reverse_sde_sample/eps-array", lambda: _rsde(eps=jnp.array([1e-3, 1e-3])), Refused(ValueError, "eps")),
    Case("reverse_sde_sample/ts-beyond-T", lambda: _rsde(steps=None, ts=jnp.array([0.0, 0.5, 1.5])), Refused(ValueError, "ts")),
    Case("reverse_sde_sample/ts-late-start-no-x_init", lambda: _rsde(steps=None, ts=jnp.array([0.2, 0.5])), Refused(ValueError, "ts", "x_init")),
    Case("reverse_sde_sample/key-int", lambda: _rsde(key=7), Refused(TypeError, "key")),
    Case("reverse_sde_sample/x_init-nan", lambda: _rsde(x_init=_nan_at(Y0)), Refused(ValueError, "x_init")),
    Case("reverse_sde_sample/x_init-wrong-event", lambda: _rsde(x_init=jnp.zeros((3, 5))), Refused((TypeError, ValueError), "x_init")),
    Case("reverse_sde_sample/n-0", lambda: _rsde(n=0), Refused(ValueError, "n")),
    Case("reverse_sde_sample/n-float", lambda: _rsde(n=2.5), Refused(TypeError, "n")),
    Case("reverse_sde_sample/event_shape-0", lambda: _rsde(event_shape=(0,)), Refused(ValueError, "event_shape")),
    Case("reverse_sde_sample/score-wrong-shape", lambda: _rsde(score=_wrong_shape_score), Refused(ValueError, "score")),
    Case("reverse_sde_sample/lam-negative", lambda: _rsde(lam=-0.5), Refused(ValueError, "lam")),
    Case("probability_flow_sample/score-not-callable", lambda: samplers.probability_flow_sample(PROC, 1.0, KEY, 3, (2,), steps=2), Refused(TypeError, "score")),
    Case("probability_flow_sample/process-not-process", lambda: samplers.probability_flow_sample(PF, SCORE, KEY, 3, (2,), steps=2), Refused(TypeError, "process")),
    Case("predictor_corrector/snr-negative", lambda: _pc(snr=-0.1), Refused(ValueError, "snr")),
    Case("predictor_corrector/corrector_steps-negative", lambda: _pc(corrector_steps=-1), Refused(ValueError, "corrector_steps")),
    Case("predictor_corrector/predictor-unknown", lambda: _pc(predictor="heun"), Refused(ValueError, "predictor")),
    Case("predictor_corrector/order-unknown", lambda: _pc(order="sideways"), Refused(ValueError, "order")),
    Case("ddpm_ancestral/steps-beyond-N", lambda: samplers.ddpm_ancestral(_ddpm(), _eps_model, KEY, 3, (2,), steps=11), Refused(ValueError, "steps")),
    Case("ddpm_ancestral/variance-unknown", lambda: samplers.ddpm_ancestral(_ddpm(), _eps_model, KEY, 3, (2,), steps=2, variance="large"), Refused(ValueError, "variance")),
    Case("ddpm_ancestral/eps_model-not-callable", lambda: samplers.ddpm_ancestral(_ddpm(), "eps", KEY, 3, (2,), steps=2), Refused(TypeError, "eps_model")),
    Case("ddpm_ancestral/ddpm-not-DDPM", lambda: samplers.ddpm_ancestral(PROC, _eps_model, KEY, 3, (2,), steps=2), Refused(TypeError, "ddpm")),
    Case("ddim/eta-negative", lambda: samplers.ddim(_ddpm(), _eps_model, KEY, 3, (2,), steps=2, eta=-1.0), Refused(ValueError, "eta")),
    Case("ddim/steps-0", lambda: samplers.ddim(_ddpm(), _eps_model, KEY, 3, (2,), steps=0), Refused(ValueError, "steps")),
    Case("ddim/ts-increasing", lambda: samplers.ddim(_ddpm(), _eps_model, KEY, 3, (2,), ts=np.array([1, 5, 9])), Refused(ValueError, "ts")),
    Case("annealed_langevin/sigmas-increasing", lambda: _anneal(sigmas=jnp.array([0.5, 1.0])), Refused(ValueError, "sigmas")),
    Case("annealed_langevin/sigmas-zero", lambda: _anneal(sigmas=jnp.array([1.0, 0.0])), Refused(ValueError, "sigmas")),
    Case("annealed_langevin/sigmas-empty", lambda: _anneal(sigmas=jnp.zeros((0,))), Refused(ValueError, "sigmas")),
    Case("annealed_langevin/sigmas-2d", lambda: _anneal(sigmas=jnp.ones((2, 2))), Refused(ValueError, "sigmas")),
    Case("annealed_langevin/sigmas-nan", lambda: _anneal(sigmas=jnp.array([1.0, jnp.nan])), Refused(ValueError, "sigmas")),
    Case("annealed_langevin/sigmas-int", lambda: _anneal(sigmas=jnp.array([2, 1])), Refused(TypeError, "sigmas")),
    Case("annealed_langevin/eps-0", lambda: _anneal(eps=0.0), Refused(ValueError, "eps")),
    Case("annealed_langevin/steps_per_level-0", lambda: _anneal(steps_per_level=0), Refused(ValueError, "steps_per_level")),
    Case("annealed_langevin/score-not-callable", lambda: samplers.annealed_langevin(None, jnp.ones(2), KEY, 3, (2,), steps_per_level=1, eps=0.1), Refused(TypeError, "score")),
    Case("edm_heun/steps-0", lambda: _few(samplers.edm_heun, steps=0), Refused(ValueError, "steps")),
    Case("edm_heun/steps-np.int64", lambda: _few(samplers.edm_heun, steps=np.int64(2)), Correct(_samples_equal(lambda: _few(samplers.edm_heun, steps=2)))),
    Case("edm_heun/eps-beyond-T", lambda: _few(samplers.edm_heun, eps=2.0), Refused(ValueError, "eps")),
    Case("edm_heun/rho-0", lambda: _few(samplers.edm_heun, rho=0.0), Refused(ValueError, "rho")),
    Case("edm_heun/score-wrong-shape", lambda: _few(samplers.edm_heun, score=_wrong_shape_score), Refused(ValueError, "score")),
    Case("edm_heun/x_init-nan", lambda: _few(samplers.edm_heun, x_init=_nan_at(Y0)), Refused(ValueError, "x_init")),
    Case("edm_stochastic/s_churn-negative", lambda: _few(samplers.edm_stochastic, s_churn=-1.0), Refused(ValueError, "s_churn")),
    Case("edm_stochastic/key-int", lambda: _few(samplers.edm_stochastic, key=1), Refused(TypeError, "key")),
    Case("dpm_solver_pp_2m/steps-negative", lambda: _few(samplers.dpm_solver_pp_2m, steps=-2), Refused(ValueError, "steps")),
    Case("dpm_solver_pp_2m/ts-beyond-T", lambda: _few(samplers.dpm_solver_pp_2m, steps=None, ts=jnp.array([0.0, 0.5, 1.5])), Refused(ValueError, "ts")),
    Case("dpm_solver_pp_2s/process-not-process", lambda: samplers.dpm_solver_pp_2s(REV, SCORE, KEY, 3, (2,), steps=2), Refused(TypeError, "process")),
    Case("euler_ancestral/eta-negative", lambda: _few(samplers.euler_ancestral, eta=-0.5), Refused(ValueError, "eta")),
    Case("euler_ancestral/s_noise-nan", lambda: _few(samplers.euler_ancestral, s_noise=float("nan")), Refused(ValueError, "s_noise")),
    Case("euler_ancestral/score-not-callable", lambda: _few(samplers.euler_ancestral, score="score"), Refused(TypeError, "score")),
    Case("tweedie_denoise/t-negative", lambda: samplers.tweedie_denoise(PROC, SCORE, -0.1, X), Refused(ValueError, "`t`")),
    Case("tweedie_denoise/t-at-T", lambda: samplers.tweedie_denoise(PROC, SCORE, 1.0, X), Refused(ValueError, "`t`")),
    Case("tweedie_denoise/t-nan", lambda: samplers.tweedie_denoise(PROC, SCORE, float("nan"), X), Refused(ValueError, "`t`")),
    Case("tweedie_denoise/t-vector", lambda: samplers.tweedie_denoise(PROC, SCORE, jnp.array([0.1, 0.2]), X), Refused(ValueError, "`t`")),
    Case("tweedie_denoise/y-int", lambda: samplers.tweedie_denoise(PROC, SCORE, 0.1, jnp.zeros((3, 2), int)), Refused(TypeError, "y")),
    Case("tweedie_denoise/score-wrong-shape", lambda: samplers.tweedie_denoise(PROC, _wrong_shape_score, 0.1, X), Refused(ValueError, "score")),
    Case("tweedie_denoise/np.float64-t-closed-form", lambda: samplers.tweedie_denoise(PROC, SCORE, np.float64(0.5), X), Correct(_close(_tweedie_closed_form(0.5, X), rtol=1e-10))),
    # --- log_likelihood ---------------------------------------------------------------
    Case("log_likelihood/rtol-negative", lambda: _ll(rtol=-1.0), Refused(ValueError, "rtol")),
    Case("log_likelihood/rtol-0", lambda: _ll(rtol=0.0), Refused(ValueError, "rtol")),
    Case("log_likelihood/atol-negative", lambda: _ll(atol=-1e-5), Refused(ValueError, "atol")),
    Case("log_likelihood/atol-nan", lambda: _ll(atol=float("nan")), Refused(ValueError, "atol")),
    Case("log_likelihood/eps-negative", lambda: _ll(eps=-1e-3), Refused(ValueError, "eps")),
    Case("log_likelihood/trace-unknown", lambda: _ll(trace="approx"), Refused(ValueError, "trace")),
    Case("log_likelihood/hutchinson-no-key", lambda: _ll(trace="hutchinson"), Refused((TypeError, ValueError), "key")),
    Case("log_likelihood/probes-0", lambda: _ll(trace="hutchinson", key=KEY, probes=0), Refused(ValueError, "probes")),
    Case("log_likelihood/x-nan", lambda: _ll(x=_nan_at(X)), Refused(ValueError, "x")),
    Case("log_likelihood/x-int", lambda: _ll(x=jnp.zeros((3, 2), int)), Refused(TypeError, "x")),
    Case("log_likelihood/x-one-point", lambda: _ll(x=jnp.zeros(2)), Refused(ValueError, "x")),
    Case("log_likelihood/max_steps-0", lambda: _ll(max_steps=0), Refused(ValueError, "max_steps")),
    Case("log_likelihood/solver-not-solver", lambda: _ll(solver="dopri5"), Refused(TypeError, "solver")),
    Case("log_likelihood/score-wrong-shape", lambda: _ll(score=_wrong_shape_score), Refused(ValueError, "score")),
    Case("log_likelihood/max_steps-too-small", lambda: _ll(max_steps=2), Refused(RuntimeError, "max_steps")),
    Case("log_likelihood/np-tolerances-closed-form", lambda: _ll(rtol=np.float64(1e-7), atol=np.float64(1e-7), max_steps=np.int64(4096)), Correct(_close(_model_logpdf(X), rtol=1e-5)), slow=True),
    # --- metrics ----------------------------------------------------------------------
    Case("mmd/x-nan", lambda: metrics.mmd(_nan_at(X), X), Refused(ValueError, "`x`", "finite")),
    Case("mmd/y-inf", lambda: metrics.mmd(X, X.at[2, 1].set(-jnp.inf)), Refused(ValueError, "`y`", "finite")),
    Case("mmd/x-int", lambda: metrics.mmd(jnp.zeros((3, 2), int), X), Refused(TypeError, "x")),
    Case("mmd/x-one-point", lambda: metrics.mmd(X[:1], X), Refused(ValueError, "x")),
    Case("mmd/event-mismatch", lambda: metrics.mmd(X, jnp.zeros((3, 3))), Refused(ValueError, "y", "event shape")),
    Case("mmd/bandwidths-negative", lambda: metrics.mmd(X, X, [-1.0]), Refused(ValueError, "bandwidths")),
    Case("mmd/block_size-0", lambda: metrics.mmd(X, X, block_size=0), Refused(ValueError, "block_size")),
    Case("mmd/closed-form-np-block", lambda: metrics.mmd(X1, Y1, [1.0], block_size=np.int64(1)), Correct(_close(_mmd_closed_form(), rtol=1e-12))),
    Case("sliced_wasserstein/x-nan", lambda: metrics.sliced_wasserstein(_nan_at(X), X), Refused(ValueError, "`x`", "finite")),
    Case("sliced_wasserstein/unequal-sizes", lambda: metrics.sliced_wasserstein(X, X[:2]), Refused(ValueError, "y", "same shape")),
    Case("sliced_wasserstein/n_projections-0", lambda: metrics.sliced_wasserstein(X, X, n_projections=0), Refused(ValueError, "n_projections")),
    Case("sliced_wasserstein/p-below-1", lambda: metrics.sliced_wasserstein(X, X, p=0.5), Refused(ValueError, "p")),
    Case("sliced_wasserstein/key-int", lambda: metrics.sliced_wasserstein(X, X, key=3), Refused(TypeError, "key")),
    Case("sliced_wasserstein/1d-is-W2-np.int64", lambda: metrics.sliced_wasserstein(X1, Y1, n_projections=np.int64(4)), Correct(_close(np.sqrt(2.0), rtol=1e-12))),
    Case("energy_distance/y-nan", lambda: metrics.energy_distance(X, _nan_at(X, 1)), Refused(ValueError, "`y`", "finite")),
    Case("energy_distance/closed-form", lambda: metrics.energy_distance(X1, Y1), Correct(_close(-1.0, rtol=1e-12))),
    Case("sinkhorn/unconverged", lambda: metrics.sinkhorn_divergence(CLOUD8, CLOUD8 + 3.0, epsilon=1e-3, max_iterations=3), Refused(RuntimeError, "max_iterations", "converge")),
    Case("sinkhorn/jit-unconverged", lambda: jax.jit(lambda a: metrics.sinkhorn_divergence(a, a + 3.0, epsilon=1e-3, max_iterations=3))(CLOUD8), Refused(RuntimeError, "max_iterations"), slow=True),
    Case("sinkhorn/epsilon-negative", lambda: metrics.sinkhorn_divergence(X, X, epsilon=-1.0), Refused(ValueError, "epsilon")),
    Case("sinkhorn/threshold-0", lambda: metrics.sinkhorn_divergence(X, X, threshold=0.0), Refused(ValueError, "threshold")),
    Case("sinkhorn/x-nan", lambda: metrics.sinkhorn_divergence(_nan_at(X), X), Refused(ValueError, "`x`", "finite")),
    Case("sinkhorn/translation-closed-form", _sinkhorn_translate, Correct(_close(18.0, rtol=1e-4)), slow=True),
    Case("gaussian_w2/m1-nan", lambda: metrics.gaussian_w2(jnp.array([jnp.nan, 0.0]), jnp.eye(2), jnp.zeros(2), jnp.eye(2)), Refused(ValueError, "m1")),
    Case("gaussian_w2/s2-wrong-shape", lambda: metrics.gaussian_w2(jnp.zeros(2), jnp.eye(2), jnp.zeros(2), jnp.eye(3)), Refused(ValueError, "s2")),
    Case("gaussian_w2/closed-form", lambda: metrics.gaussian_w2(jnp.zeros(2), jnp.diag(jnp.array([1.0, 4.0])), jnp.array([1.0, 0.0]), jnp.diag(jnp.array([4.0, 1.0]))), Correct(_close(np.sqrt(3.0), rtol=1e-10))),
    Case("frechet_distance/features_x-nan", lambda: metrics.frechet_distance(_nan_at(X), X), Refused(ValueError, "features_x")),
    Case("frechet_distance/features_y-one-point", lambda: metrics.frechet_distance(X, X[:1]), Refused(ValueError, "features_y")),
    Case("frechet_distance/closed-form", lambda: metrics.frechet_distance(jnp.array([[0.0], [2.0]]), jnp.array([[1.0], [3.0]])), Correct(_close(1.0, rtol=1e-12))),
    Case("digits_fd/x-nan", lambda: metrics.digits_fd(jnp.full((2, 1, 8, 8), jnp.nan), jnp.zeros((2, 1, 8, 8))), Refused(ValueError, "x")),
    Case("digits_fd/x-flat", lambda: metrics.digits_fd(jnp.zeros((2, 64)), jnp.zeros((2, 1, 8, 8))), Refused(ValueError, "x")),
    # --- losses -----------------------------------------------------------------------
    Case("dsm_loss/weighting-unknown", lambda: _dsm(weighting="sigma"), Refused(ValueError, "weighting")),
    Case("dsm_loss/x0-nan", lambda: _dsm(x0=_nan_at(X)), Refused(ValueError, "x0")),
    Case("dsm_loss/x0-int", lambda: _dsm(x0=jnp.zeros((3, 2), int)), Refused(TypeError, "x0")),
    Case("dsm_loss/t_min-negative", lambda: _dsm(t_min=-1e-3), Refused(ValueError, "t_min")),
    Case("dsm_loss/t_min-beyond-T", lambda: _dsm(t_min=2.0), Refused(ValueError, "t_min")),
    Case("dsm_loss/process-not-process", lambda: _dsm(process="vp"), Refused(TypeError, "process")),
    Case("dsm_loss/score_fn-not-callable", lambda: _dsm(score_fn=1.0), Refused(TypeError, "score_fn")),
    Case("dsm_loss/reduction-unknown", lambda: _dsm(reduction="sum"), Refused(ValueError, "reduction")),
    Case("dsm_loss/key-int", lambda: _dsm(key=0), Refused(TypeError, "key")),
    Case("dsm_loss/edm-on-vp", lambda: _dsm(weighting="edm"), Refused(TypeError, "weighting", "edm")),
    Case("gan_loss/kind-unknown", lambda: losses.gan_loss("wasserstein"), Refused(ValueError, "kind")),
    Case("gan_loss/fgan-no-divergence", lambda: losses.gan_loss("fgan"), Refused(TypeError, "divergence")),
    Case("gan_loss/fgan-divergence-unknown", lambda: losses.gan_loss("fgan", divergence="tv"), Refused(ValueError, "divergence")),
    Case("gan_loss/option-unknown", lambda: losses.gan_loss("hinge", margin=2.0), Refused(TypeError, "margin")),
    Case("gan_loss/real-int", lambda: losses.gan_loss("nonsaturating")(jnp.zeros(3, int), jnp.zeros(3)), Refused(TypeError, "real")),
    Case("gan_loss/fake-empty", lambda: losses.gan_loss("nonsaturating")(jnp.zeros(3), jnp.zeros(0)), Refused(ValueError, "fake")),
    Case("gan_loss/minimax-closed-form", lambda: losses.gan_loss("minimax")(jnp.zeros(4), jnp.zeros(4))[0], Correct(_close(2 * np.log(2.0), rtol=1e-12))),
    Case("gradient_penalty/key-int", lambda: losses.gradient_penalty(lambda x: jnp.sum(x), X, X, 0), Refused(TypeError, "key")),
    Case("clip_weights/c-0", lambda: losses.clip_weights(DISC, 0.0), Refused(ValueError, "c")),
    # --- scores adapters --------------------------------------------------------------
    Case("from_eps/process-not-process", lambda: scores.from_eps("vp", _eps_model), Refused(TypeError, "process")),
    Case("from_eps/eps_fn-not-callable", lambda: scores.from_eps(PROC, 1.0), Refused(TypeError, "eps_fn")),
    Case("from_eps/t-beyond-T", lambda: scores.from_eps(PROC, lambda t, x: x)(1.5, X[0]), Refused(ValueError, "`t`")),
    Case("from_x0/x0_fn-not-callable", lambda: scores.from_x0(PROC, None), Refused(TypeError, "x0_fn")),
    Case("from_batched/order-unknown", lambda: scores.from_batched(lambda x, t: x, "x|t", (2,)), Refused(ValueError, "order")),
    Case("from_batched/event_shape-negative", lambda: scores.from_batched(lambda x, t: x, "x,t", (-1,)), Refused(ValueError, "event_shape")),
    Case("from_eps/closed-form", lambda: scores.from_eps(PROC, lambda t, x: jnp.ones_like(x))(np.float64(0.5), X[0]), Correct(_close(-np.ones(2) / np.sqrt(-np.expm1(-(0.05 + 0.125 * 19.9))), rtol=1e-10))),
    # --- processes and laws -----------------------------------------------------------
    Case("vp/beta_min-negative", lambda: g.vp(beta_min=-0.1), Refused(ValueError, "beta_min")),
    Case("vp/T-0", lambda: g.vp(T=0.0), Refused(ValueError, "T")),
    Case("vp/beta_max-nan", lambda: g.vp(beta_max=float("nan")), Refused(ValueError, "beta_max")),
    Case("ve/sigma_min-above-sigma_max", lambda: g.ve(sigma_min=10.0, sigma_max=1.0), Refused(ValueError, "sigma_min")),
    Case("subvp/T-negative", lambda: g.subvp(T=-1.0), Refused(ValueError, "T")),
    Case("LinearProcess/alpha-not-callable", lambda: g.processes.LinearProcess(1.0, lambda t: t, 1.0), Refused(TypeError, "alpha")),
    Case("ddpm/n_steps-0", lambda: g.processes.ddpm(0), Refused(ValueError, "n_steps")),
    Case("ddpm/schedule-unknown", lambda: g.processes.ddpm(10, schedule="quadratic"), Refused(ValueError, "schedule")),
    Case("ddpm/n_steps-np.int64", lambda: g.processes.ddpm(np.int64(10)).alpha_bars, Correct(_close(np.cumprod(1 - np.linspace(1e-4, 0.02, 10)), rtol=1e-6))),
    Case("marginal/t-beyond-T", lambda: PROC.marginal(LAW, 1.5), Refused(ValueError, "`t`")),
    Case("sample_marginal/t-negative", lambda: PROC.sample_marginal(KEY, X, -0.1), Refused(ValueError, "`t`")),
    Case("GaussianMixture/weights-negative", lambda: g.GaussianMixture(jnp.array([-1.0, 2.0]), jnp.zeros((2, 2)), jnp.stack([jnp.eye(2)] * 2)), Refused(ValueError, "weights")),
    Case("GaussianMixture/means-covs-mismatch", lambda: g.GaussianMixture(jnp.ones(2), jnp.zeros((2, 2)), jnp.stack([jnp.eye(3)] * 2)), Refused(ValueError, "covs")),
    Case("GaussianMixture/sample-n-np.int64", lambda: LAW.sample(KEY, np.int64(4)).shape, Correct(lambda s: s == (4, 2) or pytest.fail(str(s)))),
    # --- schedules --------------------------------------------------------------------
    Case("karras_sigmas/n-np.int64", lambda: schedules.karras_sigmas(np.int64(4), 0.1, 10.0), Correct(_close(_karras(4, 0.1, 10.0, 7.0), rtol=1e-12))),
    Case("karras_sigmas/n-0", lambda: schedules.karras_sigmas(0, 0.1, 10.0), Refused(ValueError, "n")),
    Case("karras_sigmas/sigma_min-above-max", lambda: schedules.karras_sigmas(4, 10.0, 0.1), Refused(ValueError, "sigma_min")),
    Case("karras_sigmas/rho-0", lambda: schedules.karras_sigmas(4, 0.1, 10.0, rho=0.0), Refused(ValueError, "rho")),
    Case("karras_sigmas/n-float", lambda: schedules.karras_sigmas(4.0, 0.1, 10.0), Refused(TypeError, "n")),
    Case("geometric_sigmas/np.int64", lambda: samplers.geometric_sigmas(10.0, 0.1, np.int64(3)), Correct(_close([10.0, 1.0, 0.1], rtol=1e-12))),
    Case("LogNormalSigma/p_std-negative", lambda: schedules.LogNormalSigma(-1.2, -1.0), Refused(ValueError, "p_std")),
    Case("KarrasSigma/sigma_min-negative", lambda: schedules.KarrasSigma(-0.1, 10.0, 7.0), Refused(ValueError, "sigma_min")),
    Case("time_grid/spacing-unknown", lambda: schedules.time_grid(PROC, 4, "cubic"), Refused(ValueError, "spacing")),
    Case("time_grid/steps-np.int64", lambda: schedules.time_grid(PROC, np.int64(4)), Correct(_close(np.linspace(0.0, 1.0 - 1e-3, 5), rtol=1e-12))),
    # --- trainers' settings -----------------------------------------------------------
    Case("train_gan/steps-negative", lambda: _train_gan(steps=-1), Refused(ValueError, "steps")),
    Case("train_gan/batch_size-0", lambda: _train_gan(batch_size=0), Refused(ValueError, "batch_size")),
    Case("train_gan/ema-1", lambda: _train_gan(ema=1.0), Refused(ValueError, "ema")),
    Case("train_gan/ema-negative", lambda: _train_gan(ema=-0.5), Refused(ValueError, "ema")),
    Case("train_gan/g_optimizer-not-optax", lambda: _train_gan(g_optimizer="adam"), Refused(TypeError, "g_optimizer")),
    Case("train_gan/d_optimizer-not-optax", lambda: _train_gan(d_optimizer=optax.adam), Refused(TypeError, "d_optimizer")),
    Case("train_gan/lr-negative", lambda: _train_gan(lr=-1e-3), Refused(ValueError, "lr")),
    Case("train_gan/d_steps-0", lambda: _train_gan(d_steps=0), Refused(ValueError, "d_steps")),
    Case("train_gan/loss-unknown", lambda: _train_gan(loss="bce"), Refused(ValueError, "loss")),
    Case("train_gan/key-int", lambda: g.train.train_gan(GEN, DISC, DATA, 0, steps=1), Refused(TypeError, "key")),
    Case("train_score_gan/steps-float", lambda: g.train.train_score_gan(GEN, SCORE, SCORE, KEY, steps=1.5), Refused(TypeError, "steps")),
    Case("train_discriminator_flow/batch_size-0", lambda: g.train.train_discriminator_flow(DISC, DATA, KEY, steps=1, batch_size=0), Refused(ValueError, "batch_size")),
    Case("train_diffflow_gan/g-negative", lambda: g.train.train_diffflow_gan(GEN, SCORE, KEY, steps=1, g=-1.0), Refused(ValueError, "g")),
]
# fmt: on


def _named_by_type_checker(err: BaseException, verdict: Refused) -> bool:
    """Under pytest the annotations are checked at run time (jaxtyping + beartype, see
    `addopts`): a wrong shape or type is then refused by the checker before the library's own
    check, with a `TypeError` naming the parameter. That is a clean, named refusal too."""
    if type(err).__name__ != "TypeCheckError":
        return False
    return f"parameter '{verdict.names[0].strip('`')}'" in str(err)


def _run(case: Case) -> str:
    """Run one case; return its verdict name, or fail with what went wrong."""
    verdict = case.verdict
    try:
        out = case.call()
    except Exception as err:  # the verdict decides
        if isinstance(verdict, Correct):
            raise AssertionError(
                f"{case.name}: expected a result, got {type(err).__name__}: {err}"
            ) from err
        if _named_by_type_checker(err, verdict):
            return "refused-by-name (runtime type checker)"
        if not isinstance(err, verdict.exc):
            raise AssertionError(
                f"{case.name}: raw error {type(err).__name__} (expected {verdict.exc}): {err}"
            ) from err
        message = str(err)
        missing = [n for n in verdict.names if n not in message]
        if missing:
            raise AssertionError(
                f"{case.name}: the error does not name {missing}: {type(err).__name__}: {message}"
            ) from err
        return "refused-by-name"
    if isinstance(verdict, Refused):
        raise AssertionError(f"{case.name}: silent result {out!r}, expected {verdict}")
    jax.block_until_ready(out)
    verdict.check(out)
    return "correct-result"


def test_the_table_is_large_and_named():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)), "case names must be unique"
    assert len(CASES) >= 80


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=pytest.mark.slow) if c.slow else c for c in CASES],
    ids=lambda c: c.name,
)
def test_probe(case: Case):
    _OUTCOMES[case.name] = _run(case)


_OUTCOMES: dict[str, str] = {}


def test_counts_by_verdict():
    """The closing count of the cases run in this session (printed with `-s`; it runs after
    `test_probe`, in file order): every one refused by name or correct, none silently wrong
    and none a raw traceback (those fail `test_probe` itself)."""
    counts: dict[str, int] = {}
    for kind in _OUTCOMES.values():
        counts[kind] = counts.get(kind, 0) + 1
    print(f"\nlibrary probes run: {len(_OUTCOMES)} of {len(CASES)}: {counts}")
    assert set(counts) <= {
        "refused-by-name",
        "refused-by-name (runtime type checker)",
        "correct-result",
    }


_ = eqx  # equinox is imported for the jit helpers' pytrees
