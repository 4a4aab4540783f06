"""The "flood" process: rain, inflows and boundary levels on a twin, through `FloodModel`.

Inputs are a pydantic model (validated by the job manager with `inputs.model_validate`);
checks that need the twin (a point outside the grid, a missing ground raster) raise
`FloodInputError` naming the field. A run starts from the city's flood defaults (city.toml
`[scenarios.flood]`, in the twin manifest's rules): its sewer capacity, and its rivers held at
their normal level on their edge spans, unless the inputs say otherwise (`resolve_boundaries`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulate.flood.errors import FloodInputError
from simulate.flood.forcing import (
    EDGES,
    DrainageZone,
    EdgeInflow,
    Forcing,
    FreeOutflow,
    GaugeRain,
    PointInflow,
    Series,
    StageBoundary,
    UniformRain,
    hyetograph,
)
from simulate.process import (
    OutputSpec,
    Process,
    ProcessResult,
    Progress,
    ProgressReport,
)
from twin.config import FloodDefaults, RiverStageConfig
from twin.errors import TwinError

_UNITS_S = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0, "d": 86400.0}
_ISO = re.compile(r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
                  r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")
_SHORT = re.compile(r"^(?P<v>\d+(?:\.\d+)?)\s*(?P<u>s|sec|m|min|h|hr|d)$")


def parse_duration(value: str | float) -> float:
    """Seconds from a number of seconds, an ISO 8601 duration ("PT2H30M") or "2h", "90min", "45s"."""
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip().lower()
        iso, short = _ISO.match(text.upper()), _SHORT.match(text)
        if text.upper().startswith("P") and iso and any(iso.groupdict().values()):
            parts = {k: float(v) for k, v in iso.groupdict().items() if v}
            seconds = (parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60
                       + parts.get("s", 0))
        elif short:
            seconds = float(short["v"]) * _UNITS_S[short["u"]]
        else:
            try:
                seconds = float(text)
            except ValueError:
                raise ValueError(f"'{value}' is not a duration (use seconds, ISO 8601 like PT2H, or 2h/90min)") \
                    from None
    if not (np.isfinite(seconds) and seconds > 0):
        raise ValueError("a duration must be positive")
    return seconds


class InflowInput(BaseModel):
    """A point (x, y) or an edge inflow, constant (discharge_m3s) or a hydrograph [[t_s, m3/s], ...]."""

    model_config = ConfigDict(extra="forbid")
    name: str = "inflow"
    x: float | None = None
    y: float | None = None
    edge: Literal["west", "east", "north", "south"] | None = None
    discharge_m3s: float | None = Field(None, ge=0)
    hydrograph: list[tuple[float, float]] | None = None

    @model_validator(mode="after")
    def _one_place_one_flow(self) -> InflowInput:
        if (self.x is None) != (self.y is None) or ((self.x is None) == (self.edge is None)):
            raise ValueError("give either x and y, or edge")
        if (self.discharge_m3s is None) == (self.hydrograph is None):
            raise ValueError("give either discharge_m3s or hydrograph")
        if self.hydrograph is not None:
            _check_series(self.hydrograph, non_negative=True)
        return self

    def series(self) -> Series:
        if self.hydrograph is None:
            return Series.constant(float(self.discharge_m3s or 0.0))
        t, v = zip(*self.hydrograph)
        return Series(tuple(map(float, t)), tuple(map(float, v)), "linear")


class StageInput(BaseModel):
    """A water level held outside an edge: constant level_m or [[t_s, level_m], ...]."""

    model_config = ConfigDict(extra="forbid")
    edge: Literal["west", "east", "north", "south"]
    level_m: float | None = None
    hydrograph: list[tuple[float, float]] | None = None
    span: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _one_level(self) -> StageInput:
        if (self.level_m is None) == (self.hydrograph is None):
            raise ValueError("give either level_m or hydrograph")
        if self.hydrograph is not None:
            _check_series(self.hydrograph, non_negative=False)
        return self

    def series(self) -> Series:
        if self.hydrograph is None:
            return Series.constant(float(self.level_m or 0.0))
        t, v = zip(*self.hydrograph)
        return Series(tuple(map(float, t)), tuple(map(float, v)), "linear")


class GaugeInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: float
    y: float
    rain_mm: float = Field(ge=0)


class DrainageZoneInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    geometry: dict[str, Any] = Field(description="GeoJSON polygon in the project CRS")
    capacity_mm_h: float = Field(ge=0)


class ProbeInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    x: float
    y: float


def _check_series(points: list[tuple[float, float]], *, non_negative: bool) -> None:
    t = np.array([p[0] for p in points], float)
    v = np.array([p[1] for p in points], float)
    if len(t) == 0 or np.any(np.diff(t) <= 0) or not np.all(np.isfinite(v)):
        raise ValueError("a hydrograph needs increasing times and finite values")
    if non_negative and np.any(v < 0):
        raise ValueError("discharges must be >= 0")


class FloodInputs(BaseModel):
    """Inputs of the flood process. Lengths in metres of the project CRS, times from the start."""

    model_config = ConfigDict(extra="forbid")
    rain_mm: float = Field(0.0, ge=0, le=2000, description="total rain depth (mm)")
    duration: str | float = Field("1h", description="rain duration: seconds, ISO 8601 (PT2H) or 2h / 90min")
    hyetograph: list[float] | None = Field(None, description="relative weights of equal rain intervals")
    rain_gauges: list[GaugeInput] | None = Field(None, description="gauge totals (mm), IDW-interpolated")
    resolution_m: float = Field(10.0, ge=2, le=50, description="grid cell size (m)")
    inflows: list[InflowInput] = Field(default_factory=list)
    stages: list[StageInput] = Field(default_factory=list)
    free_edges: list[Literal["west", "east", "north", "south"]] = Field(default_factory=lambda: list(EDGES))
    drainage_mm_h: float | None = Field(
        None, ge=0, description="sewer capacity everywhere (mm/h); default: the city's (scenarios.flood in "
                                "city.toml), 0 where the twin has none")
    river_level_m: float | None = Field(
        None, ge=-20, le=100, description="hold every river of the city (scenarios.flood.rivers) at this level "
                                          "(m, terrain datum) as a stage boundary on its edge span")
    river_levels: dict[str, float] = Field(
        default_factory=dict, description="level (m) per river name; overrides river_level_m for that river")
    use_city_rivers: bool = Field(
        True, description="hold the city's rivers at their normal level when no level is given for them; "
                          "false: only rivers given a level are stage boundaries, their edges otherwise free")
    drainage_zones: list[DrainageZoneInput] = Field(default_factory=list)
    infiltration_mm_h: float = Field(0.0, ge=0, description="constant infiltration capacity (mm/h)")
    horizon: str | float | None = Field(None, description="simulated time; default duration + 1 h")
    frame_interval_min: float = Field(10.0, ge=0, description="depth frames every N minutes (0: none)")
    probes: list[ProbeInput] = Field(default_factory=list, description="points for depth time series")
    backend: Literal["auto", "numpy", "numba", "gpu"] = "auto"
    impassable_depth_m: float = Field(0.3, gt=0)
    flooded_depth_m: float = Field(0.15, gt=0)
    manning_default: float = Field(0.035, gt=0, le=0.5)
    manning_road: float = Field(0.016, gt=0, le=0.5)

    @field_validator("duration", "horizon")
    @classmethod
    def _duration(cls, value: str | float | None) -> str | float | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("hyetograph")
    @classmethod
    def _weights(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (any(w < 0 for w in value) or sum(value) <= 0):
            raise ValueError("weights must be >= 0 with a positive sum")
        return value

    @property
    def duration_s(self) -> float:
        return parse_duration(self.duration)

    @property
    def horizon_s(self) -> float:
        return parse_duration(self.horizon) if self.horizon is not None else self.duration_s + 3600.0


@dataclass(frozen=True)
class RiverStage:
    """A city river held at `level_m` on its edge span in this run, and why that level."""

    river: RiverStageConfig
    level_m: float
    source: str          # "river_levels" | "river_level_m" | "normal level"


@dataclass(frozen=True)
class Boundaries:
    """Drainage and river stages a run uses once the city's defaults are applied."""

    drainage_mm_h: float
    drainage_source: str                      # "input" | "city" | "none"
    rivers: tuple[RiverStage, ...] = ()


def city_flood_defaults(store) -> FloodDefaults:
    """The city's flood defaults (city.toml `[scenarios.flood]`, carried in the manifest's rules);
    the schema defaults (no drainage, no rivers) for twins built before they were recorded."""
    try:
        raw = ((store.manifest().rules.get("scenarios") or {}).get("flood")) or {}
    except TwinError:
        raw = {}
    try:
        return FloodDefaults.model_validate(raw)
    except ValidationError as exc:
        raise FloodInputError(f"the twin's flood defaults (scenarios.flood) are invalid: {exc.errors()[0]['msg']}",
                              field="drainage_mm_h") from None


def resolve_boundaries(inputs: FloodInputs, city: FloodDefaults | None = None) -> Boundaries:
    """Drainage: the input, else the city's. Rivers: each configured river at its level from
    `river_levels`, else `river_level_m`, else (with `use_city_rivers`) its normal level."""
    city = city or FloodDefaults()
    names = {r.name for r in city.rivers} | {r.name_zh for r in city.rivers if r.name_zh}
    unknown = sorted(set(inputs.river_levels) - names)
    if unknown:
        known = ", ".join(sorted({r.name for r in city.rivers})) or "none configured"
        raise FloodInputError(f"no river named {', '.join(unknown)} in this city (rivers: {known})",
                              field="river_levels")
    if inputs.river_level_m is not None and not city.rivers:
        raise FloodInputError("this twin has no rivers to raise (scenarios.flood.rivers in city.toml)",
                              field="river_level_m")
    rivers = []
    for river in city.rivers:
        given = inputs.river_levels.get(river.name, inputs.river_levels.get(river.name_zh or ""))
        if given is not None:
            rivers.append(RiverStage(river, float(given), "river_levels"))
        elif inputs.river_level_m is not None:
            rivers.append(RiverStage(river, inputs.river_level_m, "river_level_m"))
        elif inputs.use_city_rivers:
            rivers.append(RiverStage(river, river.normal_level_m, "normal level"))
    if inputs.drainage_mm_h is not None:
        drainage, source = inputs.drainage_mm_h, "input"
    else:
        drainage, source = city.drainage_mm_h, ("city" if city.drainage_mm_h > 0 else "none")
    return Boundaries(drainage, source, tuple(rivers))


def build_forcing(inputs: FloodInputs, boundaries: Boundaries | None = None) -> Forcing:
    """Forcing from validated inputs and the boundaries resolved against the city's defaults
    (default: `resolve_boundaries(inputs)`, a city without defaults; no twin needed).

    Stages given as inputs come first and own their edge faces, then the city's rivers. A stage on a
    whole edge replaces its free outflow; one on a span (a river crossing) leaves the rest of the edge free."""
    boundaries = boundaries or resolve_boundaries(inputs)
    if inputs.rain_gauges:
        shape = hyetograph(1.0, inputs.duration_s, inputs.hyetograph)
        rain: UniformRain | GaugeRain | None = GaugeRain(
            xy=tuple((g.x, g.y) for g in inputs.rain_gauges),
            intensity=tuple(Series(shape.times, tuple(v * g.rain_mm for v in shape.values), "step", shape.end)
                            for g in inputs.rain_gauges))
    elif inputs.rain_mm > 0:
        rain = UniformRain(hyetograph(inputs.rain_mm, inputs.duration_s, inputs.hyetograph))
    else:
        rain = None
    stage_edges = {s.edge for s in inputs.stages if s.span is None}
    from shapely.errors import GEOSException
    from shapely.geometry import shape as to_shape

    try:
        zones = [DrainageZone(to_shape(z.geometry), z.capacity_mm_h) for z in inputs.drainage_zones]
    except (AttributeError, KeyError, TypeError, ValueError, GEOSException) as exc:
        raise FloodInputError(f"not a GeoJSON geometry: {exc}", field="drainage_zones") from None
    rivers = [StageBoundary(r.river.edge, Series.constant(r.level_m), r.river.span) for r in boundaries.rivers]
    return Forcing(
        rain=rain,
        inflows=[PointInflow(i.x, i.y, i.series(), i.name) for i in inputs.inflows if i.edge is None],
        edge_inflows=[EdgeInflow(i.edge, i.series(), name=i.name) for i in inputs.inflows if i.edge is not None],
        stages=[StageBoundary(s.edge, s.series(), s.span) for s in inputs.stages] + rivers,
        free=[FreeOutflow(e) for e in inputs.free_edges if e not in stage_edges],
        drainage_mm_h=boundaries.drainage_mm_h, drainage_zones=zones, infiltration_mm_h=inputs.infiltration_mm_h)


def boundaries_summary(inputs: FloodInputs, boundaries: Boundaries, stage_faces: np.ndarray) -> dict[str, Any]:
    """What held the water in and let it out, for the run summary. `stage_faces`: open boundary
    faces per stage, in the forcing's order (input stages, then rivers)."""
    counts = np.bincount(stage_faces, minlength=len(inputs.stages) + len(boundaries.rivers))
    stages = [{"edge": s.edge, "span": s.span, "level_m": s.level_m, "source": "stages",
               "faces": int(counts[k])} for k, s in enumerate(inputs.stages)]
    for k, r in enumerate(boundaries.rivers, start=len(inputs.stages)):
        warning = r.river.warning_level_m
        stages.append({"name": r.river.name, "name_zh": r.river.name_zh, "edge": r.river.edge,
                       "span": list(r.river.span), "level_m": r.level_m, "source": r.source,
                       "normal_level_m": r.river.normal_level_m, "warning_level_m": warning,
                       "above_warning": None if warning is None else r.level_m >= warning,
                       "gauge": r.river.gauge, "faces": int(counts[k])})
    stage_edges = {s.edge for s in inputs.stages if s.span is None}
    return {"drainage_mm_h": boundaries.drainage_mm_h, "drainage_source": boundaries.drainage_source,
            "drainage_zones": len(inputs.drainage_zones), "stages": stages,
            "free_edges": [e for e in inputs.free_edges if e not in stage_edges]}


class FloodProcess(Process):
    id: ClassVar[str] = "flood"
    title: ClassVar[str] = "Pluvial and fluvial flood (2D local-inertial)"
    description: ClassVar[str] = ("Rain, inflow hydrographs and boundary levels routed over the twin's ground "
                                  "with buildings as obstacles (LISFLOOD-FP ACC scheme); maximum depth, speed, "
                                  "arrival times and the buildings, roads and facilities reached. Sewer capacity "
                                  "and river levels default to the city's (drainage_mm_h, river_level_m).")
    version: ClassVar[str] = "1.0.0"
    inputs: ClassVar[type[BaseModel]] = FloodInputs
    outputs: ClassVar[dict[str, OutputSpec]] = {
        "summary": OutputSpec("Run summary and water budget", "summary"),
        "max_depth": OutputSpec("Maximum water depth", "raster", "image/tiff; application=geotiff; profile=cloud-optimized", "m"),
        "max_speed": OutputSpec("Maximum flow speed", "raster", "image/tiff; application=geotiff; profile=cloud-optimized", "m/s"),
        "time_wet": OutputSpec("Time of first wetting (> 1 cm)", "raster", "image/tiff; application=geotiff; profile=cloud-optimized", "s"),
        "time_deep": OutputSpec("Time depth first exceeds the impassable depth", "raster", "image/tiff; application=geotiff; profile=cloud-optimized", "s"),
        "buildings": OutputSpec("Buildings with depth and people", "layer", "application/geo+json", "m"),
        "roads": OutputSpec("Road segments with impassable time", "layer", "application/geo+json", "s"),
        "facilities": OutputSpec("Facilities (points of interest) at risk", "layer", "application/geo+json", "m"),
        "hydrograph": OutputSpec("Water budget over time", "file", "text/csv", "m3"),
        "timeseries": OutputSpec("Depth and level at probes", "file", "text/csv", "m"),
        "hydrograph_png": OutputSpec("Water budget and flow rates over time (plot)", "file", "image/png", "m3"),
        "probes_png": OutputSpec("Depth at probes over time (plot)", "file", "image/png", "m"),
        "mass_balance": OutputSpec("Water budget and closing error", "file", "application/json", "m3"),
        "frames": OutputSpec("Depth frames (COG per frame)", "file", "image/tiff; application=geotiff", "m"),
    }
    sync_limit_s: ClassVar[float] = 30.0

    def execute(self, store, inputs: BaseModel, workdir: Path, progress: Progress,
                results=None) -> ProcessResult:
        from simulate.flood.exposure import (
            buildings_exposure,
            facilities_exposure,
            roads_exposure,
        )
        from simulate.flood.grid import ManningTable, build_grid
        from simulate.flood.model import FloodModel
        from simulate.flood.outputs import (
            FrameWriter,
            PointRecorder,
            result_rasters,
            write_mass_balance,
        )
        from simulate.flood.plots import write_plots

        inp = inputs if isinstance(inputs, FloodInputs) else FloodInputs.model_validate(inputs)
        started = time.perf_counter()
        workdir = Path(workdir)
        progress(ProgressReport(0.0, "building the grid"))
        if "ground" not in store.raster_names():
            raise FloodInputError("the twin has no 'ground' raster (bare earth) to flood", field="resolution_m")
        layers = set(store.layer_names())
        buildings = store.read_layer("buildings") if "buildings" in layers else None
        roads = store.read_layer("roads") if "roads" in layers else None
        pois = store.read_layer("pois") if "pois" in layers else None
        grid = build_grid(store.read_raster("ground"), inp.resolution_m, buildings=buildings, roads=roads,
                          manning=ManningTable(default=inp.manning_default, road=inp.manning_road))
        boundaries = resolve_boundaries(inp, city_flood_defaults(store))
        model = FloodModel(grid, build_forcing(inp, boundaries), backend=inp.backend,
                           deep_depth=inp.impassable_depth_m)
        horizon = inp.horizon_s
        frames = FrameWriter(workdir / "frames", inp.frame_interval_min * 60.0)
        probes = PointRecorder([p.name for p in inp.probes], np.array([p.x for p in inp.probes]),
                               np.array([p.y for p in inp.probes]))
        last = [time.perf_counter()]

        def on_tick(m: FloodModel) -> None:
            frames(m)
            probes(m)
            now = time.perf_counter()
            if now - last[0] > 1.0:
                last[0] = now
                progress(ProgressReport(5.0 + 85.0 * m.t / horizon, f"t = {m.t / 60:.0f} min", m.t))

        frames(model)
        probes(model)
        tick = 60.0 if inp.frame_interval_min == 0 else min(60.0, inp.frame_interval_min * 60.0)
        model.run(horizon, callback=on_tick, every_s=tick)
        progress(ProgressReport(90.0, "writing rasters and exposure", model.t))
        rasters = result_rasters(model, workdir)
        files = probes.write(workdir)
        files["mass_balance"] = write_mass_balance(model, workdir / "mass_balance.json")
        files.update(write_plots(files, workdir, impassable_m=inp.impassable_depth_m))
        if frames.written:
            files["frames"] = workdir / "frames"
        max_depth, time_deep = model.host("max_depth"), model.host("time_deep")
        out_layers = {}
        summary_exposure: dict[str, Any] = {}
        if buildings is not None:
            b = buildings_exposure(buildings, grid, max_depth, flooded_depth=inp.flooded_depth_m)
            out_layers["buildings"] = b[b["flooded"]]
            summary_exposure["buildings_flooded"] = int(b["flooded"].sum())
            summary_exposure["people_in_flooded_buildings"] = float(b.loc[b["flooded"], "people"].sum())
            summary_exposure["people_source"] = {k: int(v) for k, v in b["people_source"].value_counts().items()}
        if roads is not None:
            r = roads_exposure(roads, grid, max_depth, time_deep, impassable_depth=inp.impassable_depth_m)
            out_layers["roads"] = r[r["impassable"]]
            summary_exposure["road_segments_impassable"] = int(r["impassable"].sum())
            summary_exposure["road_km_impassable"] = float(r.loc[r["impassable"], "geometry"].length.sum() / 1e3)
        if pois is not None:
            f = facilities_exposure(pois, grid, max_depth, model.host("time_wet"), at_risk_depth=inp.flooded_depth_m)
            out_layers["facilities"] = f[f["at_risk"]]
            summary_exposure["facilities_at_risk"] = int(f["at_risk"].sum())
        mb = model.mass_balance()
        wet = max_depth[~grid.blocked]
        summary = {
            "backend": model.backend, "grid": {"rows": grid.shape[0], "cols": grid.shape[1],
                                               "resolution_m": grid.dx, "blocked_cells": int(grid.blocked.sum())},
            "steps": model.steps, "simulated_s": model.t, "wall_s": time.perf_counter() - started,
            "max_depth_m": float(np.nanmax(wet)) if wet.size else 0.0,
            "flooded_area_m2": float((wet >= inp.flooded_depth_m).sum() * grid.cell_area),
            "boundaries": boundaries_summary(inp, boundaries, model.forcing.boundary["stage"].group),
            "mass_balance": mb.as_dict(), "exposure": summary_exposure, "notes": grid.notes,
        }
        progress(ProgressReport(100.0, "done", model.t))
        return ProcessResult(summary=summary, layers=out_layers, rasters=rasters, files=files)

    def estimate_seconds(self, store, inputs: BaseModel) -> float | None:
        inp = inputs if isinstance(inputs, FloodInputs) else FloodInputs.model_validate(inputs)
        try:
            bounds = store.manifest().extent
        except TwinError:  # an estimate only: no manifest, no estimate
            return None
        cells = max((bounds[2] - bounds[0]) * (bounds[3] - bounds[1]) / inp.resolution_m ** 2, 1.0)
        steps = inp.horizon_s / min(0.7 * inp.resolution_m / np.sqrt(9.81 * 1.0), 10.0)
        rate = 2e6 if inp.backend == "numpy" else 3e7      # cell updates per second, CPU, incl. bookkeeping
        return float(cells * steps / rate + 2.0)
