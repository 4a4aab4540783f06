"""Triangle meshes of many features at once, in a local east-north-up frame.

`extrude_footprints` turns every footprint (polygons with holes, multipolygons)
into an LOD1 prism from its ground to its roof height in one pass of array
operations and returns a `tiles.prism.PrismMesh` (rings lifted to both heights,
roof triangles; walls are built per tile); `mesh_from_triangles` does the same
for ready-made triangles (CityJSON LoD2, IFC) and returns a `FeatureMesh`:
flat-shaded vertices grouped by feature. Both give a tile's triangles with
`slice` (a contiguous run of features) or `take` (any subset).

Heights above the vertical datum are treated as ellipsoidal heights, as in
`tiles.geodesy.LocalFrame`. ENU coordinates are exact (through ECEF): a point
at (x, y, h) is `enu(x, y, 0) + h * up(x, y)`, so each footprint vertex is
projected once and lifted to both heights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from tiles.geodesy import EnuSurface, LocalFrame, lonlat_to_ecef, project_to_lonlat
from tiles.prism import PrismMesh
from tiles.prism import ranges as _ranges

REPEATED_POINT_TOLERANCE_M = 0.001
FIT_MIN_POINTS = 20_000   # batches this large use the fitted ENU surface
SURFACE_SNAP_M = 500.0    # fitted boxes are whole multiples of this around the frame origin


@dataclass
class MeshPart:
    """Vertices and triangles of F features, grouped by feature (CSR offsets).

    positions: (V, 3) float64 ENU; normals: (V, 3) int8 ENU unit vectors x 127;
    indices: (T, 3) int64 into this part's vertices."""

    positions: np.ndarray
    normals: np.ndarray
    indices: np.ndarray
    vertex_offsets: np.ndarray    # (F + 1,)
    triangle_offsets: np.ndarray  # (F + 1,)


@dataclass
class FeatureMesh:
    """Flat-shaded triangles of F features in ENU metres, in one or more parts
    (walls, roofs...), each grouped by feature so that a tile takes any subset
    of features by slicing ranges."""

    parts: list[MeshPart]
    feature_count: int

    def vertex_counts(self) -> np.ndarray:
        return sum(np.diff(p.vertex_offsets) for p in self.parts)

    def triangle_counts(self) -> np.ndarray:
        return sum(np.diff(p.triangle_offsets) for p in self.parts)

    def feature_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature ENU min and max corners; features without vertices get NaN."""
        mins = np.full((self.feature_count, 3), np.inf)
        maxs = np.full((self.feature_count, 3), -np.inf)
        for part in self.parts:
            has = np.diff(part.vertex_offsets) > 0
            if has.any():
                starts = part.vertex_offsets[:-1][has]
                mins[has] = np.minimum(mins[has], np.minimum.reduceat(part.positions, starts, axis=0))
                maxs[has] = np.maximum(maxs[has], np.maximum.reduceat(part.positions, starts, axis=0))
        empty = ~np.isfinite(mins).all(axis=1)
        mins[empty], maxs[empty] = np.nan, np.nan
        return mins, maxs

    def take(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Positions (float64), int8 normals, local triangle indices and per-vertex feature number (0..k-1)."""
        features = np.asarray(features, np.int64)
        out_pos, out_nrm, out_tri, out_fid = [], [], [], []
        base = 0
        for part in self.parts:
            v_start = part.vertex_offsets[features]
            v_count = part.vertex_offsets[features + 1] - v_start
            t_start = part.triangle_offsets[features]
            t_count = part.triangle_offsets[features + 1] - t_start
            rows = _ranges(v_start, v_count)
            new_start = np.concatenate([[0], np.cumsum(v_count)[:-1]]) + base
            shift = np.repeat(v_start - new_start, t_count)
            out_tri.append(part.indices[_ranges(t_start, t_count)] - shift[:, None])
            out_pos.append(part.positions[rows])
            out_nrm.append(part.normals[rows])
            out_fid.append(np.repeat(np.arange(len(features)), v_count))
            base += len(rows)
        return (np.concatenate(out_pos), np.concatenate(out_nrm), np.concatenate(out_tri),
                np.concatenate(out_fid))

    def slice(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`take(range(start, stop))` for a contiguous run of features, by slicing (no gather)."""
        out_pos, out_nrm, out_tri, out_fid = [], [], [], []
        base = 0
        for part in self.parts:
            v0, v1 = int(part.vertex_offsets[start]), int(part.vertex_offsets[stop])
            t0, t1 = int(part.triangle_offsets[start]), int(part.triangle_offsets[stop])
            out_pos.append(part.positions[v0:v1])
            out_nrm.append(part.normals[v0:v1])
            out_tri.append(part.indices[t0:t1] - (v0 - base))
            out_fid.append(np.repeat(np.arange(stop - start), np.diff(part.vertex_offsets[start:stop + 1])))
            base += v1 - v0
        return (np.concatenate(out_pos), np.concatenate(out_nrm), np.concatenate(out_tri),
                np.concatenate(out_fid))

    def permuted(self, order: np.ndarray) -> "FeatureMesh":
        """The same mesh with features renumbered: new feature k is old feature `order[k]`."""
        order = np.asarray(order, np.int64)
        parts = []
        for part in self.parts:
            v_start = part.vertex_offsets[order]
            v_count = part.vertex_offsets[order + 1] - v_start
            t_start = part.triangle_offsets[order]
            t_count = part.triangle_offsets[order + 1] - t_start
            v_offsets = np.zeros(len(order) + 1, np.int64)
            np.cumsum(v_count, out=v_offsets[1:])
            t_offsets = np.zeros(len(order) + 1, np.int64)
            np.cumsum(t_count, out=t_offsets[1:])
            rows = _ranges(v_start, v_count)
            shift = np.repeat(v_start - v_offsets[:-1], t_count)
            parts.append(MeshPart(part.positions[rows], part.normals[rows],
                                  part.indices[_ranges(t_start, t_count)] - shift[:, None], v_offsets, t_offsets))
        return FeatureMesh(parts, len(order))


def _cross2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """z of the cross product of 2D vectors."""
    return a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]


class EnuProjector:
    """Project-CRS (x, y) -> ENU position at height 0 and the local up vector, both in ENU.

    Batches of `fit_min_points` points or more go through an `EnuSurface` fitted
    to the exact pyproj path over their bounding box (validated to 0.05 mm, see
    `tiles.geodesy.EnuSurface`); smaller batches, and extents where no fit meets
    the tolerance, use the exact path."""

    def __init__(self, frame: LocalFrame, *, fit_min_points: int | None = None):
        self.frame = frame
        self.fit_min_points = FIT_MIN_POINTS if fit_min_points is None else fit_min_points
        self._inverse = np.linalg.inv(frame.matrix)
        self._surface: EnuSurface | None = None
        self.origin_xy = (round(frame.origin_x), round(frame.origin_y))

    def exact_base_and_up(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lon, lat = project_to_lonlat(self.frame.crs, x, y)
        ecef = lonlat_to_ecef(lon, lat, np.zeros(len(lon)))
        rot, shift = self._inverse[:3, :3], self._inverse[:3, 3]
        base = ecef @ rot.T + shift
        lam, phi = np.radians(lon), np.radians(lat)
        up_ecef = np.column_stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])
        return base, up_ecef @ rot.T

    def surface_for(self, x: np.ndarray, y: np.ndarray) -> EnuSurface | None:
        """A fitted surface covering all (x, y), reused while it covers new batches."""
        if len(x) == 0 or not (np.isfinite(x).all() and np.isfinite(y).all()):
            return None
        box = (float(x.min()), float(y.min()), float(x.max()), float(y.max()))
        if self._surface is None or not self._surface.covers(*box):
            # snapped outward to a grid tied to the frame origin, so that the fit (hence every
            # vertex, to the last bit) does not change when an edit leaves the extent nearly alike
            step = SURFACE_SNAP_M
            ox, oy = self.origin_xy
            snapped = (ox + np.floor((box[0] - ox) / step - 0.5) * step, oy + np.floor((box[1] - oy) / step - 0.5) * step,
                       ox + np.ceil((box[2] - ox) / step + 0.5) * step, oy + np.ceil((box[3] - oy) / step + 0.5) * step)
            self._surface = EnuSurface.fit(self.exact_base_and_up, tuple(float(v) for v in snapped))
        return self._surface

    def base_and_up(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if len(x) >= self.fit_min_points:
            surface = self.surface_for(x, y)
            if surface is not None:
                return surface.evaluate(x, y)
        return self.exact_base_and_up(x, y)

    def to_enu(self, xyz: np.ndarray) -> np.ndarray:
        xyz = np.asarray(xyz, np.float64).reshape(-1, 3)
        base, up = self.base_and_up(xyz[:, 0], xyz[:, 1])
        return base + xyz[:, 2:3] * up


def extrude_footprints(geometries, ground: np.ndarray, roof: np.ndarray, projector: EnuProjector,
                       *, floor: bool = False, order: np.ndarray | None = None) -> PrismMesh:
    """LOD1 prisms of all footprints at once.

    geometries: (F,) shapely Polygons/MultiPolygons in the project CRS;
    ground, roof: (F,) metres above the datum. Walls get one quad (4 vertices)
    per ring edge with the outward normal; the roof (and the floor if asked)
    is triangulated with holes, convex rings by a fan and the rest by GEOS
    constrained Delaunay triangulation, all in bulk.

    order: the features to extrude, in the order wanted (feature k of the mesh
    is row `order[k]`); by default all rows in turn. The rings are read from
    GEOS in row order (sequential memory) and reordered as arrays."""
    geometries = np.asarray(geometries, dtype=object)
    ground = np.asarray(ground, np.float64)
    roof = np.asarray(roof, np.float64)
    coords, coord_ring, ring_polygon, polygon_feature = _ragged_rings(geometries)
    if order is not None:
        order = np.asarray(order, np.int64)
        coords, coord_ring, ring_polygon, polygon_feature = _reorder_rings(
            coords, coord_ring, ring_polygon, polygon_feature, order, len(geometries))
        ground, roof = ground[order], roof[order]
    n_features = len(geometries) if order is None else len(order)
    n_rings = len(ring_polygon)
    coords, coord_ring, keep_rings = _clean_rings(coords, coord_ring, n_rings, ring_polygon)
    polygons_kept = np.flatnonzero(np.bincount(ring_polygon[keep_rings], minlength=len(polygon_feature)) > 0)
    if len(polygons_kept) < len(polygon_feature):   # renumber polygons after dropping degenerate ones
        new_polygon = np.full(len(polygon_feature), -1)
        new_polygon[polygons_kept] = np.arange(len(polygons_kept))
        polygon_feature = polygon_feature[polygons_kept]
        ring_polygon = new_polygon[ring_polygon]
    ring_polygon = ring_polygon[keep_rings]
    new_ring = np.full(n_rings, -1)
    new_ring[keep_rings] = np.arange(len(keep_rings))
    coord_ring = new_ring[coord_ring]
    n_rings = len(keep_rings)
    ring_start = np.searchsorted(coord_ring, np.arange(n_rings))
    ring_count = np.bincount(coord_ring, minlength=n_rings)
    nxt = np.arange(len(coords)) + 1
    wrap = nxt == np.repeat(ring_start + ring_count, ring_count)
    nxt[wrap] = np.repeat(ring_start, ring_count)[wrap]
    vertex_feature = polygon_feature[ring_polygon[coord_ring]]

    base, up = projector.base_and_up(coords[:, 0], coords[:, 1])
    bottom = base + ground[vertex_feature, None] * up
    top = base + roof[vertex_feature, None] * up
    del base

    # outward normal of each wall (edge a -> b runs counter-clockwise round the outside): edge x up,
    # written out (np.cross is slow on long arrays)
    edge = bottom[nxt] - bottom
    outward = np.empty_like(edge)
    outward[:, 0] = edge[:, 1] * up[:, 2] - edge[:, 2] * up[:, 1]
    outward[:, 1] = edge[:, 2] * up[:, 0] - edge[:, 0] * up[:, 2]
    outward[:, 2] = edge[:, 0] * up[:, 1] - edge[:, 1] * up[:, 0]
    del edge
    outward /= np.maximum(np.sqrt(np.einsum("ij,ij->i", outward, outward)), 1e-12)[:, None]
    # roof (and floor): ring vertices lifted, triangles from the polygons, grouped by feature
    roof_tri = _triangulate(coords, coord_ring, ring_polygon, ring_start, ring_count, nxt)
    roof_feature = vertex_feature[roof_tri[:, 0]]
    if len(roof_feature) and np.any(np.diff(roof_feature) < 0):
        by_feature = np.argsort(roof_feature, kind="stable")
        roof_tri, roof_feature = roof_tri[by_feature], roof_feature[by_feature]
    vertex_offsets = np.zeros(n_features + 1, np.int64)
    np.cumsum(np.bincount(vertex_feature, minlength=n_features), out=vertex_offsets[1:])
    roof_offsets = np.zeros(n_features + 1, np.int64)
    np.cumsum(np.bincount(roof_feature, minlength=n_features), out=roof_offsets[1:])
    return PrismMesh(bottom, top, quantize_unit(up), quantize_unit(outward), nxt, roof_tri,
                     vertex_offsets, roof_offsets, floor)


def _ragged_rings(geometries) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates with their ring, each ring's polygon and each polygon's feature, in one GEOS pass."""
    geometries = np.asarray(geometries, dtype=object)
    missing = shapely.is_missing(geometries) | shapely.is_empty(geometries)
    present = np.flatnonzero(~missing)
    if len(present) == 0:
        return np.zeros((0, 2)), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    _, coords, offsets = shapely.to_ragged_array(geometries[present])
    if len(offsets) == 2:   # all Polygons: (ring offsets, polygon offsets)
        ring_offsets, polygon_offsets = offsets
        part_offsets = np.arange(len(polygon_offsets))
    else:                   # MultiPolygons (mixed input is promoted)
        ring_offsets, polygon_offsets, part_offsets = offsets
    coord_ring = np.repeat(np.arange(len(ring_offsets) - 1), np.diff(ring_offsets))
    ring_polygon = np.repeat(np.arange(len(polygon_offsets) - 1), np.diff(polygon_offsets))
    polygon_feature = present[np.repeat(np.arange(len(part_offsets) - 1), np.diff(part_offsets))]
    return np.asarray(coords[:, :2], np.float64), coord_ring, ring_polygon, polygon_feature


def _reorder_rings(coords, coord_ring, ring_polygon, polygon_feature, order: np.ndarray, n_rows: int):
    """Ragged rings of rows `order` (in that order), renumbered: feature k is row order[k]."""
    poly_count = np.bincount(polygon_feature, minlength=n_rows)
    poly_start = np.concatenate([[0], np.cumsum(poly_count)[:-1]])
    polygons = _ranges(poly_start[order], poly_count[order])
    new_feature = np.repeat(np.arange(len(order)), poly_count[order])
    ring_count = np.bincount(ring_polygon, minlength=len(polygon_feature))
    ring_start = np.concatenate([[0], np.cumsum(ring_count)[:-1]])
    rings = _ranges(ring_start[polygons], ring_count[polygons])
    new_polygon = np.repeat(np.arange(len(polygons)), ring_count[polygons])
    coord_count = np.bincount(coord_ring, minlength=len(ring_polygon))
    coord_start = np.concatenate([[0], np.cumsum(coord_count)[:-1]])
    rows = _ranges(coord_start[rings], coord_count[rings])
    new_ring = np.repeat(np.arange(len(rings)), coord_count[rings])
    return coords[rows], new_ring, new_polygon, new_feature


def _polygons_of(polygon_ids, coords, coord_ring, ring_polygon, ring_start, ring_count) -> np.ndarray:
    """Shapely polygons rebuilt from the cleaned rings of the given polygons (for GEOS triangulation)."""
    rings = np.flatnonzero(np.isin(ring_polygon, polygon_ids))
    closed_count = ring_count[rings] + 1
    rows = _ranges(ring_start[rings], ring_count[rings])
    ring_local_end = np.cumsum(closed_count)
    closed = np.empty((int(closed_count.sum()), 2))
    mask = np.ones(len(closed), bool)
    mask[ring_local_end - 1] = False
    closed[mask] = coords[rows]
    closed[ring_local_end - 1] = coords[ring_start[rings]]
    ring_offsets = np.concatenate([[0], ring_local_end])
    per_polygon = np.bincount(np.searchsorted(polygon_ids, ring_polygon[rings]), minlength=len(polygon_ids))
    polygon_offsets = np.concatenate([[0], np.cumsum(per_polygon)])
    return shapely.from_ragged_array(shapely.GeometryType.POLYGON, closed, (ring_offsets, polygon_offsets))


def _clean_rings(coords, coord_ring, n_rings, ring_polygon):
    """Drop closing and repeated vertices, drop rings under 3 vertices, and orient
    exteriors counter-clockwise and holes clockwise (as seen from above)."""
    last = np.r_[coord_ring[1:] != coord_ring[:-1], True]
    coords, coord_ring = coords[~last], coord_ring[~last]
    first = np.r_[True, coord_ring[1:] != coord_ring[:-1]]
    step = np.r_[np.inf, np.hypot(*(coords[1:] - coords[:-1]).T)]
    keep = first | (step > REPEATED_POINT_TOLERANCE_M)
    # a last vertex equal to the first of its ring
    count = np.bincount(coord_ring[keep], minlength=n_rings)
    coords, coord_ring = coords[keep], coord_ring[keep]
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    end_idx = start + count - 1
    has = count > 1
    dup = np.zeros(len(coords), bool)
    dup[end_idx[has]] = np.hypot(*(coords[end_idx[has]] - coords[start[has]]).T) <= REPEATED_POINT_TOLERANCE_M
    coords, coord_ring = coords[~dup], coord_ring[~dup]
    count = np.bincount(coord_ring, minlength=n_rings)
    # signed area (shoelace) and orientation
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    idx = np.arange(len(coords))
    nxt = idx + 1
    wrap = nxt == np.repeat(start + count, count)
    nxt[wrap] = np.repeat(start, count)[wrap]
    area2 = np.bincount(coord_ring, weights=_cross2(coords, coords[nxt]), minlength=n_rings)
    exterior = np.r_[True, ring_polygon[1:] != ring_polygon[:-1]]
    keep_ring = (count >= 3) & (np.abs(area2) > 1e-9)
    # an exterior that is dropped drops its polygon's holes too
    keep_ring &= keep_ring[np.searchsorted(ring_polygon, ring_polygon)]
    flip = ((area2 < 0) & exterior) | ((area2 > 0) & ~exterior)
    r = coord_ring
    reversed_idx = np.repeat(start, count) + np.repeat(start + count - 1, count) - idx
    order = np.where(flip[r], reversed_idx, idx)
    coords = coords[order]
    kept = keep_ring[coord_ring]
    return coords[kept], coord_ring[kept], np.flatnonzero(keep_ring)


def quantize_unit(vectors: np.ndarray) -> np.ndarray:
    """Unit vectors -> int8 x 127, renormalised so that the stored vector stays unit length."""
    v = np.asarray(vectors, np.float64)
    q = np.round(v * 127.0)
    length = np.linalg.norm(q, axis=1) / 127.0
    bad = np.abs(length - 1.0) > 0.004
    if bad.any():  # fix the largest component so that the rounded vector is unit length again
        qb = q[bad] / 127.0
        rows = np.arange(len(qb))
        big = np.argmax(np.abs(qb), axis=1)
        rest = np.sum(qb ** 2, axis=1) - qb[rows, big] ** 2
        qb[rows, big] = np.sign(qb[rows, big]) * np.sqrt(np.clip(1.0 - rest, 0.0, 1.0))
        q[bad] = np.round(qb * 127.0)
    return np.clip(q, -127, 127).astype(np.int8)


def _triangulate(coords, coord_ring, ring_polygon, ring_start, ring_count, nxt) -> np.ndarray:
    """Counter-clockwise triangles (indices into `coords`) covering every polygon."""
    n_polygons = int(ring_polygon[-1]) + 1 if len(ring_polygon) else 0
    rings_per_polygon = np.bincount(ring_polygon, minlength=n_polygons)
    exterior_ring = np.searchsorted(ring_polygon, np.arange(n_polygons))
    # convexity of the exterior: no clockwise turn at any vertex
    prv = np.empty_like(nxt)
    prv[nxt] = np.arange(len(nxt))
    turn = _cross2(coords - coords[prv], coords[nxt] - coords)
    span = np.linalg.norm(coords[nxt] - coords, axis=1) * np.linalg.norm(coords - coords[prv], axis=1)
    concave_vertex = turn < -1e-9 * np.maximum(span, 1e-12)
    ring_concave = np.bincount(coord_ring, weights=concave_vertex, minlength=len(ring_count)) > 0
    fan = (rings_per_polygon == 1) & ~ring_concave[exterior_ring] & (ring_count[exterior_ring] >= 3)

    fan_rings = exterior_ring[fan]
    n_tri = ring_count[fan_rings] - 2
    pivot = np.repeat(ring_start[fan_rings], n_tri)
    step = _ranges(np.ones(len(fan_rings), np.int64), n_tri)
    tris = [np.column_stack([pivot, pivot + step, pivot + step + 1])]

    slow = np.flatnonzero(~fan)
    if len(slow):
        polygons = _polygons_of(slow, coords, coord_ring, ring_polygon, ring_start, ring_count)
        tris.append(_constrained_triangles(polygons, slow, coords, coord_ring, ring_polygon))
    return np.concatenate(tris).astype(np.int64)


def _constrained_triangles(polygons, polygon_ids, coords, coord_ring, ring_polygon) -> np.ndarray:
    collections = shapely.constrained_delaunay_triangles(polygons)
    triangles, tri_owner = shapely.get_parts(collections, return_index=True)
    corners = shapely.get_coordinates(triangles)
    corners = corners.reshape(len(triangles), 4, 2)[:, :3]
    owner = np.repeat(polygon_ids[tri_owner], 3)
    # map each corner back to the nearest ring vertex of the same polygon
    # (polygons are pushed 1e7 m apart on a third axis so they never mix)
    from scipy.spatial import cKDTree

    vertex_polygon = ring_polygon[coord_ring]
    tree = cKDTree(np.column_stack([coords, vertex_polygon * 1e7]))
    dist, found = tree.query(np.column_stack([corners.reshape(-1, 2), owner * 1e7]))
    if len(dist) and dist.max() > 0.01:
        raise ValueError("triangulation produced a vertex that is not on the footprint")
    tri = found.reshape(-1, 3)
    p = coords[tri]
    signed = _cross2(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    tri[signed < 0] = tri[signed < 0][:, ::-1]
    return tri[np.abs(signed) > 0]


def mesh_from_triangles(vertices: np.ndarray, faces: np.ndarray, face_feature: np.ndarray, n_features: int,
                        projector: EnuProjector) -> FeatureMesh:
    """Flat-shaded copy of a triangle mesh in the project CRS (three vertices per face)."""
    enu = projector.to_enu(vertices)
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    corners = enu[faces]
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    length = np.linalg.norm(normal, axis=1)
    keep = length > 1e-12
    corners, normal, face_feature = corners[keep], normal[keep] / length[keep, None], face_feature[keep]
    positions = corners.reshape(-1, 3)
    normals = np.repeat(quantize_unit(normal), 3, axis=0)
    tri = np.arange(len(positions)).reshape(-1, 3)
    return FeatureMesh([_part(positions, normals, np.repeat(face_feature, 3), tri, face_feature, n_features)],
                       n_features)


def _part(positions, normals, vertex_feature, triangles, triangle_feature, n_features, *,
          grouped: bool = False) -> MeshPart:
    """Group a part by feature; already-sorted inputs (the usual case) are not permuted.

    `grouped=True` says that vertices are already in feature order (LOD1 vertices
    follow the ragged rings, which follow the features); triangles are checked."""
    if not grouped and len(vertex_feature) and np.any(np.diff(vertex_feature) < 0):
        v_order = np.argsort(vertex_feature, kind="stable")
        new_index = np.empty_like(v_order)
        new_index[v_order] = np.arange(len(v_order))
        positions, normals, vertex_feature = positions[v_order], normals[v_order], vertex_feature[v_order]
        triangles = new_index[triangles]
    if len(triangle_feature) and np.any(np.diff(triangle_feature) < 0):
        t_order = np.argsort(triangle_feature, kind="stable")
        triangles, triangle_feature = triangles[t_order], triangle_feature[t_order]
    vertex_offsets = np.zeros(n_features + 1, np.int64)
    np.cumsum(np.bincount(vertex_feature, minlength=n_features), out=vertex_offsets[1:])
    triangle_offsets = np.zeros(n_features + 1, np.int64)
    np.cumsum(np.bincount(triangle_feature, minlength=n_features), out=triangle_offsets[1:])
    return MeshPart(positions, normals, np.asarray(triangles, np.int64), vertex_offsets, triangle_offsets)
