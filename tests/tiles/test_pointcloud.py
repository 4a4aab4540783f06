"""Point-cloud tileset from the Delft AHN3 LAZ files, read back with py3dtiles' own reader."""

from __future__ import annotations

import json
from pathlib import Path

import laspy
import numpy as np
import pytest
from py3dtiles.tileset.content import read_binary_tile_content
from pyproj import CRS, Transformer

from tiles.pointcloud import PointCloudError, build_pointcloud_tileset, write_pointcloud_tileset
from twin.store.memory import MemoryStore

DELFT = Path(__file__).resolve().parents[3] / "shared" / "data" / "delft"
LAZ = sorted(DELFT.glob("ahn3_cropped_*.laz"))
RD_NEW = CRS.from_epsg(28992)


def FakeStore(assets):
    """A twin keeping some LiDAR files as assets."""
    return MemoryStore(RD_NEW, assets=assets)


def visible_tiles(tile: dict, parent_transform: np.ndarray, refine: str = "REPLACE"):
    """(tile, world transform) of every tile whose content is shown at full refinement.

    3D Tiles: a REPLACE tile's content is replaced by its children's; an ADD
    tile's content stays and its children add to it. `refine` is inherited.
    """
    m = parent_transform
    if "transform" in tile:
        m = m @ np.array(tile["transform"], dtype=float).reshape(4, 4).T
    refine = tile.get("refine", refine)
    children = tile.get("children", [])
    if "content" in tile and (refine == "ADD" or not children):
        yield tile, m
    for child in children:
        yield from visible_tiles(child, m, refine)


def tile_points(path: Path) -> np.ndarray:
    content = read_binary_tile_content(path)
    ft = content.body.feature_table
    xyz = np.asarray(ft.body.position, dtype=np.float64).reshape(-1, 3)
    rtc = ft.header.to_json().get("RTC_CENTER")
    if rtc is not None:
        xyz = xyz + np.asarray(rtc, dtype=float)
    assert len(xyz) == ft.nb_points()
    return xyz


@pytest.fixture(scope="module")
def delft(tmp_path_factory):
    assert len(LAZ) == 2, f"Delft AHN3 LAZ files not found under {DELFT}"
    store = FakeStore({f"pointcloud/{p.name}": p for p in LAZ})
    out = tmp_path_factory.mktemp("pointcloud")
    report = write_pointcloud_tileset(store, out)
    return out, report, json.loads((out / "tileset.json").read_text())


@pytest.mark.slow
def test_every_input_point_is_in_the_tileset_once(delft):
    out, report, tileset = delft
    expected = 0
    for p in LAZ:
        with laspy.open(p) as reader:
            assert reader.header.parse_crs() is None      # so the manifest's CRS was needed
            expected += reader.header.point_count
    shown = sum(read_binary_tile_content(out / t["content"]["uri"]).body.feature_table.nb_points()
                for t, _ in visible_tiles(tileset["root"], np.eye(4)))
    assert shown == expected == report["source_points"]
    assert report["tiles"] >= 2 and report["bytes"] > 0


@pytest.mark.slow
def test_points_go_back_to_rd_new_inside_the_input_bbox(delft):
    out, _, tileset = delft
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for p in LAZ:
        with laspy.open(p) as reader:
            lo, hi = np.minimum(lo, reader.header.mins), np.maximum(hi, reader.header.maxs)
    to_rd = Transformer.from_crs(CRS.from_epsg(4978), RD_NEW, always_xy=True)
    rng = np.random.default_rng(1)
    sample = []
    for tile, m in visible_tiles(tileset["root"], np.eye(4)):
        xyz = tile_points(out / tile["content"]["uri"])
        pick = xyz[rng.choice(len(xyz), size=min(200, len(xyz)), replace=False)]
        sample.append((np.column_stack([pick, np.ones(len(pick))]) @ m.T)[:, :3])
    ecef = np.concatenate(sample)
    assert len(ecef) > 5000
    x, y, z = to_rd.transform(ecef[:, 0], ecef[:, 1], ecef[:, 2])
    back = np.column_stack([x, y, z])
    assert (back >= lo - [0.05, 0.05, 0.1]).all() and (back <= hi + [0.05, 0.05, 0.1]).all()
    # and they spread over the whole block, not one corner
    assert np.ptp(back[:, 0]) > 0.9 * (hi[0] - lo[0]) and np.ptp(back[:, 1]) > 0.9 * (hi[1] - lo[1])


def test_no_point_cloud_assets_gives_none(tmp_path):
    assert write_pointcloud_tileset(FakeStore({}), tmp_path / "pc") is None
    assert write_pointcloud_tileset(FakeStore({"other/thing.laz": Path("/x.laz")}), tmp_path / "pc") is None


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(PointCloudError):
        build_pointcloud_tileset([tmp_path / "missing.laz"], tmp_path / "pc", RD_NEW)
