"""The "flood-nowcast" process: the flood model run ahead from the live rain and river gauges.

It reads the sensors (`readings`), builds a flood run (`forcing`), runs `FloodProcess` on it and adds
a "forecast" layer: per waterlogging point, the predicted maximum depth, when it peaks, when it first
reaches the point's warning and alarm depths, and the level it reaches. The run's summary carries
the same per point (`forecast`) for `warnings`, which turns a finished job into forecast events.
"""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from simulate.flood.process import FloodInputs, FloodProcess, city_flood_defaults
from simulate.nowcast.forcing import flood_inputs, probe_name
from simulate.nowcast.inputs import NowcastInputs
from simulate.nowcast.readings import Point, Readings, read_sensors
from simulate.process import OutputSpec, Process, ProcessError, ProcessResult, Progress, ProgressReport
from simulate.sensors.model import format_time

FORECAST_LEVELS = ("none", "warning", "alarm")


def snap_to_open(store, points: list[Point], resolution_m: float) -> list[tuple[float, float]]:
    """Each point moved to the centre of the nearest cell water can reach, where its cell is a
    building at this resolution (a probe in a blocked cell reads nothing)."""
    from scipy.ndimage import distance_transform_edt

    from simulate.flood.grid import build_grid

    xy = [(p.x, p.y) for p in points]
    if not points:
        return xy
    buildings = store.read_layer("buildings") if "buildings" in store.layer_names() else None
    grid = build_grid(store.read_raster("ground"), resolution_m, buildings=buildings)
    r, c, inside = grid.cell_of(np.array([p.x for p in points]), np.array([p.y for p in points]))
    if not grid.blocked[r, c].any() or grid.blocked.all():
        return xy
    _, (ri, ci) = distance_transform_edt(grid.blocked, return_indices=True)
    xs, ys = grid.centres()
    return [(float(xs[ci[i, j]]), float(ys[ri[i, j]])) if ok and grid.blocked[i, j] else p
            for p, i, j, ok in zip(xy, r, c, inside)]


def _series(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    data = np.array(rows[1:], dtype=float).reshape(-1, len(rows[0]))
    return data[:, 0], {name.removeprefix("depth_m:"): data[:, k] for k, name in enumerate(rows[0])
                        if name.startswith("depth_m:")}


def point_forecasts(points: list[Point], start: datetime, times: np.ndarray, depths: dict[str, np.ndarray],
                    max_depth: np.ndarray) -> list[dict[str, Any]]:
    """Per point: predicted max depth, when it peaks, when it first reaches each level (ISO or None)."""
    def at(t: float) -> str:
        return format_time(start + timedelta(seconds=float(t)))

    out = []
    for p, peak_raster in zip(points, max_depth):
        d = depths.get(probe_name(p), np.full(len(times), np.nan))
        wet = np.isfinite(d)
        # the raster holds the true maximum; the series, sampled each minute, when it happens
        predicted = float(np.fmax(np.nanmax(d) if wet.any() else np.nan, peak_raster))
        peak_at = at(times[int(np.nanargmax(d))]) if wet.any() else None
        reaches: dict[str, str] = {}
        level = "none"
        for kind, threshold in p.thresholds.levels():      # warning, then alarm
            above = predicted >= threshold if p.thresholds.direction == "above" else predicted <= threshold
            if not above:
                continue
            level = kind
            hit = (d >= threshold) if p.thresholds.direction == "above" else (d <= threshold)
            # a peak between two records still counts: then it is expected at the recorded peak
            reaches[kind] = at(times[int(np.argmax(hit))]) if hit.any() else (peak_at or at(times[-1]))
        out.append({"datastream_id": p.datastream_id, "thing_id": p.thing_id, "name": p.name,
                    "predicted": None if np.isnan(predicted) else round(predicted, 4), "peak_at": peak_at,
                    "reaches": reaches, "level": level, "warning": p.thresholds.warning,
                    "alarm": p.thresholds.alarm, "observed": p.observed, "observed_at": p.observed_at})
    return out


def _sample(raster: Path, xy: list[tuple[float, float]]) -> np.ndarray:
    import rasterio

    if not xy:
        return np.zeros(0)
    with rasterio.open(raster) as src:
        return np.array([v[0] for v in src.sample(xy, masked=False)], dtype=float)


def forecast_layer(readings: Readings, forecasts: list[dict[str, Any]], snapped: list[tuple[float, float]], crs):
    import geopandas as gpd

    rows = [{"name": f["name"], "thing_id": f["thing_id"], "datastream_id": f["datastream_id"],
             "warning_m": f["warning"], "alarm_m": f["alarm"], "predicted_max_m": f["predicted"],
             "peak_at": f["peak_at"], "warning_at": f["reaches"].get("warning"),
             "alarm_at": f["reaches"].get("alarm"), "level": f["level"], "observed_m": f["observed"],
             "snapped_m": float(np.hypot(p.x - sx, p.y - sy))}
            for f, p, (sx, sy) in zip(forecasts, readings.points, snapped)]
    return gpd.GeoDataFrame(rows, geometry=gpd.points_from_xy([p.x for p in readings.points],
                                                               [p.y for p in readings.points]), crs=crs)


class NowcastProcess(Process):
    id: ClassVar[str] = "flood-nowcast"
    title: ClassVar[str] = "Flood nowcast from live rain and river gauges"
    description: ClassVar[str] = ("The flood model run a few hours ahead from the latest rain-gauge intensities "
                                  "(an IDW rain field, held or decaying) and river stages; predicted depths at the "
                                  "waterlogging points against their thresholds (forecast warnings).")
    version: ClassVar[str] = "1.0.0"
    inputs: ClassVar[type[BaseModel]] = NowcastInputs
    outputs: ClassVar[dict[str, OutputSpec]] = {
        **FloodProcess.outputs,
        "forecast": OutputSpec("Forecast depth at the waterlogging points", "layer", "application/geo+json", "m"),
    }

    def execute(self, store, inputs: BaseModel, workdir: Path, progress: Progress,
                results=None) -> ProcessResult:
        from simulate.sensors.service import SensorService

        inp = inputs if isinstance(inputs, NowcastInputs) else NowcastInputs.model_validate(inputs)
        progress(ProgressReport(0.0, "reading the sensors"))
        root = getattr(store, "root", None)
        if root is None or not (Path(root) / "sensors" / "sensors.sqlite").is_file():
            raise ProcessError("the twin has no sensor network to nowcast from", field="sensors")
        if "ground" not in store.raster_names():
            raise ProcessError("the twin has no 'ground' raster (bare earth) to flood", field="resolution_m")
        manifest = store.manifest()
        city = city_flood_defaults(store)
        start = inp.start()
        service = SensorService.for_twin(root)
        try:
            readings = read_sensors(service, manifest.crs, start, inp.lookback_s,
                                    [r.gauge for r in city.rivers if r.gauge])
        finally:
            service.close()
        snapped = snap_to_open(store, readings.points, inp.resolution_m)
        flood, notes = flood_inputs(readings, inp, city.rivers, manifest.extent, snapped)

        def flood_progress(report: ProgressReport) -> None:
            progress(ProgressReport(5.0 + 0.9 * report.percent, report.message, report.sim_time_s))

        result = FloodProcess().execute(store, flood, workdir, flood_progress, results)
        if readings.points:
            times, depths = _series(result.files["timeseries"])
            peaks = _sample(result.rasters["max_depth"], snapped)
        else:
            times, depths, peaks = np.zeros(1), {}, np.zeros(0)
        forecasts = point_forecasts(readings.points, start, times, depths, peaks)
        layers = dict(result.layers)
        if readings.points:
            layers["forecast"] = forecast_layer(readings, forecasts, snapped, manifest.crs)
        counts = {level: sum(f["level"] == level for f in forecasts) for level in FORECAST_LEVELS}
        summary = {"issued_at": format_time(start), "horizon_s": inp.horizon_s, "rain_ahead": inp.rain_ahead,
                   "readings": readings.summary(), "forecast": forecasts, "levels": counts, "notes": notes,
                   "flood": result.summary}
        progress(ProgressReport(100.0, f"{counts['alarm']} alarm, {counts['warning']} warning forecast",
                                result.summary.get("simulated_s")))
        return ProcessResult(summary=summary, layers=layers, rasters=result.rasters, files=result.files)

    def estimate_seconds(self, store, inputs: BaseModel) -> float | None:
        inp = inputs if isinstance(inputs, NowcastInputs) else NowcastInputs.model_validate(inputs)
        try:
            flood = FloodInputs(resolution_m=inp.resolution_m, horizon=inp.horizon_s, backend=inp.backend)
        except ValueError:
            return None
        estimate = FloodProcess().estimate_seconds(store, flood)
        return None if estimate is None else estimate + 2.0
