"""Figures of 2-D particle clouds over density contours, and of curves along time.

Drawn with matplotlib's Agg canvas (no display, no pyplot state), like
[`theory.plots`][theory.plots]. A figure is one row of panels, each a
[`CloudPanel`][theory.cloud_figures.CloudPanel] or a
[`CurvePanel`][theory.cloud_figures.CurvePanel].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

MAX_POINTS = 2000
"""The most particles a scatter shows (an evenly spaced subsample)."""


@dataclass(frozen=True)
class CloudPanel:
    """A scatter of the 2-D cloud `points` over the contours of `log_density` (a vectorised
    `(m, 2) -> (m,)` log-density) on the box `extent` = (x0, x1, y0, y1); `paths`, if given,
    are trajectories `(times, paths, 2)` drawn as lines."""

    title: str
    points: np.ndarray
    log_density: Callable[[np.ndarray], np.ndarray]
    extent: tuple[float, float, float, float]
    paths: np.ndarray | None = None


@dataclass(frozen=True)
class Curve:
    """One curve of a [`CurvePanel`][theory.cloud_figures.CurvePanel]: `y` against `x`, with
    matplotlib's `style` (e.g. `"-"`, `"o"`, `"--"`) and `color` (`None`: the next one). An
    empty `label` leaves the curve out of the legend."""

    label: str
    x: np.ndarray
    y: np.ndarray
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
    log_p = panel.log_density(np.stack([gx.ravel(), gy.ravel()], axis=1)).reshape(gx.shape)
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
        (line,) = ax.plot(curve.x, curve.y, curve.style, label=label, ms=3.5, lw=1.2)
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
