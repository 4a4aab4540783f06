"""Triangulated irregular networks from a height grid, with an honest error bound.

`triangulate` wraps pydelatin (Delaunay refinement to a maximum vertical
error); `tin_max_error` measures a TIN against every valid cell of the full
resolution grid, so a coarse tile built from a decimated grid still reports
the error it really has. Shared by the glb terrain tileset and the
quantized-mesh writer.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy import ndimage


class TerrainError(Exception):
    """The ground raster cannot be turned into terrain tiles."""


def fill_nodata(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Copy of `array` (float64) with NaN cells set to the nearest valid cell, and the valid mask."""
    values = np.asarray(array, dtype=np.float64)
    valid = np.isfinite(values)
    if not valid.any():
        raise TerrainError("the ground raster has no valid cells")
    if valid.all():
        return values.copy(), valid
    _, (rows, cols) = ndimage.distance_transform_edt(~valid, return_indices=True)
    return values[rows, cols], valid


def sample_indices(start: int, stop: int, stride: int) -> np.ndarray:
    """Grid lines start, start+stride, ... and always `stop` itself (inclusive)."""
    idx = np.arange(start, stop, stride, dtype=np.int64)
    if len(idx) == 0 or idx[-1] != stop:
        idx = np.append(idx, stop)
    return idx


def triangulate(grid: np.ndarray, max_error: float) -> tuple[np.ndarray, np.ndarray, float]:
    """TIN of a (rows, cols) height grid within `max_error` at the grid nodes.

    Returns vertex grid positions (N, 2) int64 as (row, col), triangles (M, 3)
    int64 and the error pydelatin reports (max |TIN - grid| over the nodes).
    """
    from pydelatin import Delatin

    grid = np.ascontiguousarray(grid, dtype=np.float32)
    if grid.shape[0] < 2 or grid.shape[1] < 2:
        raise TerrainError(f"a terrain tile needs at least 2 x 2 samples, got {grid.shape}")
    tin = Delatin(grid, max_error=float(max_error))
    xy = np.rint(tin.vertices[:, :2]).astype(np.int64)
    rc = np.column_stack([grid.shape[0] - 1 - xy[:, 1], xy[:, 0]])    # pydelatin's y runs upward
    return rc, tin.triangles.astype(np.int64), float(tin.error)


def orient_ccw(xy: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Triangles re-ordered to be counter-clockwise in `xy` (x right, y up); degenerate ones dropped."""
    a, b, c = (xy[triangles[:, k]] for k in range(3))
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    out = triangles[area != 0].copy()
    flip = area[area != 0] < 0
    out[flip] = out[flip][:, [0, 2, 1]]
    return out


def vertex_normals(positions: np.ndarray, triangles: np.ndarray, fallback=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Area-weighted unit vertex normals; vertices with no area get `fallback`."""
    p = np.asarray(positions, dtype=np.float64)
    face = np.cross(p[triangles[:, 1]] - p[triangles[:, 0]], p[triangles[:, 2]] - p[triangles[:, 0]])
    normals = np.zeros_like(p)
    for k in range(3):
        np.add.at(normals, triangles[:, k], face)
    length = np.linalg.norm(normals, axis=1)
    bad = length == 0
    normals[bad] = fallback
    length[bad] = 1.0
    return normals / length[:, None]


def drop_nodata_triangles(rc: np.ndarray, triangles: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Triangles that touch at least one valid cell (the rest lie in filled no-data)."""
    node_valid = valid[rc[:, 0], rc[:, 1]]
    return triangles[node_valid[triangles].any(axis=1)]


@njit(cache=True)
def _tin_error_kernel(rows, cols, z, triangles, grid, valid, r0, c0):  # pragma: no cover - compiled
    worst = 0.0
    n_rows, n_cols = grid.shape
    for t in range(triangles.shape[0]):
        i0, i1, i2 = triangles[t, 0], triangles[t, 1], triangles[t, 2]
        ya, xa, za = rows[i0], cols[i0], z[i0]
        yb, xb, zb = rows[i1], cols[i1], z[i1]
        yc, xc, zc = rows[i2], cols[i2], z[i2]
        det = (yb - yc) * (xa - xc) + (xc - xb) * (ya - yc)
        if det == 0.0:
            continue
        rmin = max(int(min(ya, yb, yc)), r0)
        rmax = min(int(max(ya, yb, yc)), r0 + n_rows - 1)
        cmin = max(int(min(xa, xb, xc)), c0)
        cmax = min(int(max(xa, xb, xc)), c0 + n_cols - 1)
        for r in range(rmin, rmax + 1):
            for c in range(cmin, cmax + 1):
                if not valid[r - r0, c - c0]:
                    continue
                la = ((yb - yc) * (c - xc) + (xc - xb) * (r - yc)) / det
                lb = ((yc - ya) * (c - xc) + (xa - xc) * (r - yc)) / det
                lc = 1.0 - la - lb
                if la < -1e-9 or lb < -1e-9 or lc < -1e-9:
                    continue
                err = abs(la * za + lb * zb + lc * zc - grid[r - r0, c - c0])
                if err > worst:
                    worst = err
    return worst


def tin_max_error(rc: np.ndarray, z: np.ndarray, triangles: np.ndarray, grid: np.ndarray,
                  valid: np.ndarray, origin: tuple[int, int] = (0, 0)) -> float:
    """Max |TIN - grid| over the valid cells covered by the triangles.

    `rc` are vertex (row, col) positions in the grid's full-resolution index
    space, offset by `origin` (the grid window's first row and column).
    """
    if len(triangles) == 0:
        return 0.0
    return float(_tin_error_kernel(
        np.ascontiguousarray(rc[:, 0], dtype=np.float64), np.ascontiguousarray(rc[:, 1], dtype=np.float64),
        np.ascontiguousarray(z, dtype=np.float64), np.ascontiguousarray(triangles, dtype=np.int64),
        np.ascontiguousarray(grid, dtype=np.float64), np.ascontiguousarray(valid, dtype=np.bool_),
        int(origin[0]), int(origin[1]),
    ))
