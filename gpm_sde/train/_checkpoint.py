r"""Checkpoints: a training state written with `eqx.tree_serialise_leaves` (no pickle) behind a
one-line JSON header that names the trainer, the step and the SHA-256 digest of the arrays."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, TypeVar

import equinox as eqx

from .._io import write_atomic

_MAGIC = b"gpm_sde-checkpoint\n"
_VERSION = 2
_READABLE = (1, 2)  # version 1: no digest
_T = TypeVar("_T")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read into the requested state: missing, corrupted,
    written by another trainer, or holding arrays of other shapes or dtypes."""


def save_checkpoint(path: str | os.PathLike[str], state: Any, *, trainer: str, step: int) -> Path:
    r"""Write `state` (any pytree of arrays and equinox modules: a named training state such as
    [`ScoreState`][gpm_sde.train.ScoreState], or models and optimiser states)
    to `path`, atomically: the file is written under a unique name next to `path`, flushed to
    the disk (`fsync`) and renamed over it, so an interrupted save (a crash, SIGKILL, Ctrl-C)
    never leaves a half-written checkpoint.

    The format is a header line `gpm_sde-checkpoint`, a JSON line
    `{"version": 2, "trainer": ..., "step": ..., "sha256": ...}` (the SHA-256 digest of the
    arrays, verified by [`load_checkpoint`][gpm_sde.train.load_checkpoint]), then the leaves in
    [`eqx.tree_serialise_leaves`](https://docs.kidger.site/equinox/api/serialisation/) order.
    Only arrays are stored; the structure comes from the `like` state passed to
    [`load_checkpoint`][gpm_sde.train.load_checkpoint].

    **Arguments:**

    - `path`: the file to write (its folder is created).
    - `state`: the pytree to store.
    - `trainer`: the name of the training loop, checked when loading.
    - `step`: the number of completed steps.
    """
    path = check_checkpoint_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, state)
    payload = buffer.getvalue()
    header = {
        "version": _VERSION,
        "trainer": trainer,
        "step": int(step),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    write_atomic(path, _MAGIC + json.dumps(header).encode() + b"\n" + payload)
    return path


def check_checkpoint_path(path: Any, name: str = "checkpoint") -> Path:
    """`path` as a `Path` a checkpoint can be written to, or a `CheckpointError` naming the
    argument: not a path, an existing folder, or under a file or an unwritable folder. Called
    by the training loops before the first step, so that a bad path fails before training."""
    if not isinstance(path, str | os.PathLike) or isinstance(path, bytes):
        raise CheckpointError(
            f"`{name}` must be a file path (str or path-like), got {type(path).__name__} {path!r}."
        )
    text = os.fspath(path)
    if not text or "\x00" in text:
        raise CheckpointError(f"`{name}` must be a non-empty file path, got {text!r}.")
    path = Path(text)
    if path.is_dir():
        raise CheckpointError(
            f"`{name}` {text!r} is a folder; pass a file path in it, e.g. "
            f"{str(path / ('history.npz' if name == 'history' else 'checkpoint.eqx'))!r}."
        )
    parent = path.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise CheckpointError(
            f"`{name}` {text!r} cannot be created: {str(parent)!r} is a file, not a folder."
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CheckpointError(
            f"`{name}` {text!r} cannot be written: the folder {str(parent)!r} is not writable."
        )
    return path


def read_checkpoint_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON header of the checkpoint at `path` (`version`, `trainer`, `step` and, from
    version 2 on, `sha256`)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"`checkpoint` {str(path)!r} is a folder, not a checkpoint file; pass the file a "
            f"training loop wrote (its `checkpoint=` argument)."
        )
    if not path.is_file():
        raise CheckpointError(
            f"`checkpoint` {str(path)!r} does not exist; pass the path a training loop wrote "
            f"(its `checkpoint=` argument)."
        )
    with open(path, "rb") as f:
        return _read_header(f, path)


def _read_header(f: Any, path: Path) -> dict[str, Any]:
    magic = f.read(len(_MAGIC))
    if magic != _MAGIC:
        raise CheckpointError(
            f"`checkpoint` {str(path)!r} is not a gpm_sde checkpoint (its first bytes are "
            f"{magic[:20]!r}); pass a file written by `save_checkpoint` or a training loop."
        )
    try:
        header = json.loads(f.readline().decode())
        version, trainer, step = header["version"], header["trainer"], header["step"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"`checkpoint` {str(path)!r} has a corrupted header ({err}); the file is damaged: "
            f"delete it and train again, or restore a copy."
        ) from None
    digest = header.get("sha256") if isinstance(header, dict) else None
    if (
        version not in _READABLE
        or not isinstance(trainer, str)
        or not isinstance(step, int)
        or isinstance(step, bool)
        or step < 0
        or (version >= 2 and not isinstance(digest, str))
    ):
        raise CheckpointError(
            f"`checkpoint` {str(path)!r} has an unsupported header {header!r}; this version of "
            f"gpm_sde reads versions {', '.join(map(str, _READABLE))}."
        )
    return header


def load_checkpoint(
    path: str | os.PathLike[str], like: _T, *, trainer: str | None = None
) -> tuple[_T, int]:
    r"""Read a checkpoint written by [`save_checkpoint`][gpm_sde.train.save_checkpoint] into
    the structure of `like`; returns `(state, step)`.

    Raises [`CheckpointError`][gpm_sde.train.CheckpointError] naming the file and what is wrong
    when it is missing, is not a checkpoint, was written by another trainer, is truncated or
    corrupted (its arrays do not match the digest of its header), has trailing bytes, or
    holds arrays whose shapes or dtypes differ from `like`'s (a model built with other sizes,
    or float32 against float64).

    **Arguments:**

    - `path`: the checkpoint file.
    - `like`: a state of the same structure (e.g. the freshly initialised models and
      optimiser states), giving shapes and dtypes.
    - `trainer`: if given, the trainer name the header must carry.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"`checkpoint` {str(path)!r} is a folder, not a checkpoint file; pass the file a "
            f"training loop wrote (its `checkpoint=` argument)."
        )
    if not path.is_file():
        raise CheckpointError(
            f"`checkpoint` {str(path)!r} does not exist; pass the path a training loop wrote, "
            f"or set `resume=False` to start afresh."
        )
    with open(path, "rb") as f:
        header = _read_header(f, path)
        if trainer is not None and header["trainer"] != trainer:
            raise CheckpointError(
                f"`checkpoint` {str(path)!r} was written by `{header['trainer']}`, not "
                f"`{trainer}`; pass a checkpoint of this trainer or another path."
            )
        payload = f.read()
    digest = header.get("sha256")
    if digest is not None and hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(
            f"`checkpoint` {str(path)!r} is truncated or corrupted: its arrays do not match the "
            f"SHA-256 digest of its header; restore a copy, or delete it and train afresh."
        )
    f = io.BytesIO(payload)
    try:
        state = eqx.tree_deserialise_leaves(f, like)
    except Exception as err:  # numpy/equinox raise several types on bad files
        raise CheckpointError(
            f"`checkpoint` {str(path)!r} does not match the {_kind(like)} it is loaded "
            f"into, or is truncated ({type(err).__name__}: {err}); build the "
            f"models with the sizes and dtype used when it was written, or start afresh."
        ) from None
    if f.read(1):
        raise CheckpointError(
            f"`checkpoint` {str(path)!r} holds more arrays than the {_kind(like)} it is "
            f"loaded into; it was written for a larger model or another optimiser: build the "
            f"same models and optimisers as when it was written."
        )
    return state, int(header["step"])


def _kind(like: Any) -> str:
    """How an error names the state loaded into: its class for a named state."""
    if isinstance(like, eqx.Module):
        return f"{type(like).__name__} (models and optimiser states)"
    return "model and optimiser state"
