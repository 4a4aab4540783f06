"""Forcing of the flood model: rain, inflows, boundaries and sinks.

Declarative pieces (`UniformRain`, `GaugeRain`, `PointInflow`, `EdgeInflow`,
`StageBoundary`, `FreeOutflow`, `DrainageZone`) are collected in `Forcing` and
bound to a grid with `Forcing.bind(grid)`, which turns them into cell and face
arrays the model uses between steps. Units: rain and sinks in mm/h, discharges
in m3/s, levels in metres of the grid's vertical datum, times in seconds from
the start of the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from simulate.flood.errors import FloodInputError
from simulate.flood.grid import FloodGrid

Edge = Literal["west", "east", "north", "south"]
EDGES: tuple[Edge, ...] = ("west", "east", "north", "south")
MM_H = 1.0 / 3.6e6          # (m/s) per (mm/h)


@dataclass(frozen=True)
class Series:
    """A time series: `step` holds each value until the next time, `linear` interpolates.
    Before the first time the first value holds, after the last the last, and from `end` on 0."""

    times: tuple[float, ...]
    values: tuple[float, ...]
    kind: Literal["step", "linear"] = "linear"
    end: float | None = None

    def __post_init__(self) -> None:
        t = np.asarray(self.times, float)
        if len(t) == 0 or len(t) != len(self.values):
            raise FloodInputError("a series needs as many times as values (at least one)", field="series")
        if np.any(np.diff(t) <= 0):
            raise FloodInputError("series times must increase", field="series")
        if not np.all(np.isfinite(np.asarray(self.values, float))):
            raise FloodInputError("series values must be finite", field="series")

    @classmethod
    def constant(cls, value: float) -> Series:
        return cls((0.0,), (float(value),), "step")

    def at(self, t: float) -> float:
        times, values = np.asarray(self.times), np.asarray(self.values)
        if self.end is not None and t >= self.end:
            return 0.0
        if self.kind == "linear":
            return float(np.interp(t, times, values))
        k = int(np.searchsorted(times, t, side="right")) - 1
        return float(values[max(k, 0)])

    def key(self, t: float) -> int:
        """Which piece of a step series `t` is in (changes exactly when the value may)."""
        if self.end is not None and t >= self.end:
            return -1
        return int(np.searchsorted(np.asarray(self.times), t, side="right"))


def hyetograph(total_mm: float, duration_s: float, weights: Sequence[float] | None = None) -> Series:
    """Intensities (mm/h) for `total_mm` over `duration_s` in equal intervals shaped by `weights`."""
    if total_mm < 0 or duration_s <= 0:
        raise FloodInputError("rain needs a depth >= 0 and a positive duration", field="rain_mm")
    w = np.ones(1) if weights is None or len(weights) == 0 else np.asarray(weights, float)
    if np.any(w < 0) or w.sum() <= 0:
        raise FloodInputError("hyetograph weights must be >= 0 with a positive sum", field="hyetograph")
    step = duration_s / len(w)
    mm_h = total_mm * (w / w.sum()) / (step / 3600.0)
    return Series(tuple(float(v) for v in np.arange(len(w)) * step), tuple(float(v) for v in mm_h), "step",
                  end=float(duration_s))


@dataclass(frozen=True)
class UniformRain:
    """The same intensity (mm/h, step series) everywhere."""

    intensity: Series


@dataclass(frozen=True)
class GaugeRain:
    """Rain gauges (x, y) each with an intensity series (mm/h); the field between them is
    inverse-distance weighted with `power`."""

    xy: tuple[tuple[float, float], ...]
    intensity: tuple[Series, ...]
    power: float = 2.0

    def __post_init__(self) -> None:
        if len(self.xy) == 0 or len(self.xy) != len(self.intensity):
            raise FloodInputError("give one intensity series per gauge", field="rain_gauges")


@dataclass(frozen=True)
class PointInflow:
    """A hydrograph (m3/s) entering the cell at (x, y)."""

    x: float
    y: float
    discharge: Series
    name: str = "inflow"


@dataclass(frozen=True)
class EdgeInflow:
    """A hydrograph (m3/s in total) entering through an edge, spread evenly over its open faces.
    `span` limits it to (from, to) along the edge (x for north/south, y for west/east)."""

    edge: Edge
    discharge: Series
    span: tuple[float, float] | None = None
    name: str = "edge inflow"


@dataclass(frozen=True)
class StageBoundary:
    """A water level (m) held just outside an edge; water flows in or out with the gradient."""

    edge: Edge
    level: Series
    span: tuple[float, float] | None = None


@dataclass(frozen=True)
class FreeOutflow:
    """Water leaves an edge at normal depth for the energy `slope` (never flows in)."""

    edge: Edge
    slope: float = 1e-3
    span: tuple[float, float] | None = None


@dataclass(frozen=True)
class DrainageZone:
    """A sewer capacity (mm/h) over a polygon (shapely geometry in the grid CRS)."""

    geometry: object
    capacity_mm_h: float


@dataclass
class Forcing:
    rain: UniformRain | GaugeRain | None = None
    inflows: list[PointInflow] = field(default_factory=list)
    edge_inflows: list[EdgeInflow] = field(default_factory=list)
    stages: list[StageBoundary] = field(default_factory=list)
    free: list[FreeOutflow] = field(default_factory=list)
    drainage_mm_h: float = 0.0                 # everywhere on open ground
    drainage_zones: list[DrainageZone] = field(default_factory=list)   # override the uniform value inside
    infiltration_mm_h: float = 0.0

    def bind(self, grid: FloodGrid) -> BoundForcing:
        return BoundForcing(self, grid)


@dataclass
class BoundaryFaces:
    """Open edge faces of one kind, flattened. `axis` 0: x faces (qx), 1: y faces (qy)."""

    axis: np.ndarray        # (k,) 0/1
    face: np.ndarray        # (k,) flat index into qx (axis 0) or qy (axis 1)
    cell: np.ndarray        # (k,) flat index of the inside cell
    sign: np.ndarray        # (k,) +1 when outflow is a positive discharge
    dist: np.ndarray        # (k,) centre-to-ghost distance (m)
    width: np.ndarray       # (k,) face width (m)
    slope: np.ndarray       # (k,) free outflow energy slope (0 for stages)
    series: list[Series | None]
    group: np.ndarray       # (k,) which series each face uses (stages)


class BoundForcing:
    """Forcing turned into arrays on one grid (host NumPy arrays)."""

    def __init__(self, forcing: Forcing, grid: FloodGrid):
        self.forcing, self.grid = forcing, grid
        open_ = ~grid.blocked
        if not open_.any():
            raise FloodInputError("every cell is blocked (buildings or no terrain)", field="resolution_m")
        self._roof_target = _nearest_open(grid)
        self._rain_key: object = None
        self._rain: np.ndarray = np.zeros(grid.shape)
        self._idw = _idw_weights(grid, forcing.rain) if isinstance(forcing.rain, GaugeRain) else None
        # point and edge sources
        rows, cols, series, names = [], [], [], []
        for inflow in forcing.inflows:
            r, c, inside = grid.cell_of(inflow.x, inflow.y)
            if not inside:
                raise FloodInputError(f"inflow '{inflow.name}' at ({inflow.x}, {inflow.y}) is outside the grid",
                                      field="inflows")
            r, c = _nearest_open_cell(grid, int(r), int(c))
            rows.append(np.array([r])), cols.append(np.array([c])), series.append((inflow.discharge, np.ones(1)))
            names.append(inflow.name)
        self.source_names = names
        self._sources = [(np.ravel_multi_index((r, c), grid.shape), s, share)
                         for r, c, (s, share) in zip(rows, cols, series)]
        self.boundary = self._bind_boundaries()
        self.drain = self._drainage()
        self.infil = np.where(open_, forcing.infiltration_mm_h * MM_H, 0.0)
        if forcing.infiltration_mm_h < 0 or forcing.drainage_mm_h < 0:
            raise FloodInputError("sink capacities must be >= 0", field="drainage_mm_h")
        self.has_sink = bool(self.drain.any() or self.infil.any())

    # -- rain
    def rain_at(self, t: float) -> tuple[np.ndarray, bool]:
        """Rain rate per cell (m/s), roof rain moved to the nearest open cell; and whether it changed."""
        rain = self.forcing.rain
        if rain is None:
            return self._rain, False
        if isinstance(rain, UniformRain):
            key: object = rain.intensity.key(t)
            if key == self._rain_key:
                return self._rain, False
            field_ = np.full(self.grid.shape, rain.intensity.at(t) * MM_H)
        else:
            key = tuple(s.key(t) for s in rain.intensity)
            if key == self._rain_key:
                return self._rain, False
            values = np.array([s.at(t) for s in rain.intensity]) * MM_H
            field_ = (self._idw @ values).reshape(self.grid.shape)
        self._rain_key = key
        self._rain = self._route_roofs(field_)
        return self._rain, True

    def _route_roofs(self, field_: np.ndarray) -> np.ndarray:
        out = np.where(self.grid.blocked, 0.0, field_).ravel()
        roofs = self.grid.roofs.ravel()
        if roofs.any():
            out += np.bincount(self._roof_target[roofs], weights=field_.ravel()[roofs], minlength=out.size)
        return out.reshape(self.grid.shape)

    # -- sources (m3/s per cell)
    def sources_at(self, t: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(flat cell indices, m3/s per cell)] for every inflow at time t."""
        return [(idx, share * max(s.at(t), 0.0)) for idx, s, share in self._sources]

    def edge_inflow_rates(self, t: float) -> np.ndarray:
        """Unit discharge (m2/s, inwards) on each edge-inflow face: each hydrograph spread
        evenly over the width of its open faces."""
        b = self.boundary["inflow"]
        if not len(b.group):
            return np.zeros(0)
        totals = np.array([max(s.at(t), 0.0) if s is not None else 0.0 for s in b.series])
        widths = np.bincount(b.group, weights=b.width, minlength=len(totals))
        return (totals / widths)[b.group]

    def stage_levels(self, t: float) -> np.ndarray:
        b = self.boundary["stage"]
        levels = np.array([s.at(t) if s is not None else 0.0 for s in b.series])
        return levels[b.group] if len(b.group) else np.zeros(0)

    # -- binding helpers
    def _bind_boundaries(self) -> dict[str, BoundaryFaces]:
        out = {}
        kinds = (("inflow", self.forcing.edge_inflows), ("stage", self.forcing.stages), ("free", self.forcing.free))
        taken: set[tuple[int, int]] = set()     # (axis, face): the first kind listed owns a face
        for kind, items in kinds:
            parts, series = [], []
            for k, item in enumerate(items):
                if item.edge not in EDGES:
                    raise FloodInputError(f"unknown edge '{item.edge}' (use {', '.join(EDGES)})", field=f"{kind}s")
                r, c, axis_face, sign = _edge_cells(self.grid, item.edge, item.span)
                axis = axis_face[0]
                keep = ~self.grid.blocked[r, c] & np.array([(axis, int(f)) not in taken for f in axis_face[1]])
                if kind == "inflow" and not keep.any():
                    raise FloodInputError(f"edge inflow on the {item.edge} edge has no open cell", field="inflows")
                r, c = r[keep], c[keep]
                face = axis_face[1][keep]
                taken.update((axis, int(f)) for f in face)
                dist = self.grid.dx if axis == 0 else self.grid.dy
                width = self.grid.dy if axis == 0 else self.grid.dx
                slope = getattr(item, "slope", 0.0)
                if kind == "free" and not slope > 0:
                    raise FloodInputError("a free outflow slope must be positive", field="free_edges")
                parts.append((np.full(len(r), axis), face, np.ravel_multi_index((r, c), self.grid.shape),
                              np.full(len(r), sign), np.full(len(r), dist), np.full(len(r), width),
                              np.full(len(r), slope), np.full(len(r), k)))
                series.append(getattr(item, "level", None) or getattr(item, "discharge", None))
            cols = [np.concatenate([p[i] for p in parts]) if parts else np.zeros(0) for i in range(8)]
            out[kind] = BoundaryFaces(axis=cols[0].astype(np.int8), face=cols[1].astype(np.int64),
                                      cell=cols[2].astype(np.int64), sign=cols[3].astype(float), dist=cols[4],
                                      width=cols[5], slope=cols[6], series=series, group=cols[7].astype(np.int64))
        return out

    def _drainage(self) -> np.ndarray:
        cap = np.full(self.grid.shape, self.forcing.drainage_mm_h * MM_H)
        if self.forcing.drainage_zones:
            from rasterio.features import rasterize

            for zone in self.forcing.drainage_zones:
                if zone.capacity_mm_h < 0:
                    raise FloodInputError("drainage capacity must be >= 0", field="drainage_zones")
                mask = rasterize([(zone.geometry, 1)], out_shape=self.grid.shape, transform=self.grid.transform,
                                 fill=0, dtype="uint8").astype(bool)
                cap[mask] = zone.capacity_mm_h * MM_H
        return np.where(self.grid.blocked, 0.0, cap)


def _edge_cells(grid: FloodGrid, edge: str, span: tuple[float, float] | None):
    """Cells along an edge: rows, cols, (axis, flat face indices), outward sign."""
    ny, nx = grid.shape
    xs, ys = grid.centres()
    if edge in ("west", "east"):
        rows = np.arange(ny)
        along = ys
        cols = np.zeros(ny, np.int64) if edge == "west" else np.full(ny, nx - 1)
        fcol = 0 if edge == "west" else nx
        faces = rows * (nx + 1) + fcol
        axis, sign = 0, (-1.0 if edge == "west" else 1.0)
    elif edge in ("north", "south"):
        cols = np.arange(nx)
        along = xs
        rows = np.zeros(nx, np.int64) if edge == "north" else np.full(nx, ny - 1)
        frow = 0 if edge == "north" else ny
        faces = frow * nx + cols
        axis, sign = 1, (-1.0 if edge == "north" else 1.0)
    else:
        raise FloodInputError(f"unknown edge '{edge}' (use {', '.join(EDGES)})", field="edge")
    if span is not None:
        lo, hi = min(span), max(span)
        keep = (along >= lo) & (along <= hi)
        if not keep.any():
            raise FloodInputError(f"span {span} covers no cell of the {edge} edge", field="span")
        rows, cols, faces = rows[keep], cols[keep], faces[keep]
    return rows, cols, (axis, faces), sign


def _nearest_open(grid: FloodGrid) -> np.ndarray:
    """Flat index of the nearest open cell of every cell (itself when open)."""
    from scipy.ndimage import distance_transform_edt

    if not grid.blocked.any():
        return np.arange(grid.z.size)
    _, (ri, ci) = distance_transform_edt(grid.blocked, sampling=(grid.dy, grid.dx), return_indices=True)
    return np.ravel_multi_index((ri, ci), grid.shape).ravel()


def _nearest_open_cell(grid: FloodGrid, r: int, c: int) -> tuple[int, int]:
    if not grid.blocked[r, c]:
        return r, c
    flat = int(_nearest_open(grid)[r * grid.shape[1] + c])
    return divmod(flat, grid.shape[1])


def _idw_weights(grid: FloodGrid, rain: GaugeRain) -> np.ndarray:
    """(cells, gauges) inverse-distance weights, rows summing to 1."""
    xs, ys = grid.centres()
    gx, gy = np.meshgrid(xs, ys)
    pts = np.asarray(rain.xy, float)
    d = np.hypot(gx.ravel()[:, None] - pts[None, :, 0], gy.ravel()[:, None] - pts[None, :, 1])
    w = 1.0 / np.maximum(d, 1e-6 * max(grid.dx, grid.dy)) ** rain.power
    return w / w.sum(axis=1, keepdims=True)
