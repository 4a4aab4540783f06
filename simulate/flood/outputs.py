"""What a flood run writes: COG rasters, depth frames, time series and the water budget.

Recorders are callbacks for `FloodModel.run(callback=..., every_s=...)`; they only
read the model. Rasters are float32 Cloud-Optimized GeoTIFFs (rasterio's COG
driver) in the grid CRS with NaN as no data.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from layers.base import RasterData
from simulate.flood.model import FloodModel


def write_cog(path: Path, raster: RasterData) -> Path:
    """A float32 COG with NaN nodata, deflate-compressed."""
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = raster.array.shape
    profile = {"driver": "COG", "width": w, "height": h, "count": 1, "dtype": "float32", "nodata": np.nan,
               "crs": raster.crs.to_wkt(), "transform": raster.transform, "compress": "DEFLATE",
               "blocksize": 256, "overview_resampling": "nearest"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.asarray(raster.array, dtype=np.float32), 1)
    return path


def result_rasters(model: FloodModel, folder: Path) -> dict[str, Path]:
    """max_depth (m), max_speed (m/s), time_wet and time_deep (s; NaN never) as COGs."""
    grid = model.grid
    out = {}
    for name in ("max_depth", "max_speed", "time_wet", "time_deep"):
        values = np.where(grid.blocked, np.nan, model.host(name))
        out[name] = write_cog(folder / f"{name}.tif", grid.to_raster(values))
    return out


@dataclass
class FrameWriter:
    """Depth COGs every `interval_s` of simulated time (wet cells only; dry is NaN)."""

    folder: Path
    interval_s: float
    min_depth: float = 0.01
    written: list[Path] = field(default_factory=list)
    _next: float = 0.0

    def __call__(self, model: FloodModel) -> None:
        if self.interval_s <= 0 or model.t < self._next - 1e-6:
            return
        depth = model.depth()
        depth[~(depth >= self.min_depth)] = np.nan
        minute = round(model.t / 60.0)
        self.written.append(write_cog(self.folder / f"depth_{minute:05d}min.tif", model.grid.to_raster(depth)))
        self._next = (np.floor(model.t / self.interval_s + 1e-6) + 1) * self.interval_s


@dataclass
class PointRecorder:
    """Depth and level at named points, and the running water budget, over time."""

    names: list[str]
    x: np.ndarray
    y: np.ndarray
    rows: list[list[float]] = field(default_factory=list)
    budget: list[list[float]] = field(default_factory=list)

    def __call__(self, model: FloodModel) -> None:
        if len(self.names):
            r, c, inside = model.grid.cell_of(self.x, self.y)
            h = model.kernels.to_numpy(model.h)[r, c].astype(float)
            h[~inside | model.grid.blocked[r, c]] = np.nan
            self.rows.append([model.t, *h.tolist(), *(model.grid.z[r, c] + h).tolist()])
        mb = model.mass_balance()
        self.budget.append([model.t, mb.rain_m3, mb.inflow_m3, mb.boundary_in_m3, mb.boundary_out_m3,
                            mb.drained_m3, mb.infiltrated_m3, mb.storage_m3])

    def write(self, folder: Path) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        out = {}
        if len(self.names):
            path = folder / "timeseries.csv"
            with path.open("w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["t_s", *[f"depth_m:{n}" for n in self.names], *[f"level_m:{n}" for n in self.names]])
                w.writerows(self.rows)
            out["timeseries"] = path
        path = folder / "hydrograph.csv"
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["t_s", "rain_m3", "inflow_m3", "boundary_in_m3", "boundary_out_m3", "drained_m3",
                        "infiltrated_m3", "storage_m3"])
            w.writerows(self.budget)
        out["hydrograph"] = path
        return out


def write_mass_balance(model: FloodModel, path: Path) -> Path:
    report = {"backend": model.backend, "steps": model.steps, "t_end_s": model.t,
              "limited_cell_updates": model.limited_cells, **model.mass_balance().as_dict()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    return path
