"""`build_tiles` on a Delft twin built from the real AHN3/BGT/3dfier data: buildings,
CityJSON solids, terrain and the LiDAR point cloud."""

from __future__ import annotations

import json

import laspy
import pytest

from tests.conftest import ROOT, SHARED


@pytest.fixture(scope="module")
def delft_tiles(tmp_path_factory):
    from tiles.build import build_tiles
    from twin.build import build_twin

    root = tmp_path_factory.mktemp("delft")
    store = build_twin(ROOT / "tests" / "fixtures" / "delft" / "city.toml", root / "twin").store
    return store, build_tiles(store, root / "tiles"), root / "tiles"


def _walk(tile):
    yield tile
    for child in tile.get("children", []):
        yield from _walk(child)


@pytest.mark.slow
def test_every_kind_of_tileset_is_written(delft_tiles):
    store, report, out = delft_tiles
    written = {p.parent.name for p in out.glob("*/tileset.json")}
    assert {"buildings", "terrain", "pointcloud"} <= written
    assert (out / "terrain-qm" / "layer.json").is_file()
    # The CityJSON solids get a tileset of their own, one feature per building.
    mesh_sets = [r for r in report.layers.values() if r.layer == "lod1"]
    assert mesh_sets and mesh_sets[0].features == 160


@pytest.mark.slow
def test_point_cloud_holds_every_lidar_point(delft_tiles):
    _, report, out = delft_tiles
    tileset = json.loads((out / "pointcloud" / "tileset.json").read_text())
    assert tileset["asset"]["version"] in ("1.0", "1.1")
    expected = sum(laspy.open(p).header.point_count for p in sorted((SHARED / "delft").glob("*.laz")))
    assert report.external["pointcloud"]["source_points"] == expected == 848_942
    assert any("content" in t for t in _walk(tileset["root"]))
