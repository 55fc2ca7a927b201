"""One rule for argument errors across the public API (`gpm_sde._checks`): a `TypeError` when
an argument has the wrong type (not callable, not an int, a bool where an int is expected, an
integer array where a floating one is expected, not a PRNG key, a required key missing), a
`ValueError` when the type is right and the value is wrong (negative, out of range, wrong
shape); every message names the argument.

Each case builds nothing expensive: the checks run before any solve or network call. Under the
test suite's runtime type checker (jaxtyping + beartype) some wrong types are caught first by
the annotation, which also raises a `TypeError` naming the parameter; both count.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gpm_sde
from gpm_sde import data, losses, metrics, nn, samplers, schedules, scores
from gpm_sde._checks import (
    check_batch,
    check_callable,
    check_int,
    check_key,
    check_nonnegative_schedule,
    is_literal_zero,
)

KEY = jr.key(0)
CLOUD = jnp.zeros((4, 2))


def _score(s, x):
    return -x


def _sde():
    return gpm_sde.langevin_flow(_score)


def _names(name: str) -> str:
    """The argument as the library's checks (`name`) or the type checker ('name') name it."""
    return rf"`{re.escape(name)}|'{re.escape(name)}'"


WRONG_TYPE: list[tuple[str, str, Callable[[], Any]]] = [
    (
        "simulate steps=True",
        "steps",
        lambda: gpm_sde.simulate(_sde(), CLOUD, KEY, t1=1.0, steps=True),
    ),
    ("simulate key", "key", lambda: gpm_sde.simulate(_sde(), CLOUD, "key", t1=1.0, steps=2)),  # type: ignore[arg-type]
    (
        "simulate integer y0",
        "y0",
        lambda: gpm_sde.simulate(_sde(), jnp.zeros((4, 2), jnp.int32), KEY, t1=1.0, steps=2),
    ),
    ("langevin_flow score", "score", lambda: gpm_sde.langevin_flow(3.0)),  # type: ignore[arg-type]
    ("diffflow gen_score", "gen_score", lambda: gpm_sde.diffflow(_score, None, 1.0, 0.5)),  # type: ignore[arg-type]
    ("reverse score", "score", lambda: gpm_sde.reverse(gpm_sde.vp(), 3)),  # type: ignore[arg-type]
    ("ddpm n_steps", "n_steps", lambda: gpm_sde.ddpm(n_steps=True)),
    ("time_grid steps", "steps", lambda: schedules.time_grid(gpm_sde.vp(), True)),
    ("geometric_sigmas n", "n", lambda: samplers.geometric_sigmas(10.0, 0.01, True)),
    (
        "reverse_sde_sample score",
        "score",
        lambda: samplers.reverse_sde_sample(gpm_sde.vp(), None, KEY, 4, (2,), steps=2),  # type: ignore[arg-type]
    ),
    (
        "reverse_sde_sample key missing",
        "key",
        lambda: samplers.reverse_sde_sample(gpm_sde.vp(), _score, None, 4, (2,), steps=2),  # type: ignore[arg-type]
    ),
    ("digits seed", "seed", lambda: data.digits("train", seed=True)),
    ("mixture sample n", "n", lambda: data.eight_gaussians().sample(KEY, True)),
    ("mmd block_size", "block_size", lambda: metrics.mmd(CLOUD, CLOUD, block_size=2.0)),  # type: ignore[arg-type]
    ("dsm_loss score_fn", "score_fn", lambda: losses.dsm_loss(3, gpm_sde.vp(), CLOUD, KEY)),  # type: ignore[arg-type]
    (
        "dsm_loss cloud score",
        "score_fn",
        lambda: losses.dsm_loss(scores.KernelScore(0.5), gpm_sde.vp(), CLOUD, KEY),
    ),
    (
        "dsm_loss integer x0",
        "x0",
        lambda: losses.dsm_loss(_score, gpm_sde.vp(), jnp.zeros((4, 2), jnp.int32), KEY),
    ),
    ("from_batched order", "order", lambda: scores.from_batched(_score, 3, (2,))),  # type: ignore[arg-type]
    (
        "from_eps_discrete index_base",
        "index_base",
        lambda: scores.from_eps_discrete(gpm_sde.ddpm(10), _score, index_base=True),
    ),  # type: ignore[arg-type]
    ("LinearProcess alpha", "alpha", lambda: gpm_sde.processes.LinearProcess(alpha=3.0)),  # type: ignore[arg-type]
    ("ScoreMLP hidden", "hidden", lambda: nn.ScoreMLP(2, True, 2, 8, key=KEY)),
    ("UNet8 channels", "channels", lambda: nn.UNet8(key=KEY, channels=5)),  # type: ignore[arg-type]
    (
        "log_likelihood key missing",
        "key",
        lambda: gpm_sde.log_likelihood(gpm_sde.vp(), _score, CLOUD, trace="hutchinson"),
    ),
]

WRONG_VALUE: list[tuple[str, str, Callable[[], Any]]] = [
    ("simulate steps=0", "steps", lambda: gpm_sde.simulate(_sde(), CLOUD, KEY, t1=1.0, steps=0)),
    (
        "simulate empty y0",
        "y0",
        lambda: gpm_sde.simulate(_sde(), jnp.zeros((0, 2)), KEY, t1=1.0, steps=2),
    ),
    ("langevin_flow beta", "beta", lambda: gpm_sde.langevin_flow(_score, -1.0)),
    ("diffflow g", "g", lambda: gpm_sde.diffflow(_score, _score, 1.0, -0.5)),
    ("reverse lam", "lam", lambda: gpm_sde.reverse(gpm_sde.vp(), _score, lam=-1.0)),
    ("ddpm n_steps", "n_steps", lambda: gpm_sde.ddpm(n_steps=0)),
    ("time_grid steps", "steps", lambda: schedules.time_grid(gpm_sde.vp(), 0)),
    ("geometric_sigmas n", "n", lambda: samplers.geometric_sigmas(10.0, 0.01, 1)),
    (
        "reverse_sde_sample n",
        "n",
        lambda: samplers.reverse_sde_sample(gpm_sde.vp(), _score, KEY, 0, (2,), steps=2),
    ),
    ("digits seed", "seed", lambda: data.digits("train", seed=-1)),
    ("mixture sample n", "n", lambda: data.eight_gaussians().sample(KEY, -1)),
    ("mmd block_size", "block_size", lambda: metrics.mmd(CLOUD, CLOUD, block_size=0)),
    (
        "dsm_loss x0 one point",
        "x0",
        lambda: losses.dsm_loss(_score, gpm_sde.vp(), jnp.zeros(3), KEY),
    ),
    (
        "from_batched event_shape",
        "event_shape",
        lambda: scores.from_batched(_score, "x,t", (2, -1)),
    ),
    (
        "from_eps_discrete index_base",
        "index_base",
        lambda: scores.from_eps_discrete(gpm_sde.ddpm(10), _score, index_base=2),
    ),
    (
        "kernel_score_blocked block",
        "block",
        lambda: scores.kernel_score_blocked(CLOUD, CLOUD, 0.5, 0),
    ),
    ("ScoreMLP depth", "depth", lambda: nn.ScoreMLP(2, 16, 0, 8, key=KEY)),
    ("UNet8 channels", "channels", lambda: nn.UNet8(key=KEY, channels=(8, 16))),
    (
        "log_likelihood probes",
        "probes",
        lambda: gpm_sde.log_likelihood(gpm_sde.vp(), _score, CLOUD, probes=0),
    ),
]


@pytest.mark.parametrize("case", WRONG_TYPE, ids=[c[0] for c in WRONG_TYPE])
def test_wrong_type_is_a_type_error_naming_the_argument(case):
    _, name, call = case
    with pytest.raises(TypeError, match=_names(name)):
        call()


@pytest.mark.parametrize("case", WRONG_VALUE, ids=[c[0] for c in WRONG_VALUE])
def test_wrong_value_is_a_value_error_naming_the_argument(case):
    _, name, call = case
    with pytest.raises(ValueError, match=_names(name)) as info:
        call()
    assert not isinstance(info.value, TypeError)


def test_shared_checks_follow_the_rule():
    """The shared helpers themselves: type first (TypeError), then value (ValueError); the
    message names the argument and says what to pass."""
    for bad in (True, 1.0, "3", None, jnp.asarray(3)):
        with pytest.raises(TypeError, match=r"`k` must be an int >= 1 \(what\).*pass"):
            check_int("k", bad, 1, "what")
    with pytest.raises(ValueError, match=r"`k` must be an int >= 1 and < 4, got 4; pass e.g."):
        check_int("k", 4, 1, below=4, example=2)
    assert check_int("k", 3, 1) == 3 and type(check_int("k", np.int64(3), 1)) is int
    with pytest.raises(TypeError, match=r"`f` must be a callable `x -> y`, got int"):
        check_callable("f", 1, "x -> y")
    check_callable("f", len)
    with pytest.raises(TypeError, match=r"`key` is required"):
        check_key("key", None)
    check_key("key", None, optional=True)
    check_key("key", KEY)
    check_key("key", jr.PRNGKey(0))
    with pytest.raises(TypeError, match=r"`key` must be a PRNG key"):
        check_key("key", jnp.zeros(2))
    with pytest.raises(ValueError, match=r"`key` must be one PRNG key"):
        check_key("key", jr.split(KEY, 3))
    with pytest.raises(TypeError, match=r"`x` must be a floating-point array"):
        check_batch("x", jnp.zeros((3, 2), jnp.int32))
    with pytest.raises(ValueError, match=r"`x` must be a non-empty batch.*pass `x\[None\]`"):
        check_batch("x", jnp.zeros(3), min_ndim=2)
    check_batch("x", jnp.zeros(3))
    with pytest.raises(TypeError, match=_names("beta")):
        check_nonnegative_schedule("beta", "one")
    with pytest.raises(ValueError, match=r"`beta` must be >= 0"):
        check_nonnegative_schedule("beta", -0.5)
    check_nonnegative_schedule("beta", lambda s: -1.0)  # a callable is not evaluated
    assert is_literal_zero(0) and is_literal_zero(0.0)
    assert not any(is_literal_zero(v) for v in (False, jnp.zeros(()), lambda s: 0.0, 1e-300))
