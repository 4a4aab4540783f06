"""Binary glTF (glb) for tile content, with per-feature metadata.

One mesh, one primitive, one node per glb. Feature metadata follows
EXT_mesh_features (a `_FEATURE_ID_0` vertex attribute pointing at property
table 0) and EXT_structural_metadata (a typed, binary property table with a
schema class). For 3D Tiles 1.0 (b3dm) the same writer emits a `_BATCHID`
attribute instead and leaves the metadata to the b3dm batch table.

Layout rules we keep (glTF 2.0 and EXT_structural_metadata):
- every bufferView starts on an 8-byte boundary of the single BIN chunk;
- vertex attributes are 4-byte aligned (int8 normals are padded to 4 bytes);
- property-table strings are UTF-8 with UINT32 offsets, booleans are
  LSB-first bitstreams, enums are UINT8 codes.

Normals are signed bytes (normalised), which needs KHR_mesh_quantization;
CesiumJS renders primitives without normals unlit, so we keep them.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

GLB_MAGIC = 0x46546C67
CHUNK_JSON = 0x4E4F534A
CHUNK_BIN = 0x004E4942

FLOAT, BYTE, UNSIGNED_BYTE, UNSIGNED_SHORT, UNSIGNED_INT = 5126, 5120, 5121, 5123, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963

PropertyKind = Literal["STRING", "FLOAT32", "FLOAT64", "INT16", "INT32", "UINT8", "BOOLEAN", "ENUM"]

_SCALAR_DTYPES: dict[str, np.dtype] = {
    "FLOAT32": np.dtype("<f4"), "FLOAT64": np.dtype("<f8"), "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"), "UINT8": np.dtype("u1"),
}


# ---------------------------------------------------------------------------
# Feature properties
# ---------------------------------------------------------------------------

@dataclass
class StringColumn:
    """Many UTF-8 strings as one byte buffer and N+1 offsets (Arrow style)."""

    data: np.ndarray       # uint8
    offsets: np.ndarray    # int64, len N + 1

    @classmethod
    def from_values(cls, values) -> "StringColumn":
        arr = np.empty(len(values), dtype=object)
        arr[:] = list(values) if not isinstance(values, np.ndarray) else values
        missing = pd.isna(arr)
        if missing.any():
            arr[missing] = ""
        if pd.api.types.infer_dtype(arr, skipna=False) != "string":   # numbers, bytes...: str() each
            arr = np.array([str(v) for v in arr.tolist()] + [None], dtype=object)[:-1]
        texts = arr.tolist()
        if not texts:
            return cls(np.zeros(0, np.uint8), np.zeros(1, np.int64))
        joined = "\x00".join(texts)
        if joined.count("\x00") == len(texts) - 1:
            buf = np.frombuffer(joined.encode("utf-8"), dtype=np.uint8)
            cuts = np.flatnonzero(buf == 0)
            keep = np.ones(len(buf), dtype=bool)
            keep[cuts] = False
            starts = np.concatenate([[0], cuts + 1])
            ends = np.concatenate([cuts, [len(buf)]])
            lengths = ends - starts
            data = buf[keep]
        else:  # a value holds NUL itself: encode one by one
            encoded = [t.encode("utf-8") for t in texts]
            lengths = np.fromiter((len(b) for b in encoded), np.int64, len(encoded))
            data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        offsets = np.zeros(len(texts) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(data.copy(), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def take(self, index: np.ndarray) -> "StringColumn":
        index = np.asarray(index, np.int64)
        starts, ends = self.offsets[index], self.offsets[index + 1]
        lengths = ends - starts
        offsets = np.zeros(len(index) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        gather = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return StringColumn(self.data[gather], offsets)

    def slice(self, start: int, stop: int) -> "StringColumn":
        """Strings start..stop-1 (views, no copy)."""
        a, b = int(self.offsets[start]), int(self.offsets[stop])
        return StringColumn(self.data[a:b], self.offsets[start:stop + 1] - a)

    def to_list(self) -> list[str]:
        raw = self.data.tobytes()
        return [raw[a:b].decode("utf-8") for a, b in zip(self.offsets[:-1].tolist(), self.offsets[1:].tolist())]


@dataclass(frozen=True)
class PropertyDef:
    """One property of the schema class. `no_data` marks missing scalar values."""

    name: str
    kind: PropertyKind
    enum_values: tuple[str, ...] = ()
    no_data: float | int | None = None
    description: str | None = None


@dataclass
class FeatureProperties:
    """Typed property columns of a set of features (one row per feature)."""

    class_name: str
    defs: list[PropertyDef]
    columns: dict[str, np.ndarray | StringColumn]

    def __len__(self) -> int:
        first = next(iter(self.columns.values()), None)
        return 0 if first is None else len(first)

    def take(self, index: np.ndarray) -> "FeatureProperties":
        return FeatureProperties(
            self.class_name, self.defs,
            {k: (v.take(index) if isinstance(v, StringColumn) else v[index]) for k, v in self.columns.items()},
        )

    def slice(self, start: int, stop: int) -> "FeatureProperties":
        """Rows start..stop-1 (views, no copy)."""
        return FeatureProperties(
            self.class_name, self.defs,
            {k: (v.slice(start, stop) if isinstance(v, StringColumn) else v[start:stop])
             for k, v in self.columns.items()},
        )

    def byte_sizes(self) -> np.ndarray:
        """Approximate bytes each feature adds to a property table."""
        size = np.zeros(len(self), np.float64)
        for d in self.defs:
            col = self.columns[d.name]
            if isinstance(col, StringColumn):
                size += np.diff(col.offsets) + 4
            elif d.kind == "BOOLEAN":
                size += 0.125
            else:
                size += col.dtype.itemsize
        return size

    def to_batch_table(self) -> dict[str, list]:
        """The same columns as JSON arrays (3D Tiles 1.0 batch table)."""
        out: dict[str, list] = {}
        for d in self.defs:
            col = self.columns[d.name]
            if isinstance(col, StringColumn):
                out[d.name] = col.to_list()
            elif d.kind == "ENUM":
                names = np.asarray(d.enum_values, dtype=object)
                out[d.name] = names[col].tolist()
            elif d.kind == "BOOLEAN":
                out[d.name] = col.astype(bool).tolist()
            else:
                values = col.tolist()
                if d.no_data is not None:
                    values = [None if v == d.no_data else v for v in values]
                out[d.name] = values
        return out


def prepare_properties(frame, defs: list[PropertyDef], class_name: str) -> FeatureProperties:
    """Convert DataFrame columns to typed arrays, vectorised; missing columns become no-data."""
    n = len(frame)
    columns: dict[str, np.ndarray | StringColumn] = {}
    for d in defs:
        present = d.name in frame.columns
        raw = frame[d.name] if present else None
        if d.kind == "STRING":
            columns[d.name] = StringColumn.from_values(raw.to_numpy(dtype=object) if present else [""] * n)
        elif d.kind == "BOOLEAN":
            columns[d.name] = (raw.fillna(False).astype(bool).to_numpy() if present else np.zeros(n, bool))
        elif d.kind == "ENUM":
            names = list(d.enum_values)
            fallback = names.index("unknown") if "unknown" in names else (names.index("other") if "other" in names else 0)
            codes = (pd.Categorical(raw.astype(object), categories=names).codes if present
                     else np.full(n, -1))
            columns[d.name] = np.where(codes < 0, fallback, codes).astype(np.uint8)
        else:
            dtype = _SCALAR_DTYPES[d.kind]
            fill = d.no_data if d.no_data is not None else 0
            values = (np.asarray(raw.to_numpy(dtype=np.float64, na_value=np.nan), np.float64)
                      if present else np.full(n, np.nan))
            values = np.where(np.isfinite(values), values, fill)
            columns[d.name] = values.astype(dtype)
    return FeatureProperties(class_name, defs, columns)


def schema_json(props: FeatureProperties, schema_id: str) -> dict:
    """EXT_structural_metadata schema with one class and its enums."""
    properties: dict[str, dict] = {}
    enums: dict[str, dict] = {}
    for d in props.defs:
        p: dict = {}
        if d.kind == "STRING":
            p["type"] = "STRING"
        elif d.kind == "BOOLEAN":
            p["type"] = "BOOLEAN"
        elif d.kind == "ENUM":
            enum_name = f"{d.name}_values"
            p["type"], p["enumType"] = "ENUM", enum_name
            enums[enum_name] = {"valueType": "UINT8",
                                "values": [{"name": v, "value": i} for i, v in enumerate(d.enum_values)]}
        else:
            p["type"], p["componentType"] = "SCALAR", d.kind
            if d.no_data is not None:
                p["noData"] = d.no_data
        if d.description:
            p["description"] = d.description
        properties[d.name] = p
    schema: dict = {"id": schema_id, "classes": {props.class_name: {"properties": properties}}}
    if enums:
        schema["enums"] = enums
    return schema


# ---------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------

@dataclass
class TileMesh:
    """Triangles of one tile in glTF Y-up axes, relative to `translation`.

    positions: (V, 3) float32; normals: (V, 3) float32 unit vectors, int8 unit
    vectors x 127, or None;
    feature_ids: (V,) int feature index within the tile; indices: (T, 3) int.
    """

    positions: np.ndarray
    normals: np.ndarray | None
    feature_ids: np.ndarray
    indices: np.ndarray
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    color: tuple[float, float, float, float] = (0.85, 0.85, 0.82, 1.0)
    bounds: tuple[np.ndarray, np.ndarray] | None = None   # exact float32 min/max of positions, when known


@dataclass
class _BinWriter:
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    views: list[dict] = field(default_factory=list)

    def add(self, data: bytes, target: int | None = None, stride: int | None = None) -> int:
        pad = (-self.size) % 8
        if pad:
            self.chunks.append(b"\x00" * pad)
            self.size += pad
        if not data:  # glTF needs byteLength >= 1 (an empty string column, say)
            data = b"\x00"
        view: dict = {"buffer": 0, "byteOffset": self.size, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        if stride is not None:
            view["byteStride"] = stride
        self.chunks.append(data)
        self.size += len(data)
        self.views.append(view)
        return len(self.views) - 1

    def blob(self) -> bytes:
        out = b"".join(self.chunks)
        return out + b"\x00" * ((-len(out)) % 4)


def quantize_normals(normals: np.ndarray) -> np.ndarray:
    """Unit float normals -> (V, 4) int8, normalised BYTE with a pad byte (KHR_mesh_quantization).

    Rounded components are renormalised so that each stored vector is within
    the validator's unit-length tolerance."""
    n = np.asarray(normals, np.float64)
    q = np.round(n * 127.0)
    length = np.linalg.norm(q / 127.0, axis=1)
    bad = np.abs(length - 1.0) > 0.004
    if bad.any():  # nudge the largest component to restore unit length
        qb = q[bad] / 127.0
        big = np.argmax(np.abs(qb), axis=1)
        rows = np.arange(len(qb))
        rest = np.sum(qb ** 2, axis=1) - qb[rows, big] ** 2
        qb[rows, big] = np.sign(qb[rows, big]) * np.sqrt(np.clip(1.0 - rest, 0.0, 1.0))
        q[bad] = np.round(qb * 127.0)
    out = np.zeros((len(n), 4), np.int8)
    out[:, :3] = np.clip(q, -127, 127).astype(np.int8)
    return out


def write_glb(mesh: TileMesh, props: FeatureProperties | None = None, *, schema_id: str = "city_twin",
              batch_id: bool = False, name: str | None = None, schema_cache: dict | None = None) -> bytes:
    """Encode one tile as glb.

    With `props`, vertices carry `_FEATURE_ID_0` and the glb holds the
    EXT_structural_metadata property table; with `batch_id=True` (b3dm) they
    carry `_BATCHID` and no metadata extension is written. `schema_cache`
    (a dict kept by the caller) saves rebuilding the same schema for every tile."""
    positions = np.ascontiguousarray(mesh.positions, dtype="<f4")
    indices = np.asarray(mesh.indices).reshape(-1)
    n_vertices = len(positions)
    if n_vertices == 0 or len(indices) == 0:
        raise ValueError("a tile needs at least one triangle")
    bin_ = _BinWriter()
    accessors: list[dict] = []

    def accessor(view: int, component: int, count: int, type_: str, **extra) -> int:
        accessors.append({"bufferView": view, "componentType": component, "count": count, "type": type_, **extra})
        return len(accessors) - 1

    index_dtype, index_component = ("<u2", UNSIGNED_SHORT) if n_vertices < 65535 else ("<u4", UNSIGNED_INT)
    idx_view = bin_.add(indices.astype(index_dtype).tobytes(), ELEMENT_ARRAY_BUFFER)
    idx_acc = accessor(idx_view, index_component, len(indices), "SCALAR")

    pos_view = bin_.add(positions.tobytes(), ARRAY_BUFFER)
    low, high = mesh.bounds if mesh.bounds is not None else (positions.min(axis=0), positions.max(axis=0))
    attributes = {"POSITION": accessor(pos_view, FLOAT, n_vertices, "VEC3",
                                       min=[float(v) for v in np.asarray(low, np.float32)],
                                       max=[float(v) for v in np.asarray(high, np.float32)])}
    extensions_used: list[str] = []
    extensions_required: list[str] = []
    if mesh.normals is not None:
        if mesh.normals.dtype == np.int8:   # already quantised (x 127)
            packed = np.empty((n_vertices, 4), np.int8)
            packed[:, :3] = mesh.normals
            packed[:, 3] = 0
        else:
            packed = quantize_normals(mesh.normals)
        nrm_view = bin_.add(packed.tobytes(), ARRAY_BUFFER, stride=4)
        attributes["NORMAL"] = accessor(nrm_view, BYTE, n_vertices, "VEC3", normalized=True)
        extensions_used.append("KHR_mesh_quantization")
        extensions_required.append("KHR_mesh_quantization")

    ids = np.asarray(mesh.feature_ids, "<f4")
    id_view = bin_.add(ids.tobytes(), ARRAY_BUFFER)
    id_semantic = "_BATCHID" if batch_id else "_FEATURE_ID_0"
    attributes[id_semantic] = accessor(id_view, FLOAT, n_vertices, "SCALAR")

    primitive: dict = {"attributes": attributes, "indices": idx_acc, "material": 0, "mode": 4}
    gltf: dict = {
        "asset": {"version": "2.0", "generator": "city-twin tiles"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, **({"name": name} if name else {})}],
        "meshes": [{"primitives": [primitive]}],
        "materials": [{"pbrMetallicRoughness": {"baseColorFactor": list(mesh.color),
                                                "metallicFactor": 0.0, "roughnessFactor": 1.0}}],
        "accessors": accessors,
        "bufferViews": bin_.views,
    }
    if any(mesh.translation):
        gltf["nodes"][0]["translation"] = [float(v) for v in mesh.translation]

    if props is not None and not batch_id:
        feature_count = len(props)
        primitive["extensions"] = {"EXT_mesh_features": {"featureIds": [
            {"featureCount": feature_count, "attribute": 0, "propertyTable": 0}]}}
        if schema_cache is None:
            schema = schema_json(props, schema_id)
        else:
            key = (schema_id, id(props.defs))
            schema = schema_cache.get(key) or schema_cache.setdefault(key, schema_json(props, schema_id))
        gltf["extensions"] = {"EXT_structural_metadata": {
            "schema": schema,
            "propertyTables": [_property_table(props, bin_)],
        }}
        extensions_used += ["EXT_mesh_features", "EXT_structural_metadata"]

    blob = bin_.blob()
    gltf["buffers"] = [{"byteLength": len(blob)}]
    if extensions_used:
        gltf["extensionsUsed"] = extensions_used
    if extensions_required:
        gltf["extensionsRequired"] = extensions_required
    return _pack_glb(gltf, blob)


def _property_table(props: FeatureProperties, bin_: _BinWriter) -> dict:
    table: dict = {"class": props.class_name, "count": len(props), "properties": {}}
    for d in props.defs:
        col = props.columns[d.name]
        if isinstance(col, StringColumn):
            values = bin_.add(col.data.tobytes())
            offsets = bin_.add(col.offsets.astype("<u4").tobytes())
            table["properties"][d.name] = {"values": values, "stringOffsets": offsets, "stringOffsetType": "UINT32"}
        elif d.kind == "BOOLEAN":
            table["properties"][d.name] = {"values": bin_.add(np.packbits(col.astype(bool), bitorder="little").tobytes())}
        elif d.kind == "ENUM":
            table["properties"][d.name] = {"values": bin_.add(col.astype("u1").tobytes())}
        else:
            table["properties"][d.name] = {"values": bin_.add(col.astype(_SCALAR_DTYPES[d.kind]).tobytes())}
    return table


def _pack_glb(gltf: dict, blob: bytes) -> bytes:
    text = json.dumps(gltf, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((-len(text)) % 4)
    total = 12 + 8 + len(text) + (8 + len(blob) if blob else 0)
    parts = [struct.pack("<III", GLB_MAGIC, 2, total), struct.pack("<II", len(text), CHUNK_JSON), text]
    if blob:
        parts += [struct.pack("<II", len(blob), CHUNK_BIN), blob]
    return b"".join(parts)


def read_glb(data: bytes) -> tuple[dict, bytes]:
    """Split a glb into its JSON and BIN chunk (for tools and checks)."""
    magic, version, length = struct.unpack_from("<III", data, 0)
    if magic != GLB_MAGIC or version != 2 or length != len(data):
        raise ValueError("not a glb 2.0 blob")
    json_len, _ = struct.unpack_from("<II", data, 12)
    gltf = json.loads(data[20:20 + json_len])
    blob = b""
    if 20 + json_len < len(data):
        bin_len, _ = struct.unpack_from("<II", data, 20 + json_len)
        blob = data[28 + json_len:28 + json_len + bin_len]
    return gltf, blob
