"""CesiumJS renders our quantized-mesh terrain and glb terrain tileset (Delft AHN3 DTM)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer

from layers.base import RasterData
from tiles.quantized_mesh import build_quantized_mesh
from tiles.terrain import build_terrain_tileset

DTM = Path(__file__).resolve().parents[3] / "shared" / "data" / "delft" / "dtm_ahn3_0p5m.tif"
MAX_ERROR = 0.5


@pytest.fixture(scope="module")
def delft_terrain(tmp_path_factory):
    assert DTM.is_file(), f"Delft DTM not found at {DTM}"
    with rasterio.open(DTM) as src:
        array = src.read(1, masked=True).astype("float32").filled(np.nan)
        raster = RasterData(array, src.transform, src.crs)
    root = tmp_path_factory.mktemp("served")
    qm = build_quantized_mesh(raster, root / "terrain", max_error_m=MAX_ERROR)
    tiles = build_terrain_tileset(raster, root / "mesh", max_error_m=MAX_ERROR)
    return raster, root, qm, tiles


def raster_height(raster: RasterData, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    x, y = Transformer.from_crs(4326, raster.crs, always_xy=True).transform(lon, lat)
    col = ((np.asarray(x) - raster.transform.c) / raster.transform.a).astype(int)
    row = ((np.asarray(y) - raster.transform.f) / raster.transform.e).astype(int)
    return raster.array[row, col]


def test_quantized_mesh_and_terrain_tileset_render(cesium_page, static_server, delft_terrain, artifacts_dir):
    raster, root, qm, tiles = delft_terrain
    base = static_server(root)
    page = cesium_page

    info = page.evaluate("url => setTerrain(url)", f"{base}/terrain/")
    assert info["hasVertexNormals"] is True
    assert info["maxLevel"] == qm["max_zoom"]

    # Cesium's own decoding of our tiles, at the finest level, against the raster
    w, s, e, n = qm["data_bounds_wgs84"]
    rng = np.random.default_rng(3)
    lon = rng.uniform(w + 0.2 * (e - w), e - 0.2 * (e - w), 40)
    lat = rng.uniform(s + 0.2 * (n - s), n - 0.2 * (n - s), 40)
    heights = np.array(page.evaluate("pts => terrainHeights(pts)", np.column_stack([lon, lat]).tolist()))
    expected = raster_height(raster, lon, lat)
    ok = np.isfinite(expected)
    assert ok.sum() > 20
    # TIN error bound + half a cell of slope (nearest-cell reference) on 0.5 m AHN3 ground
    assert np.median(np.abs(heights[ok] - expected[ok])) < MAX_ERROR
    assert np.abs(heights[ok] - expected[ok]).max() < 3 * MAX_ERROR + 0.5

    loaded = page.evaluate("url => loadTileset(url)", f"{base}/mesh/tileset.json")
    assert loaded["tilesLoaded"] is True
    assert abs(loaded["centre"][0] - (w + e) / 2) < 0.01 and abs(loaded["centre"][1] - (s + n) / 2) < 0.01

    page.evaluate("([lon, lat]) => setView(lon, lat, 350, 20, -35)", [(w + e) / 2, s - 0.6 * (n - s)])
    page.evaluate("waitForGlobe(60000)")
    shot = artifacts_dir / "cesium_terrain.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000

    # something was drawn: the canvas is not one flat colour
    pixels = page.evaluate("""() => {
        const c = viewer.scene.canvas, g = document.createElement('canvas');
        g.width = 64; g.height = 40; const x = g.getContext('2d');
        x.drawImage(c, 0, 0, 64, 40); return Array.from(x.getImageData(0, 0, 64, 40).data);
    }""")
    rgb = np.array(pixels).reshape(-1, 4)[:, :3]
    globe = np.abs(rgb - [0x5B, 0x6B, 0x4E]).max(axis=1) <= 3       # the harness's globe base colour
    assert globe.mean() > 0.2                                         # the terrain globe is drawn
    brighter = rgb.sum(axis=1) > [0x5B + 0x6B + 0x4E + 60]            # the lighter terrain tileset
    assert brighter.mean() > 0.02
    assert not (rgb.sum(axis=1) < 30).mean() > 0.5                    # not looking into space

    errors = page.evaluate("window.harnessErrors")
    assert errors == [], errors
    assert page.console_errors == [], page.console_errors
    (artifacts_dir / "cesium_terrain.json").write_text(json.dumps({"quantized_mesh": qm, "tileset": tiles}, indent=1))
