"""Who and what a flood reaches: buildings, road segments and facilities.

All functions take the model's result grids on the host (`max_depth`, first-exceedance
times) and vector layers in the grid CRS, and return copies of the layers with
exposure columns. Building cells are blocked in the model, so a building's depth is
read just outside its footprint (the water standing against its walls).
"""

from __future__ import annotations

import numpy as np
import shapely

from simulate.flood.grid import FloodGrid
from simulate.population import FLOOR_M2_PER_PERSON, STOREY_M, estimate_people  # noqa: F401 (re-exported)


def _sample_max(grid: FloodGrid, values: np.ndarray, geoms, spacing: float, reducer: str = "max") -> np.ndarray:
    """max (or min) of `values` at points every `spacing` along each geometry (NaN cells skipped)."""
    dense = shapely.segmentize(np.asarray(geoms, dtype=object), spacing)
    coords, index = shapely.get_coordinates(dense, return_index=True)
    out = np.full(len(geoms), -np.inf if reducer == "max" else np.inf)
    if len(coords) == 0:
        return np.where(np.isinf(out), np.nan, out)
    r, c, inside = grid.cell_of(coords[:, 0], coords[:, 1])
    v = np.where(inside, values[r, c], np.nan)
    ok = np.isfinite(v)
    (np.maximum if reducer == "max" else np.minimum).at(out, index[ok], v[ok])
    return np.where(np.isinf(out), np.nan, out)


def buildings_exposure(buildings, grid: FloodGrid, max_depth: np.ndarray, *, flooded_depth: float = 0.15):
    """Buildings with depth_m (max depth against the walls), flooded, people, people_source."""
    out = buildings.copy()
    if not len(out):
        for col in ("depth_m", "flooded", "people", "people_source"):
            out[col] = []
        return out
    offset = 0.75 * max(grid.dx, grid.dy)
    rings = shapely.boundary(shapely.buffer(out.geometry.to_numpy(), offset))
    depth = _sample_max(grid, max_depth, rings, 0.5 * min(grid.dx, grid.dy))
    inner = _sample_max(grid, max_depth, shapely.point_on_surface(out.geometry.to_numpy()), grid.dx)
    out["depth_m"] = np.fmax(np.nan_to_num(depth, nan=0.0), np.nan_to_num(inner, nan=0.0))
    out["flooded"] = out["depth_m"] >= flooded_depth
    people, source = estimate_people(out)
    out["people"] = people
    out["people_source"] = source
    return out


def roads_exposure(roads, grid: FloodGrid, max_depth: np.ndarray, time_deep: np.ndarray, *,
                   impassable_depth: float = 0.3):
    """Road segments with depth_max_m, impassable (depth > impassable_depth) and
    impassable_at_s: when the first point of the segment got that deep (NaN: never)."""
    out = roads.copy()
    geoms = out.geometry.to_numpy()
    spacing = 0.5 * min(grid.dx, grid.dy)
    out["depth_max_m"] = np.nan_to_num(_sample_max(grid, max_depth, geoms, spacing), nan=0.0)
    out["impassable_at_s"] = _sample_max(grid, time_deep, geoms, spacing, reducer="min")
    out["impassable"] = np.isfinite(out["impassable_at_s"].to_numpy(dtype=float))
    out.attrs["impassable_depth_m"] = impassable_depth
    return out


def facilities_exposure(pois, grid: FloodGrid, max_depth: np.ndarray, time_wet: np.ndarray, *,
                        at_risk_depth: float = 0.15, reach_m: float = 15.0):
    """Points of interest with depth_m (max at the point and on a ring `reach_m` around it,
    at least 1.5 cells: a facility inside a building sits in a blocked cell), wet_at_s
    (earliest wetting there) and at_risk."""
    out = pois.copy()
    if not len(out):
        for col in ("depth_m", "wet_at_s", "at_risk"):
            out[col] = []
        return out
    pts = shapely.point_on_surface(out.geometry.to_numpy())
    ring = shapely.boundary(shapely.buffer(pts, max(reach_m, 1.5 * max(grid.dx, grid.dy))))
    spacing = 0.5 * min(grid.dx, grid.dy)
    depth = np.fmax(_sample_max(grid, max_depth, ring, spacing), _sample_max(grid, max_depth, pts, spacing))
    wet = np.fmin(_sample_max(grid, time_wet, ring, spacing, "min"), _sample_max(grid, time_wet, pts, spacing, "min"))
    out["depth_m"] = np.nan_to_num(depth, nan=0.0)
    out["wet_at_s"] = wet
    out["at_risk"] = out["depth_m"] >= at_risk_depth
    return out
