"""Optional dependencies: imported when a feature needs them, with an error that says which
extra to install (`pip install "gpm_sde[EXTRA]"`). The base install needs only the JAX stack."""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType
from typing import Any

EXTRAS = {
    "sklearn": "data",
    "ott": "ot",
    "matplotlib": "plot",
    "tqdm": "cli",
}
"""Which extra of `gpm_sde` brings each optional top-level package."""


def require(module: str, feature: str) -> ModuleType:
    """Import `module` for `feature`, or raise an ImportError that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        extra = EXTRAS.get(top)
        how = f'pip install "gpm_sde[{extra}]"' if extra else f"pip install {top}"
        raise ImportError(
            f"{feature} needs the optional package `{top}`, which is not installed; install it "
            f'with `{how}` (or `pip install "gpm_sde[dev]"` for every extra).'
        ) from err


class _NoBar:
    """A stand-in for a tqdm bar when tqdm is not installed or the bar is disabled."""

    def __init__(self, iterable: Any = None, **_: Any):
        self._iterable = iterable

    def __iter__(self):
        return iter(self._iterable if self._iterable is not None else ())

    def update(self, n: int = 1) -> None:
        del n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        del args, kwargs

    def close(self) -> None:
        pass


_warned = False


def progress_bar(iterable: Any = None, *, disable: bool = False, **kwargs: Any) -> Any:
    """A `tqdm.auto.tqdm` progress bar, or a silent stand-in when tqdm is not installed (it
    comes with the `cli` extra); a requested bar that cannot be shown warns once."""
    global _warned
    if disable:
        return _NoBar(iterable)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if not _warned:
            warnings.warn(
                'progress bars need tqdm: `pip install "gpm_sde[cli]"` (or pass progress=False)',
                stacklevel=2,
            )
            _warned = True
        return _NoBar(iterable)
    return tqdm(iterable, disable=disable, **kwargs)
