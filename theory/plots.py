"""Figures for the report, drawn with matplotlib's Agg canvas (no display, no pyplot state)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


@dataclass(frozen=True)
class HistogramPanel:
    """One panel: a histogram of `samples` against the exact `density` on `grid`."""

    title: str
    samples: np.ndarray
    grid: np.ndarray
    density: np.ndarray


def histogram_grid(panels: Sequence[Sequence[HistogramPanel]], title: str, path: Path) -> Path:
    """Draw a rows × columns grid of histogram-versus-density panels and save it as a PNG."""
    rows, cols = len(panels), len(panels[0])
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    for ax, panel in zip(axes.flat, (p for row in panels for p in row), strict=True):
        ax.hist(panel.samples, bins=60, density=True, alpha=0.5, label="simulated")
        ax.plot(panel.grid, panel.density, color="black", lw=1.2, label="exact")
        ax.set_title(panel.title, fontsize=9)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    return path
