r"""Checkpoints: a training state written with `eqx.tree_serialise_leaves` (no pickle) behind a
one-line JSON header that names the trainer and the step."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

import equinox as eqx

_MAGIC = b"gpm_sde-checkpoint\n"
_VERSION = 1
_T = TypeVar("_T")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read into the requested state: missing, corrupted,
    written by another trainer, or holding arrays of other shapes or dtypes."""


def save_checkpoint(path: str | os.PathLike[str], state: Any, *, trainer: str, step: int) -> Path:
    r"""Write `state` (any pytree of arrays and equinox modules: a named training state such as
    [`ScoreState`][gpm_sde.train.ScoreState], or models and optimiser states)
    to `path`, atomically: the file is written next to `path` and renamed over it, so an
    interrupted save never leaves a half-written checkpoint.

    The format is a header line `gpm_sde-checkpoint`, a JSON line
    `{"version": 1, "trainer": ..., "step": ...}`, then the leaves in
    [`eqx.tree_serialise_leaves`](https://docs.kidger.site/equinox/api/serialisation/) order.
    Only arrays are stored; the structure comes from the `like` state passed to
    [`load_checkpoint`][gpm_sde.train.load_checkpoint].

    **Arguments:**

    - `path`: the file to write (its folder is created).
    - `state`: the pytree to store.
    - `trainer`: the name of the training loop, checked when loading.
    - `step`: the number of completed steps.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    header = {"version": _VERSION, "trainer": trainer, "step": int(step)}
    with open(tmp, "wb") as f:
        f.write(_MAGIC)
        f.write(json.dumps(header).encode() + b"\n")
        eqx.tree_serialise_leaves(f, state)
    os.replace(tmp, path)
    return path


def read_checkpoint_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON header of the checkpoint at `path` (`version`, `trainer`, `step`)."""
    path = Path(path)
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
    if version != _VERSION or not isinstance(trainer, str) or not isinstance(step, int):
        raise CheckpointError(
            f"`checkpoint` {str(path)!r} has an unsupported header {header!r}; this version of "
            f"gpm_sde reads version {_VERSION}."
        )
    return header


def load_checkpoint(
    path: str | os.PathLike[str], like: _T, *, trainer: str | None = None
) -> tuple[_T, int]:
    r"""Read a checkpoint written by [`save_checkpoint`][gpm_sde.train.save_checkpoint] into
    the structure of `like`; returns `(state, step)`.

    Raises [`CheckpointError`][gpm_sde.train.CheckpointError] naming the file and what is wrong
    when it is missing, is not a checkpoint, was written by another trainer, is truncated or
    has trailing bytes, or holds arrays whose shapes or dtypes differ from `like`'s (a model
    built with other sizes, or float32 against float64).

    **Arguments:**

    - `path`: the checkpoint file.
    - `like`: a state of the same structure (e.g. the freshly initialised models and
      optimiser states), giving shapes and dtypes.
    - `trainer`: if given, the trainer name the header must carry.
    """
    path = Path(path)
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
