"""In-memory layers for queries: one `LayerIndex` per store holds each layer's
frame, STRtree, column arrays and pre-serialised GeoJSON fragments, loaded once.

Nothing here is a module global: the API keeps one `LayerIndex` on `app.state`;
tests and scripts create their own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np
import orjson
import pandas as pd
import shapely

from twin.manifest import LayerRecord
from twin.query import crs as crsmod
from twin.query.errors import FeatureNotFound
from twin.store.base import TwinStore

# Column names taken as a layer's temporal property, in order of preference,
# when the layer has datetime columns (the `datetime` parameter filters on it).
TEMPORAL_NAMES = ("datetime", "timestamp", "time", "date", "observed_at", "updated_at", "valid_from")


def _kind(dtype) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "string"


def _json_default(obj: Any):
    if obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError


@dataclass(frozen=True)
class Column:
    """A property as flat arrays: `values` with nulls filled, `nulls` True where missing."""

    kind: str            # number | integer | boolean | string | datetime
    values: np.ndarray
    nulls: np.ndarray


@dataclass
class LayerData:
    """One vector layer held in memory (project CRS, x/y axis order)."""

    name: str
    record: LayerRecord
    frame: pd.DataFrame              # attributes only, storage order
    geoms: np.ndarray                # shapely geometries
    tree: shapely.STRtree
    ids: np.ndarray                  # feature ids as str
    kinds: dict[str, str]            # property -> kind
    temporal: str | None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _columns: dict[str, Column] = field(default_factory=dict, repr=False)
    _props: np.ndarray | None = field(default=None, repr=False)
    _geojson: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _id_pos: dict[str, int] | None = field(default=None, repr=False)
    _id_json: np.ndarray | None = field(default=None, repr=False)
    _derived: dict[str, Any] = field(default_factory=dict, repr=False)
    _bounds: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.geoms)

    @classmethod
    def from_frame(cls, name: str, record: LayerRecord, frame) -> "LayerData":
        geoms = np.asarray(frame.geometry.values, dtype=object)
        attrs = pd.DataFrame(frame.drop(columns=frame.geometry.name))
        for col in attrs.columns:
            if pd.api.types.is_datetime64_any_dtype(attrs[col].dtype) and getattr(attrs[col].dt, "tz", None):
                attrs[col] = attrs[col].dt.tz_convert("UTC").dt.tz_localize(None)
        if "id" in attrs:
            ids = np.array(attrs["id"].astype(object).where(attrs["id"].notna(), None).tolist(), dtype=object)
            missing = np.array([v is None for v in ids])
            ids[missing] = [f"{name}.{i}" for i in np.flatnonzero(missing)]
            ids = ids.astype(str)
        else:
            ids = np.array([f"{name}.{i}" for i in range(len(attrs))], dtype=str)
        kinds = {c: _kind(attrs[c].dtype) for c in attrs.columns}
        times = [c for c, k in kinds.items() if k == "datetime"]
        temporal = next((c for c in TEMPORAL_NAMES if c in times), times[0] if times else None)
        return cls(name=name, record=record, frame=attrs.reset_index(drop=True), geoms=geoms,
                   tree=shapely.STRtree(geoms), ids=ids, kinds=kinds, temporal=temporal,
                   _bounds=shapely.bounds(geoms))

    @property
    def bounds(self) -> np.ndarray:
        """(n, 4) envelopes minx, miny, maxx, maxy (NaN for missing or empty geometries)."""
        if self._bounds is None:
            self._bounds = shapely.bounds(self.geoms)
        return self._bounds

    def intersecting(self, area: shapely.Geometry,
                     core: tuple[float, float, float, float] | None = None) -> np.ndarray:
        """Positions of the features intersecting `area`, ascending.

        `core`, an axis-aligned rectangle known to lie inside `area`, lets features whose
        envelope lies in it skip the exact GEOS test (most of them for a bbox query)."""
        if core is None:
            return np.sort(self.tree.query(area, predicate="intersects"))
        cand = self.tree.query(area)
        b = self.bounds[cand]
        inside = (b[:, 0] >= core[0]) & (b[:, 1] >= core[1]) & (b[:, 2] <= core[2]) & (b[:, 3] <= core[3])
        edge = cand[~inside]
        if len(edge):
            shapely.prepare(area)
            edge = edge[shapely.intersects(area, self.geoms[edge])]
        return np.sort(np.concatenate([cand[inside], edge]))

    # -- columns for filters
    def column(self, name: str) -> Column:
        col = self._columns.get(name)
        if col is not None:
            return col
        kind = self.kinds[name]
        series = self.frame[name]
        nulls = series.isna().to_numpy(dtype=bool)
        if kind in ("number", "integer"):
            values = series.to_numpy(dtype=float, na_value=np.nan)
        elif kind == "boolean":
            values = series.fillna(False).to_numpy(dtype=bool)
        elif kind == "datetime":
            values = series.to_numpy(dtype="datetime64[ns]")
        else:
            values = series.astype(object).where(~nulls, "").to_numpy(dtype=object)
        col = Column(kind, values, nulls)
        self._columns[name] = col
        return col

    def derived(self, key: str, make: Callable[["LayerData"], Any]) -> Any:
        """Something computed from the layer once and kept with it (e.g. its road graph)."""
        if key not in self._derived:
            with self._lock:
                if key not in self._derived:
                    self._derived[key] = make(self)
        return self._derived[key]

    def geometry_family(self) -> str:
        """'polygon', 'line' or 'point', from the manifest or the first geometry."""
        gtype = self.record.geometry_type or (self.geoms[0].geom_type if len(self.geoms) else "Polygon")
        return "polygon" if "Polygon" in gtype else "line" if "LineString" in gtype else "point"

    # -- lookups
    def position(self, feature_id: str) -> int:
        if self._id_pos is None:
            with self._lock:
                if self._id_pos is None:
                    self._id_pos = {fid: i for i, fid in enumerate(self.ids.tolist())}
        pos = self._id_pos.get(feature_id)
        if pos is None:
            raise FeatureNotFound(f"no feature '{feature_id}' in '{self.name}'", source=self.name)
        return pos

    # -- GeoJSON fragments, computed once per layer (and per output CRS)
    def properties_json(self, rows: np.ndarray, select: list[str] | None = None) -> list[str]:
        if select is not None:
            sub = self.frame.iloc[rows][select]
            return [orjson.dumps(r, default=_json_default).decode() for r in sub.to_dict("records")]
        if self._props is None:
            with self._lock:
                if self._props is None:
                    recs = self.frame.to_dict("records")
                    self._props = np.array([orjson.dumps(r, default=_json_default).decode() for r in recs],
                                           dtype=object)
        return self._props[rows].tolist()

    def id_json(self, rows: np.ndarray) -> list[str]:
        if self._id_json is None:
            with self._lock:
                if self._id_json is None:
                    self._id_json = np.array([orjson.dumps(i).decode() for i in self.ids.tolist()], dtype=object)
        return self._id_json[rows].tolist()

    def geometry_json(self, rows: np.ndarray, out: crsmod.CrsInfo, project: crsmod.CrsInfo) -> list[str]:
        cached = self._geojson.get(out.uri)
        if cached is None:
            with self._lock:
                cached = self._geojson.get(out.uri)
                if cached is None:
                    geoms = crsmod.to_output(self.geoms, project, out)
                    geoms = shapely.set_precision(geoms, out.precision, mode="pointwise")
                    cached = shapely.to_geojson(geoms).astype(object)
                    cached[cached == None] = "null"  # noqa: E711  (missing geometry)
                    self._geojson[out.uri] = cached
        return cached[rows].tolist()

    def serialised(self, uri: str) -> bool:
        """Whether every feature's id, properties and geometry (in CRS `uri`) are already serialised,
        so that `features_json` without a property selection is only a gather and a join."""
        return self._props is not None and self._id_json is not None and uri in self._geojson

    def features_json(self, rows: np.ndarray, out: crsmod.CrsInfo, project: crsmod.CrsInfo,
                      select: list[str] | None = None) -> list[str]:
        """Each row as a GeoJSON Feature string, joined without re-parsing anything."""
        ids = self.id_json(rows)
        geoms = self.geometry_json(rows, out, project)
        props = self.properties_json(rows, select)
        return ['{"type":"Feature","id":' + i + ',"geometry":' + g + ',"properties":' + p + "}"
                for i, g, p in zip(ids, geoms, props)]


class ExtraLayers(Protocol):
    """Layers served beside the twin's own (e.g. scenario results), looked up fresh on each use."""

    def names(self) -> list[str]: ...
    def record(self, name: str) -> LayerRecord: ...   # LayerNotFound when gone
    def load(self, name: str): ...                     # a GeoDataFrame in the project CRS


class LayerIndex:
    """The store's vector layers (and any extra layers), each loaded on first use and then kept in memory."""

    def __init__(self, store: TwinStore, extra: ExtraLayers | None = None):
        self.store = store
        self.extra = extra
        manifest = store.manifest()
        self.project = crsmod.crs_info(crsmod.project_uri(manifest.crs))
        self._layers: dict[str, LayerData] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return self.store.layer_names() + (self.extra.names() if self.extra else [])

    def _is_own(self, name: str) -> bool:
        return name in self.store.manifest().layers

    def record(self, name: str) -> LayerRecord:
        from twin.errors import LayerNotFound

        rec = self.store.manifest().layers.get(name)
        if rec is not None:
            return rec
        if self.extra is not None:
            try:
                return self.extra.record(name)
            except LayerNotFound:
                self._layers.pop(name, None)   # e.g. a dismissed job: forget its cached layer
                raise
        raise LayerNotFound(f"no collection '{name}'", source=name)

    def loaded(self, name: str) -> LayerData | None:
        """The layer if it is already in memory, else None (never loads or looks up: safe on an
        event loop). Extra layers always answer None so their existence is re-checked off the loop."""
        data = self._layers.get(name)
        return data if data is not None and self._is_own(name) else None

    def layer(self, name: str) -> LayerData:
        own = self._is_own(name)
        record = None if own else self.record(name)   # extra layers: re-checked on every use
        data = self._layers.get(name)
        if data is not None:
            return data
        record = record or self.record(name)
        with self._lock:
            data = self._layers.get(name)
            if data is None:
                frame = self.store.read_layer(name) if own else self.extra.load(name)
                data = LayerData.from_frame(name, record, frame)
                self._layers[name] = data
        return data

    def warm(self, names: list[str] | None = None, crs_uris: list[str] | None = None) -> None:
        """Load layers and serialise their GeoJSON up front (e.g. before a benchmark)."""
        for name in names or self.names():
            data = self.layer(name)
            every = np.arange(len(data))
            data.properties_json(every)
            data.id_json(every)
            for uri in crs_uris or [crsmod.CRS84]:
                out = crsmod.crs_info(uri)
                data.geometry_json(every, out, self.project)
                if data.record.bbox:      # a bbox query in this CRS: builds the transformers it needs
                    bbox = tuple(crsmod.bounds_from_project(tuple(data.record.bbox), self.project, out))
                    area = crsmod.bbox_to_project(bbox, out, self.project)
                    data.intersecting(area, crsmod.bbox_core(bbox, out, self.project, area))
