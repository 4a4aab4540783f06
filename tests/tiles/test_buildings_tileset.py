"""tileset.json structure: containment, geometric error, feature counts; on a synthetic city and on Tianhe."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import CRS

from tiles.build import build_tiles
from twin.store.memory import MemoryStore

CRS_4547 = CRS.from_epsg(4547)
X0, Y0 = 441_000.0, 2_557_000.0
REPO = Path(__file__).resolve().parents[2]
TIANHE_TOML = REPO / "data" / "tianhe" / "city.toml"


def memory_store(layers, meshes=None):
    return MemoryStore("EPSG:4547", layers=layers, meshes=meshes, kinds={n: n for n in layers})


def synthetic_city(n: int, seed: int = 1) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    x = X0 + rng.uniform(0, 3000, n)
    y = Y0 + rng.uniform(0, 3000, n)
    height = rng.gamma(2.0, 12.0, n) + 3
    ground = rng.uniform(0, 15, n)
    underground = rng.random(n) < 0.03
    return gpd.GeoDataFrame({
        "id": [f"b{i:06d}" for i in range(n)], "source": "synthetic", "source_id": [str(i) for i in range(n)],
        "name": [f"楼{i}" if i % 50 == 0 else None for i in range(n)], "use": "residential", "use_raw": "yes",
        "height": height, "height_rule": "explicit", "levels": np.round(height / 3.2),
        "ground": np.where(underground, ground - 12, ground), "roof": np.where(underground, ground, ground + height),
        "underground": underground, "area": 0.0, "population": np.nan, "capacity": np.nan, "attrs": "{}",
    }, geometry=shapely.box(x, y, x + rng.uniform(8, 35, n), y + rng.uniform(8, 35, n)), crs=CRS_4547)


# ---------------------------------------------------------------- independent readers

def glb_of(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:4] == b"b3dm":
        header = struct.unpack_from("<4s6I", data, 0)
        data = data[28 + sum(header[3:7]):]
    return data


def glb_content(data: bytes) -> tuple[np.ndarray, int, int]:
    """(ENU positions in the tileset frame, property-table count, distinct feature ids) of a glb."""
    json_len = struct.unpack_from("<I", data, 12)[0]
    gltf = json.loads(data[20:20 + json_len])
    blob = data[28 + json_len:]
    prim = gltf["meshes"][0]["primitives"][0]
    acc = gltf["accessors"][prim["attributes"]["POSITION"]]
    view = gltf["bufferViews"][acc["bufferView"]]
    pos = np.frombuffer(blob, "<f4", acc["count"] * 3, view.get("byteOffset", 0)).reshape(-1, 3).astype(float)
    pos += gltf["nodes"][0].get("translation", [0, 0, 0])
    enu = np.column_stack([pos[:, 0], -pos[:, 2], pos[:, 1]])
    fid_acc = gltf["accessors"][prim["attributes"]["_FEATURE_ID_0"]]
    fid_view = gltf["bufferViews"][fid_acc["bufferView"]]
    fid = np.frombuffer(blob, "<f4", fid_acc["count"], fid_view.get("byteOffset", 0))
    count = gltf["extensions"]["EXT_structural_metadata"]["propertyTables"][0]["count"]
    assert prim["extensions"]["EXT_mesh_features"]["featureIds"][0]["featureCount"] == count
    return enu, count, len(np.unique(fid))


def box_bounds(box: list[float]) -> tuple[np.ndarray, np.ndarray]:
    c, axes = np.asarray(box[:3]), np.asarray(box[3:]).reshape(3, 3)
    half = np.abs(axes).sum(axis=0)
    return c - half, c + half


def check_tileset(folder: Path) -> dict:
    """Structural checks of one tileset; returns counts for further asserts."""
    tileset = json.loads((folder / "tileset.json").read_text(encoding="utf-8"))
    assert tileset["asset"]["version"] in ("1.0", "1.1")
    root = tileset["root"]
    assert len(root["transform"]) == 16
    assert tileset["geometricError"] >= root["geometricError"]
    stats = {"features": 0, "tiles": 0, "max_depth": 0}

    def visit(tile: dict, depth: int, parent: tuple[np.ndarray, np.ndarray] | None):
        lo, hi = box_bounds(tile["boundingVolume"]["box"])
        if parent is not None:
            assert np.all(lo >= parent[0] - 1e-6) and np.all(hi <= parent[1] + 1e-6), "child box outside parent"
        if "content" in tile:
            enu, count, distinct = glb_content(glb_of(folder / tile["content"]["uri"]))
            assert np.all(enu >= lo - 1e-6) and np.all(enu <= hi + 1e-6), "content outside its tile box"
            assert count == distinct
            stats["features"] += count
            stats["tiles"] += 1
        children = tile.get("children", [])
        if not children:
            assert tile["geometricError"] == 0
        for child in children:
            assert child["geometricError"] <= tile["geometricError"]
            visit(child, depth + 1, (lo, hi))
        stats["max_depth"] = max(stats["max_depth"], depth)

    visit(root, 0, None)
    return stats


# ---------------------------------------------------------------- tests

def test_synthetic_city_tilesets_are_well_formed(tmp_path):
    city = synthetic_city(3000)
    report = build_tiles(memory_store({"buildings": city}), tmp_path, max_features_per_tile=200)
    above = check_tileset(tmp_path / "buildings")
    below = check_tileset(tmp_path / "buildings-underground")
    n_under = int(city.underground.sum())
    assert above["features"] == len(city) - n_under and below["features"] == n_under
    assert above["max_depth"] >= 2 and above["tiles"] >= 3000 // 200
    assert report.layers["buildings"].features == above["features"]
    manifest = json.loads((tmp_path / "tiles_manifest.json").read_text())
    assert set(manifest["layers"]) == {"buildings", "buildings-underground"}
    assert report.not_built.get("pointcloud") or "pointcloud" in report.external


def test_byte_cap_splits_tiles(tmp_path):
    city = synthetic_city(800)
    report = build_tiles(memory_store({"buildings": city}), tmp_path, max_features_per_tile=10_000,
                         max_bytes_per_tile=60_000)
    manifest = json.loads((tmp_path / "tiles_manifest.json").read_text())
    sizes = [t["bytes"] for t in manifest["layers"]["buildings"]["tiles"].values()]
    assert report.layers["buildings"].tiles > 1
    assert max(sizes) < 60_000 * 1.3   # the cap is on estimated bytes; JSON overhead comes on top
    check_tileset(tmp_path / "buildings")


def test_legacy_mode_writes_b3dm_tilesets(tmp_path):
    build_tiles(memory_store({"buildings": synthetic_city(500)}), tmp_path, mode="1.0", max_features_per_tile=100)
    tileset = json.loads((tmp_path / "buildings" / "tileset.json").read_text())
    assert tileset["asset"]["version"] == "1.0"
    assert list((tmp_path / "buildings" / "t").glob("*.b3dm"))


# ---------------------------------------------------------------- the real Tianhe twin

@pytest.fixture(scope="module")
def tianhe_tiles(tmp_path_factory):
    from twin.build import build_twin
    from twin.store.folder import FolderStore

    twin_dir = tmp_path_factory.mktemp("tianhe") / "twin"
    build_twin(TIANHE_TOML, twin_dir)
    store = FolderStore(twin_dir)
    out = tmp_path_factory.mktemp("tianhe-tiles")
    return store, out, build_tiles(store, out)


@pytest.mark.slow
def test_tianhe_twin_tiles(tianhe_tiles):
    store, out, report = tianhe_tiles
    buildings = store.read_layer("buildings")
    above = check_tileset(out / "buildings")
    n_under = int(buildings["underground"].sum())
    assert above["features"] == len(buildings) - n_under
    if n_under:
        assert check_tileset(out / "buildings-underground")["features"] == n_under
    for name in store.mesh_names():
        layer = "buildings-lod2" if name == "buildings" else name
        assert check_tileset(out / layer)["features"] == report.layers[layer].features > 0
    names = [n for glb in (out / "buildings" / "t").glob("*.glb") for n in string_property(glb.read_bytes(), "name")]
    assert "广州图书馆" in names   # Guangzhou Library, from OSM
    assert set(names) - {""} == set(buildings.loc[~buildings["underground"], "name"].dropna()) - {""}


def string_property(data: bytes, prop: str) -> list[str]:
    """A STRING property of property table 0, decoded per EXT_structural_metadata."""
    json_len = struct.unpack_from("<I", data, 12)[0]
    gltf = json.loads(data[20:20 + json_len])
    blob = data[28 + json_len:]
    table = gltf["extensions"]["EXT_structural_metadata"]["propertyTables"][0]
    ref = table["properties"][prop]
    views = gltf["bufferViews"]
    values = blob[views[ref["values"]]["byteOffset"]:][:views[ref["values"]]["byteLength"]]
    offsets = np.frombuffer(blob, "<u4", table["count"] + 1, views[ref["stringOffsets"]]["byteOffset"])
    return [values[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])]
