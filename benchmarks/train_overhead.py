"""Overhead of a `gpm_sde.train` step against a hand-written equinox/optax step.

Workload (issue 14): one denoising-score-matching step of `fit_score` on the VP process, the
score network `ScoreMLP(2, hidden, depth, 32)` used directly as the score `s(t, x)`, Adam
(lr 1e-3), a minibatch of `--batch` points drawn with replacement from a fixed data set of
five Gaussians. The baseline is the step one writes by hand with equinox and optax:
`eqx.partition(model, eqx.is_inexact_array)`, `eqx.filter_value_and_grad` of the same
`dsm_loss` on the same minibatch draw, `optimizer.update`, `eqx.apply_updates`. Ours is the
step of `score_make_step` on the `ScoreState` of `score_init` (default `trainable` filter:
the embedding's fixed Fourier frequencies stay out; in the baseline they get a zero gradient
and a zero Adam update). One step of each from the same state and key is checked to give the
same loss and the same network.

Two rows: the step called from Python (`eqx.filter_jit`, one dispatch per step, as a user's
loop does), and `--chunk` steps inside one jitted `lax.scan` (as `run_loop` runs them). Each
is compiled first, then timed `--repeats` times alternating ours and the baseline; the table
gives the median time per step and the ratio ours / baseline (target <= 1.05).

    python benchmarks/train_overhead.py
    python benchmarks/train_overhead.py --hidden 256 --batch 1024 --repeats 31
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

import gpm_sde
from gpm_sde import nn, train
from gpm_sde.losses import dsm_loss


def make_problem(hidden: int, depth: int, batch: int) -> dict[str, Any]:
    process = gpm_sde.vp()
    data = gpm_sde.data.five_gaussians().sample(jr.key(0), 10_000)
    model = nn.ScoreMLP(2, hidden, depth, 32, key=jr.key(1))
    return {"process": process, "data": data, "model": model, "batch": batch}


def ours(problem: dict[str, Any], optimizer: optax.GradientTransformation):
    """`score_init` + `score_make_step`: returns (state, step)."""
    state = train.score_init(problem["model"], optimizer)
    step = train.score_make_step(
        problem["process"], problem["data"], optimizer, batch_size=problem["batch"]
    )
    return state, step


def baseline(problem: dict[str, Any], optimizer: optax.GradientTransformation):
    """The hand-written equinox/optax step: returns (state, step), state = (model, opt)."""
    process, data, batch = problem["process"], problem["data"], problem["batch"]
    model = problem["model"]
    state = (model, optimizer.init(eqx.filter(model, eqx.is_inexact_array)))

    def step(state: Any, key: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
        model, opt_state = state
        k_data, k_loss = jr.split(key)
        x0 = data[jr.randint(k_data, (batch,), 0, data.shape[0])]
        params, static = eqx.partition(model, eqx.is_inexact_array)

        def loss_fn(p: Any) -> jax.Array:
            return dsm_loss(eqx.combine(p, static), process, x0, k_loss)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (eqx.apply_updates(model, updates), opt_state), {"loss": loss}

    return state, step


def scanned(step: Callable[..., Any], chunk: int) -> Callable[..., Any]:
    """`chunk` steps in one jitted `lax.scan` (the static parts closed over)."""

    @eqx.filter_jit
    def run(state: Any, key: jax.Array) -> Any:
        dynamic, static = eqx.partition(state, eqx.is_array)

        def body(dyn: Any, k: jax.Array) -> Any:
            new, metrics = step(eqx.combine(dyn, static), k)
            return eqx.partition(new, eqx.is_array)[0], metrics["loss"]

        keys = jax.vmap(lambda i: jr.fold_in(key, i))(jnp.arange(chunk))
        dyn, losses = jax.lax.scan(body, dynamic, keys)
        return eqx.combine(dyn, static), losses

    return run


def check_same_maths(problem: dict[str, Any], optimizer: optax.GradientTransformation) -> None:
    state_a, step_a = ours(problem, optimizer)
    state_b, step_b = baseline(problem, optimizer)
    key = jr.key(2)
    new_a, m_a = eqx.filter_jit(step_a)(state_a, key)
    new_b, m_b = eqx.filter_jit(step_b)(state_b, key)
    np.testing.assert_allclose(m_a["loss"], m_b["loss"], rtol=1e-6)
    for a, b in zip(jax.tree.leaves(new_a.model), jax.tree.leaves(new_b[0]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def time_python_loop(step: Callable[..., Any], state: Any, steps: int) -> tuple[float, Any]:
    """Seconds per step of `steps` dispatched calls; returns the final state to chain on."""
    keys = [jr.key(i) for i in range(steps)]
    jax.block_until_ready(keys)
    start = time.perf_counter()
    for k in keys:
        state, _ = step(state, k)
    jax.block_until_ready(state)
    return (time.perf_counter() - start) / steps, state


def time_scan(run: Callable[..., Any], state: Any, chunk: int) -> tuple[float, Any]:
    start = time.perf_counter()
    state, losses = run(state, jr.key(3))
    jax.block_until_ready((state, losses))
    return (time.perf_counter() - start) / chunk, state


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50, help="steps per timed Python loop")
    parser.add_argument("--chunk", type=int, default=100, help="steps per scanned call")
    parser.add_argument("--repeats", type=int, default=21)
    opts = parser.parse_args()

    problem = make_problem(opts.hidden, opts.depth, opts.batch)
    optimizer = optax.adam(1e-3)
    check_same_maths(problem, optimizer)
    dev = jax.devices()[0]
    print(
        f"device: {dev.platform} ({dev.device_kind}), jax {jax.__version__}, equinox "
        f"{eqx.__version__}, optax {optax.__version__}; ScoreMLP(2, {opts.hidden}, "
        f"{opts.depth}, 32), batch {opts.batch}, Adam, float32, {opts.repeats} repeats"
    )
    print("| mode | hand-written eqx/optax step (µs) | score_make_step (µs) | ratio |")
    print("|---|---|---|---|")

    state_a, step_a = ours(problem, optimizer)
    state_b, step_b = baseline(problem, optimizer)
    modes = {
        "python loop, filter_jit": (
            eqx.filter_jit(step_a),
            eqx.filter_jit(step_b),
            lambda f, s: time_python_loop(f, s, opts.steps),
        ),
        f"lax.scan, {opts.chunk} steps/call": (
            scanned(step_a, opts.chunk),
            scanned(step_b, opts.chunk),
            lambda f, s: time_scan(f, s, opts.chunk),
        ),
    }
    for mode, (fa, fb, timer) in modes.items():
        sa, sb = state_a, state_b
        _, sa = timer(fa, sa)  # compile and warm up
        _, sb = timer(fb, sb)
        ta: list[float] = []
        tb: list[float] = []
        for _ in range(opts.repeats):
            t, sb = timer(fb, sb)
            tb.append(t)
            t, sa = timer(fa, sa)
            ta.append(t)
        ma, mb = statistics.median(ta), statistics.median(tb)
        print(f"| {mode} | {1e6 * mb:.1f} | {1e6 * ma:.1f} | {ma / mb:.3f} |", flush=True)


if __name__ == "__main__":
    main()
