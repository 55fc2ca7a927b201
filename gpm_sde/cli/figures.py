r"""Figures of the command line, drawn with matplotlib (the Agg backend, no display needed).

matplotlib is an optional dependency (the `dev` extra): without it the commands still write
their arrays and tables, and say that the figure was skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
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


MISSING = "matplotlib is not installed (pip install matplotlib): figure skipped"


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
        cols = 8
        rows = max(1, -(-images.shape[0] // cols))
        fig, axes = plt.subplots(rows, cols, figsize=(cols, rows), squeeze=False)
        for ax in axes.ravel():
            ax.axis("off")
        for ax, img in zip(axes.ravel(), images, strict=False):
            ax.imshow(img, cmap="gray_r", vmin=-1, vmax=1)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def mixture_density_1d(
    weights: np.ndarray, means: np.ndarray, covs: np.ndarray, axis: int, grid: np.ndarray
) -> np.ndarray:
    """The density of coordinate `axis` of a Gaussian mixture on `grid`."""
    mu = means[:, axis][:, None]
    var = covs[:, axis, axis][:, None]
    comps = np.exp(-0.5 * (grid[None] - mu) ** 2 / var) / np.sqrt(2 * np.pi * var)
    return (weights[:, None] * comps).sum(axis=0)


def histogram_panel(
    ax: Any,
    clouds: dict[str, np.ndarray],
    grid: np.ndarray,
    exact: np.ndarray | None,
    title: str,
    colors: Sequence[str],
) -> None:
    """Overlaid step histograms of the first coordinate of each cloud (and an exact density)."""
    bins = np.linspace(grid[0], grid[-1], 50)
    for (name, y), color in zip(clouds.items(), colors, strict=False):
        ax.hist(y[:, 0], bins=bins, density=True, histtype="step", lw=1.5, color=color, label=name)
    if exact is not None:
        ax.plot(grid, exact, "k--", lw=1, label="exact")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x₁")
    ax.legend(fontsize=7)
