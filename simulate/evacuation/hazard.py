"""What the hazard does: the zone, who must leave it, and which roads close when.

    Hazard(zone, evacuate, road_closure_s, source, notes)
    polygon_hazard(geojson, buildings, roads, crs, *, geojson_crs="EPSG:4326",
                   close_roads_inside=False) -> Hazard
    flood_hazard(results: PriorResults, job_id, buildings, roads, *, depth_m=None) -> Hazard
    link_closures(hazard, network) -> Closures

A drawn polygon: the buildings whose footprints intersect it evacuate; its roads stay open
(people leave through them) unless `close_roads_inside`, which closes from the start the
road segments whose midpoint lies inside.

A flood job (`simulate.flood.process`): the buildings it reports flooded evacuate (those at
least `depth_m` deep when given), its impassable road segments close at `impassable_at_s`
(seconds from the flood start), both matched to the twin by `id`. The zone is where the
maximum depth reached `depth_m` (default `FLOODED_DEPTH_M`), from the job's max_depth
raster, or, without it, the flooded features grown by `FALLBACK_BUFFER_M`.

Errors a user can fix raise ProcessError(field="hazard").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.errors import GEOSException
from shapely.geometry.base import BaseGeometry

from simulate.evacuation.model import Closures, RoadNetwork
from simulate.process import PriorResults, ProcessError

FLOODED_DEPTH_M = 0.15          # the flood process's default flooded_depth_m
FALLBACK_BUFFER_M = 10.0
_POLYGONAL = ("Polygon", "MultiPolygon")


@dataclass(frozen=True)
class Hazard:
    zone: BaseGeometry               # project CRS; may be empty (a flood that reached nothing)
    evacuate: np.ndarray             # (n_buildings,) bool: must leave
    road_closure_s: np.ndarray       # (n_roads,) float64 seconds it closes, NaN never, 0 from the start
    source: dict                     # {"kind": "polygon"} or {"kind": "flood", "job": id}
    notes: list[str] = field(default_factory=list)

    @property
    def closed_roads(self) -> np.ndarray:
        return np.flatnonzero(np.isfinite(self.road_closure_s))


def _fail(message: str) -> ProcessError:
    return ProcessError(message, field="hazard")


def _geojson_geometry(geojson: dict) -> BaseGeometry:
    if not isinstance(geojson, dict) or "type" not in geojson:
        raise _fail("the hazard zone must be a GeoJSON object (Polygon, MultiPolygon, Feature or FeatureCollection)")
    kind = geojson["type"]
    if kind == "FeatureCollection":
        features = geojson.get("features") or []
        if not features:
            raise _fail("the hazard FeatureCollection has no features")
        parts = [_geojson_geometry(f) for f in features]
        return shapely.union_all(parts)
    if kind == "Feature":
        if not geojson.get("geometry"):
            raise _fail("the hazard Feature has no geometry")
        return _geojson_geometry(geojson["geometry"])
    if kind not in _POLYGONAL:
        raise _fail(f"the hazard zone must be a Polygon or MultiPolygon, not a {kind}")
    try:
        geometry = shapely.geometry.shape(geojson)
    except (AttributeError, KeyError, TypeError, ValueError, IndexError, GEOSException) as exc:
        raise _fail(f"the hazard {kind} has unreadable coordinates ({exc})") from None
    if geometry.is_empty:
        raise _fail(f"the hazard {kind} is empty")
    if not geometry.is_valid:
        raise _fail(f"the hazard {kind} is not valid: {shapely.is_valid_reason(geometry)}")
    return geometry


def _to_project(geometry: BaseGeometry, geojson_crs: str, crs) -> BaseGeometry:
    try:
        source = CRS.from_user_input(geojson_crs)
    except CRSError:
        raise _fail(f"unknown CRS '{geojson_crs}' for the hazard zone") from None
    if source.is_geographic:
        minx, miny, maxx, maxy = geometry.bounds
        if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
            raise _fail(f"the hazard zone's coordinates ({minx:.0f}, {miny:.0f}) cannot be longitude/latitude "
                        f"({geojson_crs}); send them as lon/lat, or name their CRS")
    if source == CRS.from_user_input(crs):
        return geometry
    transformer = Transformer.from_crs(source, crs, always_xy=True)
    return shapely.transform(geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def _twin_extent(*frames) -> BaseGeometry:
    bounds = [f.total_bounds for f in frames if f is not None and len(f)]
    if not bounds:
        return shapely.Polygon()
    b = np.array(bounds)
    return shapely.box(b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())


def polygon_hazard(geojson: dict, buildings, roads, crs, *, geojson_crs: str = "EPSG:4326",
                   close_roads_inside: bool = False) -> Hazard:
    """Hazard from a drawn zone; see the module docstring."""
    zone = _to_project(_geojson_geometry(geojson), geojson_crs, crs)
    extent = _twin_extent(buildings, roads)
    if not zone.intersects(extent):
        raise _fail(f"the hazard zone does not overlap the twin (extent {np.round(extent.bounds).tolist()} in {crs}); "
                    f"is it in {geojson_crs}?")
    shapely.prepare(zone)
    evacuate = shapely.intersects(zone, buildings.geometry.to_numpy()) if buildings is not None else np.zeros(0, bool)
    closure = np.full(len(roads) if roads is not None else 0, np.nan)
    notes = []
    if close_roads_inside and roads is not None and len(roads):
        midpoints = shapely.line_interpolate_point(roads.geometry.to_numpy(), 0.5, normalized=True)
        closure[shapely.contains(zone, midpoints)] = 0.0
        notes.append(f"{int(np.isfinite(closure).sum())} road segments inside the zone closed from the start")
    if not evacuate.any():
        notes.append("no building intersects the hazard zone")
    return Hazard(zone=zone, evacuate=np.asarray(evacuate, bool), road_closure_s=closure,
                  source={"kind": "polygon"}, notes=notes)


def _rows_by_id(twin, found, what: str, job_id: str) -> np.ndarray:
    """Row in `twin` of each feature of the flood result `found`, matched by id."""
    if "id" not in found:
        raise _fail(f"the {what} of flood job {job_id} have no id column to match the twin's")
    rows = pd.Index(twin["id"].astype(str)).get_indexer(found["id"].astype(str))
    if np.any(rows < 0):
        unknown = found["id"].astype(str).to_numpy()[rows < 0]
        raise _fail(f"flood job {job_id} names {len(unknown)} {what} this twin does not have (e.g. '{unknown[0]}'); "
                    f"was it run on another twin or an older build?")
    return rows


def _result_layer(results: PriorResults, job_id: str, name: str, notes: list[str]):
    try:
        return results.layer(job_id, name)
    except ProcessError:
        notes.append(f"flood job {job_id} has no '{name}' result")
        return None


def _zone_from_raster(path, threshold: float, crs) -> BaseGeometry:
    import rasterio
    from rasterio import features

    with rasterio.open(path) as src:
        depth = src.read(1, masked=True).filled(np.nan)
        wet = np.isfinite(depth) & (depth >= threshold)
        cell = max(abs(src.transform.a), abs(src.transform.e))
        polygons = [shapely.geometry.shape(g) for g, _ in
                    features.shapes(wet.astype(np.uint8), mask=wet, transform=src.transform)]
        raster_crs = src.crs
    zone = shapely.union_all(polygons).simplify(cell / 2) if polygons else shapely.Polygon()
    if raster_crs is not None and crs is not None and CRS.from_user_input(raster_crs) != CRS.from_user_input(crs):
        transformer = Transformer.from_crs(raster_crs, crs, always_xy=True)
        zone = shapely.transform(zone, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
    return shapely.make_valid(zone)


def flood_hazard(results: PriorResults, job_id: str, buildings, roads, *, depth_m: float | None = None) -> Hazard:
    """Hazard from a finished flood job; see the module docstring."""
    try:
        process = results.process_of(job_id)
    except ProcessError as exc:
        raise _fail(str(exc)) from None
    if process != "flood":
        raise _fail(f"job {job_id} is a '{process}' job, not a flood job")
    notes: list[str] = []
    flooded = _result_layer(results, job_id, "buildings", notes)
    impassable = _result_layer(results, job_id, "roads", notes)

    evacuate = np.zeros(len(buildings), bool)
    if flooded is not None and len(flooded):
        reached = flooded
        if "flooded" in reached:
            reached = reached[reached["flooded"].fillna(False).astype(bool)]
        if depth_m is not None and "depth_m" in reached:
            reached = reached[pd.to_numeric(reached["depth_m"], errors="coerce").to_numpy(dtype=float) >= depth_m]
        evacuate[_rows_by_id(buildings, reached, "buildings", job_id)] = True

    closure = np.full(len(roads) if roads is not None else 0, np.nan)
    if impassable is not None and len(impassable) and roads is not None:
        at = pd.to_numeric(impassable["impassable_at_s"], errors="coerce").to_numpy(dtype=float)
        closes = np.isfinite(at)
        rows = _rows_by_id(roads, impassable[closes], "road segments", job_id)
        closure[rows] = np.maximum(at[closes], 0.0)

    threshold = FLOODED_DEPTH_M if depth_m is None else depth_m
    zone = None
    try:
        zone = _zone_from_raster(results.raster_path(job_id, "max_depth"), threshold, buildings.crs)
    except (ProcessError, OSError) as exc:
        notes.append(f"no max_depth raster for job {job_id} ({exc}); zone drawn around the flooded features")
    if zone is None:
        parts = [f.geometry.to_numpy() for f in (flooded, impassable) if f is not None and len(f)]
        zone = (shapely.union_all(shapely.buffer(np.concatenate(parts), FALLBACK_BUFFER_M)) if parts
                else shapely.Polygon())
    if not evacuate.any():
        notes.append(f"flood job {job_id} reached no building")
    return Hazard(zone=zone, evacuate=evacuate, road_closure_s=closure, source={"kind": "flood", "job": job_id},
                  notes=notes)


def link_closures(hazard: Hazard, network: RoadNetwork) -> Closures:
    """The closure of each link's road segment (links without a road row never close)."""
    rows = np.asarray(network.road_row, dtype=np.int64)
    if len(rows) and rows.max() >= len(hazard.road_closure_s):
        raise ValueError("the network was built from other roads than the hazard")
    at = np.where(rows >= 0, hazard.road_closure_s[np.maximum(rows, 0)] if len(hazard.road_closure_s) else np.nan,
                  np.nan)
    closed = np.flatnonzero(np.isfinite(at))
    return Closures(link=closed.astype(np.int32), at_s=at[closed].astype(np.float64))
