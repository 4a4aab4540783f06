"""glb and b3dm content: Khronos validator, independent decoding, geometry against analytic values."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import CRS
from scipy.spatial import cKDTree

from layers.base import MeshData
from tiles.buildings import plan_buildings, plan_mesh_layer
from tiles.extrude import EnuProjector, extrude_footprints
from tiles.geodesy import LocalFrame
from tiles.hierarchy import TreeLimits

REPO = Path(__file__).resolve().parents[2]
VALIDATOR_SCRIPT = Path(__file__).with_name("validate_gltf.mjs")
CRS_4547 = CRS.from_epsg(4547)
X0, Y0 = 441_000.0, 2_557_000.0   # Zhujiang New Town, EPSG:4547
TOWER_NAME = "广州塔"


# ---------------------------------------------------------------- helpers (independent of tiles/)

def validate_glbs(paths: list[Path]) -> list[dict]:
    """Run the Khronos glTF-Validator (npm `gltf-validator`) on each file."""
    assert shutil.which("node") and (REPO / "node_modules" / "gltf-validator").exists(), \
        "node or the npm package gltf-validator is missing: run 'npm ci' (make test does)"
    out = subprocess.run(["node", str(VALIDATOR_SCRIPT), *map(str, paths)], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    reports = [json.loads(line) for line in out.splitlines() if line.strip()]
    for r in reports:
        if r["warnings"]:
            print(f"{r['path']}: {r['warnings']} validator warnings: {r['messages']}")
    return reports


def parse_glb(data: bytes) -> tuple[dict, bytes]:
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert magic == b"glTF" and version == 2 and length == len(data)
    json_len, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON"
    gltf = json.loads(data[20:20 + json_len].decode("utf-8"))
    bin_len, bin_type = struct.unpack_from("<I4s", data, 20 + json_len)
    assert bin_type == b"BIN\x00"
    return gltf, data[28 + json_len:28 + json_len + bin_len]


def view_bytes(gltf: dict, blob: bytes, index: int) -> bytes:
    v = gltf["bufferViews"][index]
    return blob[v.get("byteOffset", 0):v.get("byteOffset", 0) + v["byteLength"]]


def read_accessor(gltf: dict, blob: bytes, index: int) -> np.ndarray:
    acc = gltf["accessors"][index]
    dtype = {5126: "<f4", 5120: "i1", 5121: "u1", 5123: "<u2", 5125: "<u4"}[acc["componentType"]]
    width = {"SCALAR": 1, "VEC3": 3}[acc["type"]]
    view = gltf["bufferViews"][acc["bufferView"]]
    item = np.dtype(dtype).itemsize
    stride = view.get("byteStride", item * width)
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    raw = np.frombuffer(blob, np.uint8, count=stride * acc["count"], offset=start).reshape(acc["count"], stride)
    return raw[:, :item * width].copy().view(dtype).reshape(acc["count"], width)


def decode_property_table(gltf: dict, blob: bytes) -> dict[str, list]:
    """Property table 0 decoded straight from the EXT_structural_metadata spec."""
    meta = gltf["extensions"]["EXT_structural_metadata"]
    table = meta["propertyTables"][0]
    cls = meta["schema"]["classes"][table["class"]]["properties"]
    enums = meta["schema"].get("enums", {})
    count = table["count"]
    out: dict[str, list] = {}
    for name, prop in table["properties"].items():
        kind = cls[name]["type"]
        values = view_bytes(gltf, blob, prop["values"])
        if kind == "STRING":
            offset_type = {"UINT32": "<u4", "UINT16": "<u2", "UINT8": "u1", "UINT64": "<u8"}[
                prop.get("stringOffsetType", "UINT32")]
            offsets = np.frombuffer(view_bytes(gltf, blob, prop["stringOffsets"]), offset_type, count + 1)
            out[name] = [values[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])]
        elif kind == "BOOLEAN":
            bits = np.frombuffer(values, np.uint8)
            out[name] = [bool((bits[i // 8] >> (i % 8)) & 1) for i in range(count)]
        elif kind == "ENUM":
            enum = enums[cls[name]["enumType"]]
            dtype = {"UINT8": "u1", "UINT16": "<u2"}[enum.get("valueType", "UINT16")]
            names = {v["value"]: v["name"] for v in enum["values"]}
            out[name] = [names[int(c)] for c in np.frombuffer(values, dtype, count)]
        else:
            dtype = {"FLOAT32": "<f4", "FLOAT64": "<f8", "INT16": "<i2", "INT32": "<i4", "UINT8": "u1"}[
                cls[name]["componentType"]]
            out[name] = np.frombuffer(values, dtype, count).tolist()
    return out


def yup_positions_to_project(gltf: dict, blob: bytes, frame: LocalFrame) -> np.ndarray:
    prim = gltf["meshes"][0]["primitives"][0]
    pos = read_accessor(gltf, blob, prim["attributes"]["POSITION"]).astype(np.float64)
    pos += np.asarray(gltf["nodes"][0].get("translation", [0, 0, 0]))
    enu = np.column_stack([pos[:, 0], -pos[:, 2], pos[:, 1]])   # glTF Y-up -> 3D Tiles Z-up
    return frame.to_project(enu)


# ---------------------------------------------------------------- fixtures

def synthetic_buildings() -> gpd.GeoDataFrame:
    rng = np.random.default_rng(7)
    n = 60
    x = X0 + rng.uniform(0, 800, n)
    y = Y0 + rng.uniform(0, 800, n)
    geoms = list(shapely.box(x, y, x + rng.uniform(8, 40, n), y + rng.uniform(8, 40, n)))
    geoms[0] = shapely.Polygon([(X0, Y0), (X0 + 30, Y0), (X0 + 30, Y0 + 30), (X0, Y0 + 30)],
                               [[(X0 + 10, Y0 + 10), (X0 + 10, Y0 + 20), (X0 + 20, Y0 + 20), (X0 + 20, Y0 + 10)]])
    geoms[1] = shapely.MultiPolygon([shapely.box(X0 + 50, Y0, X0 + 60, Y0 + 10),
                                     shapely.box(X0 + 70, Y0, X0 + 80, Y0 + 12)])
    geoms[2] = shapely.Polygon([(X0 + 100, Y0), (X0 + 130, Y0), (X0 + 130, Y0 + 10), (X0 + 110, Y0 + 10),
                                (X0 + 110, Y0 + 30), (X0 + 100, Y0 + 30)])  # L shape (concave)
    height = rng.uniform(6, 120, n)
    ground = rng.uniform(5, 12, n)
    names = [None] * n
    names[3] = TOWER_NAME
    names[4] = "花城广场 \"Square\""
    return gpd.GeoDataFrame({
        "id": [f"bld-{i:04d}" for i in range(n)], "source": "osm", "source_id": [f"way/{i}" for i in range(n)],
        "name": names, "use": np.where(np.arange(n) % 3 == 0, "office", "residential"), "use_raw": "yes",
        "height": height, "height_rule": "explicit", "levels": np.where(np.arange(n) % 2 == 0, np.nan, 8.0),
        "ground": ground, "roof": ground + height, "underground": False, "area": 0.0,
        "population": np.nan, "capacity": np.nan, "attrs": "{}",
    }, geometry=geoms, crs=CRS_4547)


@pytest.fixture(scope="module")
def buildings() -> gpd.GeoDataFrame:
    return synthetic_buildings()


@pytest.fixture(scope="module")
def plan(buildings):
    return plan_buildings(buildings, limits=TreeLimits(max_features=16))


@pytest.fixture(scope="module")
def written_glbs(plan, tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("glb")
    paths = []
    for node in plan.nodes_with_content():
        path = folder / f"{node.address}.glb"
        path.write_bytes(plan.encode(node))
        paths.append(path)
    return paths


# ---------------------------------------------------------------- tests

def test_every_glb_passes_the_khronos_validator(written_glbs):
    reports = validate_glbs(written_glbs)
    assert len(reports) == len(written_glbs) > 1
    assert [r for r in reports if r["errors"]] == []


def test_property_table_decodes_with_chinese_names_and_typed_values(plan, written_glbs, buildings):
    seen: dict[str, dict] = {}
    for path in written_glbs:
        gltf, blob = parse_glb(path.read_bytes())
        assert {"EXT_mesh_features", "EXT_structural_metadata"} <= set(gltf["extensionsUsed"])
        prim = gltf["meshes"][0]["primitives"][0]
        fid = prim["extensions"]["EXT_mesh_features"]["featureIds"][0]
        table = decode_property_table(gltf, blob)
        ids = read_accessor(gltf, blob, prim["attributes"]["_FEATURE_ID_0"]).ravel()
        count = gltf["extensions"]["EXT_structural_metadata"]["propertyTables"][0]["count"]
        assert fid["featureCount"] == count == len(table["id"]) == len(np.unique(ids))
        assert set(np.unique(ids).astype(int)) == set(range(count))
        for i, bid in enumerate(table["id"]):
            seen[bid] = {k: v[i] for k, v in table.items()}
    assert len(seen) == len(buildings)  # each building in exactly one tile (ADD refinement)
    by_id = buildings.set_index("id")
    tower = [row for row in seen.values() if row["name"] == TOWER_NAME]
    assert len(tower) == 1 and tower[0]["id"] == "bld-0003"
    assert seen["bld-0004"]["name"] == "花城广场 \"Square\""
    for bid, row in seen.items():
        src = by_id.loc[bid]
        assert row["height"] == pytest.approx(np.float32(src["height"]))
        assert row["roof"] == pytest.approx(np.float32(src["roof"]))
        assert row["use"] == src["use"] and row["underground"] is False
        assert row["levels"] == (-32768 if np.isnan(src["levels"]) else int(src["levels"]))


def test_positions_round_trip_to_project_coordinates_within_1cm(plan, written_glbs, buildings):
    src_xy = shapely.get_coordinates(buildings.geometry.to_numpy())
    tree = cKDTree(src_xy)
    by_id = buildings.set_index("id")
    for path in written_glbs:
        gltf, blob = parse_glb(path.read_bytes())
        xyz = yup_positions_to_project(gltf, blob, plan.frame)
        dist, _ = tree.query(xyz[:, :2])
        assert dist.max() < 0.01
        table = decode_property_table(gltf, blob)
        prim = gltf["meshes"][0]["primitives"][0]
        fid = read_accessor(gltf, blob, prim["attributes"]["_FEATURE_ID_0"]).ravel().astype(int)
        ids = np.asarray(table["id"])[fid]
        ground = by_id.loc[ids, "ground"].to_numpy()
        roof = by_id.loc[ids, "roof"].to_numpy()
        dz = np.minimum(np.abs(xyz[:, 2] - ground), np.abs(xyz[:, 2] - roof))
        assert dz.max() < 0.01


def test_extruded_solids_have_analytic_volume_and_outward_normals():
    frame = LocalFrame(CRS_4547, X0, Y0, 0.0)
    outer = [(X0, Y0), (X0 + 30, Y0), (X0 + 30, Y0 + 30), (X0, Y0 + 30)]
    hole = [(X0 + 10, Y0 + 10), (X0 + 20, Y0 + 10), (X0 + 20, Y0 + 20), (X0 + 10, Y0 + 20)]
    shapes = [shapely.Polygon(outer, [hole]),
              shapely.Polygon([(X0, Y0), (X0 + 20, Y0), (X0 + 20, Y0 + 10), (X0 + 10, Y0 + 10),
                               (X0 + 10, Y0 + 20), (X0, Y0 + 20)]),
              shapely.MultiPolygon([shapely.box(X0, Y0, X0 + 5, Y0 + 5), shapely.box(X0 + 9, Y0, X0 + 12, Y0 + 4)])]
    ground, roof = np.array([3.0, 0.0, -2.0]), np.array([23.0, 12.5, 4.0])
    mesh = extrude_footprints(shapes, ground, roof, EnuProjector(frame), floor=True)
    for i, shape in enumerate(shapes):
        pos, nrm, tri, _ = mesh.take([i])
        a, b, c = pos[tri[:, 0]], pos[tri[:, 1]], pos[tri[:, 2]]
        volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0   # divergence theorem, closed solid
        # the projection scale factor near 441 km E is ~1.00004, far below the tolerance
        assert volume == pytest.approx(shape.area * (roof[i] - ground[i]), rel=1e-3)
        face_normal = np.cross(b - a, c - a)
        face_normal /= np.linalg.norm(face_normal, axis=1, keepdims=True)
        stored = nrm[tri[:, 0]] / 127.0                                   # signed-byte normals
        assert np.allclose(face_normal, stored, atol=0.02)                # stored normals match the winding
        assert np.allclose(np.linalg.norm(nrm / 127.0, axis=1), 1.0, atol=0.005)


def test_b3dm_header_feature_table_and_batch_table(buildings, tmp_path):
    plan = plan_buildings(buildings, mode="1.0", limits=TreeLimits(max_features=25))
    glbs = []
    for node in plan.nodes_with_content():
        data = plan.encode(node)
        magic, version, length, ft_json, ft_bin, bt_json, bt_bin = struct.unpack_from("<4s6I", data, 0)
        assert magic == b"b3dm" and version == 1 and length == len(data) and length % 8 == 0
        assert 28 + ft_json + ft_bin + bt_json + bt_bin < length
        feature_table = json.loads(data[28:28 + ft_json])
        batch_table = json.loads(data[28 + ft_json + ft_bin:28 + ft_json + ft_bin + bt_json])
        assert feature_table["BATCH_LENGTH"] == len(node.features)
        assert all(len(v) == feature_table["BATCH_LENGTH"] for v in batch_table.values())
        glb = data[28 + ft_json + ft_bin + bt_json + bt_bin:]
        gltf, blob = parse_glb(glb[:struct.unpack_from("<I", glb, 8)[0]])
        prim = gltf["meshes"][0]["primitives"][0]
        assert gltf["accessors"][prim["attributes"]["_BATCHID"]]["componentType"] in (5126, 5123)
        batch_ids = read_accessor(gltf, blob, prim["attributes"]["_BATCHID"]).ravel()
        assert set(np.unique(batch_ids).astype(int)) == set(range(feature_table["BATCH_LENGTH"]))
        assert "EXT_structural_metadata" not in gltf.get("extensionsUsed", [])
        path = tmp_path / f"{node.address}.glb"
        path.write_bytes(glb)
        glbs.append(path)
        if TOWER_NAME in batch_table["name"]:
            assert batch_table["id"][batch_table["name"].index(TOWER_NAME)] == "bld-0003"
    assert [r for r in validate_glbs(glbs) if r["errors"]] == []


def test_bim_elements_are_features_with_ifc_properties(tmp_path):
    frame_rows = []
    vertices, faces, face_feature = [], [], []
    for k in range(3):   # three box-shaped IFC elements, 12 triangles each
        box = np.array([[x, y, z] for z in (0, 3) for y in (0, 4) for x in (0, 5)], float)
        box += [X0 + 10 * k, Y0, 10.0]
        quads = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
        tris = [t for q in quads for t in ((q[0], q[1], q[2]), (q[0], q[2], q[3]))]
        faces += [[a + 8 * k, b + 8 * k, c + 8 * k] for a, b, c in tris]
        face_feature += [k] * 12
        vertices.append(box)
        frame_rows.append({"id": f"bim-{k}", "source_id": f"e{k}", "name": f"墙 {k}", "model": "FZK-Haus",
                           "global_id": f"2O2Fr$t4X7Zf8NOew3FL{k:02d}", "ifc_class": "IfcWall",
                           "storey": "Erdgeschoss", "psets": "{}", "z_min": 10.0, "z_max": 13.0})
    mesh = MeshData(np.vstack(vertices), np.array(faces), np.array(face_feature), CRS_4547)
    frame = gpd.GeoDataFrame(frame_rows, geometry=[shapely.box(X0 + 10 * k, Y0, X0 + 10 * k + 5, Y0 + 4)
                                                   for k in range(3)], crs=CRS_4547)
    plan = plan_mesh_layer(mesh, frame, layer="bim")
    (node,) = plan.nodes_with_content()
    path = tmp_path / "bim.glb"
    path.write_bytes(plan.encode(node))
    gltf, blob = parse_glb(path.read_bytes())
    table = decode_property_table(gltf, blob)
    assert gltf["extensions"]["EXT_structural_metadata"]["propertyTables"][0]["class"] == "bim_element"
    assert sorted(table["global_id"]) == sorted(r["global_id"] for r in frame_rows)
    assert set(table["ifc_class"]) == {"IfcWall"} and table["name"][0].startswith("墙")
    assert [r for r in validate_glbs([path]) if r["errors"]] == []
    xyz = yup_positions_to_project(gltf, blob, plan.frame)
    assert np.abs(cKDTree(np.vstack(vertices)).query(xyz)[0]).max() < 0.01


def test_fitted_enu_surface_is_within_1mm_of_pyproj_over_the_whole_extent():
    """The fast path (a polynomial fitted to pyproj) against pyproj's own topocentric
    conversion (no code of ours), on a 20 km city (1M buildings) and a 3 km one."""
    from pyproj import Transformer

    from tiles.extrude import FIT_MIN_POINTS

    rng = np.random.default_rng(11)
    for side in (3_000.0, 20_000.0):
        frame = LocalFrame(CRS_4547, X0 + side / 2, Y0 + side / 2, 0.0)
        projector = EnuProjector(frame)
        n = max(FIT_MIN_POINTS, 200_000)
        edge = np.linspace(0.0, side, 101)
        x = np.concatenate([X0 + rng.uniform(0, side, n), X0 + edge, X0 + edge, np.full(101, X0),
                            np.full(101, X0 + side)])
        y = np.concatenate([Y0 + rng.uniform(0, side, n), np.full(101, Y0), np.full(101, Y0 + side),
                            Y0 + edge, Y0 + edge])
        base, up = projector.base_and_up(x, y)
        assert projector._surface is not None, "the fitted path was not taken"
        lon, lat = Transformer.from_crs(CRS_4547, CRS.from_epsg(4326), always_xy=True).transform(x, y)
        topo = Transformer.from_pipeline(
            "+proj=pipeline +step +proj=cart +ellps=WGS84 "
            f"+step +proj=topocentric +ellps=WGS84 +lon_0={frame.lon!r} +lat_0={frame.lat!r} +h_0=0")
        for h in (0.0, 600.0):   # ground and the top of a supertall tower
            e, n_, u = topo.transform(lon, lat, np.full(len(x), h))
            error = np.abs(base + h * up - np.column_stack([e, n_, u])).max()
            assert error < 0.001, f"{side} m city, h={h}: {error * 1000:.3f} mm"


def test_fitted_path_round_trips_within_1cm_and_matches_the_exact_path(buildings, monkeypatch):
    import tiles.extrude

    exact = plan_buildings(buildings, limits=TreeLimits(max_features=16))
    monkeypatch.setattr(tiles.extrude, "FIT_MIN_POINTS", 1)   # every batch through the fitted surface
    fitted = plan_buildings(buildings, limits=TreeLimits(max_features=16))
    src_xy = shapely.get_coordinates(buildings.geometry.to_numpy())
    tree = cKDTree(src_xy)
    for node in fitted.nodes_with_content():
        gltf, blob = parse_glb(fitted.encode(node))
        xyz = yup_positions_to_project(gltf, blob, fitted.frame)
        assert tree.query(xyz[:, :2])[0].max() < 0.01
        reference, _ = parse_glb(exact.encode(node))
        prim, ref_prim = gltf["meshes"][0]["primitives"][0], reference["meshes"][0]["primitives"][0]
        assert gltf["nodes"][0]["translation"] == reference["nodes"][0]["translation"]
        ref_blob = parse_glb(exact.encode(node))[1]
        a = read_accessor(gltf, blob, prim["attributes"]["POSITION"])
        b = read_accessor(reference, ref_blob, ref_prim["attributes"]["POSITION"])
        assert np.abs(a.astype(float) - b).max() < 0.001


def test_tile_slices_equal_gathered_features(buildings):
    """A tile's contiguous slice gives what the general gather gives, after any reordering."""
    frame = LocalFrame(CRS_4547, X0, Y0, 0.0)
    geoms = buildings.geometry.to_numpy()
    ground, roof = buildings["ground"].to_numpy(), buildings["roof"].to_numpy()
    mesh = extrude_footprints(geoms, ground, roof, EnuProjector(frame), floor=True)
    order = np.random.default_rng(5).permutation(len(buildings))
    reordered = extrude_footprints(geoms, ground, roof, EnuProjector(frame), floor=True, order=order)
    for start, stop in ((0, 1), (3, 17), (40, len(buildings))):
        got = reordered.slice(start, stop)
        want = mesh.take(order[start:stop])
        for g, w in zip(got, want):
            assert np.array_equal(g, w)
        pos, _, tri, fid = got
        assert tri.min() == 0 and tri.max() == len(pos) - 1
        assert np.array_equal(np.unique(fid), np.arange(stop - start))
