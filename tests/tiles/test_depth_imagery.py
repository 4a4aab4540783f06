"""Depth rasters to transparent WGS84 PNGs and depth series at a point, against a synthetic depth
raster whose values are known: expected colours come from the class table and from pyproj
(lon/lat of a cell centre), not from the renderer's own warp."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from tiles.depth_imagery import (
    DEPTH_CLASSES,
    DRY_DEPTH_M,
    DepthImageryError,
    PointOutside,
    cached_depth_png,
    colourise,
    depth_series,
    frame_minutes,
    render_depth_png,
)

CRS = "EPSG:4547"                   # CGCS2000 / 3-degree Gauss-Kruger CM 114E (the Tianhe twin's CRS)
X0, Y0, CELL = 435_000.0, 2_557_000.0, 10.0
BLOCK = 4                           # values are constant over 4 x 4 cell blocks
# One value per block (rows x cols of blocks): NaN no data, dry, each class and deeper than the last.
BLOCKS = np.array([[np.nan, 0.0, 0.04, 0.10],
                   [0.20, 0.40, 0.75, 1.50],
                   [3.00, 0.05, 0.149, np.nan]], dtype=np.float32)
TO_WGS84 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)


def write_depth(path, blocks=BLOCKS) -> None:
    data = np.kron(blocks, np.ones((BLOCK, BLOCK), np.float32))
    h, w = data.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=1, dtype="float32", nodata=np.nan,
                       crs=CRS, transform=from_origin(X0, Y0, CELL, CELL)) as dst:
        dst.write(data, 1)


def block_centre_lonlat(i: int, j: int) -> tuple[float, float]:
    x = X0 + (j + 0.5) * BLOCK * CELL
    y = Y0 - (i + 0.5) * BLOCK * CELL
    return TO_WGS84.transform(x, y)


def expected_rgba(depth: float) -> tuple[int, int, int, int]:
    """Straight from the class table: the class whose [lower, upper) holds the depth, else transparent."""
    if not math.isfinite(depth) or depth < DRY_DEPTH_M:
        return (0, 0, 0, 0)
    for c in DEPTH_CLASSES:
        if c.lower <= depth < c.upper:
            return c.rgba
    raise AssertionError("no class")


def decode_png(data: bytes) -> np.ndarray:
    with MemoryFile(data) as mem, mem.open() as src:
        assert src.driver == "PNG"
        return np.moveaxis(src.read(), 0, 2)


def pixel_at(image: np.ndarray, rect, lon: float, lat: float) -> tuple[int, ...]:
    h, w = image.shape[:2]
    col = int((lon - rect.west) / (rect.east - rect.west) * w)
    row = int((rect.north - lat) / (rect.north - rect.south) * h)
    return tuple(int(v) for v in image[row, col])


def test_class_table_is_a_ramp_from_the_dry_threshold():
    assert DEPTH_CLASSES[0].lower == DRY_DEPTH_M == 0.05
    for a, b in pairwise(DEPTH_CLASSES):
        assert a.upper == b.lower
        assert sum(b.rgba[:3]) < sum(a.rgba[:3]) and b.rgba[3] >= a.rgba[3]   # deeper: darker, more opaque
    assert math.isinf(DEPTH_CLASSES[-1].upper)


def test_colourise_values():
    rgba = colourise(np.array([[np.nan, 0.0, 0.049, 0.05], [0.3, 1.0, 2.0, 9.0]]))
    assert rgba.dtype == np.uint8 and rgba.shape == (2, 4, 4)
    for (r, c), depth in np.ndenumerate(np.array([[np.nan, 0.0, 0.049, 0.05], [0.3, 1.0, 2.0, 9.0]])):
        assert tuple(rgba[r, c]) == expected_rgba(depth)


def test_png_pixels_at_known_lon_lat(tmp_path):
    src = tmp_path / "max_depth.tif"
    write_depth(src)
    img = render_depth_png(src)
    image = decode_png(img.png)
    assert image.shape == (img.height, img.width, 4)
    assert max(img.width, img.height) >= 512                      # upsampled for a crisp drape
    assert img.max_depth_m == pytest.approx(3.0)

    # the rectangle holds the raster's corners (pyproj), and not much more
    corners = [TO_WGS84.transform(X0 + dx, Y0 - dy) for dx in (0, 16 * CELL) for dy in (0, 12 * CELL)]
    lons, lats = [c[0] for c in corners], [c[1] for c in corners]
    r = img.rectangle
    assert r.west <= min(lons) + 1e-9 and r.east >= max(lons) - 1e-9
    assert r.south <= min(lats) + 1e-9 and r.north >= max(lats) - 1e-9
    assert r.east - r.west < (max(lons) - min(lons)) * 1.05

    for (i, j), depth in np.ndenumerate(BLOCKS):
        lon, lat = block_centre_lonlat(i, j)
        assert pixel_at(image, r, lon, lat) == expected_rgba(float(depth)), (i, j, depth)

    # outside the raster (but inside the rectangle's corner triangles, if any) nothing is drawn
    assert tuple(image[0, 0])[3] in (0, expected_rgba(float(BLOCKS[0, 0]))[3])


def test_all_dry_raster_is_fully_transparent(tmp_path):
    src = tmp_path / "dry.tif"
    write_depth(src, np.array([[0.0, 0.01], [np.nan, 0.049]], np.float32))
    img = render_depth_png(src)
    assert decode_png(img.png)[..., 3].max() == 0
    assert img.wet_fraction == 0


def test_cache_renders_once_and_again_when_the_source_changes(tmp_path):
    src = tmp_path / "depth.tif"
    write_depth(src)
    png, meta = cached_depth_png(src, tmp_path / "cache" / "depth.png")
    assert png.is_file() and meta["legend"][0]["min_m"] == DRY_DEPTH_M
    stamp = png.stat().st_mtime_ns
    png2, meta2 = cached_depth_png(src, tmp_path / "cache" / "depth.png")
    assert png2.stat().st_mtime_ns == stamp and meta2 == meta
    write_depth(src, BLOCKS * 0 + 0.6)
    import os

    os.utime(src, ns=(stamp + 10**9, stamp + 10**9))
    _, meta3 = cached_depth_png(src, tmp_path / "cache" / "depth.png")
    assert meta3["max_depth_m"] == pytest.approx(0.6)


def test_depth_series_samples_every_frame(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    written = {0: 0.0, 10: 0.12, 20: 0.5, 30: 0.31, 120: np.nan}   # NaN: the frame is dry there
    for minutes, value in written.items():
        blocks = BLOCKS.copy()
        blocks[1, 2] = value
        write_depth(frames / f"depth_{minutes:05d}min.tif", blocks)
    (frames / "notes.txt").write_text("not a frame")
    lon, lat = block_centre_lonlat(1, 2)
    series = depth_series(frames, lon, lat)
    assert [m for m, _ in series] == [0, 10, 20, 30, 120]
    for (_, got), want in zip(series, written.values()):
        assert got == pytest.approx(0.0 if math.isnan(want) else want, abs=1e-6)
    assert frame_minutes("depth_00045min.tif") == 45 and frame_minutes("max_depth.tif") is None


def test_depth_series_errors(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    with pytest.raises(DepthImageryError):
        depth_series(frames, 113.3, 23.1)                         # no frames
    write_depth(frames / "depth_00000min.tif")
    lon, lat = TO_WGS84.transform(X0 - 500, Y0 + 500)
    with pytest.raises(PointOutside):
        depth_series(frames, lon, lat)
    with pytest.raises(PointOutside):
        depth_series(frames, float("nan"), 23.1)
