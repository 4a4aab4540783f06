"""LOD1 prisms kept as their footprint rings; wall and roof triangles are made per tile.

A prism's walls have 4 vertices per ring edge, so materialising the walls of a
million buildings means ~20 million float64 vertices (half a gigabyte, mostly
page faults and cache misses). `PrismMesh` keeps only the ring vertices lifted
to ground and roof (ENU metres), the edge normals, the roof triangles and CSR
offsets per feature. `slice(start, stop)` builds the triangles of a contiguous
run of features (one tile, when features are in tile order) in small,
cache-friendly arrays; `take` and `permuted` give any other subset or order.
The output layout is that of `tiles.extrude.FeatureMesh.take`: all walls, then
all roofs, then (underground) all floors, each grouped by feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + c) for each pair, without a Python loop."""
    counts = np.asarray(counts, np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return np.repeat(np.asarray(starts, np.int64) - first, counts) + np.arange(total)


def _offsets(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=out[1:])
    return out


@dataclass
class PrismMesh:
    """F extruded footprints, as rings (N ring vertices, grouped by feature).

    bottom, top: (N, 3) float64 ENU ring vertices at ground and roof height;
    up: (N, 3) int8 unit up vectors x 127; wall_normals: (N, 3) int8 outward
    normal of the edge from each vertex to `nxt` (its successor in the ring);
    roof: (T, 3) int64 counter-clockwise triangles (ring vertex numbers), grouped
    by feature; vertex_offsets (F + 1) and roof_offsets (F + 1) are CSR offsets."""

    bottom: np.ndarray
    top: np.ndarray
    up: np.ndarray
    wall_normals: np.ndarray
    nxt: np.ndarray
    roof: np.ndarray
    vertex_offsets: np.ndarray
    roof_offsets: np.ndarray
    floor: bool = False

    @property
    def feature_count(self) -> int:
        return len(self.vertex_offsets) - 1

    def ring_counts(self) -> np.ndarray:
        return np.diff(self.vertex_offsets)

    def vertex_counts(self) -> np.ndarray:
        return self.ring_counts() * (6 if self.floor else 5)

    def triangle_counts(self) -> np.ndarray:
        return 2 * self.ring_counts() + np.diff(self.roof_offsets) * (2 if self.floor else 1)

    def feature_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature ENU min and max corners; features without vertices get NaN."""
        n = self.feature_count
        mins, maxs = np.full((n, 3), np.nan), np.full((n, 3), np.nan)
        has = self.ring_counts() > 0
        if has.any():
            starts = self.vertex_offsets[:-1][has]
            mins[has] = np.minimum(np.minimum.reduceat(self.bottom, starts, axis=0),
                                   np.minimum.reduceat(self.top, starts, axis=0))
            maxs[has] = np.maximum(np.maximum.reduceat(self.bottom, starts, axis=0),
                                   np.maximum.reduceat(self.top, starts, axis=0))
        return mins, maxs

    def slice(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Positions (float64 ENU), int8 normals, triangles and per-vertex feature number (0..k-1)
        of features start..stop-1."""
        v0, v1 = int(self.vertex_offsets[start]), int(self.vertex_offsets[stop])
        r0, r1 = int(self.roof_offsets[start]), int(self.roof_offsets[stop])
        n = v1 - v0
        bottom, top = self.bottom[v0:v1], self.top[v0:v1]
        nxt = self.nxt[v0:v1] - v0
        layers = 6 if self.floor else 5
        positions = np.empty((layers * n, 3))
        walls = positions[:4 * n].reshape(n, 4, 3)
        walls[:, 0] = bottom                          # a, b, b', a' per edge (a -> b counter-clockwise)
        np.take(bottom, nxt, axis=0, out=walls[:, 1])
        np.take(top, nxt, axis=0, out=walls[:, 2])
        walls[:, 3] = top
        positions[4 * n:5 * n] = top
        normals = np.empty((layers * n, 3), np.int8)
        normals[:4 * n] = np.repeat(self.wall_normals[v0:v1], 4, axis=0)
        normals[4 * n:5 * n] = self.up[v0:v1]
        quad = np.arange(n, dtype=np.int64)[:, None] * 4
        roof = self.roof[r0:r1] - v0 + 4 * n
        triangles = [np.concatenate([quad + [0, 1, 2], quad + [0, 2, 3]], axis=1).reshape(-1, 3), roof]
        ring_feature = np.repeat(np.arange(stop - start), np.diff(self.vertex_offsets[start:stop + 1]))
        features = [np.repeat(ring_feature, 4), ring_feature]
        if self.floor:
            positions[5 * n:] = bottom
            np.negative(self.up[v0:v1], out=normals[5 * n:])
            triangles.append(roof[:, ::-1] + n)
            features.append(ring_feature)
        return positions, normals, np.concatenate(triangles), np.concatenate(features)

    def permuted(self, order: np.ndarray) -> "PrismMesh":
        """The same prisms with features renumbered: new feature k is old feature `order[k]`."""
        order = np.asarray(order, np.int64)
        v_start = self.vertex_offsets[order]
        v_count = self.vertex_offsets[order + 1] - v_start
        r_start = self.roof_offsets[order]
        r_count = self.roof_offsets[order + 1] - r_start
        vertex_offsets, roof_offsets = _offsets(v_count), _offsets(r_count)
        rows = ranges(v_start, v_count)
        new_index = np.full(len(self.bottom), -1, np.int64)
        new_index[rows] = np.arange(len(rows))
        return PrismMesh(self.bottom[rows], self.top[rows], self.up[rows], self.wall_normals[rows],
                         new_index[self.nxt[rows]], new_index[self.roof[ranges(r_start, r_count)]],
                         vertex_offsets, roof_offsets, self.floor)

    def take(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`slice` of any features, in the given order."""
        features = np.asarray(features, np.int64)
        return self.permuted(features).slice(0, len(features))
