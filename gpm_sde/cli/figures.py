r"""Figures of the command line, drawn with matplotlib (the Agg backend, no display needed).

matplotlib is an optional dependency (the `plot` and `cli` extras): without it the commands
still write their arrays and tables, and say that the figure was skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def pyplot() -> Any:
    """`matplotlib.pyplot` with the Agg backend, or `None` when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


MISSING = 'matplotlib is not installed (pip install "gpm_sde[plot]"): figure skipped'


def image_grid(
    images: np.ndarray, cols: int = 8, pad: int = 2, fill: float | None = None
) -> np.ndarray:
    """Tile images `(n, h, w)` into one array, `cols` per row, with `pad` pixels of `fill`
    between and around them (default: the smallest value, the background of the `gray_r`
    digits), so that neighbouring images stay apart instead of merging into stripes. Missing
    tiles of the last row are left blank."""
    images = np.asarray(images)
    n, h, w = images.shape
    rows = max(1, -(-n // cols))
    value = float(images.min()) if fill is None else fill
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), value, images.dtype)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[top : top + h, left : left + w] = img
    return grid


def samples_figure(
    samples: np.ndarray, reference: np.ndarray | None, title: str, path: Path
) -> Path | None:
    """A scatter plot of 2-D samples over the data, or a grid of 8×8 images; `None` without
    matplotlib."""
    plt = pyplot()
    if plt is None:
        return None
    if samples.ndim == 2 and samples.shape[1] == 2:
        fig, ax = plt.subplots(figsize=(5, 5))
        if reference is not None:
            ax.scatter(*reference.T, s=2, c="0.7", alpha=0.5, label="data")
        ax.scatter(*samples.T, s=2, c="tab:blue", alpha=0.6, label="samples")
        ax.set_aspect("equal")
        ax.legend(loc="upper right", markerscale=4)
    else:
        images = samples.reshape(samples.shape[0], *samples.shape[-2:])[:64]
        fig, ax = plt.subplots(figsize=(6, 6))
        ax.imshow(image_grid(images, fill=-1.0), cmap="gray_r", vmin=-1, vmax=1)
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
