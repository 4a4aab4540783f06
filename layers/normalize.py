"""From a driver's frame to a canonical layer: filter, map fields, reproject, repair, check, id.

Every step is vectorised over the frame; every repair is reported per feature.
"""

from __future__ import annotations

import hashlib
import json
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from layers.errors import EmptyLayerError, ExtentError, GeometryTypeError
from layers.schema import COLUMNS, GEOMETRY_TYPES

REPAIR_COLUMNS = ["layer", "source", "feature", "source_id", "problem", "action"]


# ---------------------------------------------------------------- filtering

def apply_tag_filter(frame: gpd.GeoDataFrame, tags: dict, exclude: dict, *, source: str) -> gpd.GeoDataFrame:
    keep = np.ones(len(frame), dtype=bool)
    for column, allowed in tags.items():
        keep &= _matches(frame, column, allowed, source=source)
    for column, banned in exclude.items():
        keep &= ~_matches(frame, column, banned, source=source)
    return frame.loc[keep]


def _matches(frame: pd.DataFrame, column: str, values, *, source: str) -> np.ndarray:
    if column not in frame.columns:
        raise EmptyLayerError(f"filter names attribute '{column}', which the source does not have "
                              f"(it has: {', '.join(map(str, frame.columns[:20]))})", source=source, field=column)
    col = frame[column]
    values = [values] if isinstance(values, str) else list(values)
    if values == ["*"]:
        return col.notna().to_numpy()
    return col.astype("string").isin([str(v) for v in values]).fillna(False).to_numpy(dtype=bool)


def clip_to_bbox(frame: gpd.GeoDataFrame, bbox, bbox_crs: CRS) -> gpd.GeoDataFrame:
    from layers.crs import transform_bounds

    b = transform_bounds(bbox, bbox_crs, frame.crs)
    return frame.loc[frame.intersects(shapely.box(*b))]


# ---------------------------------------------------------------- field mapping

_NUMBER = re.compile(r"([-+]?\d+(?:[.,]\d+)?)")


def parse_length(values: pd.Series) -> np.ndarray:
    """'12', '12.5 m', '40 ft', "40'" -> metres; anything else -> NaN."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return np.array(values.to_numpy(dtype=float, na_value=np.nan), dtype=float)
    text = values.astype("string").str.strip().str.lower()
    number = text.str.extract(_NUMBER.pattern, expand=False).str.replace(",", ".", regex=False)
    out = np.array(pd.to_numeric(number, errors="coerce").to_numpy(dtype=float, na_value=np.nan), dtype=float)
    feet = text.str.contains(r"ft|feet|'", regex=True).fillna(False).to_numpy(dtype=bool)
    out[feet] *= 0.3048
    return out


def map_fields(frame: gpd.GeoDataFrame, fields, kind: str) -> gpd.GeoDataFrame:
    """Canonical columns from the configured attribute names; the rest goes to `attrs` as JSON.

    A canonical column the driver already produced is used when the config maps none.
    """
    mapping = {k: v for k, v in fields.model_dump().items() if v}
    missing = [v for v in mapping.values() if v not in frame.columns]
    if missing:
        raise EmptyLayerError(f"mapped attribute(s) {missing} not in the source "
                              f"(it has: {', '.join(map(str, frame.columns[:30]))})", field=missing[0])
    canonical = set(COLUMNS.get(kind, [])) | {"source_id", "layer", "solid_height", "lod"}
    out = {}
    used: set[str] = set()
    target_of = {"id": "source_id", "use": "use_raw" if kind == "buildings" else "use"}
    for key, column in mapping.items():
        target = target_of.get(key, key)
        out[target] = frame[column]
        used.add(column)
    for column in frame.columns:
        if column == "geometry" or column in used:
            continue
        target = "source_id" if column == "id" else ("use_raw" if (kind == "buildings" and column == "use") else column)
        if target in canonical and target not in out:
            out[target] = frame[column]
            used.add(column)
    rest = [c for c in frame.columns if c not in used and c != "geometry"]
    result = gpd.GeoDataFrame(out, geometry=frame.geometry.values, crs=frame.crs, index=frame.index)
    if "attrs" not in result:
        result["attrs"] = _attrs_json(frame[rest]) if rest else "{}"
    return result


def _attrs_json(frame: pd.DataFrame) -> list[str]:
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return [json.dumps({k: _jsonable(v) for k, v in r.items() if v is not None}, ensure_ascii=False)
            for r in records]


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()]
    if isinstance(v, (dict, list, str, int, float, bool)):
        return v
    return str(v)


# ---------------------------------------------------------------- geometry

def repair(frame: gpd.GeoDataFrame, kind: str, *, layer: str, source: str) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Make geometries valid and of the layer's family; report every change per feature."""
    geoms = frame.geometry.values
    arr = np.asarray(geoms, dtype=object)
    records: list[pd.DataFrame] = []

    def report(mask: np.ndarray, problem, action: str):
        if not mask.any():
            return
        idx = np.flatnonzero(mask)
        records.append(pd.DataFrame({
            "layer": layer, "source": source, "feature": frame.index.to_numpy()[idx].astype(str),
            "source_id": (frame["source_id"].astype("string").to_numpy()[idx] if "source_id" in frame else None),
            "problem": problem if isinstance(problem, str) else np.asarray(problem)[idx],
            "action": action,
        }))

    missing = shapely.is_missing(arr) | shapely.is_empty(arr)
    report(missing, "empty or missing geometry", "dropped")
    arr = np.where(missing, None, arr)

    present = ~missing
    invalid = np.zeros(len(arr), dtype=bool)
    invalid[present] = ~shapely.is_valid(arr[present])
    if invalid.any():
        reasons = np.array([None] * len(arr), dtype=object)
        reasons[invalid] = shapely.is_valid_reason(arr[invalid])
        fixed = shapely.make_valid(arr[invalid], method="structure", keep_collapsed=False)
        arr[invalid] = fixed
        report(invalid, reasons, "made valid (shapely.make_valid, structure method)")

    family = GEOMETRY_TYPES.get(kind)
    if family is not None:
        polygonal = family <= {"Polygon", "MultiPolygon"} or kind in ("buildings", "landuse", "bim")
        if polygonal:
            types = shapely.get_type_id(arr)
            collection = types == 7
            if collection.any():
                arr[collection] = [shapely.union_all(shapely.get_parts(g)[np.isin(shapely.get_type_id(shapely.get_parts(g)), [3, 6])])
                                   for g in arr[collection]]
                report(collection, "geometry collection after repair", "kept polygon parts")
            # Slivers from repair or degenerate rings: zero area polygons are dropped.
            area_zero = np.zeros(len(arr), dtype=bool)
            poly = np.isin(shapely.get_type_id(arr), [3, 6])
            area_zero[poly] = shapely.area(arr[poly]) <= 0
            report(area_zero & ~missing, "zero area", "dropped")
            arr = np.where(area_zero, None, arr)
    keep = ~(shapely.is_missing(arr) | shapely.is_empty(arr))
    out = frame.loc[keep].copy()
    out = out.set_geometry(gpd.GeoSeries(arr[keep], index=out.index, crs=frame.crs))
    repairs = pd.concat(records, ignore_index=True) if records else pd.DataFrame(columns=REPAIR_COLUMNS)
    return out, repairs


def check_geometry_types(frame: gpd.GeoDataFrame, kind: str, *, source: str) -> None:
    allowed = GEOMETRY_TYPES.get(kind)
    if allowed is None or frame.empty:
        return
    types = frame.geom_type.to_numpy()
    bad = ~np.isin(types, list(allowed))
    if bad.any():
        first = np.flatnonzero(bad)[0]
        found = sorted(set(types[bad]))
        raise GeometryTypeError(
            f"{int(bad.sum())} of {len(frame)} features have geometry type {', '.join(found)}; "
            f"a '{kind}' layer needs {' or '.join(sorted(allowed))} (first at feature {frame.index[first]})",
            source=source)


def check_not_empty(frame: gpd.GeoDataFrame, *, source: str, what: str = "after filtering") -> None:
    if frame is None or len(frame) == 0:
        raise EmptyLayerError(f"no features {what}", source=source)


def check_overlap(frame_bounds, extent, *, source: str, crs: CRS) -> None:
    minx, miny, maxx, maxy = frame_bounds
    ex = extent
    if maxx < ex[0] or minx > ex[2] or maxy < ex[1] or miny > ex[3] or not np.isfinite(minx):
        raise ExtentError(
            f"does not overlap the city extent: data bounds "
            f"[{minx:.1f}, {miny:.1f}, {maxx:.1f}, {maxy:.1f}] vs city extent "
            f"[{ex[0]:.1f}, {ex[1]:.1f}, {ex[2]:.1f}, {ex[3]:.1f}] in {crs.to_string()}", source=source)


# ---------------------------------------------------------------- ids

def stable_ids(layer: str, keys: pd.Series | None, geometry: gpd.GeoSeries) -> np.ndarray:
    """`<layer>-<16 hex>`: a hash of each key (source name + the source's own id), or of
    the geometry rounded to 1 cm where there is no key. Repeated keys (a way split into
    edges, a multi-part source) get a suffix in geometry order, so ids do not depend on
    row order and stay stable across rebuilds of the same sources."""
    wkb = shapely.to_wkb(shapely.set_precision(geometry.values, 0.01), hex=True)
    if keys is None:
        key_arr = np.asarray(wkb, dtype=object)
    else:
        k = keys.to_numpy(dtype=object)
        key_arr = np.where(pd.isna(k), wkb, k)
    digests = np.array([hashlib.blake2b(str(key).encode(), digest_size=8).hexdigest() for key in key_arr],
                       dtype=object)
    dup = pd.Series(digests).duplicated(keep=False).to_numpy()
    if dup.any():
        order = pd.DataFrame({"d": digests[dup], "g": np.asarray(wkb)[dup]}).sort_values(["d", "g"], kind="stable")
        seq = order.groupby("d").cumcount().to_numpy()
        suffixed = digests[dup].copy()
        suffixed[order.index.to_numpy()] = [f"{d}.{s}" for d, s in zip(order["d"], seq)]
        digests[dup] = suffixed
    return np.array([f"{layer}-{d}" for d in digests], dtype=object)
