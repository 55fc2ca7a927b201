"""Figures for the report, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Three layouts: [`histogram_grid`][theory.figures.histogram_grid] (a histogram of each sample
against an exact density), [`overlay_grid`][theory.figures.overlay_grid] (several samples per
panel over one exact density) and [`panel_row`][theory.figures.panel_row] (one row of 2-D
clouds over density contours, [`CloudPanel`][theory.figures.CloudPanel], or curves along
time, [`CurvePanel`][theory.figures.CurvePanel]).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from gpm_sde import GaussianMixture

MAX_POINTS = 2000
"""The most particles a scatter shows (an evenly spaced subsample)."""


def _grid_axes(rows: int, cols: int) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, np.asarray(fig.subplots(rows, cols, squeeze=False))


def _finish(fig: Figure, axes: np.ndarray, title: str, path: Path, dpi: int) -> Path:
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=dpi)
    return path


@dataclass(frozen=True)
class HistogramPanel:
    """One panel: a histogram of `samples` against the exact `density` on `grid`."""

    title: str
    samples: np.ndarray
    grid: np.ndarray
    density: np.ndarray


def histogram_grid(panels: Sequence[Sequence[HistogramPanel]], title: str, path: Path) -> Path:
    """Draw a rows × columns grid of histogram-versus-density panels and save it as a PNG."""
    fig, axes = _grid_axes(len(panels), len(panels[0]))
    for ax, panel in zip(axes.flat, (p for row in panels for p in row), strict=True):
        ax.hist(panel.samples, bins=60, density=True, alpha=0.5, label="simulated")
        ax.plot(panel.grid, panel.density, color="black", lw=1.2, label="exact")
        ax.set_title(panel.title, fontsize=9)
        ax.tick_params(labelsize=7)
    return _finish(fig, axes, title, path, 110)


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
    fig, axes = _grid_axes(len(panels), len(panels[0]))
    for ax, panel in zip(axes.flat, (p for row in panels for p in row), strict=True):
        bins = np.linspace(panel.grid[0], panel.grid[-1], 61)
        for label, samples in panel.samples.items():
            ax.hist(samples, bins=bins, density=True, histtype="step", lw=1.0, label=label)
        ax.plot(panel.grid, panel.density, color="black", lw=1.0, ls="--", label="exact")
        ax.set_title(panel.title, fontsize=9)
        ax.tick_params(labelsize=7)
    return _finish(fig, axes, title, path, 100)


@dataclass(frozen=True)
class CloudPanel:
    """A scatter of the 2-D cloud `points` over the contours of `log_density` (a vectorised
    `(m, 2) -> (m,)` log-density, or a law whose `log_prob` it is) on the box `extent` =
    (x0, x1, y0, y1); `paths`, if given, are trajectories `(times, paths, 2)` drawn as lines."""

    title: str
    points: np.ndarray
    log_density: Callable[[np.ndarray], np.ndarray] | GaussianMixture
    extent: tuple[float, float, float, float]
    paths: np.ndarray | None = None


@dataclass(frozen=True)
class Curve:
    """One curve of a [`CurvePanel`][theory.figures.CurvePanel]: `y` against `x`, with
    matplotlib's `style` (e.g. `"-"`, `"o"`, `"--"`) and `color` (`None`: the next one). An
    empty `label` leaves the curve out of the legend."""

    label: str
    x: ArrayLike
    y: ArrayLike
    style: str = "-"
    color: str | None = None


@dataclass(frozen=True)
class CurvePanel:
    """Curves against a common axis, `log_y` for a logarithmic vertical axis."""

    title: str
    curves: Sequence[Curve]
    xlabel: str = "s"
    log_y: bool = False
    hlines: Sequence[float] = field(default_factory=tuple)


def _draw_cloud(ax: Axes, panel: CloudPanel) -> None:
    x0, x1, y0, y1 = panel.extent
    gx, gy = np.meshgrid(np.linspace(x0, x1, 160), np.linspace(y0, y1, 160))
    points = np.stack([gx.ravel(), gy.ravel()], axis=1)
    if isinstance(panel.log_density, GaussianMixture):
        log_p = np.asarray(jax.vmap(panel.log_density.log_prob)(jnp.asarray(points)))
    else:
        log_p = np.asarray(panel.log_density(points))
    log_p = log_p.reshape(gx.shape)
    levels = np.max(log_p) - np.array([6.0, 4.5, 3.0, 2.0, 1.0, 0.3])
    pts = panel.points
    if len(pts) > MAX_POINTS:
        pts = pts[:: -(-len(pts) // MAX_POINTS)]
    ax.scatter(pts[:, 0], pts[:, 1], s=1.5, alpha=0.35, color="tab:blue", lw=0)
    if panel.paths is not None:
        for k in range(panel.paths.shape[1]):
            ax.plot(panel.paths[:, k, 0], panel.paths[:, k, 1], color="tab:orange", lw=0.6)
        ax.plot(panel.paths[0, :, 0], panel.paths[0, :, 1], "k.", ms=2)
    ax.contour(gx, gy, log_p, levels=levels, colors="black", linewidths=0.7)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")


def _draw_curves(ax: Axes, panel: CurvePanel) -> None:
    for curve in panel.curves:
        label = curve.label or "_nolegend_"
        (line,) = ax.plot(
            np.asarray(curve.x), np.asarray(curve.y), curve.style, label=label, ms=3.5, lw=1.2
        )
        if curve.color is not None:
            line.set_color(curve.color)
    for level in panel.hlines:
        ax.axhline(level, color="gray", lw=0.8, ls=":")
    if panel.log_y:
        ax.set_yscale("log")
    ax.set_xlabel(panel.xlabel, fontsize=8)
    ax.legend(fontsize=7)


def panel_row(panels: Sequence[CloudPanel | CurvePanel], title: str, path: Path) -> Path:
    """Draw the panels side by side and save the figure as a PNG at `path`."""
    fig = Figure(figsize=(3.4 * len(panels), 3.3), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.asarray(fig.subplots(1, len(panels), squeeze=False)).ravel()
    for ax, panel in zip(axes, panels, strict=True):
        if isinstance(panel, CloudPanel):
            _draw_cloud(ax, panel)
        else:
            _draw_curves(ax, panel)
        ax.set_title(panel.title, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    return path
