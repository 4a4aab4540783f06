"""Pictures of a flood run, drawn from the CSV files it wrote (so a figure shows exactly what the CSV holds).

`hydrograph.png`: the water budget (cumulative volumes, m³) over the flow rates (m³/s) that make it;
`probes.png`: the depth at each probe with the impassable-depth line.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from simulate.plots import draw_lines, fonts, line_figure, new_figure, save_png

# hydrograph.csv column -> legend label; the budget's sources, then its sinks
BUDGET = {"rain_m3": "rain", "inflow_m3": "inflows", "boundary_in_m3": "in over edges",
          "boundary_out_m3": "out over edges", "drained_m3": "drained (sewers)", "infiltrated_m3": "infiltrated"}


def read_csv(path: Path | str) -> dict[str, np.ndarray]:
    """Numeric columns of a CSV with a header row, by name (empty cells are NaN)."""
    with Path(path).open(newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    values = np.array([[float(v) if v != "" else np.nan for v in row] for row in body], float).reshape(-1, len(header))
    return {name: values[:, i] for i, name in enumerate(header)}


def budget_series(table: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(cumulative volumes m³, mean rates m³/s between records) of the terms that are ever non-zero;
    stored volume always. Rates are at the records' mid-times."""
    t = table["t_s"]
    volumes = {label: table[col] for col, label in BUDGET.items() if col in table and np.any(table[col] != 0)}
    volumes["stored"] = table["storage_m3"]
    dt = np.diff(t)
    ok = dt > 0
    rates = {label: np.diff(v)[ok] / dt[ok] for label, v in volumes.items() if label != "stored"}
    return volumes, rates


def budget_figure(table: dict[str, np.ndarray]) -> Figure:
    """Top: cumulative volumes of the budget terms and the water stored; bottom: their rates."""
    t = table["t_s"]
    volumes, rates = budget_series(table)
    t_mid = ((t[1:] + t[:-1]) / 2)[np.diff(t) > 0]
    with fonts():
        fig, (top, bottom) = new_figure(2, size=(8.0, 7.0))
        draw_lines(top, t / 60.0, volumes, ylabel="volume (m³)", title="Water budget")
        draw_lines(bottom, t_mid / 60.0, rates, xlabel="time (min)", ylabel="rate (m³/s)",
                   title="Flow rates")
    return fig


def probes_figure(table: dict[str, np.ndarray], impassable_m: float) -> Figure:
    depths = {name.split(":", 1)[1]: v for name, v in table.items() if name.startswith("depth_m:")}
    return line_figure(table["t_s"] / 60.0, depths, xlabel="time (min)", ylabel="depth (m)",
                       title="Water depth at probes", hlines={f"impassable ({impassable_m:g} m)": impassable_m})


def write_plots(files: dict[str, Path], folder: Path, *, impassable_m: float) -> dict[str, Path]:
    """PNGs for the CSVs in `files` ("hydrograph", "timeseries"): {"hydrograph_png": ..., "probes_png": ...}."""
    out = {}
    if "hydrograph" in files:
        fig = budget_figure(read_csv(files["hydrograph"]))
        out["hydrograph_png"] = save_png(fig, folder / "hydrograph.png")
    if "timeseries" in files:
        fig = probes_figure(read_csv(files["timeseries"]), impassable_m)
        out["probes_png"] = save_png(fig, folder / "probes.png")
    return out
