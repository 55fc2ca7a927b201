"""Bad-input fuzz of the public constructors and of `simulate`.

Every public entry point, given hostile values (NaN, ±inf, negative, zero, huge and tiny
floats, wrong shapes, wrong dtypes (int, complex, bool), empty arrays, None, strings, other
objects), must either

- raise a clean `ValueError` that names the offending argument (in backticks, as the
  library writes it, or quoted, as jaxtyping/beartype write it) or a `TypeError`, or
- return an object whose probe (the values a user would take from it first: the process
  coefficients, the mixture's density and score, the SDE's drift, the solution) is finite.

`simulate` may also raise its documented `NonFiniteSolutionError` (a solve that blows up is
reported, not returned). Anything else (a raw XLA error, `IndexError`, `ZeroDivisionError`,
`OverflowError`, a silent NaN) fails the test.

Hypothesis picks a non-empty subset of each function's arguments and a hostile value for
each; the others keep valid defaults. `max_examples=50` per test.

A schedule given as a callable is the user's own function: its values are not known when the
SDE is built (a NaN it returns is caught later by `simulate`'s finite check), so callables are
passed here with valid values only; constant schedules are checked at construction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from hypothesis import given, settings, strategies as st

import gpm_sde
from gpm_sde.scores import KernelScore
from gpm_sde.sde import SDE, LinearDrift, ScalarDiffusion
from gpm_sde.solve import NonFiniteSolutionError

NAN, INF = float("nan"), float("inf")

# Hostile scalars: non-finite, signs, zero, huge, subnormal/tiny.
SCALARS: list[Any] = [NAN, INF, -INF, -1.0, 0.0, 1e308, -1e308, 1e300, 5e-324, 1e-300]
# Hostile non-floats: wrong Python types, wrong shapes, wrong dtypes, empty, None, strings.
WRONG: list[Any] = [
    None,
    "abc",
    True,
    3,
    1 + 2j,
    [],
    [1.0, 2.0],
    np.array([]),
    np.zeros((2, 2)),
    np.array(1, dtype=np.int32),
    np.array(True),
    np.array(1 + 1j),
    object(),
]
HOSTILE = SCALARS + WRONG
CLEAN = (ValueError, TypeError)
SETTINGS = settings(max_examples=50, deadline=None)


def _names_argument(message: str, names) -> bool:
    return any(f"`{n}`" in message or f"'{n}'" in message for n in names)


def _finite(values) -> bool:
    leaves = jax.tree_util.tree_leaves(values)
    return all(np.all(np.isfinite(np.asarray(leaf))) for leaf in leaves)


def outcome(
    fn: Callable[..., Any],
    valid: dict[str, Any],
    bad: dict[str, Any],
    probe: Callable[[Any], Any],
    allowed: tuple[type[BaseException], ...] = CLEAN,
) -> str:
    """Call `fn(**(valid | bad))` and probe the result; return what happened, or fail."""
    try:
        values = probe(fn(**(valid | bad)))
    except allowed as err:
        message = str(err)
        if isinstance(err, ValueError):  # a ValueError must say which argument is wrong
            assert _names_argument(message, bad), (fn.__name__, bad, message)
        return f"{type(err).__name__}: {message.splitlines()[0][:160]}"
    assert _finite(values), (fn.__name__, bad, values)
    return "finite"


def _hostile_kwargs(draw, names: list[str], extra: dict[str, list[Any]] | None = None):
    chosen = draw(st.sets(st.sampled_from(names), min_size=1))
    pools = extra or {}
    return {n: draw(st.sampled_from(HOSTILE + pools.get(n, []))) for n in sorted(chosen)}


# ---------------------------------------------------------------------------------------
# Forward processes.

PROCESSES: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "vp": (gpm_sde.vp, {"beta_min": 0.1, "beta_max": 20.0, "T": 1.0}),
    "subvp": (gpm_sde.subvp, {"beta_min": 0.1, "beta_max": 20.0, "T": 1.0}),
    "ve": (gpm_sde.ve, {"sigma_min": 0.01, "sigma_max": 50.0, "T": 1.0}),
    "cosine": (gpm_sde.cosine, {"s": 0.008, "T": 0.995}),
    "edm": (gpm_sde.edm, {"sigma_max": 80.0}),
}


def probe_process(p):
    t = jnp.linspace(0.0, p.T, 5)
    return p.alpha(t), p.sigma(t), p.drift_coeff(t), p.diffusion(t), p.prior.std


@SETTINGS
@given(st.sampled_from(sorted(PROCESSES)), st.data())
def test_fuzz_processes(name, data):
    fn, valid = PROCESSES[name]
    bad = _hostile_kwargs(data.draw, sorted(valid))
    outcome(fn, valid, bad, probe_process)


DDPM_VALID = {"n_steps": 10, "beta_1": 1e-4, "beta_N": 0.02, "schedule": "linear", "s": 0.008}
DDPM_EXTRA = {"n_steps": [0, -1, 10**20, 2**31], "schedule": ["cosine", "quadratic", ""]}


def probe_ddpm(p):
    return p.betas, p.alpha_bars, p.eps_mean(jnp.ones((3, 2)), jnp.zeros((3, 2)), 1)


@SETTINGS
@given(st.data())
def test_fuzz_ddpm(data):
    bad = _hostile_kwargs(data.draw, sorted(DDPM_VALID), DDPM_EXTRA)
    outcome(gpm_sde.ddpm, DDPM_VALID, bad, probe_ddpm)


# ---------------------------------------------------------------------------------------
# Gaussian mixtures: valid arrays with one entry, the dtype or the shape made hostile.

MIXTURE_VALID = {
    "weights": np.array([0.4, 0.6]),
    "means": np.array([[0.0, 0.0], [1.0, -1.0]]),
    "covs": np.array([np.eye(2), [[2.0, 0.5], [0.5, 1.0]]]),
}


@st.composite
def hostile_array(draw, valid: np.ndarray):
    how = draw(st.sampled_from(["entry", "dtype", "shape", "other"]))
    if how == "entry":
        arr = valid.astype(np.float64).copy()
        index = tuple(draw(st.integers(0, n - 1)) for n in arr.shape)
        arr[index] = draw(st.sampled_from(SCALARS))
        return arr
    if how == "dtype":
        dtype = draw(st.sampled_from([np.int32, np.int64, np.complex128, np.bool_, np.float16]))
        return valid.astype(dtype)
    if how == "shape":
        return draw(
            st.sampled_from(
                [valid[None], valid[0], valid.reshape(-1), valid[:0], np.zeros((0,) * valid.ndim)]
            )
        )
    return draw(st.sampled_from(WRONG))


def probe_mixture(law):
    x = law.means[0]
    return law.log_prob(x), law.score(x), law.sample(jr.key(0), 4)


@SETTINGS
@given(st.data())
def test_fuzz_gaussian_mixture(data):
    names = data.draw(st.sets(st.sampled_from(sorted(MIXTURE_VALID)), min_size=1))
    bad = {n: data.draw(hostile_array(MIXTURE_VALID[n])) for n in sorted(names)}
    outcome(gpm_sde.GaussianMixture, MIXTURE_VALID, bad, probe_mixture)


# ---------------------------------------------------------------------------------------
# Terms, scores and transforms.

CLOUD = jnp.array([[0.0, 1.0], [1.0, -1.0], [-0.5, 0.3], [2.0, 0.0]])


def _score(s, x):
    return -x


def probe_sde(sde):
    out = [sde.drift(0.5, CLOUD)]
    if sde.diffusion is not None:
        out.append(sde.diffusion(0.5, CLOUD))
    return out


@SETTINGS
@given(st.sampled_from([*HOSTILE, lambda s: -1.0, lambda s: "x"]))
def test_fuzz_scalar_diffusion(g):
    outcome(
        lambda g: ScalarDiffusion(g)(0.5, CLOUD),
        {},
        {"g": g},
        lambda out: out,
    )


@SETTINGS
@given(st.data())
def test_fuzz_kernel_score(data):
    valid = {"bandwidth": 0.5, "block": 2}
    extra = {"bandwidth": ["scott", "silverman", "median"], "block": [0, -3, 2.5, 10**20]}
    bad = _hostile_kwargs(data.draw, sorted(valid), extra)
    outcome(KernelScore, valid, bad, lambda k: k(0.0, CLOUD))


@SETTINGS
@given(st.data())
def test_fuzz_diffflow(data):
    valid = {
        "real_score": _score,
        "gen_score": KernelScore(0.5),
        "beta": 1.0,
        "g": 0.5,
        "f": None,
    }
    extra = {"f": [LinearDrift(-1.0), lambda s: -2.0], "beta": [lambda s: 2.0]}
    bad = _hostile_kwargs(data.draw, sorted(valid), extra)
    outcome(gpm_sde.diffflow, valid, bad, probe_sde)


@SETTINGS
@given(st.data())
def test_fuzz_reverse(data):
    valid = {"process": gpm_sde.vp(), "score": _score, "lam": None}
    extra = {
        "process": [gpm_sde.ddpm(10), MIXTURE_VALID["weights"], gpm_sde.vp],
        "lam": [lambda s: -1.0],
    }
    bad = _hostile_kwargs(data.draw, sorted(valid), extra)
    outcome(gpm_sde.reverse, valid, bad, probe_sde)


# ---------------------------------------------------------------------------------------
# simulate.

OU = SDE(LinearDrift(-1.0), ScalarDiffusion(1.0))
SIMULATE_VALID: dict[str, Any] = {
    "sde": OU,
    "y0": CLOUD,
    "key": jr.key(0),
    "t1": 1.0,
    "steps": 3,
    "t0": 0.0,
    "solver": None,
    "saveat": None,
}
SIMULATE_EXTRA: dict[str, list[Any]] = {
    "sde": [gpm_sde.vp(), LinearDrift(-1.0)],
    "y0": [
        jnp.asarray(a)
        for a in (
            np.full((4, 2), NAN),
            np.array([[INF, 0.0]]),
            np.full((4, 2), 1e308),
            np.zeros((0, 2)),
            np.zeros((4, 2), dtype=np.int32),
            np.zeros((4, 2), dtype=np.complex64),
            np.zeros((4, 2), dtype=bool),
            np.zeros((4, 2), dtype=np.float16),
            np.zeros(()),
            np.zeros((4,)),
            np.zeros((2, 3, 2)),
        )
    ]
    + [np.zeros((4, 2))],
    "key": [0, jr.PRNGKey(0), jnp.array([1.0, 2.0]), jr.split(jr.key(0), 2)],
    "steps": [0, -1, 2.5, 2**31, 10**20],
    "t1": [0.0, -1.0, 1e-300],
    "solver": [diffrax.Euler, "euler", diffrax.Tsit5()],
    "saveat": [
        diffrax.SaveAt(ts=jnp.array([NAN])),
        diffrax.SaveAt(ts=jnp.array([2.0])),
        diffrax.SaveAt(ts=jnp.array([0.5, 0.25])),
        diffrax.SaveAt(t0=True, ts=jnp.array([])),
        diffrax.SaveAt(steps=True, ts=jnp.array([0.5])),
        "t1",
    ],
}


def probe_solution(sol):
    return sol.ys


@SETTINGS
@given(st.data())
def test_fuzz_simulate(data):
    bad = _hostile_kwargs(data.draw, sorted(SIMULATE_VALID), SIMULATE_EXTRA)
    outcome(
        lambda **kw: gpm_sde.simulate(kw.pop("sde"), kw.pop("y0"), kw.pop("key"), **kw),
        SIMULATE_VALID,
        bad,
        probe_solution,
        allowed=(*CLEAN, NonFiniteSolutionError),
    )
