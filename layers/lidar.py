"""LAS/LAZ point clouds: points, gridded surface (DSM) and ground (DTM), building heights.

The grids are aligned to multiples of the cell size, so grids made from
different tiles of one survey line up cell for cell and `merge_rasters` can
combine them without resampling.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import laspy
import numpy as np
import shapely
from affine import Affine
from pyproj import CRS
from pyproj.exceptions import CRSError as ProjCRSError

from layers.base import Driver, Ingested, IngestContext, PointSet, RasterData
from layers.errors import CRSError, EmptyLayerError, SourceCorrupt, SourceNotFound

if TYPE_CHECKING:
    from twin.config import SourceConfig

DEFAULT_RESOLUTION = 0.5
# ASPRS classes: 2 ground, 9 water (AHN counts water as ground level), 6 building,
# 7 low noise, 18 high noise.
GROUND_CLASSES = (2, 9)
BUILDING_CLASS = 6
NOISE_CLASSES = (7, 18)
# Points are turned into shapely geometries in batches of this many, to bound memory.
_POINT_BATCH = 2_000_000


class LidarDriver(Driver):
    formats = ("las",)
    kinds = ("pointcloud",)

    def read(self, path: Path, source: "SourceConfig", kind: str, ctx: IngestContext) -> Ingested:
        points, notes = read_points(path, source.crs)
        resolution = ctx.city.terrain.resolution or DEFAULT_RESOLUTION
        rasters = grid_points(points, resolution)
        if "ground" not in rasters:
            notes.append(f"{path.name}: no ground points (class 2 or 9); no ground grid made")
        return Ingested(
            rasters=rasters,
            points=points,
            notes=notes,
            provenance={"points": len(points.xyz), "resolution": resolution,
                        "classes": sorted(int(c) for c in np.unique(points.classification))},
        )


def read_points(path: Path, fallback_crs: str | None = None) -> tuple[PointSet, list[str]]:
    """Read all points of a LAS/LAZ file. The CRS comes from the header, else `fallback_crs`."""
    path = Path(path)
    if not path.is_file():
        raise SourceNotFound("LAS/LAZ file not found", source=str(path))
    try:
        las = laspy.read(path)
        xyz = np.asarray(las.xyz, dtype=np.float64)
        classification = np.asarray(las.classification, dtype=np.uint8)
    except (laspy.errors.LaspyException, RuntimeError, OSError, ValueError, EOFError) as exc:
        # lazrs reports a truncated stream as a RuntimeError subclass
        raise SourceCorrupt(f"cannot read LAS/LAZ ({type(exc).__name__}: {exc})", source=str(path)) from None
    if len(xyz) < las.header.point_count:
        raise SourceCorrupt(f"truncated: header announces {las.header.point_count} points, "
                            f"only {len(xyz)} could be read", source=str(path))
    if len(xyz) == 0:
        raise EmptyLayerError("the file holds no points", source=str(path))
    crs, notes = _file_crs(las.header, path, fallback_crs)
    return PointSet(xyz=xyz, classification=classification, crs=crs), notes


def _file_crs(header: laspy.LasHeader, path: Path, fallback: str | None) -> tuple[CRS, list[str]]:
    notes: list[str] = []
    try:
        crs = header.parse_crs()
    except Exception as exc:  # laspy raises assorted errors on malformed GeoTIFF/WKT VLRs
        raise CRSError(f"the CRS in the LAS header cannot be parsed: {exc}", source=str(path)) from None
    if crs is None:
        if fallback is None:
            raise CRSError("the LAS header declares no CRS and the source config sets no 'crs'",
                           source=str(path), field="crs")
        try:
            crs = CRS.from_user_input(fallback)
        except ProjCRSError as exc:
            raise CRSError(f"unknown CRS '{fallback}': {exc}", source=str(path), field="crs") from None
        notes.append(f"{path.name}: no CRS in the LAS header; using the configured {fallback}")
    if crs.is_compound:
        horizontal, vertical = crs.sub_crs_list[0], crs.sub_crs_list[1]
        notes.append(f"{path.name}: heights are {vertical.name}")
        crs = horizontal
    if not crs.is_projected:
        raise CRSError(f"CRS {crs.name} is not projected; gridding needs metric coordinates",
                       source=str(path), field="crs")
    return crs, notes


# --- gridding --------------------------------------------------------------------------

def grid_points(points: PointSet, resolution: float = DEFAULT_RESOLUTION) -> dict[str, RasterData]:
    """Grid points to {"surface": max z of all non-noise points, "ground": mean z of
    ground and water points}. Empty cells inside the convex hull of the points are
    filled by linear interpolation (nearest value where that cannot reach); cells
    outside the hull are NaN. The grid is aligned to multiples of `resolution`."""
    keep = ~np.isin(points.classification, NOISE_CLASSES)
    xyz = points.xyz[keep]
    if len(xyz) == 0:
        return {}
    cls = points.classification[keep]
    transform, shape = _aligned_grid(xyz[:, 0], xyz[:, 1], resolution)
    cell = _cell_index(xyz[:, 0], xyz[:, 1], transform, shape)
    inside_hull = _hull_mask(np.unique(cell), transform, shape)

    rasters = {"surface": RasterData(_fill(_cell_max(cell, xyz[:, 2], shape), inside_hull), transform, points.crs)}
    is_ground = np.isin(cls, GROUND_CLASSES)
    if is_ground.any():
        ground = _cell_mean(cell[is_ground], xyz[is_ground, 2], shape)
        rasters["ground"] = RasterData(_fill(ground, inside_hull), transform, points.crs)
    return rasters


def _aligned_grid(x: np.ndarray, y: np.ndarray, res: float) -> tuple[Affine, tuple[int, int]]:
    x0 = np.floor(x.min() / res) * res
    y1 = np.ceil(y.max() / res) * res
    ncols = int(np.floor((x.max() - x0) / res)) + 1
    nrows = int(np.floor((y1 - y.min()) / res)) + 1
    return Affine(res, 0.0, x0, 0.0, -res, y1), (nrows, ncols)


def _cell_index(x: np.ndarray, y: np.ndarray, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    res = transform.a
    col = np.clip(np.floor((x - transform.c) / res).astype(np.int64), 0, shape[1] - 1)
    row = np.clip(np.floor((transform.f - y) / res).astype(np.int64), 0, shape[0] - 1)
    return row * shape[1] + col


def _cell_max(cell: np.ndarray, z: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    order = np.argsort(cell, kind="stable")
    cell_sorted = cell[order]
    starts = np.flatnonzero(np.r_[True, cell_sorted[1:] != cell_sorted[:-1]])
    out = np.full(shape[0] * shape[1], np.nan, dtype=np.float64)
    out[cell_sorted[starts]] = np.maximum.reduceat(z[order], starts)
    return out.reshape(shape)


def _cell_mean(cell: np.ndarray, z: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    size = shape[0] * shape[1]
    count = np.bincount(cell, minlength=size)
    total = np.bincount(cell, weights=z, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan).reshape(shape)


def _cell_centres(transform: Affine, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return np.column_stack([transform.c + (cols + 0.5) * transform.a,
                            transform.f + (rows + 0.5) * transform.e])


def _hull_mask(occupied: np.ndarray, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    rows, cols = np.divmod(occupied, shape[1])
    hull = shapely.convex_hull(shapely.multipoints(_cell_centres(transform, rows, cols)))
    all_rows, all_cols = np.indices(shape)
    centres = _cell_centres(transform, all_rows.ravel(), all_cols.ravel())
    # a hull of collinear centres is a line; buffer it by half a cell so its cells count
    hull = shapely.buffer(hull, transform.a * 0.5) if hull.area == 0 else hull
    mask = shapely.intersects_xy(hull, centres[:, 0], centres[:, 1]).reshape(shape)
    mask.flat[occupied] = True
    return mask


def _fill(grid: np.ndarray, inside_hull: np.ndarray) -> np.ndarray:
    """Interpolate empty cells inside the hull from the known cells next to gaps."""
    from scipy.interpolate import griddata
    from scipy.ndimage import binary_dilation
    from scipy.spatial import QhullError

    known = ~np.isnan(grid)
    gaps = inside_hull & ~known
    out = grid.copy()
    if gaps.any() and known.any():
        # Only known cells bordering a gap shape the interpolation; using just those
        # keeps the triangulation small without changing the filled values much.
        support = known & binary_dilation(gaps, structure=np.ones((3, 3), bool))
        s_rows, s_cols = np.nonzero(support)
        g_rows, g_cols = np.nonzero(gaps)
        transform = Affine(1, 0, 0, 0, 1, 0)  # interpolate in cell units
        src, dst = _cell_centres(transform, s_rows, s_cols), _cell_centres(transform, g_rows, g_cols)
        values = grid[s_rows, s_cols]
        try:
            filled = griddata(src, values, dst, method="linear") if len(src) >= 3 else np.full(len(dst), np.nan)
        except QhullError:  # all support cells on one line
            filled = np.full(len(dst), np.nan)
        missing = np.isnan(filled)
        if missing.any():
            filled[missing] = griddata(src, values, dst[missing], method="nearest")
        out[g_rows, g_cols] = filled
    out[~inside_hull] = np.nan
    return out.astype(np.float32)


def merge_rasters(rasters: list[RasterData], how: Literal["max", "mean"] = "max") -> RasterData:
    """Combine grids of one cell size aligned to the same lattice on their union grid:
    cell-wise max (surface) or mean (ground) of the values present."""
    if not rasters:
        raise ValueError("merge_rasters needs at least one raster")
    res = rasters[0].transform.a
    for r in rasters:
        t = r.transform
        if not (np.isclose(t.a, res) and np.isclose(-t.e, res) and t.b == 0 and t.d == 0):
            raise ValueError(f"cannot merge grids of cell sizes {res} and {t.a}x{-t.e}")
        if not (_on_lattice(t.c, res) and _on_lattice(t.f, res)):
            raise ValueError(f"grid origin ({t.c}, {t.f}) is not aligned to multiples of {res}")
    x0 = min(r.transform.c for r in rasters)
    y1 = max(r.transform.f for r in rasters)
    x1 = max(r.transform.c + r.shape[1] * res for r in rasters)
    y0 = min(r.transform.f - r.shape[0] * res for r in rasters)
    shape = (int(round((y1 - y0) / res)), int(round((x1 - x0) / res)))
    total = np.zeros(shape)
    count = np.zeros(shape, dtype=np.int64)
    best = np.full(shape, -np.inf)
    for r in rasters:
        r0 = int(round((y1 - r.transform.f) / res))
        c0 = int(round((r.transform.c - x0) / res))
        window = (slice(r0, r0 + r.shape[0]), slice(c0, c0 + r.shape[1]))
        values = r.array.astype(np.float64)
        present = ~np.isnan(values)
        total[window] += np.where(present, values, 0.0)
        count[window] += present
        best[window] = np.fmax(best[window], np.where(present, values, -np.inf))
    with np.errstate(invalid="ignore", divide="ignore"):
        merged = total / count if how == "mean" else best
    merged = np.where(count > 0, merged, np.nan).astype(np.float32)
    return RasterData(merged, Affine(res, 0.0, x0, 0.0, -res, y1), rasters[0].crs)


def _on_lattice(v: float, res: float) -> bool:
    k = v / res
    return abs(k - round(k)) < 1e-6


# --- building heights ------------------------------------------------------------------

def footprint_heights(
    footprints: np.ndarray,
    points: PointSet,
    ground: RasterData | None,
    roof_percentile: float = 90,
    min_points: int = 10,
    *,
    roof_classes: tuple[int, ...] | None = None,
    ground_buffer: float = 3.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Height of each footprint from the points that fall inside it.

    roof: the `roof_percentile` of z of the roof points inside the footprint. Roof
      points are `roof_classes`; by default the building class (6) when the cloud
      has one, else every point that is not ground, water or noise.
    ground: the median of the `ground` raster cells whose centre is inside the
      footprint (the cell under the footprint's representative point when none is);
      without a raster, the median z of ground points within `ground_buffer` metres.
    Returns (height = roof - ground, number of roof points, ground z); height is NaN
    where fewer than `min_points` roof points were found.
    """
    footprints = np.asarray(footprints, dtype=object)
    n = len(footprints)
    if n == 0:
        return np.empty(0), np.empty(0, dtype=np.int64), np.empty(0)
    if roof_classes is None:
        has_building = bool((points.classification == BUILDING_CLASS).any())
        roof_mask = (points.classification == BUILDING_CLASS) if has_building else \
            ~np.isin(points.classification, GROUND_CLASSES + NOISE_CLASSES)
    else:
        roof_mask = np.isin(points.classification, roof_classes)
    tree = shapely.STRtree(footprints)
    pt_idx, fp_idx = _points_in(tree, points.xyz[roof_mask])
    n_points = np.bincount(fp_idx, minlength=n)
    roof = _group_percentile(points.xyz[roof_mask][pt_idx, 2], fp_idx, n, roof_percentile)

    if ground is not None:
        ground_z = _raster_median_in(footprints, ground)
    else:
        ground_pts = points.xyz[np.isin(points.classification, GROUND_CLASSES)]
        g_pt, g_fp = _points_in(shapely.STRtree(shapely.buffer(footprints, ground_buffer)), ground_pts)
        ground_z = _group_percentile(ground_pts[g_pt, 2], g_fp, n, 50.0)

    heights = roof - ground_z
    heights[n_points < min_points] = np.nan
    return heights, n_points, ground_z


def _points_in(tree: shapely.STRtree, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(point index, tree geometry index) for each point strictly inside a tree polygon."""
    pts, fps = [], []
    for start in range(0, len(xyz), _POINT_BATCH):
        chunk = shapely.points(xyz[start:start + _POINT_BATCH, :2])
        p, f = tree.query(chunk, predicate="within")
        pts.append(p + start)
        fps.append(f)
    if not pts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(pts), np.concatenate(fps)


def _group_percentile(values: np.ndarray, groups: np.ndarray, n_groups: int, q: float) -> np.ndarray:
    """Per-group percentile with NumPy's default (linear) interpolation; NaN for empty groups."""
    out = np.full(n_groups, np.nan)
    if len(values) == 0:
        return out
    order = np.lexsort((values, groups))
    v, g = values[order], groups[order]
    counts = np.bincount(g, minlength=n_groups)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    has = counts > 0
    pos = (counts[has] - 1) * (q / 100.0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, counts[has] - 1)
    frac = pos - lo
    base = starts[has]
    out[has] = v[base + lo] + (v[base + hi] - v[base + lo]) * frac
    return out


def _raster_median_in(footprints: np.ndarray, raster: RasterData) -> np.ndarray:
    """Median of the cells whose centre falls inside each footprint (rasterised ids,
    so where footprints overlap a cell counts for the last one only)."""
    from rasterio.features import rasterize

    n = len(footprints)
    t = raster.transform
    h, w = raster.shape
    minx, miny, maxx, maxy = shapely.total_bounds(footprints)
    c0 = max(int(np.floor((minx - t.c) / t.a)), 0)
    c1 = min(int(np.ceil((maxx - t.c) / t.a)), w)
    r0 = max(int(np.floor((t.f - maxy) / -t.e)), 0)
    r1 = min(int(np.ceil((t.f - miny) / -t.e)), h)
    out = np.full(n, np.nan)
    if c1 > c0 and r1 > r0:
        window_t = t @ Affine.translation(c0, r0)
        ids = rasterize(((g, i + 1) for i, g in enumerate(footprints) if g is not None and not g.is_empty),
                        out_shape=(r1 - r0, c1 - c0), transform=window_t, fill=0, dtype="int32")
        values = raster.array[r0:r1, c0:c1].astype(np.float64)
        use = (ids > 0) & ~np.isnan(values)
        out = _group_percentile(values[use], ids[use] - 1, n, 50.0)
    # footprints smaller than a cell (or whose cells are all NaN): the cell under them
    missing = np.flatnonzero(np.isnan(out))
    if len(missing):
        reps = shapely.point_on_surface(footprints[missing])
        x, y = shapely.get_x(reps), shapely.get_y(reps)
        col = np.floor((x - t.c) / t.a).astype(np.int64)
        row = np.floor((y - t.f) / t.e).astype(np.int64)
        ok = (row >= 0) & (row < h) & (col >= 0) & (col < w)
        out[missing[ok]] = raster.array[row[ok], col[ok]]
    return out
