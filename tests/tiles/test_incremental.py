"""Incremental rebuilds: only tiles whose content changed are rewritten, others keep bytes and mtime."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

from tiles.build import build_tiles
from twin.store.memory import MemoryStore

X0, Y0 = 441_000.0, 2_557_000.0


def BuildingsOnlyStore(buildings):
    return MemoryStore("EPSG:4547", layers={"buildings": buildings}, kinds={"buildings": "buildings"})


def city(n: int = 1500) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(3)
    x, y = X0 + rng.uniform(0, 2000, n), Y0 + rng.uniform(0, 2000, n)
    height = rng.uniform(5, 60, n)
    return gpd.GeoDataFrame({
        "id": [f"b{i:05d}" for i in range(n)], "name": None, "use": "residential", "height": height,
        "height_rule": "explicit", "ground": 5.0, "roof": 5.0 + height, "underground": False,
    }, geometry=shapely.box(x, y, x + 12, y + 15), crs=CRS.from_epsg(4547))


def ids_in_tile(path: Path) -> set[str]:
    """Building ids of a glb's property table (EXT_structural_metadata, UINT32 string offsets)."""
    data = path.read_bytes()
    json_len = struct.unpack_from("<I", data, 12)[0]
    gltf = json.loads(data[20:20 + json_len])
    blob = data[28 + json_len:]
    table = gltf["extensions"]["EXT_structural_metadata"]["propertyTables"][0]
    ref, views = table["properties"]["id"], gltf["bufferViews"]
    values = blob[views[ref["values"]]["byteOffset"]:][:views[ref["values"]]["byteLength"]]
    offsets = np.frombuffer(blob, "<u4", table["count"] + 1, views[ref["stringOffsets"]]["byteOffset"])
    return {values[a:b].decode() for a, b in zip(offsets[:-1], offsets[1:])}


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino)
            for p in sorted(folder.rglob("*.glb"))}


def test_changing_one_height_rewrites_only_its_tiles(tmp_path):
    frame = city()
    first = build_tiles(BuildingsOnlyStore(frame), tmp_path, max_features_per_tile=150)
    assert first.layers["buildings"].written == first.layers["buildings"].tiles > 5
    before = snapshot(tmp_path)
    target = "b00042"
    holding_before = {rel for rel in before if target in ids_in_tile(tmp_path / rel)}

    changed = frame.copy()
    row = changed.index[changed["id"] == target][0]
    changed.loc[row, "height"] += 1.5
    changed.loc[row, "roof"] += 1.5
    second = build_tiles(BuildingsOnlyStore(changed), tmp_path, max_features_per_tile=150)
    after = snapshot(tmp_path)
    holding_after = {rel for rel in after if target in ids_in_tile(tmp_path / rel)}
    assert len(holding_before) == len(holding_after) == 1

    rewritten = {rel for rel in after if rel not in before or after[rel] != before[rel]}
    assert rewritten == holding_before | holding_after
    assert second.layers["buildings"].written == len(rewritten)
    for rel in set(after) - rewritten:
        assert after[rel] == before[rel]   # same bytes, same mtime, same inode
    manifest = json.loads((tmp_path / "tiles_manifest.json").read_text())
    tiles = manifest["layers"]["buildings"]["tiles"]
    assert tiles.keys() == {rel.removeprefix("buildings/") for rel in after}


def test_unchanged_rebuild_writes_no_tiles_and_stale_tiles_are_removed(tmp_path):
    frame = city(600)
    build_tiles(BuildingsOnlyStore(frame), tmp_path, max_features_per_tile=100)
    before = snapshot(tmp_path)
    again = build_tiles(BuildingsOnlyStore(frame), tmp_path, max_features_per_tile=100)
    assert again.layers["buildings"].written == 0 and snapshot(tmp_path) == before

    fewer = build_tiles(BuildingsOnlyStore(frame.iloc[:50]), tmp_path, max_features_per_tile=100)
    assert fewer.layers["buildings"].tiles == 1 and fewer.layers["buildings"].removed >= 1
    assert len(list((tmp_path / "buildings" / "t").iterdir())) == 1
    assert not list(tmp_path.rglob(".*tmp-*"))


def test_tiles_encoded_on_all_cores_equal_tiles_encoded_in_one_process(tmp_path, monkeypatch):
    import tiles.build

    frame = city(2000)
    monkeypatch.setattr(tiles.build, "PARALLEL_MIN_TILES", 10 ** 9)
    serial = build_tiles(BuildingsOnlyStore(frame), tmp_path / "serial", max_features_per_tile=40)
    monkeypatch.setattr(tiles.build, "PARALLEL_MIN_TILES", 1)
    forked = build_tiles(BuildingsOnlyStore(frame), tmp_path / "forked", max_features_per_tile=40)
    assert serial.layers["buildings"].tiles == forked.layers["buildings"].tiles > 20
    a = {rel: data for rel, (data, _, _) in snapshot(tmp_path / "serial").items()}
    b = {rel: data for rel, (data, _, _) in snapshot(tmp_path / "forked").items()}
    assert a == b
    assert (json.loads((tmp_path / "serial" / "tiles_manifest.json").read_text())
            == json.loads((tmp_path / "forked" / "tiles_manifest.json").read_text()))
    again = build_tiles(BuildingsOnlyStore(frame), tmp_path / "forked", max_features_per_tile=40)
    assert again.layers["buildings"].written == 0
