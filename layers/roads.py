"""Road topology: OSM-style ways with node id lists split into routable edges (u, v)."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely


def parse_nodes(values: pd.Series) -> list[np.ndarray | None]:
    out: list[np.ndarray | None] = []
    for v in values:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append(None)
        elif isinstance(v, str):
            try:
                out.append(np.asarray(json.loads(v), dtype=np.int64))
            except (ValueError, TypeError):
                out.append(None)
        else:
            out.append(np.asarray(list(v), dtype=np.int64))
    return out


def split_at_junctions(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """One row per edge between junctions (nodes shared by several ways, or way ends).

    Ways whose node list does not match their vertices are kept whole with u = v = NA.
    Frames that already have u/v (OSM network from pyrosm) are returned unchanged.
    """
    if "u" in frame and "v" in frame and frame["u"].notna().all():
        return frame
    if "nodes" not in frame:
        out = frame.copy()
        out["u"], out["v"] = pd.NA, pd.NA
        return out
    geoms = frame.geometry.values
    single = shapely.get_type_id(geoms) == 1
    nodes = parse_nodes(frame["nodes"])
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    counts = np.bincount(owner, minlength=len(frame))
    usable = np.array([single[i] and nodes[i] is not None and len(nodes[i]) == counts[i] and counts[i] >= 2
                       for i in range(len(frame))])

    keep_whole = frame.loc[~usable].copy()
    keep_whole["u"], keep_whole["v"] = pd.NA, pd.NA
    if not usable.any():
        return keep_whole

    use_rows = np.flatnonzero(usable)
    node_ids = np.concatenate([nodes[i] for i in use_rows])
    way_of_point = np.repeat(use_rows, counts[use_rows])
    point_xy = coords[np.isin(owner, use_rows)]
    # Junctions: a node seen more than once across all ways (or twice in one loop).
    uniq, inverse, seen = np.unique(node_ids, return_inverse=True, return_counts=True)
    starts = np.r_[0, np.cumsum(counts[use_rows])[:-1]]
    ends = starts + counts[use_rows] - 1
    split = seen[inverse] > 1
    split[starts] = True
    split[ends] = True

    split_pos = np.flatnonzero(split)
    # Consecutive split points of the same way bound one edge.
    same_way = way_of_point[split_pos[:-1]] == way_of_point[split_pos[1:]]
    a, b = split_pos[:-1][same_way], split_pos[1:][same_way]
    lengths = b - a + 1
    point_index = np.repeat(a, lengths) + (np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    edge_of_point = np.repeat(np.arange(len(a)), lengths)
    lines = shapely.linestrings(point_xy[point_index], indices=edge_of_point)
    parent = way_of_point[a]
    edges = frame.iloc[parent].copy()
    edges = edges.set_geometry(gpd.GeoSeries(lines, index=edges.index, crs=frame.crs))
    edges["u"] = node_ids[a]
    edges["v"] = node_ids[b]
    edge_nodes = np.split(node_ids[point_index], np.cumsum(lengths)[:-1])
    edges["nodes"] = [json.dumps(n.tolist()) for n in edge_nodes]
    edges["way_source_id"] = edges["source_id"] if "source_id" in edges else pd.NA
    edges.index = pd.RangeIndex(len(edges))
    out = pd.concat([edges, keep_whole], ignore_index=True)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=frame.crs)
