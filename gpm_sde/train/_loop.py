r"""The training loop shared by every trainer: jitted chunks of steps under `lax.scan` (or
one jitted call a step where a scan is slow: convolutions on the CPU), a progress bar with the
losses, checkpoints with resume (and the history of the whole run saved with them), a stop on
a non-finite loss, and a clean stop on Ctrl-C or SIGTERM."""

from __future__ import annotations

import io
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Key, PRNGKeyArray

from .._checks import check_int, check_key
from .._io import write_atomic
from .._optional import progress_bar
from ._checkpoint import (
    CheckpointError,
    check_checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)

_S = TypeVar("_S")
StepFn = Callable[[Any, PRNGKeyArray], tuple[Any, dict[str, Array]]]


class TrainingDiverged(FloatingPointError):
    """A loss became NaN or infinite. The message names the step and the loss; the
    checkpoint file, if one was given, holds the last state whose losses were all finite."""

    step: int
    checkpoint: Path | None

    def __init__(self, message: str, step: int, checkpoint: Path | None):
        super().__init__(message)
        self.step = step
        self.checkpoint = checkpoint


class LoopOptions(TypedDict, total=False):
    """The keyword options every trainer passes on to [`run_loop`][gpm_sde.train.run_loop]
    (`**loop` in their signatures); each may be left out.

    - `checkpoint`: a file to save to (`str` or path-like), or `None` (the default).
    - `resume`: continue from `checkpoint` if it exists (default `False`).
    - `checkpoint_every`: save every this many steps (default `None`: at the end only).
    - `progress`: show a tqdm progress bar (default `True`; needs tqdm, the `cli` extra).
    - `chunk`: steps per jitted call (default 100), or per Python-side batch of single-step
      calls when not scanning.
    - `scan`: run each chunk as one `lax.scan` (`True`), as a Python loop over one jitted
      step (`False`), or choose (`None`, the default): scan, except on the CPU when the step
      holds a convolution, which XLA's CPU backend runs an order of magnitude slower inside a
      loop body (jax-ml/jax#12868; 1.6 s against 0.12 s per step of the digits Denoising
      Diffusion GAN on 2 cores).
    - `history`: an `.npz` file the history of the whole run is written to with every
      checkpoint (default `None`: not written).
    """

    checkpoint: str | os.PathLike[str] | None
    history: str | os.PathLike[str] | None
    resume: bool
    checkpoint_every: int | None
    progress: bool
    chunk: int
    scan: bool | None


def check_steps(steps: Any, name: str = "steps") -> int:
    """`steps` as an int >= 1, or a `TypeError` (not an int) / `ValueError` (< 1) naming it."""
    return check_int(name, steps, 1)


def step_keys(key: PRNGKeyArray, start: int, stop: int) -> Key[Array, " n"]:
    """The keys of steps `start..stop-1`: `fold_in(key, step)`, so step `k` draws the same
    randomness whether the run was resumed or not."""
    return jax.vmap(lambda i: jr.fold_in(key, i))(jnp.arange(start, stop, dtype=jnp.uint32))


def _array_step(step_fn: StepFn, static: Any) -> Callable[[Any, Array], tuple[Any, Any]]:
    """The step on the array part of the state (the static part closed over)."""

    def body(dyn: Any, k: Array) -> tuple[Any, Any]:
        state, metrics = step_fn(eqx.combine(dyn, static), k)
        return eqx.partition(state, eqx.is_array)[0], metrics

    return body


def _chunk_runner(
    step_fn: StepFn, static: Any, scan: bool
) -> Callable[[Any, Array], tuple[Any, Any]]:
    body = _array_step(step_fn, static)
    if scan:
        return eqx.filter_jit(lambda dynamic, keys: jax.lax.scan(body, dynamic, keys))
    one = eqx.filter_jit(body)

    def run(dynamic: Any, keys: Array) -> tuple[Any, Any]:
        history = []
        for k in keys:
            dynamic, metrics = one(dynamic, k)
            history.append(metrics)
        return dynamic, jax.tree.map(lambda *v: jnp.stack(v), *history)

    return run


_CONVOLUTION = "conv_general_dilated"


def _has_convolution(jaxpr: Any) -> bool:
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == _CONVOLUTION:
            return True
        for param in eqn.params.values():
            for sub in param if isinstance(param, list | tuple) else (param,):
                inner = getattr(sub, "jaxpr", sub)  # a ClosedJaxpr or a Jaxpr
                if hasattr(inner, "eqns") and _has_convolution(inner):
                    return True
    return False


def _should_scan(step_fn: StepFn, dynamic: Any, static: Any, key: PRNGKeyArray) -> bool:
    """Whether `run_loop(scan=None)` scans: not on the CPU when the step holds a convolution
    (a trace of one step, no compilation), where XLA runs convolutions inside a loop body an
    order of magnitude slower than outside one (jax-ml/jax#12868)."""
    if jax.default_backend() != "cpu":
        return True
    jaxpr = jax.make_jaxpr(_array_step(step_fn, static))(dynamic, key)
    return not _has_convolution(jaxpr.jaxpr)


def run_loop(
    name: str,
    step_fn: StepFn,
    state: _S,
    key: PRNGKeyArray,
    *,
    steps: int,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
    checkpoint_every: int | None = None,
    progress: bool = True,
    chunk: int = 100,
    scan: bool | None = None,
    history: str | os.PathLike[str] | None = None,
) -> tuple[_S, dict[str, np.ndarray]]:
    r"""Run `steps` steps of `step_fn(state, key) -> (state, metrics)` from `state`.

    Steps are run `chunk` at a time inside one jitted `lax.scan` (a Python loop over tiny
    models would spend its time in dispatch), except on the CPU when a step holds a
    convolution: XLA's CPU backend runs a convolution inside a loop body an order of magnitude
    slower than outside one (jax-ml/jax#12868: a loop body keeps the convolution's default
    layout), so there each step is one jitted call (`scan=False`; `scan=None` chooses, from a
    trace of one step). Both compute the same steps. Step $k$ (0-based) uses the key
    `fold_in(key, k)`, so a resumed run draws exactly the randomness of an uninterrupted one.

    After every chunk the metrics are checked: if any is NaN or infinite, the loop raises
    [`TrainingDiverged`][gpm_sde.train.TrainingDiverged] naming the first bad step and metric,
    after writing the state from the start of that chunk (all of whose losses were finite) to
    `checkpoint`. Otherwise the progress bar shows the last values, and the state is saved
    every `checkpoint_every` steps (rounded up to a chunk boundary) and at the end. With
    `history=PATH`, the history of every step so far (of the steps before a resume too) is
    written to `PATH` just before each checkpoint, so a killed run keeps a complete history up
    to its last checkpoint. On Ctrl-C (`KeyboardInterrupt`), and on `SIGTERM` (what batch
    schedulers such as SLURM send before they kill a job; turned into a `KeyboardInterrupt`
    while the loop runs, when it runs in the main thread and no other `SIGTERM` handler is
    installed), the state of the last completed chunk is saved, and the interrupt is raised
    again: the run can be resumed.

    The checkpoint (and history) paths are checked before the first step, so a bad path
    raises [`CheckpointError`][gpm_sde.train.CheckpointError] before any training.

    **Arguments:**

    - `name`: the trainer's name, for the progress bar and the checkpoint header.
    - `step_fn`: one training step; pure and jittable; `metrics` maps names to scalars.
    - `state`: the initial pytree (models, optimiser states, ...).
    - `key`: PRNG key of the whole run.
    - `steps`: the total number of steps (including those already done when resuming).
    - `checkpoint`: a file to save to, or `None`.
    - `resume`: if `True` and `checkpoint` exists, continue from it (pass the same `key`).
    - `checkpoint_every`: save every this many steps (`None`: at the end only).
    - `progress`: show a tqdm progress bar.
    - `chunk`: steps per jitted call (per Python-side batch of single-step calls when not
      scanning: the metrics are checked and the progress bar updated once a chunk).
    - `scan`: `True` (scan), `False` (one jitted call a step) or `None` (choose).
    - `history`: an `.npz` file for the history of the whole run (needs `checkpoint`).

    Returns the final state and the history: `{"step": (m,), name: (m,) ...}` for the `m`
    steps run by this call (1-based global step numbers).
    """
    check_key("key", key, what="the PRNG key of the run")
    steps = check_steps(steps)
    chunk = check_steps(chunk, "chunk")
    if scan is not None and not isinstance(scan, bool):
        raise TypeError(f"`scan` must be True, False or None (choose), got {scan!r}.")
    if checkpoint_every is not None:
        checkpoint_every = check_steps(checkpoint_every, "checkpoint_every")
        chunk = min(chunk, checkpoint_every)
    if resume and checkpoint is None:
        raise ValueError("`resume=True` needs `checkpoint=PATH`, the file to resume from.")
    ckpt = None if checkpoint is None else check_checkpoint_path(checkpoint)
    if history is not None and ckpt is None:
        raise ValueError("`history=PATH` needs `checkpoint=PATH`: it is written with it.")
    hist_path = None if history is None else check_checkpoint_path(history, "history")
    start = 0
    if resume and ckpt is not None and ckpt.exists():
        state, start = load_checkpoint(ckpt, state, trainer=name)
        if start > steps:
            raise ValueError(
                f"`steps` is {steps} but the checkpoint {str(ckpt)!r} is already at step "
                f"{start}; pass steps >= {start} to train further."
            )
    before = _read_history(hist_path, start) if hist_path is not None else {}
    dynamic, static = eqx.partition(state, eqx.is_array)
    if scan is None:
        scan = _should_scan(step_fn, dynamic, static, jr.fold_in(key, start))
    runner = _chunk_runner(step_fn, static, scan)
    history_: dict[str, list[np.ndarray]] = {}
    done, last_saved = start, start

    def save(dyn: Any, at: int) -> None:
        assert ckpt is not None
        if hist_path is not None:
            _write_history(hist_path, before, _collect(start, at, history_))
        save_checkpoint(ckpt, eqx.combine(dyn, static), trainer=name, step=at)

    bar = progress_bar(total=steps, initial=start, desc=name, disable=not progress, leave=False)
    previous = _catch_sigterm()
    try:
        while done < steps:
            n = min(chunk, steps - done)
            new_dynamic, metrics = runner(dynamic, step_keys(key, done, done + n))
            metrics = {k: np.asarray(v) for k, v in metrics.items()}
            for metric, values in metrics.items():
                bad = np.flatnonzero(~np.isfinite(values))
                if bad.size:
                    if ckpt is not None:
                        save(dynamic, done)
                    where = (
                        f"; {str(ckpt)!r} holds the last good state (step {done})"
                        if ckpt is not None
                        else "; pass `checkpoint=PATH` to keep the last good state"
                    )
                    raise TrainingDiverged(
                        f"{name}: the metric `{metric}` is {values[bad[0]]} at step "
                        f"{done + int(bad[0]) + 1}{where}. Lower the learning rate, add a "
                        f"gradient penalty or clip gradients (`optax.clip_by_global_norm`).",
                        step=done + int(bad[0]) + 1,
                        checkpoint=ckpt,
                    )
            for metric, values in metrics.items():
                history_.setdefault(metric, []).append(values)
            # One statement with no call in it: Ctrl-C cannot separate the state from its step.
            dynamic, done = new_dynamic, done + n
            bar.update(n)
            bar.set_postfix({k: f"{float(v[-1]):.4g}" for k, v in metrics.items()})
            due = checkpoint_every is not None and done - last_saved >= checkpoint_every
            if ckpt is not None and (due or done == steps):
                save(dynamic, done)
                last_saved = done
    except KeyboardInterrupt:  # Ctrl-C: keep the completed steps, then stop
        if ckpt is not None and done > last_saved:
            save(dynamic, done)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        bar.close()
    return eqx.combine(dynamic, static), _collect(start, done, history_)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt("SIGTERM")


def _catch_sigterm() -> Any:
    """Turn SIGTERM into a `KeyboardInterrupt` (so the loop saves and stops as on Ctrl-C);
    returns the handler to restore, or `None` where none was installed (not the main thread,
    or somebody else's handler already there)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        return None
    signal.signal(signal.SIGTERM, _on_sigterm)
    return previous


def _collect(start: int, done: int, history: dict[str, list[np.ndarray]]) -> dict[str, Any]:
    """The history of steps `start + 1..done` from the per-chunk metrics."""
    out: dict[str, Any] = {"step": np.arange(start + 1, done + 1)}
    out.update({k: np.concatenate(v)[: done - start] for k, v in history.items()})
    return out


def _read_history(path: Path, start: int) -> dict[str, np.ndarray]:
    """The saved history of steps `1..start` (resuming from step `start`), or `{}`."""
    if start == 0 or not path.is_file():
        return {}
    try:
        with np.load(path) as old:
            arrays = {k: np.asarray(old[k]) for k in old.files}
    except Exception as err:  # numpy raises several types on a damaged file
        raise CheckpointError(
            f"`history` {str(path)!r} is not a readable .npz file ({type(err).__name__}: "
            f"{err}); delete it (the history of the steps before the resume is then lost) or "
            f"restore a copy."
        ) from None
    if "step" not in arrays:
        return {}
    keep = arrays["step"] <= start
    return {k: v[keep] for k, v in arrays.items() if v.shape[:1] == keep.shape}


def _write_history(path: Path, before: dict[str, np.ndarray], now: dict[str, Any]) -> None:
    """Write the history `before` followed by `now` to `path`, atomically."""
    if before and set(before) == set(now):
        arrays = {k: np.concatenate([before[k], np.asarray(now[k])]) for k in now}
    else:
        arrays = {k: np.asarray(v) for k, v in now.items()}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # pyright: ignore[reportArgumentType]
    write_atomic(path, buffer.getvalue())
