"""Kind-specific derived attributes once a layer is in the project CRS."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from layers.heights import HeightInputs, assign_heights
from layers.normalize import parse_length
from layers.roads import split_at_junctions
from layers.schema import COLUMNS, USE_CLASSES
from layers.terrain import ground_under
from twin.config import HeightRules

_TRUE = {"yes", "true", "1", "-1", "t", "y"}


def _col(frame: pd.DataFrame, name: str, default=np.nan) -> pd.Series:
    return frame[name] if name in frame else pd.Series(default, index=frame.index)


def _as_bool(values: pd.Series) -> np.ndarray:
    if values.dtype == bool:
        return values.to_numpy()
    return values.astype("string").str.strip().str.lower().isin(_TRUE).fillna(False).to_numpy(dtype=bool)


def _ordered(frame: gpd.GeoDataFrame, kind: str) -> gpd.GeoDataFrame:
    cols = [c for c in COLUMNS[kind] if c in frame] + [c for c in frame.columns
                                                       if c not in COLUMNS[kind] and c != "geometry"]
    return frame[cols + ["geometry"]]


def enrich_buildings(frame: gpd.GeoDataFrame, rules: HeightRules, inputs: HeightInputs) -> tuple[gpd.GeoDataFrame, dict]:
    out = frame.copy()
    raw_use = _col(out, "use_raw", None).astype("string")
    out["use"] = raw_use.str.strip().str.lower().map(USE_CLASSES).fillna("other").astype(str)
    out["name"] = _col(out, "name", None)
    out["area"] = shapely.area(out.geometry.values)
    vertical_layer = parse_length(_col(out, "layer"))
    flagged = _as_bool(_col(out, "underground", None)) if "underground" in out else np.zeros(len(out), bool)
    out["underground"] = (vertical_layer < 0) | flagged
    out["levels"] = parse_length(_col(out, "levels"))
    out["population"] = parse_length(_col(out, "population"))
    out["capacity"] = parse_length(_col(out, "capacity"))

    given_ground = parse_length(_col(out, "ground"))
    terrain_ground = ground_under(inputs.ground, out.geometry.values) if inputs.ground is not None \
        else np.full(len(out), np.nan)
    out["ground"] = np.where(np.isfinite(given_ground), given_ground, terrain_ground)
    no_ground = ~np.isfinite(out["ground"].to_numpy())
    out.loc[no_ground, "ground"] = 0.0

    height, rule, counts = assign_heights(out, rules, inputs)
    out["height"] = height
    out["height_rule"] = rule
    out["roof"] = out["ground"] + out["height"]
    out["layer"] = vertical_layer
    out = out.drop(columns=[c for c in ("solid_height",) if c in out.columns])
    stats = {"height_rules": counts, "underground": int(out["underground"].sum()),
             "no_terrain_ground": int(no_ground.sum()),
             "height_m": {"min": float(np.nanmin(height)), "median": float(np.nanmedian(height)),
                          "max": float(np.nanmax(height))}}
    return _ordered(out, "buildings"), stats


def enrich_roads(frame: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, dict]:
    out = split_at_junctions(frame)
    out["length"] = shapely.length(out.geometry.values)
    out["oneway"] = _as_bool(_col(out, "oneway", None))
    out["lanes"] = parse_length(_col(out, "lanes"))
    out["layer"] = parse_length(_col(out, "layer"))
    out["bridge"] = _as_bool(_col(out, "bridge", None))
    out["tunnel"] = _as_bool(_col(out, "tunnel", None))
    for c in ("u", "v"):
        out[c] = pd.to_numeric(_col(out, c, pd.NA), errors="coerce").astype("Int64")
    nodes = pd.concat([out["u"], out["v"]]).dropna()
    stats = {"edges": int(len(out)), "nodes": int(nodes.nunique()),
             "junctions": int((nodes.value_counts() > 2).sum()),
             "length_km": float(out["length"].sum() / 1000.0),
             "without_topology": int(out["u"].isna().sum())}
    return _ordered(out, "roads"), stats


def enrich_points(frame: gpd.GeoDataFrame, kind: str) -> tuple[gpd.GeoDataFrame, dict]:
    out = frame.copy()
    if "capacity" in out or kind == "pois":
        out["capacity"] = parse_length(_col(out, "capacity"))
    if "kind" in out:
        out["kind"] = out["kind"].astype("string")
    stats = {"kinds": {str(k): int(v) for k, v in _col(out, "kind", None).value_counts().items()}}
    return _ordered(out, kind), stats


def enrich_generic(frame: gpd.GeoDataFrame, kind: str) -> tuple[gpd.GeoDataFrame, dict]:
    return _ordered(frame, kind), {}
