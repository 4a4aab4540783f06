"""Find features by name or id across the twin's vector layers.

`SearchIndex.from_store` reads the searchable columns of each layer once
(ids, names, English names from the source tags, heights) with one
representative point per feature in WGS84; `SearchIndex.search` then ranks
matches in memory. Features of one layer sharing a name (a road cut into
segments) collapse into one hit that counts them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import numpy as np
import pandas as pd
from pyproj import Transformer

from twin.errors import TwinError

if TYPE_CHECKING:
    import geopandas as gpd

    from twin.store.base import TwinStore

ID_COLUMNS = ("id", "source_id", "global_id")
MAX_LIMIT = 100

# Scores: higher first.
EXACT_ID, EXACT_NAME, NAME_PREFIX, NAME_CONTAINS, ID_PREFIX = 100, 90, 70, 50, 40


class SearchError(TwinError):
    """A search request cannot be answered (empty query, bad limit)."""


@dataclass(frozen=True)
class SearchHit:
    id: str
    layer: str
    name: str | None
    name_en: str | None
    lon: float
    lat: float
    height: float | None       # the feature's own height, metres (building ground to roof, BIM element)
    top: float | None          # elevation of its top above the vertical datum, metres, when known
    score: int
    matches: int = 1           # features of the same layer and name folded into this hit


@dataclass(frozen=True)
class _Entry:
    layer: str
    order: int                 # position of the layer in the index (ties keep layer order)
    ids: tuple[str, ...]
    name: str | None
    name_en: str | None
    lon: float
    lat: float
    height: float | None
    top: float | None


class SearchIndex:
    """Searchable columns of some layers of a twin, held in memory."""

    def __init__(self, entries: list[_Entry]):
        self._entries = entries
        self._keys = [(tuple(i.casefold() for i in e.ids), (e.name or "").casefold(), (e.name_en or "").casefold())
                      for e in entries]

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def from_store(cls, store: "TwinStore", layers: Iterable[str] | None = None) -> "SearchIndex":
        """Index `layers` (default: every vector layer) of `store`."""
        names = list(layers) if layers is not None else store.layer_names()
        to_wgs84 = Transformer.from_crs(store.manifest().crs, "EPSG:4326", always_xy=True)
        entries: list[_Entry] = []
        for order, name in enumerate(names):
            entries.extend(_layer_entries(store.read_layer(name), name, order, to_wgs84))
        return cls(entries)

    def search(self, q: str, *, layers: Iterable[str] | None = None, limit: int = 20) -> list[SearchHit]:
        """Best matches of `q` (case-insensitive) against ids and names, within `layers` if given."""
        query = q.strip().casefold()
        if not query:
            raise SearchError("the query is empty", field="q")
        if not 1 <= limit <= MAX_LIMIT:
            raise SearchError(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
        allowed = set(layers) if layers is not None else None
        scored: list[tuple[int, _Entry]] = []
        for entry, key in zip(self._entries, self._keys):
            if allowed is not None and entry.layer not in allowed:
                continue
            score = _score(query, *key)
            if score:
                scored.append((score, entry))
        scored.sort(key=lambda se: (-se[0], se[1].order, len(se[1].name or ""), se[1].ids[0]))
        return _collapse(scored)[:limit]


def search(store: "TwinStore", q: str, *, layers: Iterable[str] | None = None, limit: int = 20) -> list[SearchHit]:
    """One-off search (builds the index each call; keep a `SearchIndex` to search often)."""
    return SearchIndex.from_store(store, layers).search(q, limit=limit)


def _score(query: str, ids: tuple[str, ...], name: str, name_en: str) -> int:
    if query in ids:
        return EXACT_ID
    if query == name or query == name_en:
        return EXACT_NAME
    if name.startswith(query) or name_en.startswith(query):
        return NAME_PREFIX
    if query in name or query in name_en:
        return NAME_CONTAINS
    if any(i.startswith(query) for i in ids):
        return ID_PREFIX
    return 0


def _collapse(scored: list[tuple[int, _Entry]]) -> list[SearchHit]:
    """One hit per (layer, name) for name matches; id matches stay one per feature."""
    hits: list[SearchHit] = []
    groups: dict[tuple[str, str], int] = {}
    for score, e in scored:
        key = (e.layer, e.name or "")
        if score not in (EXACT_ID, ID_PREFIX) and e.name and key in groups:
            i = groups[key]
            hits[i] = SearchHit(**{**hits[i].__dict__, "matches": hits[i].matches + 1})
            continue
        if e.name:
            groups.setdefault(key, len(hits))
        hits.append(SearchHit(id=e.ids[0], layer=e.layer, name=e.name, name_en=e.name_en, lon=e.lon, lat=e.lat,
                              height=e.height, top=e.top, score=score))
    return hits


def _layer_entries(frame: "gpd.GeoDataFrame", layer: str, order: int, to_wgs84: Transformer) -> list[_Entry]:
    frame = frame[~frame.geometry.isna() & ~frame.geometry.is_empty]
    if not len(frame):
        return []
    points = [_anchor(g) for g in frame.geometry]
    lon, lat = to_wgs84.transform(np.array([p[0] for p in points]), np.array([p[1] for p in points]))
    height, top = _heights(frame)
    entries = []
    for i, row in enumerate(frame.itertuples(index=False)):
        values = row._asdict()
        ids = tuple(str(values[c]) for c in ID_COLUMNS if c in values and _present(values[c]))
        if not ids:
            continue
        name = str(values["name"]) if _present(values.get("name")) else None
        entries.append(_Entry(layer=layer, order=order, ids=ids, name=name, name_en=_english_name(values.get("attrs")),
                              lon=float(lon[i]), lat=float(lat[i]), height=height[i], top=top[i]))
    return entries


def _anchor(geom) -> tuple[float, float]:
    """A point on or in the feature: the centroid of a polygon when inside it, else a point on it."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        c = geom.centroid
        if geom.contains(c):
            return c.x, c.y
    if geom.geom_type in ("LineString", "MultiLineString"):
        p = geom.interpolate(0.5, normalized=True)
        return p.x, p.y
    p = geom.representative_point()
    return p.x, p.y


def _heights(frame) -> tuple[list[float | None], list[float | None]]:
    n = len(frame)

    def col(name: str) -> np.ndarray:
        if name not in frame.columns:
            return np.full(n, np.nan)
        return frame[name].to_numpy(dtype=float, na_value=np.nan)

    if "roof" in frame.columns or "height" in frame.columns:        # buildings
        height, top = col("height"), col("roof")
    elif "z_max" in frame.columns:                                 # BIM elements
        top, height = col("z_max"), col("z_max") - col("z_min")
    else:
        height = top = np.full(n, np.nan)
    return [_number(v) for v in height], [_number(v) for v in top]


def _english_name(attrs: object) -> str | None:
    if not isinstance(attrs, str) or not attrs:
        return None
    try:
        data = json.loads(attrs)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    tags = data.get("tags_json") if isinstance(data.get("tags_json"), dict) else {}
    for value in (data.get("name_en"), tags.get("name:en")):
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _present(value: object) -> bool:
    if value is None or value is pd.NA:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return str(value).strip() != ""


def _number(value: float) -> float | None:
    return None if not math.isfinite(value) else round(float(value), 2)
