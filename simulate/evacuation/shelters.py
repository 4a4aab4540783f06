"""Where people go: shelters from the twin's POIs and buildings, and exits from a hazard zone.

    find_shelters(pois, buildings, network, rules: EvacuationDefaults, *, exclude=None, crs,
                  flooded=None, max_access_m=400.0) -> Shelters
    building_capacity(buildings, rules: ShelterRules) -> persons per building row
    exits(network, zone) -> Shelters

Candidates, under `rules.shelters` (`twin.config.ShelterRules`):

* POIs whose `kind` is in `poi_kinds`. A POI inside a building stands for that building
  (its floor area sizes it); several shelter POIs in one building make one shelter (the
  first). A POI in no building needs its own `capacity`.
* Buildings whose `use` (or raw source use, `use_raw`) is in `building_uses` and that
  host no shelter POI; underground ones are left out.
* `rules.extra_shelters`, placed from their own CRS, with their configured capacity.

Capacity is the `capacity` attribute where > 0 (the POI's, then its building's), else the
usable floor area, footprint x levels x `usable_floor_share`, over `m2_per_person`.
Dropped: candidates under `min_capacity` (configured extra shelters excepted), touching
`exclude` (the hazard zone), in a building that cannot take people (`flooded`: mask or rows
of the buildings layer, e.g. the hazard's evacuated buildings; a `flooded` column counts
too), or farther than `max_access_m` from the network. Each shelter is reached at the node
nearest its footprint that can be both entered and left.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from simulate.evacuation.demand import nearest_nodes
from simulate.evacuation.model import RoadNetwork, Shelters
from simulate.population import gross_floor_area
from twin.config import EvacuationDefaults, ShelterRules


_COLUMNS = ["name", "kind", "feature_id", "capacity", "geometry", "point", "host", "configured"]


def _column(frame, name: str, default=None) -> np.ndarray:
    if name not in frame:
        return np.full(len(frame), default, dtype=object)
    return frame[name].to_numpy(dtype=object)


def _positive(frame, name: str) -> np.ndarray:
    if name not in frame:
        return np.full(len(frame), np.nan)
    values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
    return np.where(values > 0, values, np.nan)


def _flag(frame, name: str) -> np.ndarray:
    return frame[name].fillna(False).to_numpy(dtype=bool) if name in frame else np.zeros(len(frame), bool)


def _row_mask(selection, n: int) -> np.ndarray:
    if selection is None:
        return np.zeros(n, bool)
    selection = np.asarray(selection)
    if selection.dtype == bool:
        return selection.copy()
    mask = np.zeros(n, bool)
    mask[selection.astype(np.int64)] = True
    return mask


def _take(values: np.ndarray, rows: np.ndarray, fill) -> np.ndarray:
    """values[rows], with `fill` where rows is -1."""
    out = np.full(len(rows), fill, dtype=values.dtype if len(values) else object)
    out[rows >= 0] = values[rows[rows >= 0]]
    return out


def _host_building(points: np.ndarray, footprints: np.ndarray) -> np.ndarray:
    """Row of the building each point lies in (-1: none; the first when footprints overlap)."""
    host = np.full(len(points), -1, np.int64)
    if len(points) and len(footprints):
        point_row, building_row = shapely.STRtree(footprints).query(points, predicate="within")
        first = np.unique(point_row, return_index=True)[1]
        host[point_row[first]] = building_row[first]
    return host


def building_capacity(buildings, rules: ShelterRules) -> np.ndarray:
    """Persons each building could shelter: its capacity attribute where > 0, else usable floor area
    (footprint x levels x usable_floor_share) / m2_per_person."""
    given = _positive(buildings, rules.capacity_field)
    usable = gross_floor_area(buildings) * rules.usable_floor_share / rules.m2_per_person
    return np.where(np.isfinite(given), given, usable)


def _poi_candidates(pois, buildings, capacity: np.ndarray, rules: ShelterRules) -> pd.DataFrame:
    chosen = pois[np.isin(_column(pois, "kind", "").astype(str), rules.poi_kinds)]
    points = shapely.point_on_surface(chosen.geometry.to_numpy())
    footprints = buildings.geometry.to_numpy()
    host = _host_building(points, footprints)
    own = _positive(chosen, rules.capacity_field)
    names = _column(chosen, "name")
    frame = pd.DataFrame({
        "name": np.where(pd.isna(names), _take(_column(buildings, "name"), host, None), names),
        "kind": _column(chosen, "kind").astype(str), "feature_id": _column(chosen, "id", "").astype(str),
        "capacity": np.where(np.isfinite(own), own, _take(capacity, host, np.nan)),
        "geometry": np.where(host >= 0, _take(footprints, host, None), points), "point": points,
        "host": host, "configured": False})
    return frame[(frame["host"] < 0) | ~frame["host"].duplicated()]   # one shelter per building


def _building_candidates(buildings, capacity: np.ndarray, taken: np.ndarray, rules: ShelterRules) -> pd.DataFrame:
    uses = rules.building_uses
    use, raw = _column(buildings, "use", "").astype(str), _column(buildings, "use_raw", "").astype(str)
    rows = np.flatnonzero((np.isin(use, uses) | np.isin(raw, uses)) & ~_flag(buildings, "underground")
                          & ~np.isin(np.arange(len(buildings)), taken))
    return pd.DataFrame({
        "name": _column(buildings, "name")[rows], "kind": np.where(np.isin(raw, uses), raw, use)[rows],
        "feature_id": _column(buildings, "id", "").astype(str)[rows], "capacity": capacity[rows],
        "geometry": buildings.geometry.to_numpy()[rows],
        "point": shapely.point_on_surface(buildings.geometry.to_numpy()[rows]), "host": rows, "configured": False})


def _extra_candidates(rules: EvacuationDefaults, crs) -> pd.DataFrame:
    rows = []
    for extra in rules.extra_shelters:   # a handful of configured places, not features
        x, y = Transformer.from_crs(extra.crs, crs, always_xy=True).transform(extra.x, extra.y)
        rows.append({"name": extra.name, "kind": extra.kind, "feature_id": "", "capacity": float(extra.capacity),
                     "geometry": shapely.Point(x, y), "point": shapely.Point(x, y), "host": -1, "configured": True})
    return pd.DataFrame(rows, columns=_COLUMNS)


def find_shelters(pois, buildings, network: RoadNetwork, rules: EvacuationDefaults, *, exclude=None, crs,
                  flooded=None, max_access_m: float = 400.0) -> Shelters:
    """Shelters for one scenario; see the module docstring for the rules."""
    if buildings is None:
        buildings = gpd.GeoDataFrame(geometry=[], crs=crs)
    shelter_rules = rules.shelters
    capacity = building_capacity(buildings, shelter_rules)
    parts = []
    if pois is not None and len(pois):
        parts.append(_poi_candidates(pois, buildings, capacity, shelter_rules))
    taken = parts[0]["host"].to_numpy() if parts else np.zeros(0, np.int64)
    parts += [_building_candidates(buildings, capacity, taken, shelter_rules), _extra_candidates(rules, crs)]
    candidates = pd.concat([p for p in parts if len(p)] or [pd.DataFrame(columns=_COLUMNS)], ignore_index=True)

    # whole persons: a shelter of 4,700.6 places takes 4,700 people and is then full
    capacity = np.floor(pd.to_numeric(candidates["capacity"], errors="coerce").to_numpy(dtype=float))
    geoms = candidates["geometry"].to_numpy(dtype=object)
    host = candidates["host"].to_numpy(dtype=np.int64)
    unsafe = _row_mask(flooded, len(buildings)) | _flag(buildings, "flooded")
    keep = np.isfinite(capacity) & (capacity > 0)
    keep &= candidates["configured"].to_numpy(dtype=bool) | (capacity >= shelter_rules.min_capacity)
    keep &= ~_take(unsafe, host, False).astype(bool)
    if exclude is not None and not shapely.is_empty(exclude):
        shapely.prepare(exclude)
        keep &= ~shapely.intersects(exclude, geoms)
    node, dist = nearest_nodes(geoms, network, can_leave=True, can_enter=True)
    keep &= dist <= max_access_m
    chosen = candidates[keep]
    xy = shapely.get_coordinates(candidates["point"].to_numpy(dtype=object)[keep]).reshape(-1, 2)
    return Shelters(node=node[keep].astype(np.int32), capacity=capacity[keep], xy=xy,
                    name=chosen["name"].to_numpy(dtype=object), feature_id=chosen["feature_id"].to_numpy(dtype=object),
                    kind=chosen["kind"].to_numpy(dtype=object))


def exits(network: RoadNetwork, zone) -> Shelters:
    """"Leave the zone" destinations: the nodes outside `zone` at the end of a link that starts
    inside it; capacity inf, kind "exit"."""
    shapely.prepare(zone)
    inside = shapely.contains_xy(zone, network.node_xy[:, 0], network.node_xy[:, 1])
    leaving = inside[network.link_from] & ~inside[network.link_to]
    node = np.unique(network.link_to[leaving]).astype(np.int32)
    n = len(node)
    return Shelters(node=node, capacity=np.full(n, np.inf), xy=network.node_xy[node].astype(np.float64),
                    name=np.full(n, "exit", dtype=object), feature_id=np.full(n, "", dtype=object),
                    kind=np.full(n, "exit", dtype=object))
