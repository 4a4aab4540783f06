"""OpenStreetMap PBF extracts through pyrosm: buildings, the road graph, POIs and water.

Frames come back in EPSG:4326 with the canonical columns of `layers.schema`;
every raw tag not mapped to a column is kept as JSON in `attrs`.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from layers.base import Driver, IngestContext, Ingested
from layers.errors import EmptyLayerError, SourceCorrupt, SourceError, SourceNotFound

if TYPE_CHECKING:
    from pyrosm import OSM

    from twin.config import SourceConfig, SourceFilter

WGS84 = "EPSG:4326"

# pyrosm columns that describe the element, not its tags.
_STRUCTURAL = {"id", "timestamp", "version", "changeset", "visible", "osm_type", "geometry",
               "tags", "u", "v", "length", "lon", "lat"}
_TYPE_PREFIX = {"node": "n", "way": "w", "relation": "r"}

# Tag keys that make a point of interest, in priority order for `kind`.
POI_KEYS = ("amenity", "emergency", "healthcare", "office", "shop", "tourism", "leisure",
            "craft", "historic")
# Highway classes on which one-way traffic is implied without an `oneway` tag.
IMPLIED_ONEWAY_HIGHWAY = {"motorway"}
IMPLIED_ONEWAY_JUNCTION = {"roundabout", "circular"}
_ONEWAY_YES = {"yes", "true", "1"}
_ONEWAY_REVERSE = {"-1", "reverse"}
_ONEWAY_NO = {"no", "false", "0"}
_FEET = 0.3048
_NUMBER = r"([-+]?\d+(?:[.,]\d+)?)"


class OsmPbfDriver(Driver):
    formats = ("osm-pbf",)
    kinds = ("buildings", "roads", "pois", "water")

    def read(self, path: Path, source: "SourceConfig", kind: str, ctx: IngestContext) -> Ingested:
        path = Path(path)
        if kind not in self.kinds:
            raise SourceError(f"an OSM PBF source cannot feed a '{kind}' layer; "
                              f"it gives {', '.join(self.kinds)}", source=str(path))
        if not path.is_file():
            raise SourceNotFound("OSM PBF file not found", source=str(path))
        bbox = _read_bbox(source.filter, ctx, path)
        try:
            raw = _READERS[kind](_open(path, bbox))
        except SourceError:
            raise
        except Exception as exc:  # pyrosm fails in many ways on a bad file (protobuf, zlib, index)
            raise SourceCorrupt("cannot read as an OSM PBF file (corrupt, truncated or another format)",
                                source=str(path), detail=f"{type(exc).__name__}: {exc}") from exc
        if raw is None or raw.empty:
            raise EmptyLayerError(f"no OSM {kind} features in the file within the read area",
                                  source=str(path))
        tags = raw_tags(raw)
        keep = _filter_mask(raw, tags, source.filter, path)
        raw = raw.loc[keep].reset_index(drop=True)
        tags = [t for t, k in zip(tags, keep) if k]
        if raw.empty:
            raise EmptyLayerError(f"no OSM {kind} features left after the source filter",
                                  source=str(path), field="filter")
        frame = _SHAPERS[kind](raw, tags)
        notes = [f"{len(frame)} {kind} features from OSM ({len(raw)} elements)"]
        flat = _collapsed_polygons(frame.geometry.values)
        if flat.any():
            # Ways cut by the extract's edge keep too few nodes to enclose any area.
            frame = frame.loc[~flat].reset_index(drop=True)
            notes.append(f"dropped {int(flat.sum())} {kind} polygons with no area "
                         "(ways cut by the extract boundary)")
        return Ingested(frame=frame, notes=notes,
                        provenance={"reader": "pyrosm", "read_bbox_wgs84": bbox})


# --- reading ---------------------------------------------------------------------------

def _open(path: Path, bbox: list[float] | None) -> "OSM":
    from pyrosm import OSM
    return OSM(str(path), bounding_box=bbox)


def _quiet(fn: Callable[[], gpd.GeoDataFrame | None]) -> gpd.GeoDataFrame | None:
    # pyrosm warns (not raises) when an area is empty; emptiness is reported by the driver.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fn()


def _read_buildings(osm: "OSM") -> gpd.GeoDataFrame | None:
    return _quiet(lambda: osm.get_buildings())


def _read_roads(osm: "OSM") -> gpd.GeoDataFrame | None:
    def network():
        result = osm.get_network(network_type="all", nodes=True,
                                 extra_attributes=["junction", "layer"])
        return None if result is None else result[1]
    return _quiet(network)


def _read_pois(osm: "OSM") -> gpd.GeoDataFrame | None:
    return _quiet(lambda: osm.get_pois(custom_filter={k: True for k in POI_KEYS}))


def _read_water(osm: "OSM") -> gpd.GeoDataFrame | None:
    return _quiet(lambda: osm.get_data_by_custom_criteria(
        custom_filter={"natural": ["water"], "waterway": True, "landuse": ["reservoir"]},
        filter_type="keep"))


_READERS: dict[str, Callable[["OSM"], gpd.GeoDataFrame | None]] = {
    "buildings": _read_buildings, "roads": _read_roads, "pois": _read_pois, "water": _read_water,
}


def _read_bbox(flt: "SourceFilter", ctx: IngestContext, path: Path) -> list[float] | None:
    """The lon/lat box pyrosm should read: the filter's bbox cut to the city extent."""
    boxes = [_to_wgs84(ctx.extent, ctx.crs)]
    if flt.bbox is not None:
        boxes.append(_to_wgs84(flt.bbox, CRS.from_user_input(flt.bbox_crs)))
    minx, miny = max(b[0] for b in boxes), max(b[1] for b in boxes)
    maxx, maxy = min(b[2] for b in boxes), min(b[3] for b in boxes)
    if not (minx < maxx and miny < maxy):
        raise EmptyLayerError("the source filter bbox does not overlap the city extent",
                              source=str(path), field="filter.bbox")
    return [minx, miny, maxx, maxy]


def _collapsed_polygons(geometry: np.ndarray) -> np.ndarray:
    polygonal = np.isin(shapely.get_type_id(geometry), (3, 6))
    return polygonal & ~(shapely.area(geometry) > 0)


def _to_wgs84(box, crs: CRS) -> tuple[float, float, float, float]:
    if crs.equals(CRS.from_epsg(4326)):
        return tuple(box)
    return Transformer.from_crs(crs, WGS84, always_xy=True).transform_bounds(*box, densify_pts=21)


# --- tags ------------------------------------------------------------------------------

def raw_tags(frame: pd.DataFrame) -> list[dict[str, str]]:
    """Every OSM tag of each row: pyrosm splits them between columns and a JSON `tags` column."""
    tag_cols = [c for c in frame.columns if c not in _STRUCTURAL]
    records = frame[tag_cols].to_dict("records")
    extra = frame["tags"] if "tags" in frame.columns else [None] * len(frame)
    out = []
    for rec, more in zip(records, extra):
        tags = {k: str(v) for k, v in rec.items() if v is not None and v == v}
        if isinstance(more, str) and more:
            tags.update({k: str(v) for k, v in json.loads(more).items() if v is not None})
        elif isinstance(more, dict):
            tags.update({k: str(v) for k, v in more.items() if v is not None})
        out.append(tags)
    return out


def tag(tags: list[dict[str, str]], key: str) -> pd.Series:
    return pd.Series([t.get(key) for t in tags], dtype=object)


def _matches(values: pd.Series, allowed: str | list[str]) -> np.ndarray:
    allowed = [allowed] if isinstance(allowed, str) else list(allowed)
    present = values.notna().to_numpy()
    if "*" in allowed:
        return present
    return values.isin(allowed).to_numpy() & present


def _filter_mask(frame: gpd.GeoDataFrame, tags: list[dict[str, str]], flt: "SourceFilter",
                 path: Path) -> np.ndarray:
    keep = np.ones(len(frame), dtype=bool)
    if flt.bbox is not None:
        box = shapely.box(*_to_wgs84(flt.bbox, CRS.from_user_input(flt.bbox_crs)))
        keep &= shapely.intersects(frame.geometry.values, box)
    for key, allowed in flt.tags.items():
        keep &= _matches(tag(tags, key), allowed)
    for key, banned in flt.exclude_tags.items():
        keep &= ~_matches(tag(tags, key), banned)
    return keep


def _attrs(tags: list[dict[str, str]], used: set[str]) -> list[str]:
    return [json.dumps({k: v for k, v in sorted(t.items()) if k not in used}, ensure_ascii=False)
            for t in tags]


def _source_ids(frame: pd.DataFrame) -> np.ndarray:
    prefix = frame["osm_type"].map(_TYPE_PREFIX).fillna("?").astype(str)
    return (prefix + frame["id"].astype("int64").astype(str)).to_numpy(dtype=object)


# --- value parsing ---------------------------------------------------------------------

def parse_height(values: pd.Series) -> np.ndarray:
    """'12', '12 m', '12.5m', '40 ft', "40'" -> metres (float, NaN when unreadable or <= 0)."""
    s = values.astype("string").str.strip().str.lower()
    parts = s.str.extract(r"^" + _NUMBER + r"\s*(m|meters?|metres?|ft|feet|')?$")
    number = pd.to_numeric(parts[0].str.replace(",", ".", regex=False), errors="coerce")
    feet = parts[1].isin(["ft", "feet", "'"])
    metres = number.where(~feet, number * _FEET).to_numpy(dtype=float, na_value=np.nan)
    metres[~(metres > 0)] = np.nan
    return metres


def parse_number(values: pd.Series) -> np.ndarray:
    """The first number of a tag value ('2', '2;3', '2.5') as float, NaN when none."""
    s = values.astype("string").str.extract(r"^\s*" + _NUMBER)[0].str.replace(",", ".", regex=False)
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def parse_layer(values: pd.Series) -> np.ndarray:
    """OSM `layer` as int (0 when missing or unreadable; '-0.5' rounds toward underground)."""
    number = parse_number(values)
    return np.nan_to_num(np.floor(number + 0.5), nan=0.0).astype(np.int64)


def parse_flag(values: pd.Series) -> np.ndarray:
    """bridge=*, tunnel=*: any value except no/false/0 means yes."""
    s = values.astype("string").str.strip().str.lower()
    return (s.notna() & ~s.isin(_ONEWAY_NO)).to_numpy(dtype=bool, na_value=False)


def parse_oneway(oneway: pd.Series, highway: pd.Series, junction: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """-> (one_way, reversed). `reversed` marks oneway=-1: traffic runs against the way's
    direction. An explicit no/false/0 beats a one-way implied by highway or junction."""
    s = oneway.astype("string").str.strip().str.lower()
    explicit_yes = s.isin(_ONEWAY_YES).to_numpy(dtype=bool, na_value=False)
    reverse = s.isin(_ONEWAY_REVERSE).to_numpy(dtype=bool, na_value=False)
    explicit_no = s.isin(_ONEWAY_NO).to_numpy(dtype=bool, na_value=False)
    implied = (highway.isin(IMPLIED_ONEWAY_HIGHWAY).to_numpy(dtype=bool, na_value=False)
               | junction.isin(IMPLIED_ONEWAY_JUNCTION).to_numpy(dtype=bool, na_value=False))
    return explicit_yes | reverse | (implied & ~explicit_no), reverse


# --- shaping into canonical frames -----------------------------------------------------

def building_layer(tags: list[dict[str, str]]) -> np.ndarray:
    """`layer` as int, with location=underground or building=underground meaning -1
    unless the layer tag already puts the building below ground."""
    layer = parse_layer(tag(tags, "layer"))
    below = (tag(tags, "location").eq("underground")
             | tag(tags, "building").eq("underground")).to_numpy(dtype=bool)
    return np.where(below & (layer >= 0), -1, layer)


def _buildings(raw: gpd.GeoDataFrame, tags: list[dict[str, str]]) -> gpd.GeoDataFrame:
    layer = building_layer(tags)
    return gpd.GeoDataFrame({
        "source_id": _source_ids(raw),
        "name": tag(tags, "name"),
        "height": parse_height(tag(tags, "height")),
        "levels": parse_number(tag(tags, "building:levels")),
        "use_raw": tag(tags, "building"),
        "layer": layer,
        "underground": layer < 0,
        "attrs": _attrs(tags, {"name", "height", "building:levels", "building", "layer"}),
    }, geometry=raw.geometry.values, crs=WGS84)


def _roads(raw: gpd.GeoDataFrame, tags: list[dict[str, str]]) -> gpd.GeoDataFrame:
    edges = merge_way_segments(raw)
    rows = edges["first_row"]
    tags = [tags[i] for i in rows]
    highway, junction = tag(tags, "highway"), tag(tags, "junction")
    one_way, reverse = parse_oneway(tag(tags, "oneway"), highway, junction)
    u, v, nodes, geometry = edges["u"], edges["v"], edges["nodes"], edges["geometry"]
    # Edges run in the allowed direction of travel, so oneway=-1 ways are turned round.
    u, v = np.where(reverse, v, u), np.where(reverse, u, v)
    geometry = np.where(reverse, shapely.reverse(geometry), geometry)
    nodes = [n[::-1] if r else n for n, r in zip(nodes, reverse)]
    return gpd.GeoDataFrame({
        "source_id": _source_ids(raw.iloc[rows]),
        "name": tag(tags, "name"),
        "highway": highway,
        "oneway": one_way,
        "lanes": parse_number(tag(tags, "lanes")),
        "layer": parse_layer(tag(tags, "layer")),
        "bridge": parse_flag(tag(tags, "bridge")),
        "tunnel": parse_flag(tag(tags, "tunnel")),
        "length": edges["length"],
        "u": u.astype(np.int64),
        "v": v.astype(np.int64),
        "nodes": [json.dumps(n.tolist()) for n in nodes],
        "attrs": _attrs(tags, {"name", "highway", "oneway", "lanes", "layer", "bridge", "tunnel"}),
    }, geometry=geometry, crs=WGS84)


def merge_way_segments(segments: gpd.GeoDataFrame) -> dict:
    """Join pyrosm's one-row-per-segment network into edges between junctions.

    A chain of segments of one way is cut where the next segment does not start at
    the previous end, or at a node that any third segment touches (a junction).
    Returns arrays per edge: u, v, length, geometry, nodes (array of node ids) and
    first_row (row in `segments` of its first segment, for the way's tags).
    """
    way = segments["id"].to_numpy(dtype=np.int64)
    u = segments["u"].to_numpy(dtype=np.int64)
    v = segments["v"].to_numpy(dtype=np.int64)
    n = len(u)
    ids, counts = np.unique(np.concatenate([u, v]), return_counts=True)
    degree = counts[np.searchsorted(ids, u)]
    start = np.ones(n, dtype=bool)
    start[1:] = (way[1:] != way[:-1]) | (u[1:] != v[:-1]) | (degree[1:] != 2)
    first = np.flatnonzero(start)
    last = np.append(first[1:], n) - 1
    group = np.cumsum(start) - 1

    # Each edge's vertices: the start of each of its segments, then the end of its last one.
    coords = shapely.get_coordinates(segments.geometry.values)
    seg_start = coords[0::2] if len(coords) == 2 * n else _segment_ends(segments, first=True)
    seg_end = coords[1::2] if len(coords) == 2 * n else _segment_ends(segments, first=False)
    pos_start = np.arange(n) + group
    pos_end = last + np.arange(len(first)) + 1
    total = n + len(first)
    xy = np.empty((total, 2))
    node_ids = np.empty(total, dtype=np.int64)
    owner = np.empty(total, dtype=np.int64)
    xy[pos_start], node_ids[pos_start], owner[pos_start] = seg_start, u, group
    xy[pos_end], node_ids[pos_end], owner[pos_end] = seg_end[last], v[last], np.arange(len(first))
    geometry = shapely.linestrings(xy, indices=owner)
    length = np.add.reduceat(segments["length"].to_numpy(dtype=float), first)
    nodes = np.split(node_ids, pos_end[:-1] + 1)
    return {"u": u[first], "v": v[last], "length": length, "geometry": geometry,
            "nodes": nodes, "first_row": first}


def _segment_ends(segments: gpd.GeoDataFrame, first: bool) -> np.ndarray:
    points = shapely.get_point(segments.geometry.values, 0 if first else -1)
    return shapely.get_coordinates(points)


def _pois(raw: gpd.GeoDataFrame, tags: list[dict[str, str]]) -> gpd.GeoDataFrame:
    kind = pd.Series([None] * len(tags), dtype=object)
    for key in reversed(POI_KEYS):  # earlier keys win
        value = tag(tags, key)
        kind = value.where(value.notna(), kind)
    geometry = raw.geometry.values
    not_point = shapely.get_type_id(geometry) != 0
    geometry = np.where(not_point, shapely.point_on_surface(geometry), geometry)
    return gpd.GeoDataFrame({
        "source_id": _source_ids(raw),
        "name": tag(tags, "name"),
        "kind": kind,
        "capacity": parse_number(tag(tags, "capacity")),
        "attrs": _attrs(tags, {"name", "capacity"}),
    }, geometry=geometry, crs=WGS84)


def _water(raw: gpd.GeoDataFrame, tags: list[dict[str, str]]) -> gpd.GeoDataFrame:
    waterway, water = tag(tags, "waterway"), tag(tags, "water")
    reservoir = tag(tags, "landuse").eq("reservoir")
    kind = waterway.where(waterway.notna(),
                          pd.Series(np.where(reservoir, "reservoir", None), dtype=object))
    kind = kind.where(kind.notna(), water).fillna("water")
    return gpd.GeoDataFrame({
        "source_id": _source_ids(raw),
        "name": tag(tags, "name"),
        "kind": kind,
        "attrs": _attrs(tags, {"name"}),
    }, geometry=raw.geometry.values, crs=WGS84)


_SHAPERS: dict[str, Callable[[gpd.GeoDataFrame, list[dict[str, str]]], gpd.GeoDataFrame]] = {
    "buildings": _buildings, "roads": _roads, "pois": _pois, "water": _water,
}
