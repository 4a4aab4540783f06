"""Time-series line plots as PNG, for scenario outputs (flood budgets and probes, evacuation curves).

Figures are built with matplotlib's object API (`Figure`, no pyplot), so nothing touches a global
figure manager or a GUI backend and plotting is safe in worker processes and threads; PNGs are drawn
by Agg. Labels may be Chinese: a CJK font (Noto Sans CJK, where installed) backs up the default one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

# Tried in order per glyph (matplotlib >= 3.6 falls back font by font); missing ones are skipped.
FONTS = ["DejaVu Sans", "Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Serif CJK SC", "WenQuanYi Zen Hei"]
DPI = 120


def fonts():
    """A context in which new text falls back to a CJK font (text takes its font when created)."""
    from matplotlib import font_manager, rc_context

    known = {f.name for f in font_manager.fontManager.ttflist}
    return rc_context({"font.family": [f for f in FONTS if f in known] or ["sans-serif"]})


def new_figure(rows: int = 1, *, size: tuple[float, float] = (8.0, 4.5),
               sharex: bool = True) -> tuple[Figure, list[Axes]]:
    """A figure with `rows` stacked axes (constrained layout)."""
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(rows, 1, sharex=sharex, squeeze=False)[:, 0]
    return fig, list(axes)


def draw_lines(ax: Axes, x: Sequence[float] | np.ndarray, series: Mapping[str, Sequence[float] | np.ndarray], *,
               xlabel: str = "", ylabel: str = "", title: str = "",
               hlines: Mapping[str, float] | None = None) -> Axes:
    """One line per entry of `series` (label -> y, same length as x) and dashed horizontal lines
    (label -> y) for thresholds."""
    x = np.asarray(x, float)
    for label, y in series.items():
        y = np.asarray(y, float)
        if y.shape != x.shape:
            raise ValueError(f"series '{label}' has {y.size} values for {x.size} x values")
        ax.plot(x, y, label=label, linewidth=1.6)
    for label, value in (hlines or {}).items():
        ax.axhline(float(value), linestyle="--", linewidth=1.2, color="crimson", label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(True, alpha=0.3)
    if series or hlines:
        ax.legend(loc="best", fontsize="small")
    return ax


def save_png(fig: Figure, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def line_figure(x, series: Mapping[str, Sequence[float] | np.ndarray], *, xlabel: str = "", ylabel: str = "",
                title: str = "", hlines: Mapping[str, float] | None = None,
                size: tuple[float, float] = (8.0, 4.5)) -> Figure:
    with fonts():
        fig, (ax,) = new_figure(1, size=size)
        draw_lines(ax, x, series, xlabel=xlabel, ylabel=ylabel, title=title, hlines=hlines)
    return fig


def line_plot(path: Path | str, x, series: Mapping[str, Sequence[float] | np.ndarray], *, xlabel: str = "",
              ylabel: str = "", title: str = "", hlines: Mapping[str, float] | None = None,
              size: tuple[float, float] = (8.0, 4.5)) -> Path:
    """A line per series against `x`, with optional threshold lines, written as a PNG at `path`."""
    return save_png(line_figure(x, series, xlabel=xlabel, ylabel=ylabel, title=title, hlines=hlines, size=size),
                    path)
