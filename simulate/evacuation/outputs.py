"""A run's results as layers, tables and a summary: what the API serves and the viewer draws.

Layers (GeoDataFrames in the project CRS):
    hazard    the zone people leave
    links     every link that carried someone or closed: load, peak flow and queue, bottleneck flag
    routes    one line per (origin, shelter) pair: the route its first agent took, with the people on it
    shelters  capacity, occupancy at the end, when each filled
    trapped   people with no passable route, grouped where they are stuck
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from simulate.evacuation.model import (
    CAUGHT_ON_CLOSED_LINK,
    NO_ROUTE,
    NO_SHELTER_SPACE,
    TRAPPED,
    Agents,
    Closures,
    RoadNetwork,
    Shelters,
    SimResult,
)

REASONS = {NO_ROUTE: "no_route", CAUGHT_ON_CLOSED_LINK: "caught_by_closure", NO_SHELTER_SPACE: "no_shelter_space"}
# A link is a bottleneck when people queued at its end while it ran at (nearly) full capacity.
BOTTLENECK_FLOW_SHARE = 0.8


def curve_frame(result: SimResult) -> pd.DataFrame:
    return pd.DataFrame({"t_s": result.times_s, "not_departed": result.not_departed, "en_route": result.en_route,
                         "evacuated": result.evacuated, "trapped": result.trapped})


def shelter_occupancy_frame(result: SimResult, shelters: Shelters) -> pd.DataFrame:
    names = [f"{i}:{n}" for i, n in enumerate(shelters.name)]
    frame = pd.DataFrame(result.shelter_occupancy, columns=names)
    frame.insert(0, "t_s", result.times_s)
    return frame


def _closure_times(network: RoadNetwork, closures: Closures) -> np.ndarray:
    at = np.full(network.n_links, np.nan)
    if len(closures.link):
        at[closures.link] = closures.at_s
    return at


def links_layer(network: RoadNetwork, result: SimResult, closures: Closures, roads: gpd.GeoDataFrame,
                crs, *, persons_per_agent: float = 1.0) -> gpd.GeoDataFrame:
    """Flows and capacities in persons per hour (a car carries `persons_per_agent` on average);
    queues, loads and storage in agents (walkers or cars), as the link holds them."""
    closed_at = _closure_times(network, closures)
    used = np.flatnonzero((result.link_entries > 0) | np.isfinite(closed_at))
    capacity_h = network.capacity_per_s[used] * 3600.0 * persons_per_agent
    peak_flow = result.link_peak_flow_per_h[used]
    queue = result.link_peak_queue[used]
    row = network.road_row[used]
    has_road = row >= 0
    road_attr = lambda col: np.where(has_road, roads[col].to_numpy()[np.where(has_road, row, 0)], None) \
        if col in roads else np.full(len(used), None)  # noqa: E731
    geometry = network.geometry[used] if network.geometry is not None else shapely.linestrings(
        np.stack([network.node_xy[network.link_from[used]], network.node_xy[network.link_to[used]]], axis=1))
    frame = gpd.GeoDataFrame({
        "link": used.astype(np.int64),
        "road_id": road_attr("id"), "name": road_attr("name"), "highway": road_attr("highway"),
        "persons": result.link_entries[used],
        "peak_flow_per_h": peak_flow, "capacity_per_h": capacity_h,
        "peak_flow_share": np.where(capacity_h > 0, peak_flow / capacity_h, 0.0),
        "peak_queue": queue, "peak_load": result.link_peak_load[used],
        "storage": network.storage[used],
        "closed_at_s": closed_at[used],
        "bottleneck": (queue > 0) & (peak_flow >= BOTTLENECK_FLOW_SHARE * capacity_h),
    }, geometry=list(geometry), crs=crs)
    return frame


def _text(value) -> str | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA else str(value)


def bottlenecks(links: gpd.GeoDataFrame, top: int = 10) -> list[dict]:
    worst = links[links["bottleneck"]].sort_values(["peak_queue", "persons"], ascending=False).head(top)
    return [{"link": int(r.link), "road_id": _text(r.road_id), "name": _text(r.name), "highway": _text(r.highway),
             "peak_queue": float(r.peak_queue), "peak_flow_per_h": float(r.peak_flow_per_h),
             "capacity_per_h": float(r.capacity_per_h), "persons": float(r.persons)}
            for r in worst.itertuples()]


def shelters_layer(shelters: Shelters, result: SimResult, crs, *, largest_agent: float = 1.0) -> gpd.GeoDataFrame:
    """`full_at_s`: when the shelter could take no further agent (a car of `largest_agent` persons no longer fits)."""
    occupancy = result.shelter_occupancy
    final = occupancy[-1] if len(occupancy) else np.zeros(len(shelters))
    cap = shelters.capacity
    full = occupancy > np.where(np.isfinite(cap), cap, np.inf)[None, :] - max(largest_agent, 1.0)
    first_full = np.where(full.any(axis=0), result.times_s[np.argmax(full, axis=0)], np.nan)
    return gpd.GeoDataFrame({
        "shelter": np.arange(len(shelters), dtype=np.int64),
        "name": shelters.name.astype(str), "kind": shelters.kind.astype(str),
        "feature_id": shelters.feature_id.astype(str),
        "capacity": np.where(np.isfinite(cap), cap, np.nan),
        "occupancy": final,
        "occupancy_share": np.where(np.isfinite(cap) & (cap > 0), final / np.where(cap > 0, cap, 1), np.nan),
        "full_at_s": first_full,
    }, geometry=shapely.points(shelters.xy), crs=crs)


def routes_layer(network: RoadNetwork, agents: Agents, result: SimResult, shelters: Shelters,
                 crs) -> gpd.GeoDataFrame:
    """The route the first agent of each (origin node, shelter) pair took, carrying the pair's people."""
    columns = ["origin_node", "shelter", "shelter_name", "persons", "agents", "mean_travel_s", "length_m"]
    arrived = np.flatnonzero(result.agent_shelter >= 0)
    if result.route_ptr is None or not len(arrived):
        return gpd.GeoDataFrame({c: [] for c in columns}, geometry=[], crs=crs)
    pairs = np.stack([agents.origin_node[arrived], result.agent_shelter[arrived]], axis=1)
    _, first, inverse = np.unique(pairs, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    persons = np.bincount(inverse, weights=agents.persons[arrived])
    count = np.bincount(inverse)
    travel = np.bincount(inverse, weights=result.agent_arrival_s[arrived] - agents.depart_s[arrived]) / count
    reps = arrived[first]
    starts, ends = result.route_ptr[reps], result.route_ptr[reps + 1]
    route_links = [result.route_links[s:e] for s, e in zip(starts, ends)]
    if network.geometry is not None:
        lines = [shapely.line_merge(shapely.union_all(network.geometry[links])) if len(links) else None
                 for links in route_links]
    else:
        lines = [shapely.linestrings(np.vstack([network.node_xy[network.link_from[links]],
                                                network.node_xy[network.link_to[links[-1:]]]]))
                 if len(links) else None for links in route_links]
    length = np.array([network.length_m[links].sum() for links in route_links])
    shelter = result.agent_shelter[reps]
    return gpd.GeoDataFrame({
        "origin_node": agents.origin_node[reps].astype(np.int64), "shelter": shelter.astype(np.int64),
        "shelter_name": shelters.name[shelter].astype(str), "persons": persons, "agents": count.astype(np.int64),
        "mean_travel_s": travel, "length_m": length,
    }, geometry=lines, crs=crs)


def trapped_layer(network: RoadNetwork, agents: Agents, result: SimResult, crs) -> gpd.GeoDataFrame:
    """Trapped people grouped by the node where they are stuck, and why."""
    stuck = np.flatnonzero(result.agent_status == TRAPPED)
    node = result.agent_node[stuck]
    reason = result.agent_trapped_reason[stuck].astype(np.int64)
    keys = np.stack([node, reason], axis=1) if len(stuck) else np.zeros((0, 2), np.int64)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    persons = np.bincount(inverse, weights=agents.persons[stuck], minlength=len(uniq))
    xy = network.node_xy[uniq[:, 0]] if len(uniq) else np.zeros((0, 2))
    reasons = [REASONS.get(int(r), "unknown") for r in uniq[:, 1]]
    return gpd.GeoDataFrame({"persons": persons, "reason": reasons}, geometry=shapely.points(xy), crs=crs)


def hazard_layer(zone, source: dict, crs) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"source": [source.get("kind", "")], "job": [source.get("job")]},
                            geometry=[zone], crs=crs)


def write_link_loads(path: Path, links: gpd.GeoDataFrame, result: SimResult) -> Path:
    """Agents on each listed link at each sample time, for the viewer's animation (compact JSON)."""
    ids = links["link"].to_numpy()
    loads = result.link_load_series[:, ids] if result.link_load_series is not None else np.zeros((0, len(ids)))
    doc = {"times_s": result.times_s.tolist(), "links": ids.tolist(),
           "storage": np.round(links["storage"].to_numpy(), 2).tolist(),
           "loads": np.round(loads, 2).tolist()}
    path.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
    return path
