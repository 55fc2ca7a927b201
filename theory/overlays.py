"""Figures with several simulated clouds per panel, overlaid on one exact density curve."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


@dataclass(frozen=True)
class OverlayPanel:
    """One panel: a histogram per entry of `samples` (label -> 1-D sample) against the exact
    `density` on `grid`."""

    title: str
    samples: Mapping[str, np.ndarray]
    grid: np.ndarray
    density: np.ndarray


def overlay_grid(panels: Sequence[Sequence[OverlayPanel]], title: str, path: Path) -> Path:
    """Draw a rows × columns grid of overlaid histograms and exact densities; save a PNG."""
    rows, cols = len(panels), len(panels[0])
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    for ax, panel in zip(axes.flat, (p for row in panels for p in row), strict=True):
        bins = np.linspace(panel.grid[0], panel.grid[-1], 61)
        for label, samples in panel.samples.items():
            ax.hist(samples, bins=bins, density=True, histtype="step", lw=1.0, label=label)
        ax.plot(panel.grid, panel.density, color="black", lw=1.0, ls="--", label="exact")
        ax.set_title(panel.title, fontsize=9)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=100)
    return path
