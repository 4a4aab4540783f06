"""The roads layer as a directed graph of links for walkers or vehicles.

    build_network(roads, mode, params=None) -> RoadNetwork

`roads` is the twin's roads layer (project CRS, metres): id, highway (OSM class), oneway,
lanes, length, u, v (OSM node ids) and LineString geometry. Rows without u / v, and the
parts of MultiLineStrings, get their end nodes by snapping the end coordinates to a
0.1 m grid, joined to an OSM node at the same place when there is one.

Walk: every way is two links (pedestrians ignore oneway); motorways and trunks are left
out. Speed 1.34 m/s (Weidmann 1993; 0.6 m/s on steps); capacity = specific flow
1.3 persons/(m s) (SFPE handbook) x effective width of the class; storage = length x
width x jam density 4 persons/m2.
Drive: footways, paths, steps... are left out; oneway "yes" gives the forward link,
"-1" the reverse one, otherwise both. Speed and capacity per lane by class, lanes per
direction = lanes / 2 on two-way ways (at least 1), storage = length x lanes / 7.5 m.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from simulate.evacuation.model import Mode, RoadNetwork
from simulate.process import ProcessError

SNAP_M = 0.1
FORWARD, BOTH, REVERSE = 1, 0, -1


def _walk_width() -> dict[str, float]:
    # effective width in metres available to evacuees on foot (sidewalks + carriageway on streets)
    return {"footway": 2.0, "path": 1.5, "cycleway": 2.0, "bridleway": 1.5, "track": 2.5, "steps": 1.5,
            "corridor": 2.0, "platform": 3.0, "elevator": 1.0, "pedestrian": 6.0, "living_street": 4.0,
            "residential": 4.0, "service": 4.0, "unclassified": 4.0, "road": 4.0, "tertiary": 6.0,
            "secondary": 8.0, "primary": 10.0, "trunk": 10.0, "motorway": 10.0}


def _drive_speed() -> dict[str, float]:
    return {"motorway": 100.0, "trunk": 80.0, "primary": 60.0, "secondary": 50.0, "tertiary": 40.0,
            "unclassified": 30.0, "residential": 30.0, "road": 30.0, "service": 20.0, "track": 20.0,
            "living_street": 10.0}


def _lane_capacity() -> dict[str, float]:
    return {"motorway": 2000.0, "trunk": 1800.0, "primary": 1500.0, "secondary": 1200.0, "tertiary": 1000.0,
            "service": 400.0}


def _default_lanes() -> dict[str, float]:
    return {"motorway": 2.0, "trunk": 2.0, "primary": 2.0}


@dataclass(frozen=True)
class NetworkParams:
    """The tables that turn a road class into speed, capacity and storage. Classes are OSM
    `highway` values; `*_link` takes its parent's speed and capacity (and one lane)."""

    walk_speed_ms: float = 1.34                      # Weidmann 1993, free walking speed
    steps_speed_ms: float = 0.6
    specific_flow: float = 1.3                       # persons / (m s), SFPE handbook
    jam_density: float = 4.0                         # persons / m2
    walk_width_m: dict[str, float] = field(default_factory=_walk_width)
    walk_width_default_m: float = 3.0
    drive_speed_kmh: dict[str, float] = field(default_factory=_drive_speed)
    drive_speed_default_kmh: float = 30.0
    lane_capacity_vph: dict[str, float] = field(default_factory=_lane_capacity)
    lane_capacity_default_vph: float = 600.0
    lanes_per_direction: dict[str, float] = field(default_factory=_default_lanes)
    lanes_per_direction_default: float = 1.0
    vehicle_spacing_m: float = 7.5                   # jam spacing: one car per 7.5 m of lane
    walk_excluded: frozenset[str] = frozenset({"motorway", "motorway_link", "trunk", "trunk_link"})
    drive_excluded: frozenset[str] = frozenset({"footway", "pedestrian", "path", "steps", "cycleway", "bridleway",
                                                "corridor", "elevator", "platform"})
    never: frozenset[str] = frozenset({"proposed", "construction", "abandoned", "razed", "disused"})


def build_network(roads: gpd.GeoDataFrame, mode: Mode, params: NetworkParams | None = None) -> RoadNetwork:
    """Directed links of the roads usable in `mode`; raises ProcessError on an empty result
    or a kept row whose geometry is not a line."""
    if mode not in ("walk", "drive"):
        raise ProcessError(f"mode must be 'walk' or 'drive', got {mode!r}", field="mode")
    p = params or NetworkParams()
    ids = _feature_ids(roads)
    highway = _highway(roads)
    excluded = p.never | (p.walk_excluded if mode == "walk" else p.drive_excluded)
    keep = np.flatnonzero(~highway.isin(excluded).to_numpy())
    if len(keep) == 0:
        raise ProcessError(f"no road usable for mode {mode!r} among {len(roads)} rows", field="highway")

    lines, part_row, whole = _line_parts(np.asarray(roads.geometry.array)[keep], ids[keep], keep)
    start, end = _end_nodes(roads, lines, part_row, whole)
    node_keys, node_index, node_xy = _number_nodes(start, end)
    a, b = node_index[: len(lines)], node_index[len(lines):]

    length = shapely.length(lines)
    if "length" in roads.columns:
        given = pd.to_numeric(roads["length"], errors="coerce").to_numpy(float)[part_row]
        length = np.where(whole & np.isfinite(given) & (given > 0), given, length)
    length = np.maximum(length, SNAP_M)

    cls = highway.to_numpy()[part_row]
    direction = np.full(len(lines), BOTH, np.int8) if mode == "walk" else _direction(roads, part_row)
    fwd = (direction >= 0) & (a != b)
    rev = (direction <= 0) & (a != b)
    if not (fwd.any() or rev.any()):
        raise ProcessError(f"no road usable for mode {mode!r}: every kept way is a loop on one node",
                           field="geometry")
    link_part = np.concatenate([np.flatnonzero(fwd), np.flatnonzero(rev)])
    link_from = np.concatenate([a[fwd], b[rev]]).astype(np.int32)
    link_to = np.concatenate([b[fwd], a[rev]]).astype(np.int32)
    geometry = np.concatenate([lines[fwd], shapely.reverse(lines[rev])])
    two_way = (direction == BOTH)[link_part]
    link_cls = cls[link_part]
    link_length = length[link_part]

    if mode == "walk":
        speed, capacity, storage = _walk_links(p, link_cls, link_length)
    else:
        lanes = pd.to_numeric(roads["lanes"], errors="coerce").to_numpy(float)[part_row][link_part] \
            if "lanes" in roads.columns else np.full(len(link_part), np.nan)
        speed, capacity, storage = _drive_links(p, link_cls, link_length, lanes, two_way)

    crs = roads.crs.to_string() if roads.crs is not None else None
    return RoadNetwork(mode=mode, node_xy=node_xy, link_from=link_from, link_to=link_to, length_m=link_length,
                       free_speed_ms=speed, capacity_per_s=capacity, storage=storage,
                       road_row=part_row[link_part].astype(np.int32), geometry=geometry, crs=crs,
                       node_osm_id=node_keys)


def _feature_ids(roads: gpd.GeoDataFrame) -> np.ndarray:
    if "id" in roads.columns:
        return roads["id"].astype(str).to_numpy()
    return np.arange(len(roads)).astype(str)


def _highway(roads: gpd.GeoDataFrame) -> pd.Series:
    if "highway" not in roads.columns:
        raise ProcessError("the roads layer has no 'highway' column", field="highway")
    return roads["highway"].astype("string").str.strip().str.lower().fillna("unclassified").reset_index(drop=True)


def _line_parts(geoms: np.ndarray, ids: np.ndarray, rows: np.ndarray):
    """LineStrings of the kept rows: MultiLineStrings merged, and split into parts where
    they do not merge. Returns the lines, the roads row of each, and whether it is the
    row's whole geometry (then u / v and length apply)."""
    kind = shapely.get_type_id(geoms)
    bad = ~np.isin(kind, (1, 5)) | shapely.is_empty(geoms)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        got = "no" if geoms[i] is None else ("an empty" if shapely.is_empty(geoms[i]) else f"a {geoms[i].geom_type}")
        raise ProcessError(f"roads feature {ids[i]!r} (row {rows[i]}) has {got} geometry; a road must be a "
                           f"LineString", field="geometry")
    multi = kind == 5
    merged = geoms.copy()
    if multi.any():
        merged[multi] = shapely.line_merge(geoms[multi])
    parts, owner = shapely.get_parts(merged, return_index=True)
    whole = ~multi[owner]
    return parts, rows[owner], whole


def _end_nodes(roads: gpd.GeoDataFrame, lines: np.ndarray, part_row: np.ndarray, whole: np.ndarray):
    """(node key, x, y) of each line's start and end: the OSM id where u / v are given, else None."""
    first = shapely.get_coordinates(shapely.get_point(lines, 0))
    last = shapely.get_coordinates(shapely.get_point(lines, -1))
    n = len(lines)
    u = np.full(n, -1, np.int64)
    v = np.full(n, -1, np.int64)
    has = np.zeros(n, bool)
    if "u" in roads.columns and "v" in roads.columns:
        ru = pd.to_numeric(roads["u"], errors="coerce").astype("Float64")
        rv = pd.to_numeric(roads["v"], errors="coerce").astype("Float64")
        has = whole & ru.notna().to_numpy()[part_row] & rv.notna().to_numpy()[part_row]
        u[has] = roads["u"].to_numpy()[part_row[has]].astype(np.int64)
        v[has] = roads["v"].to_numpy()[part_row[has]].astype(np.int64)
    return (u, has, first), (v, has, last)


def _number_nodes(start, end):
    """Node index per line end (starts then ends), node OSM ids (-1 where snapped) and xy."""
    osm = np.concatenate([start[0], end[0]])
    has = np.concatenate([start[1], end[1]])
    xy = np.vstack([start[2], end[2]])
    grid = np.round(xy / SNAP_M).astype(np.int64)

    osm_ids, osm_code = np.unique(osm[has], return_inverse=True)
    cells, cell_of = np.unique(grid, axis=0, return_inverse=True)
    cell_of = cell_of.ravel()
    cell_code = np.full(len(cells), -1, np.int64)
    cell_code[cell_of[has]] = osm_code                       # a snapped end on an OSM node joins it
    fresh = cell_code < 0
    cell_code[fresh] = len(osm_ids) + np.arange(int(fresh.sum()))
    index = np.where(has, 0, cell_code[cell_of])
    index[has] = osm_code
    n_nodes = len(osm_ids) + int(fresh.sum())
    node_xy = np.empty((n_nodes, 2))
    node_xy[index[::-1]] = xy[::-1]                          # first end seen gives the coordinate
    node_keys = np.concatenate([osm_ids, np.full(int(fresh.sum()), -1, np.int64)])
    return node_keys, index, node_xy


def _direction(roads: gpd.GeoDataFrame, part_row: np.ndarray) -> np.ndarray:
    if "oneway" not in roads.columns:
        return np.full(len(part_row), BOTH, np.int8)
    text = roads["oneway"].astype("string").str.strip().str.lower()
    forward = text.isin(["yes", "true", "1", "1.0"]).to_numpy()
    reverse = text.isin(["-1", "-1.0", "reverse"]).to_numpy()
    code = np.where(forward, FORWARD, np.where(reverse, REVERSE, BOTH)).astype(np.int8)
    return code[part_row]


def _lookup(cls: np.ndarray, table: dict[str, float], default: float) -> np.ndarray:
    """Value per class; `*_link` falls back to its parent class."""
    s = pd.Series(cls)
    parent = s.str.replace(r"_link$", "", regex=True)
    return s.map(table).fillna(parent.map(table)).fillna(default).to_numpy(float)


def _walk_links(p: NetworkParams, cls: np.ndarray, length: np.ndarray):
    width = _lookup(cls, p.walk_width_m, p.walk_width_default_m)
    speed = np.where(cls == "steps", p.steps_speed_ms, p.walk_speed_ms)
    capacity = p.specific_flow * width
    storage = np.maximum(length * width * p.jam_density, 1.0)
    return speed.astype(float), capacity, storage


def _drive_links(p: NetworkParams, cls: np.ndarray, length: np.ndarray, lanes: np.ndarray, two_way: np.ndarray):
    speed = _lookup(cls, p.drive_speed_kmh, p.drive_speed_default_kmh) / 3.6
    per_lane = _lookup(cls, p.lane_capacity_vph, p.lane_capacity_default_vph) / 3600.0
    is_link = pd.Series(cls).str.endswith("_link").to_numpy()
    default = np.where(is_link, 1.0, pd.Series(cls).map(p.lanes_per_direction)
                       .fillna(p.lanes_per_direction_default).to_numpy(float))
    given = np.where(two_way, lanes / 2.0, lanes)
    lanes_dir = np.maximum(np.where(np.isfinite(given) & (given > 0), given, default), 1.0)
    capacity = lanes_dir * per_lane
    storage = np.maximum(length * lanes_dir / p.vehicle_spacing_m, 1.0)
    return speed, capacity, storage


def largest_strong_component(network: RoadNetwork) -> tuple[RoadNetwork, int]:
    """The network restricted to its largest strongly connected component, and how many nodes were dropped.

    Road data clipped to an area leaves fragments (a one-way stub, a car park) from which no
    destination can be reached, or which cannot be entered; MATSim's NetworkCleaner drops them the
    same way, so origins and shelters snap to the part of the network where routes exist both ways.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = network.n_nodes
    graph = coo_matrix((np.ones(network.n_links), (network.link_from, network.link_to)), shape=(n, n)).tocsr()
    _, label = connected_components(graph, directed=True, connection="strong")
    keep_node = label == np.bincount(label).argmax()
    if keep_node.all():
        return network, 0
    new_index = np.cumsum(keep_node) - 1
    keep_link = keep_node[network.link_from] & keep_node[network.link_to]
    take = lambda values: values[keep_link] if values is not None else None  # noqa: E731
    return RoadNetwork(
        mode=network.mode, node_xy=network.node_xy[keep_node],
        link_from=new_index[network.link_from[keep_link]].astype(np.int32),
        link_to=new_index[network.link_to[keep_link]].astype(np.int32),
        length_m=take(network.length_m), free_speed_ms=take(network.free_speed_ms),
        capacity_per_s=take(network.capacity_per_s), storage=take(network.storage),
        road_row=take(network.road_row), geometry=take(network.geometry), crs=network.crs,
        node_osm_id=network.node_osm_id[keep_node] if network.node_osm_id is not None else None,
    ), int((~keep_node).sum())
