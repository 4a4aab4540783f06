"""Base imagery: hillshade against vector geometry, vectors at pixel positions worked out from the rectangle."""

from __future__ import annotations

import math
import time
import warnings

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from shapely.geometry import LineString, box

from layers.base import RasterData
from tiles.imagery import (BUILDING, MAJOR_ROAD_FILL, ImageryError, cached_base_imagery, hillshade,
                           render_base_imagery)
from twin.manifest import LayerRecord, Manifest, RasterRecord
from twin.store.base import TwinStore

UTM49 = CRS.from_epsg(32649)          # metric CRS over Guangzhou
X0, Y0, RES, ROWS, COLS = 500_000.0, 2_560_000.0, 10.0, 200, 180
ROAD_X = X0 + 700.0                   # a north-south primary road
HOUSE = box(X0 + 1200, Y0 + 900, X0 + 1300, Y0 + 1000)


def sun_vector(azimuth_deg: float, altitude_deg: float) -> np.ndarray:
    """Unit vector towards the sun, (east, north, up); azimuth clockwise from north."""
    a, h = math.radians(azimuth_deg), math.radians(altitude_deg)
    return np.array([math.sin(a) * math.cos(h), math.cos(a) * math.cos(h), math.sin(h)])


def plane_grid(a: float, b: float, dx: float = 2.0, dy: float = 3.0, rows: int = 12, cols: int = 15) -> np.ndarray:
    """z = a * east + b * north on a north-up grid (row 0 is the northernmost)."""
    c, r = np.meshgrid(np.arange(cols), np.arange(rows))
    return a * c * dx + b * (rows - 1 - r) * dy


@pytest.mark.parametrize("a,b", [(0.0, 0.0), (0.3, 0.0), (0.0, -0.4), (-0.7, 0.2), (1.0, 1.0), (-1.0, 1.0)])
@pytest.mark.parametrize("azimuth,altitude", [(315.0, 45.0), (135.0, 30.0), (90.0, 60.0)])
def test_hillshade_of_a_plane_is_the_cosine_of_the_angle_to_the_sun(a, b, azimuth, altitude):
    normal = np.array([-a, -b, 1.0]) / math.sqrt(a * a + b * b + 1.0)   # of z = a x + b y
    expected = max(0.0, float(normal @ sun_vector(azimuth, altitude)))
    shade = hillshade(plane_grid(a, b), 2.0, 3.0, azimuth, altitude)
    np.testing.assert_allclose(shade, expected, atol=1e-12)


def test_hillshade_known_values():
    assert hillshade(np.zeros((4, 4)), 1, 1)[0, 0] == pytest.approx(math.sqrt(0.5))   # flat: sin 45°
    # 45° slope facing north-west, sun from the north-west 45° up: lit head on
    facing = plane_grid(1 / math.sqrt(2), -1 / math.sqrt(2), 1.0, 1.0)
    assert hillshade(facing, 1, 1, 315, 45)[3, 3] == pytest.approx(1.0)


def test_hillshade_rejects_a_line():
    with pytest.raises(ImageryError):
        hillshade(np.zeros((1, 5)), 1, 1)


class SyntheticTwin(TwinStore):
    """A tilted ground plane, one north-south primary road and one house, in UTM 49N."""

    def __init__(self, road_classification: str = "public", built_at: str = "2026-01-01T00:00:00+00:00"):
        c, r = np.meshgrid(np.arange(COLS), np.arange(ROWS))
        ground = (0.02 * c * RES + 0.01 * (ROWS - r) * RES).astype(np.float32)
        self.ground = RasterData(ground, Affine(RES, 0, X0, 0, -RES, Y0 + ROWS * RES), UTM49)
        bounds = (X0, Y0, X0 + COLS * RES, Y0 + ROWS * RES)
        road = LineString([(ROAD_X, Y0 - 100), (ROAD_X, Y0 + ROWS * RES + 100)])
        self.frames = {
            "roads": gpd.GeoDataFrame({"id": ["r1"], "highway": ["primary"], "tunnel": [False]}, geometry=[road],
                                      crs=UTM49),
            "buildings": gpd.GeoDataFrame({"id": ["b1"], "underground": [False]}, geometry=[HOUSE], crs=UTM49),
        }
        wgs = Transformer.from_crs(UTM49, 4326, always_xy=True).transform_bounds(*bounds)
        self._manifest = Manifest(
            tool_version="test", city="Synthetic", crs="EPSG:32649", crs_wkt=UTM49.to_wkt(), vertical_datum="test",
            extent=bounds, extent_wgs84=wgs, built_at=built_at, build_seconds=0.0, config_sha256="0",
            layers={"roads": LayerRecord(kind="roads", classification=road_classification, count=1,
                                         attributions=["(c) OpenStreetMap contributors"]),
                    "buildings": LayerRecord(kind="buildings", classification="public", count=1)},
            rasters={"ground": RasterRecord(kind="ground", classification="public", path="ground.tif",
                                            shape=(ROWS, COLS), resolution=(RES, RES), bounds=bounds,
                                            method="synthetic", attributions=["Copernicus DEM"])})

    def manifest(self):
        return self._manifest

    def layer_names(self):
        return list(self.frames)

    def read_layer(self, name, *, bbox=None, columns=None):
        return self.frames[name].copy()

    def read_table(self, name):
        raise NotImplementedError

    def raster_names(self):
        return ["ground"]

    def read_raster(self, name):
        return self.ground

    def raster_uri(self, name):
        raise NotImplementedError

    def mesh_names(self):
        return []

    def read_mesh(self, name):
        raise NotImplementedError

    def asset_path(self, name):
        raise NotImplementedError


def decode_png(data: bytes) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile(data) as mem, mem.open() as ds:
            assert ds.driver == "PNG"
            return np.moveaxis(ds.read(), 0, 2)


def pixel_of(img, lon: float, lat: float) -> tuple[int, int]:
    """(row, col) of a lon/lat, from the rectangle alone (plate carrée, north up)."""
    r = img.rectangle
    col = (lon - r.west) / (r.east - r.west) * img.width
    row = (r.north - lat) / (r.north - r.south) * img.height
    return int(row), int(col)


@pytest.fixture(scope="module")
def synthetic():
    store = SyntheticTwin()
    img = render_base_imagery(store, metres_per_pixel=2.0)
    return store, img, decode_png(img.png)


def test_imagery_covers_the_ground_raster_in_lon_lat(synthetic):
    store, img, pixels = synthetic
    to_wgs = Transformer.from_crs(UTM49, 4326, always_xy=True)
    lon, lat = to_wgs.transform([X0, X0, X0 + COLS * RES, X0 + COLS * RES], [Y0, Y0 + ROWS * RES, Y0, Y0 + ROWS * RES])
    r = img.rectangle
    assert r.west <= min(lon) and r.east >= max(lon) and r.south <= min(lat) and r.north >= max(lat)
    assert r.west == pytest.approx(min(lon), abs=1e-4) and r.north == pytest.approx(max(lat), abs=1e-4)
    assert pixels.shape == (img.height, img.width, 3)
    # about 2 m per pixel: 1800 m x 2000 m of ground
    assert img.width == pytest.approx(900, rel=0.03) and img.height == pytest.approx(1000, rel=0.03)
    assert set(img.attributions) == {"Copernicus DEM", "(c) OpenStreetMap contributors"}


def test_road_and_house_are_drawn_where_the_rectangle_puts_them(synthetic):
    store, img, pixels = synthetic
    to_wgs = Transformer.from_crs(UTM49, 4326, always_xy=True)
    for y in np.linspace(Y0 + 200, Y0 + ROWS * RES - 200, 7):
        row, col = pixel_of(img, *to_wgs.transform(ROAD_X, y))
        assert tuple(pixels[row, col]) == MAJOR_ROAD_FILL
        # 10 m half width (5 px) + casing: plain ground 12 px (24 m) either side
        for off in (-12, 12):
            assert tuple(pixels[row, col + off]) != MAJOR_ROAD_FILL
        assert tuple(pixels[row, col - 3]) == MAJOR_ROAD_FILL and tuple(pixels[row, col + 3]) == MAJOR_ROAD_FILL
    row, col = pixel_of(img, *to_wgs.transform(HOUSE.centroid.x, HOUSE.centroid.y))
    assert tuple(pixels[row, col]) == BUILDING
    row, col = pixel_of(img, *to_wgs.transform(HOUSE.centroid.x + 120, HOUSE.centroid.y))
    assert tuple(pixels[row, col]) != BUILDING


def test_plain_ground_is_evenly_shaded_on_a_plane(synthetic):
    store, img, pixels = synthetic
    to_wgs = Transformer.from_crs(UTM49, 4326, always_xy=True)
    # two spots at the same height (z = 0.02 x + 0.01 y), away from the road and the house
    a = pixel_of(img, *to_wgs.transform(X0 + 300, Y0 + 1500))
    b = pixel_of(img, *to_wgs.transform(X0 + 300 + 200, Y0 + 1500 - 400))
    assert np.abs(pixels[a].astype(int) - pixels[b].astype(int)).max() <= 2


def test_layers_above_the_clearance_are_not_drawn():
    store = SyntheticTwin(road_classification="restricted")
    img = render_base_imagery(store, metres_per_pixel=4.0)
    pixels = decode_png(img.png)
    row, col = pixel_of(img, *Transformer.from_crs(UTM49, 4326, always_xy=True).transform(ROAD_X, Y0 + 1000))
    assert tuple(pixels[row, col]) != MAJOR_ROAD_FILL
    assert not (pixels == np.array(MAJOR_ROAD_FILL, np.uint8)).all(axis=2).any()
    assert "(c) OpenStreetMap contributors" not in img.attributions


def test_cache_is_reused_until_the_twin_is_rebuilt(tmp_path):
    store = SyntheticTwin()
    png, meta = cached_base_imagery(store, tmp_path, metres_per_pixel=8.0)
    first = png.stat().st_mtime_ns
    time.sleep(0.01)
    png2, _ = cached_base_imagery(store, tmp_path, metres_per_pixel=8.0)
    assert png2.stat().st_mtime_ns == first
    rebuilt = SyntheticTwin(built_at="2026-02-01T00:00:00+00:00")
    png3, meta3 = cached_base_imagery(rebuilt, tmp_path, metres_per_pixel=8.0)
    assert png3.stat().st_mtime_ns != first
    assert meta3["twin_built_at"] == "2026-02-01T00:00:00+00:00"
    assert set(meta3["rectangle"]) == {"west", "south", "east", "north"}
