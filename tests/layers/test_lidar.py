"""LidarDriver, gridding and footprint heights, against the shipped AHN3 products of Delft
and against analytic scenes."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import laspy
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import CRS

from layers.base import IngestContext, PointSet, RasterData
from layers.errors import CRSError, SourceCorrupt, SourceNotFound
from layers.lidar import LidarDriver, footprint_heights, grid_points, merge_rasters
from layers.registry import driver_for
from twin.config import CityConfig, LayerConfig, SourceConfig

DELFT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "delft"
LAZ = [DELFT / "ahn3_cropped_1.laz", DELFT / "ahn3_cropped_2.laz"]
RD_NEW = CRS.from_epsg(28992)

needs_delft = pytest.mark.skipif(not all(p.is_file() for p in LAZ), reason="Delft sample data not available")


def _source(path: Path, crs: str | None = "EPSG:28992") -> SourceConfig:
    return SourceConfig(path=path, crs=crs, licence="CC0", attribution="AHN3")


def _ctx(resolution: float | None = None) -> IngestContext:
    city = CityConfig(
        name="delft", crs="EPSG:28992", extent=(4.35, 52.0, 4.37, 52.02),
        terrain={"resolution": resolution},
        layers={"lidar": LayerConfig(kind="pointcloud", sources=[_source(LAZ[0])])},
    )
    return IngestContext(city=city, crs=RD_NEW, extent=(84800.0, 447400.0, 85080.0, 447650.0))


def _read(path: Path, crs: str | None = "EPSG:28992", resolution: float | None = None):
    return LidarDriver().read(path, _source(path, crs), "pointcloud", _ctx(resolution))


@pytest.fixture(scope="module")
def delft():
    tiles = [_read(p) for p in LAZ]
    points = PointSet(
        xyz=np.vstack([t.points.xyz for t in tiles]),
        classification=np.concatenate([t.points.classification for t in tiles]),
        crs=tiles[0].points.crs,
    )
    surface = merge_rasters([t.rasters["surface"] for t in tiles], how="max")
    ground = merge_rasters([t.rasters["ground"] for t in tiles], how="mean")
    return points, surface, ground


def _overlap(ours: RasterData, reference: Path) -> tuple[np.ndarray, np.ndarray]:
    """Our grid and the reference grid on the cells both cover (same 0.5 m lattice)."""
    with rasterio.open(reference) as src:
        ref, t = src.read(1, masked=True).filled(np.nan), src.transform
    res = ours.transform.a
    assert t.a == pytest.approx(res)
    r_off = int(round((t.f - ours.transform.f) / res))
    c_off = int(round((ours.transform.c - t.c) / res))
    r0, c0 = max(r_off, 0), max(c_off, 0)
    r1 = min(r_off + ours.shape[0], ref.shape[0])
    c1 = min(c_off + ours.shape[1], ref.shape[1])
    mine = ours.array[r0 - r_off:r1 - r_off, c0 - c_off:c1 - c_off]
    both = ~np.isnan(mine) & ~np.isnan(ref[r0:r1, c0:c1])
    return mine[both].astype(float), ref[r0:r1, c0:c1][both].astype(float)


def test_registry_gives_lidar_driver():
    assert isinstance(driver_for("las"), LidarDriver)


# --- Delft AHN3 ---------------------------------------------------------------------------

@needs_delft
def test_points_and_crs_from_config_when_header_has_none(delft):
    points, _, _ = delft
    headers = [laspy.open(p).header for p in LAZ]
    assert all(h.parse_crs() is None for h in headers)  # the AHN3 crops carry no CRS
    assert len(points.xyz) == sum(h.point_count for h in headers) == 848_942
    assert points.crs.equals(RD_NEW)
    lo = np.min([h.mins for h in headers], axis=0)
    hi = np.max([h.maxs for h in headers], axis=0)
    np.testing.assert_allclose(points.xyz.min(axis=0), lo)
    np.testing.assert_allclose(points.xyz.max(axis=0), hi)
    assert set(np.unique(points.classification)) == {1, 2, 6, 9, 26}


@needs_delft
@pytest.mark.parametrize(("name", "tif"), [("surface", "dsm_ahn3_0p5m.tif"), ("ground", "dtm_ahn3_0p5m.tif")])
def test_grids_match_shipped_ahn3_products(delft, name, tif):
    """The shipped rasters aggregate the same points on the same 0.5 m lattice (max of all;
    mean of classes 2+9), so measured cells must agree to float32 rounding. Only gap
    cells differ, as both fill them by linear interpolation from different supports:
    hence the median (< 1 cm) and a 95% share within 5 cm rather than a max bound."""
    _, surface, ground = delft
    grid = {"surface": surface, "ground": ground}[name]
    assert grid.transform.a == 0.5 and grid.transform.c % 0.5 == 0 and grid.transform.f % 0.5 == 0
    mine, ref = _overlap(grid, DELFT / tif)
    assert mine.size > 0.95 * 530 * 460
    diff = np.abs(mine - ref)
    assert np.median(diff) < 0.01
    assert np.mean(diff < 0.05) > 0.95


@needs_delft
def test_footprint_heights_match_gpkg_height_m(delft):
    """height_m in the GeoPackage is the 70th percentile of class-6 points in the BGT
    footprint minus the median DTM inside it (its height_source column says so, and
    roof_p70_nap - ground_nap reproduces it). With our own DTM the same estimator must
    land within 1 m for every building."""
    points, _, ground = delft
    buildings = gpd.read_file(DELFT / "delft_district.gpkg", layer="buildings")
    assert len(buildings) == 160
    np.testing.assert_allclose(buildings.roof_p70_nap - buildings.ground_nap, buildings.height_m, atol=0.011)

    heights, n_points, ground_z = footprint_heights(buildings.geometry.values, points, ground,
                                                    roof_percentile=70, min_points=10)
    error = np.abs(heights - buildings.height_m.to_numpy())
    assert not np.isnan(heights).any()
    assert np.all(error <= 1.0), f"{np.sum(error > 1.0)} buildings off by more than 1 m, max {error.max():.2f}"
    assert np.median(error) < 0.05
    np.testing.assert_array_equal(n_points, buildings.n_lidar_pts.to_numpy())
    assert np.median(np.abs(ground_z - buildings.ground_nap.to_numpy())) < 0.02


@needs_delft
def test_footprint_heights_from_ground_points_without_raster(delft):
    """Without a DTM the ground is the median of ground points around the footprint: a
    different but still fair estimate of the same street level, so within 1 m."""
    points, _, _ = delft
    buildings = gpd.read_file(DELFT / "delft_district.gpkg", layer="buildings")
    heights, _, _ = footprint_heights(buildings.geometry.values, points, None, roof_percentile=70)
    error = np.abs(heights - buildings.height_m.to_numpy())
    assert np.mean(error <= 1.0) > 0.95


@needs_delft
def test_corrupt_and_truncated_files_raise_source_corrupt(tmp_path):
    truncated = tmp_path / "truncated.laz"
    truncated.write_bytes(LAZ[1].read_bytes()[:1_000_000])
    with pytest.raises(SourceCorrupt, match="truncated.laz"):
        _read(truncated)
    las = laspy.read(LAZ[1])
    full = tmp_path / "full.las"
    las.write(full)
    half = tmp_path / "half.las"
    half.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(SourceCorrupt, match="half.las"):
        _read(half)
    garbage = tmp_path / "garbage.laz"
    garbage.write_bytes(b"not a point cloud at all" * 10)
    with pytest.raises(SourceCorrupt, match="garbage.laz"):
        _read(garbage)


def test_missing_file_raises_source_not_found(tmp_path):
    with pytest.raises(SourceNotFound, match="nowhere.laz"):
        _read(tmp_path / "nowhere.laz")


# --- CRS ----------------------------------------------------------------------------------

def _write_las(path: Path, xyz: np.ndarray, classification: np.ndarray, crs: CRS | None) -> Path:
    header = laspy.LasHeader(point_format=1, version="1.4")
    header.scales = np.array([0.001, 0.001, 0.001])
    header.offsets = np.floor(xyz.min(axis=0))
    if crs is not None:
        header.add_crs(crs)
    las = laspy.LasData(header)
    las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    las.classification = classification
    las.write(path)
    return path


def _small_cloud(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    xyz = np.column_stack([85000 + rng.uniform(0, 10, n), 447500 + rng.uniform(0, 10, n), rng.uniform(0, 1, n)])
    return xyz, np.full(n, 2, dtype=np.uint8)


def test_crs_from_header_wins_and_compound_is_split(tmp_path):
    xyz, cls = _small_cloud()
    path = _write_las(tmp_path / "with_crs.las", xyz, cls, CRS.from_epsg(7415))
    got = _read(path, crs=None)
    assert got.points.crs.equals(RD_NEW)
    assert any("NAP" in note for note in got.notes)
    np.testing.assert_allclose(got.points.xyz, xyz, atol=0.0006)


def test_no_crs_anywhere_raises_crs_error(tmp_path):
    xyz, cls = _small_cloud()
    path = _write_las(tmp_path / "bare.las", xyz, cls, None)
    with pytest.raises(CRSError, match="bare.las"):
        _read(path, crs=None)
    assert _read(path, crs="EPSG:28992").points.crs.equals(RD_NEW)


def test_geographic_crs_is_refused(tmp_path):
    xyz, cls = _small_cloud()
    path = _write_las(tmp_path / "geo.las", xyz, cls, None)
    with pytest.raises(CRSError, match="not projected"):
        _read(path, crs="EPSG:4326")


# --- analytic scenes ----------------------------------------------------------------------

def _box_scene(roof_class: int, spacing: float = 0.25, jitter: float = 0.05):
    """Flat ground at z=0 over 40 x 40 m and a 10 x 10 m flat roof at z=12 in the middle;
    ground points only outside the box (as a laser sees it)."""
    rng = np.random.default_rng(7)
    g = np.arange(0, 40, spacing) + spacing / 2
    x, y = (a.ravel() + rng.uniform(-jitter, jitter, a.size) for a in np.meshgrid(g, g))
    x, y = x + 1000.0, y + 2000.0
    footprint = shapely.box(1015.0, 2015.0, 1025.0, 2025.0)
    on_roof = shapely.contains_xy(footprint, x, y)
    z = np.where(on_roof, 12.0, 0.0)
    cls = np.where(on_roof, roof_class, 2).astype(np.uint8)
    return PointSet(np.column_stack([x, y, z]), cls, RD_NEW), footprint


@pytest.mark.parametrize("roof_class", [1, 6])
@pytest.mark.parametrize("use_raster", [True, False])
def test_box_roof_height_is_12(roof_class, use_raster):
    points, footprint = _box_scene(roof_class)
    ground = grid_points(points, 0.5)["ground"] if use_raster else None
    heights, n_points, ground_z = footprint_heights(np.array([footprint]), points, ground)
    assert heights[0] == pytest.approx(12.0, abs=0.05)
    assert ground_z[0] == pytest.approx(0.0, abs=0.05)
    assert n_points[0] == pytest.approx(100 / 0.25**2, rel=0.05)  # 16 points per m²


def test_too_few_points_gives_nan_and_empty_footprint_counts_zero():
    points, footprint = _box_scene(6)
    tiny = shapely.box(1019.9, 2019.9, 1020.3, 2020.3)  # ~2 points
    far = shapely.box(5000, 5000, 5010, 5010)
    heights, n_points, _ = footprint_heights(np.array([footprint, tiny, far]), points, None, min_points=10)
    assert not np.isnan(heights[0])
    assert np.isnan(heights[1]) and np.isnan(heights[2])
    assert n_points[2] == 0 and 0 < n_points[1] < 10


def test_grid_max_and_mean_per_cell_on_aligned_lattice():
    xyz = np.array([
        [10.1, 20.1, 1.0], [10.4, 20.4, 3.0],   # cell (10..10.5, 20..20.5): ground 1 and 3
        [10.2, 20.2, 9.0],                       # same cell, building point
        [10.2, 20.3, 50.0],                      # same cell, high noise: ignored
        [11.3, 20.2, 2.0], [11.4, 20.3, 4.0],   # cell (11..11.5, 20..20.5)
        [10.2, 21.4, 5.0],                       # cell (10..10.5, 21..21.5)
    ])
    cls = np.array([2, 2, 6, 18, 2, 9, 2], dtype=np.uint8)
    grids = grid_points(PointSet(xyz, cls, RD_NEW), 0.5)
    surface, ground = grids["surface"], grids["ground"]
    assert surface.transform == Affine(0.5, 0, 10.0, 0, -0.5, 21.5)
    assert surface.shape == (3, 3)

    def at(r: RasterData, x: float, y: float) -> float:
        col, row = ~r.transform @ (x, y)
        return float(r.array[int(row), int(col)])

    assert at(surface, 10.25, 20.25) == 9.0
    assert at(ground, 10.25, 20.25) == pytest.approx(2.0)
    assert at(ground, 11.25, 20.25) == pytest.approx(3.0)
    assert at(surface, 10.25, 21.25) == 5.0
    # (10.75, 20.25) lies between two ground cells on the hull edge: linear fill = 2.5
    assert at(ground, 10.75, 20.25) == pytest.approx(2.5, abs=1e-5)
    # (11.25, 21.25) is outside the hull of the points
    assert np.isnan(at(surface, 11.25, 21.25))


def test_merge_rasters_union_max_and_mean():
    a = RasterData(np.array([[1.0, 2.0], [np.nan, 4.0]], np.float32), Affine(1, 0, 0, 0, -1, 2), RD_NEW)
    b = RasterData(np.array([[10.0, 20.0]], np.float32), Affine(1, 0, 1, 0, -1, 1), RD_NEW)
    top = merge_rasters([a, b], how="max")
    assert top.transform == Affine(1, 0, 0, 0, -1, 2)
    np.testing.assert_array_equal(top.array, [[1, 2, np.nan], [np.nan, 10, 20]])
    mean = merge_rasters([a, b], how="mean")
    np.testing.assert_array_equal(mean.array, [[1, 2, np.nan], [np.nan, 7, 20]])
    shifted = RasterData(b.array, Affine(1, 0, 0.3, 0, -1, 1), RD_NEW)
    with pytest.raises(ValueError, match="aligned"):
        merge_rasters([a, shifted])
