"""Spatial questions over the in-memory layers: what is here, what lies within a
radius or polygon, the nearest facilities by straight line and by road, and a
building's detail. All distances are metres in the (metric) project CRS.

Road distance: the roads layer's `u`/`v`/`length` columns form an undirected graph
(walking: one-way tags are ignored); a point is snapped to the nearest graph node and
the distance is snap + shortest path (scipy.sparse.csgraph.dijkstra) + snap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson
import shapely
from pyproj import Transformer
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from twin.query import crs as crsmod
from twin.query.errors import QueryError
from twin.query.layer import LayerData, LayerIndex

MAX_RADIUS_M = 5000.0
NEAREST_LINE_M = 250.0       # what-is-here looks this far for the nearest road


# -- points in ----------------------------------------------------------------------------------
def point_from(index: LayerIndex, *, lon: float | None = None, lat: float | None = None,
               x: float | None = None, y: float | None = None) -> shapely.Point:
    """A point given as lon/lat (WGS 84) or as x/y (easting/northing in the project CRS)."""
    geo = lon is not None or lat is not None
    proj = x is not None or y is not None
    if geo == proj:
        raise QueryError("give either lon and lat, or x and y (project CRS)", field="lon" if not geo else "x")
    if geo:
        if lon is None or lat is None:
            raise QueryError("lon and lat go together", field="lat" if lat is None else "lon")
        if not (-180 <= lon <= 180 and -90 <= lat <= 90) or not np.isfinite([lon, lat]).all():
            raise QueryError("lon must be in [-180, 180] and lat in [-90, 90]", field="lon")
        return crsmod.to_project(shapely.Point(lon, lat), crsmod.crs_info(crsmod.CRS84), index.project)
    if x is None or y is None or not np.isfinite([x, y]).all():
        raise QueryError("x and y go together and must be finite", field="y" if y is None else "x")
    return shapely.Point(x, y)


def check_radius(radius: float, field: str = "radius") -> float:
    if not np.isfinite(radius) or radius <= 0 or radius > MAX_RADIUS_M:
        raise QueryError(f"radius must be in (0, {MAX_RADIUS_M:g}] metres", field=field)
    return float(radius)


def _lonlat(index: LayerIndex, geoms: np.ndarray) -> np.ndarray:
    t = Transformer.from_crs(index.project.crs, "OGC:CRS84", always_xy=True)
    pts = shapely.get_coordinates(shapely.point_on_surface(geoms)) if len(geoms) else np.zeros((0, 2))
    lon, lat = t.transform(pts[:, 0], pts[:, 1])
    return np.round(np.column_stack([lon, lat]), 7)


def lonlat_of(index: LayerIndex, point: shapely.Point) -> tuple[float, float]:
    (lon, lat), = _lonlat(index, np.array([point]))
    return float(lon), float(lat)


def _records(layer: LayerData, rows: np.ndarray) -> list[dict]:
    props = layer.properties_json(rows)
    return [{"id": fid, **orjson.loads(p)} for fid, p in zip(layer.ids[rows].tolist(), props)]


# -- road graph ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RoadGraph:
    xy: np.ndarray               # (n, 2) node coordinates, project CRS
    node_ids: np.ndarray         # original u / v ids
    matrix: csr_matrix           # symmetric edge lengths
    kdtree: cKDTree

    @property
    def size(self) -> int:
        return len(self.xy)

    def snap(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dist, node = self.kdtree.query(np.atleast_2d(xy))
        return node, dist

    def distances_from(self, node: int) -> np.ndarray:
        return dijkstra(self.matrix, directed=False, indices=int(node))


def build_road_graph(layer: LayerData) -> RoadGraph | None:
    """The u/v/length graph of a roads layer, or None when the layer has no such columns."""
    if not {"u", "v"} <= set(layer.kinds) or len(layer) == 0:
        return None
    u, v = layer.column("u"), layer.column("v")
    ok = ~(u.nulls | v.nulls) & ~shapely.is_empty(layer.geoms)
    if not ok.any():
        return None
    geoms = layer.geoms[ok]
    length = layer.column("length").values[ok] if "length" in layer.kinds else np.full(ok.sum(), np.nan)
    length = np.where(np.isfinite(length) & (length >= 0), length, shapely.length(geoms))
    ends = np.concatenate([u.values[ok], v.values[ok]]).astype(np.int64)
    node_ids, inverse = np.unique(ends, return_inverse=True)
    m = int(ok.sum())
    iu, iv = inverse[:m], inverse[m:]
    xy = np.zeros((len(node_ids), 2))
    xy[iu] = shapely.get_coordinates(shapely.get_point(geoms, 0))
    xy[iv] = shapely.get_coordinates(shapely.get_point(geoms, -1))
    # keep the shortest of parallel edges (csr would add them up), both directions
    a, b = np.minimum(iu, iv), np.maximum(iu, iv)
    order = np.lexsort((length, b, a))
    a, b, w = a[order], b[order], np.maximum(length[order], 1e-9)
    first = np.ones(len(a), dtype=bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    a, b, w = a[first], b[first], w[first]
    keep = a != b
    a, b, w = a[keep], b[keep], w[keep]
    n = len(node_ids)
    matrix = coo_matrix((np.concatenate([w, w]), (np.concatenate([a, b]), np.concatenate([b, a]))),
                        shape=(n, n)).tocsr()
    return RoadGraph(xy=xy, node_ids=node_ids, matrix=matrix, kdtree=cKDTree(xy))


def road_graph(index: LayerIndex, roads: str) -> RoadGraph | None:
    return index.layer(roads).derived("road_graph", build_road_graph)


# -- questions ----------------------------------------------------------------------------------
def what_is_here(index: LayerIndex, point: shapely.Point, layers: list[str], radius: float) -> dict:
    """Per layer: polygons containing the point, the nearest line (within 250 m), points within `radius`."""
    out: dict[str, dict] = {}
    for name in layers:
        layer = index.layer(name)
        family = layer.geometry_family()
        if family == "polygon":
            rows = np.sort(layer.tree.query(point, predicate="intersects"))
            out[name] = {"relation": "contains", "features": _records(layer, rows)}
        elif family == "line":
            idx, dist = layer.tree.query_nearest(point, max_distance=NEAREST_LINE_M, return_distance=True)
            best = np.argsort(dist, kind="stable")[:1]
            recs = _records(layer, idx[best])
            for rec, d in zip(recs, dist[best]):
                rec["distance_m"] = round(float(d), 2)
            out[name] = {"relation": "nearest", "max_distance_m": NEAREST_LINE_M, "features": recs}
        else:
            rows = np.sort(layer.tree.query(point, predicate="dwithin", distance=radius))
            dist = shapely.distance(layer.geoms[rows], point)
            order = np.argsort(dist, kind="stable")
            recs = _records(layer, rows[order])
            for rec, d in zip(recs, dist[order]):
                rec["distance_m"] = round(float(d), 2)
            out[name] = {"relation": "within", "radius_m": radius, "features": recs}
    return out


def within(index: LayerIndex, name: str, area: shapely.Geometry, radius: float | None = None) -> np.ndarray:
    """Rows of layer `name` intersecting `area` (or within `radius` metres of it), storage order."""
    layer = index.layer(name)
    if radius:
        return np.sort(layer.tree.query(area, predicate="dwithin", distance=radius))
    return np.sort(layer.tree.query(area, predicate="intersects"))


def nearest(index: LayerIndex, point: shapely.Point, facilities: str, *, kind: str | None, n: int,
            roads: str | None, by: str = "line") -> dict:
    """The `n` nearest features of `facilities` (of `kind`), ranked by straight line or by road."""
    if by not in ("line", "road"):
        raise QueryError("by is 'line' or 'road'", field="by")
    layer = index.layer(facilities)
    rows = np.arange(len(layer))
    if kind is not None:
        if "kind" not in layer.kinds:
            raise QueryError(f"layer '{facilities}' has no 'kind' property", field="kind")
        rows = rows[layer.column("kind").values == kind]
    line = shapely.distance(layer.geoms[rows], point)
    graph = road_graph(index, roads) if roads else None
    road = np.full(len(rows), np.nan)
    info = None
    if graph is not None and graph.size:
        (onode,), (osnap,) = graph.snap(shapely.get_coordinates(point))
        fxy = shapely.get_coordinates(shapely.point_on_surface(layer.geoms[rows])) if len(rows) else np.zeros((0, 2))
        fnode, fsnap = graph.snap(fxy) if len(rows) else (np.zeros(0, int), np.zeros(0))
        path = graph.distances_from(onode)[fnode] if len(rows) else np.zeros(0)
        road = np.where(np.isfinite(path), osnap + path + fsnap, np.nan)
        info = {"layer": roads, "nodes": graph.size, "edges": int(graph.matrix.nnz // 2),
                "origin_snap_m": round(float(osnap), 2), "directed": False}
    if by == "road":
        if graph is None:
            raise QueryError("no road graph (a roads layer with u, v, length) to measure along", field="by")
        order = np.lexsort((line, np.where(np.isfinite(road), road, np.inf)))
        order = order[np.isfinite(road[order])]
    else:
        order = np.argsort(line, kind="stable")
    order = order[:n]
    chosen = rows[order]
    recs = _records(layer, chosen)
    lonlat = _lonlat(index, layer.geoms[chosen])
    for rec, ll, dl, dr in zip(recs, lonlat, line[order], road[order]):
        rec["lon"], rec["lat"] = float(ll[0]), float(ll[1])
        rec["distance_line_m"] = round(float(dl), 2)
        rec["distance_road_m"] = round(float(dr), 2) if np.isfinite(dr) else None
    return {"layer": facilities, "kind": kind, "by": by, "candidates": int(len(rows)), "road_graph": info,
            "results": recs}


def building_detail(index: LayerIndex, name: str, feature_id: str) -> dict:
    """One building with its ground, roof and height, footprint area and a lon/lat anchor."""
    layer = index.layer(name)
    row = layer.position(feature_id)
    rec = _records(layer, np.array([row]))[0]
    geom = layer.geoms[row]
    (lon, lat), = _lonlat(index, np.array([geom]))
    ground, roof, height = rec.get("ground"), rec.get("roof"), rec.get("height")
    if height is None and ground is not None and roof is not None:
        height = roof - ground
    return {
        "id": feature_id, "layer": name, "name": rec.get("name"), "use": rec.get("use"),
        "ground_m": ground, "roof_m": roof, "height_m": height, "height_rule": rec.get("height_rule"),
        "levels": rec.get("levels"), "underground": rec.get("underground"),
        "footprint_area_m2": round(float(shapely.area(geom)), 2),
        "anchor": {"lon": float(lon), "lat": float(lat)},
        "bbox": crsmod.bounds_from_project(tuple(shapely.bounds(geom)), index.project,
                                           crsmod.crs_info(crsmod.CRS84)),
        "properties": rec,
    }
