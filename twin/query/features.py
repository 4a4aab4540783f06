"""Feature queries over a `LayerIndex`: bbox, datetime, CQL2 filter, paging, property selection.

Parameter parsing lives here too (it is about values, not HTTP) so a malformed value
raises `QueryError` naming the parameter wherever the query comes from.

datetime: a layer with a datetime column (see `layer.TEMPORAL_NAMES`) is filtered on
it. Layers without any temporal property accept a valid `datetime` and ignore it
(every feature is returned), as pygeoapi and OGC API - Features Part 1 allow for
collections that have no temporal extent; a malformed value is still a 400.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import numpy as np
import orjson
import shapely

from twin.query import crs as crsmod
from twin.query.cql2 import Expr, evaluate
from twin.query.cql2_eval import check
from twin.query.errors import QueryError
from twin.query.layer import LayerData, LayerIndex


# -- parameter parsing -------------------------------------------------------------------------
def parse_int(text: str | None, field: str, *, default: int, minimum: int) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text.strip())
    except ValueError:
        raise QueryError(f"'{text}' is not an integer", field=field) from None
    if value < minimum:
        raise QueryError(f"must be at least {minimum}, got {value}", field=field)
    return value


def parse_limit(text: str | None, *, default: int, maximum: int) -> int:
    """Values above `maximum` are capped, not refused (OGC API - Features /req/core/fc-limit-response)."""
    return min(parse_int(text, "limit", default=default, minimum=1), maximum)


def parse_bbox(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) not in (4, 6):
        raise QueryError("bbox needs 4 or 6 comma-separated numbers", field="bbox")
    try:
        nums = tuple(float(p) for p in parts)
    except ValueError:
        raise QueryError(f"'{text}' is not a list of numbers", field="bbox") from None
    if not all(math.isfinite(n) for n in nums):
        raise QueryError("bbox values must be finite", field="bbox")
    half = len(nums) // 2
    if any(nums[i] > nums[i + half] for i in range(half)):
        raise QueryError("bbox lower corner must not exceed the upper corner", field="bbox")
    return nums


def _instant(text: str, end: bool) -> np.datetime64 | None:
    if text in ("..", ""):
        return None
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            value = np.datetime64(d.isoformat(), "ns")
            return value + np.timedelta64(1, "D") - np.timedelta64(1, "ns") if end else value
        if "T" not in text.upper():
            raise ValueError
        dt = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"'{text}' is not an RFC 3339 date or date-time", field="datetime") from None
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return np.datetime64(dt.isoformat(), "ns")


def parse_datetime(text: str | None) -> tuple[np.datetime64 | None, np.datetime64 | None] | None:
    """An instant or a closed / half-open interval `a/b` (`..` or empty for open ends)."""
    if text is None:
        return None
    parts = text.split("/")
    if len(parts) == 1:
        if text in ("", ".."):
            raise QueryError("an instant cannot be open", field="datetime")
        return _instant(text, False), _instant(text, True)
    if len(parts) != 2 or parts[0] in ("", "..") and parts[1] in ("", ".."):
        raise QueryError("use an instant or an interval start/end with at most one open end", field="datetime")
    start, end = _instant(parts[0], False), _instant(parts[1], True)
    if start is not None and end is not None and start > end:
        raise QueryError("interval start is after its end", field="datetime")
    return start, end


def parse_properties(text: str | None, layer: LayerData) -> list[str] | None:
    if text is None:
        return None
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [n for n in names if n not in layer.kinds]
    if unknown:
        raise QueryError(f"unknown properties {', '.join(unknown)}", field="properties")
    return list(dict.fromkeys(names))


# -- the query --------------------------------------------------------------------------------
def _crs84() -> crsmod.CrsInfo:
    return crsmod.crs_info(crsmod.CRS84)


@dataclass(frozen=True)
class ItemsQuery:
    limit: int
    offset: int = 0
    bbox: tuple[float, ...] | None = None
    bbox_crs: crsmod.CrsInfo = field(default_factory=_crs84)
    datetime: tuple[np.datetime64 | None, np.datetime64 | None] | None = None
    filter: Expr | None = None
    filter_crs: crsmod.CrsInfo = field(default_factory=_crs84)
    crs: crsmod.CrsInfo = field(default_factory=_crs84)
    properties: list[str] | None = None


@dataclass(frozen=True)
class ItemsPage:
    matched: int
    rows: np.ndarray            # positions in the layer, storage order
    features: list[str]         # GeoJSON Feature strings

    @property
    def returned(self) -> int:
        return len(self.rows)


def matching_rows(index: LayerIndex, layer: LayerData, q: ItemsQuery) -> np.ndarray:
    """Positions of every feature that passes bbox, datetime and filter, ascending."""
    if q.filter is not None:
        check(q.filter, layer, q.filter_crs, index.project)
    if q.bbox is not None:
        area = crsmod.bbox_to_project(q.bbox, q.bbox_crs, index.project)
        rows = layer.intersecting(area, crsmod.bbox_core(q.bbox, q.bbox_crs, index.project, area))
    else:
        rows = np.arange(len(layer))
    if q.datetime is not None and layer.temporal is not None and len(rows):
        col = layer.column(layer.temporal)
        values = col.values[rows]
        keep = ~col.nulls[rows]
        start, end = q.datetime
        if start is not None:
            keep &= values >= start
        if end is not None:
            keep &= values <= end
        rows = rows[keep]
    if q.filter is not None and len(rows):
        rows = rows[evaluate(q.filter, layer, rows, q.filter_crs, index.project)]
    return rows


def query_items(index: LayerIndex, name: str, q: ItemsQuery) -> ItemsPage:
    layer = index.layer(name)
    rows = matching_rows(index, layer, q)
    page = rows[q.offset:q.offset + q.limit]
    return ItemsPage(matched=len(rows), rows=page, features=layer.features_json(page, q.crs, index.project,
                                                                                 q.properties))


def feature_json(index: LayerIndex, name: str, feature_id: str, out: crsmod.CrsInfo,
                 properties: list[str] | None = None) -> str:
    layer = index.layer(name)
    return layer.features_json(np.array([layer.position(feature_id)]), out, index.project, properties)[0]


def timestamp() -> str:
    """Now, as the RFC 3339 UTC `timeStamp` of a response."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def collection_json(features: list[str], *, matched: int | None, links: list[dict], timestamp: str) -> bytes:
    """A GeoJSON FeatureCollection assembled from pre-serialised features."""
    head = {"type": "FeatureCollection", "timeStamp": timestamp, "numberReturned": len(features)}
    if matched is not None:
        head["numberMatched"] = matched
    head["links"] = links
    return orjson.dumps(head)[:-1] + b',"features":[' + ",".join(features).encode() + b"]}"


def extent_of(index: LayerIndex, name: str, out: crsmod.CrsInfo) -> list[float] | None:
    rec = index.record(name)
    if rec.bbox is None:
        return None
    return crsmod.bounds_from_project(tuple(rec.bbox), index.project, out)


def geometry_in(text_or_geojson, src: crsmod.CrsInfo, index: LayerIndex, field: str) -> shapely.Geometry:
    """A WKT string or GeoJSON geometry (dict or str) in `src` axis order -> project x/y."""
    try:
        if isinstance(text_or_geojson, dict):
            geom = shapely.from_geojson(orjson.dumps(text_or_geojson).decode())
        else:
            text = str(text_or_geojson).strip()
            geom = shapely.from_geojson(text) if text.startswith("{") else shapely.from_wkt(text)
    except (shapely.errors.GEOSException, ValueError, TypeError) as exc:
        raise QueryError(f"not a valid geometry: {str(exc).splitlines()[0][:120]}", field=field) from None
    if geom is None or geom.is_empty:
        raise QueryError("geometry is empty", field=field)
    return crsmod.to_project(geom, src, index.project)
