"""The glb terrain tileset against an analytic surface, decoded without our code."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pygltflib
import pytest
from affine import Affine
from pyproj import CRS, Transformer

from layers.base import RasterData
from tiles.terrain import TerrainError, build_terrain_tileset, write_terrain_tileset
from twin.store.memory import MemoryStore

REPO = Path(__file__).resolve().parents[2]
UTM49 = CRS.from_epsg(32649)          # metric CRS over Guangzhou
RES = 2.0
X0, Y0 = 500_000.0, 2_560_000.0
AMPLITUDE, WAVELENGTH, SLOPE = 10.0, 60.0, 0.01


def FakeStore(rasters):
    crs = next(iter(rasters.values())).crs if rasters else "EPSG:32649"
    return MemoryStore(crs, rasters=rasters)


def analytic_raster(rows: int = 600, cols: int = 700) -> RasterData:
    """z = a sin(x / L) + c cos(y / M) + b y sampled at pixel centres (curved both ways)."""
    c, r = np.meshgrid(np.arange(cols), np.arange(rows))
    x = X0 + (c + 0.5) * RES
    y = Y0 + rows * RES - (r + 0.5) * RES
    z = AMPLITUDE * np.sin((x - X0) / WAVELENGTH) + 4.0 * np.cos((y - Y0) / 45.0) + SLOPE * (y - Y0)
    return RasterData(z.astype(np.float32), Affine(RES, 0, X0, 0, -RES, Y0 + rows * RES), UTM49)


# ---------------------------------------------------------------- independent decoding

def walk(tile: dict, depth: int = 0):
    yield tile, depth
    for child in tile.get("children", []):
        yield from walk(child, depth + 1)


def root_matrix(tileset: dict) -> np.ndarray:
    return np.array(tileset["root"]["transform"], dtype=float).reshape(4, 4).T   # column-major


def read_surface(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Primitive 0 of a glb as (positions in the tileset's z-up frame, triangles), with pygltflib."""
    gltf = pygltflib.GLTF2().load(str(path))
    blob = gltf.binary_blob()
    node = gltf.nodes[gltf.scenes[gltf.scene].nodes[0]]
    prim = gltf.meshes[node.mesh].primitives[0]

    def array(index: int) -> np.ndarray:
        acc = gltf.accessors[index]
        view = gltf.bufferViews[acc.bufferView]
        dtype = {5126: np.float32, 5123: np.uint16, 5125: np.uint32}[acc.componentType]
        width = {"VEC3": 3, "SCALAR": 1}[acc.type]
        start = view.byteOffset + (acc.byteOffset or 0)
        return np.frombuffer(blob, dtype=dtype, count=acc.count * width, offset=start).reshape(acc.count, width)

    yup = array(prim.attributes.POSITION).astype(np.float64) + np.array(node.translation or [0, 0, 0])
    enu = np.column_stack([yup[:, 0], -yup[:, 2], yup[:, 1]])          # glTF y-up -> z-up
    return enu, array(prim.indices).reshape(-1, 3).astype(np.int64)


def to_project(enu: np.ndarray, matrix: np.ndarray, crs: CRS) -> np.ndarray:
    ecef = (np.column_stack([enu, np.ones(len(enu))]) @ matrix.T)[:, :3]
    lon, lat, h = Transformer.from_crs(4978, 4979, always_xy=True).transform(*ecef.T)
    x, y = Transformer.from_crs(4326, crs, always_xy=True).transform(lon, lat)
    return np.column_stack([x, y, h])


def tin_heights(xyz: np.ndarray, triangles: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Heights of the TIN at points (px, py) by brute-force barycentric search (NaN outside)."""
    a, b, c = (xyz[triangles[:, k]] for k in range(3))
    det = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
    keep = np.abs(det) > 1e-9
    a, b, c, det = a[keep], b[keep], c[keep], det[keep]
    out = np.full(len(px), np.nan)
    for s in range(0, len(px), 512):
        qx, qy = px[s:s + 512, None], py[s:s + 512, None]
        la = ((b[:, 1] - c[:, 1]) * (qx - c[:, 0]) + (c[:, 0] - b[:, 0]) * (qy - c[:, 1])) / det
        lb = ((c[:, 1] - a[:, 1]) * (qx - c[:, 0]) + (a[:, 0] - c[:, 0]) * (qy - c[:, 1])) / det
        lc = 1 - la - lb
        inside = (la >= -1e-7) & (lb >= -1e-7) & (lc >= -1e-7)
        hit = inside.any(axis=1)
        t = inside.argmax(axis=1)
        rows = np.arange(len(qx))
        z = la[rows, t] * a[t, 2] + lb[rows, t] * b[t, 2] + lc[rows, t] * c[t, 2]
        out[s:s + 512] = np.where(hit, z, np.nan)
    return out


def gltf_validate(paths: list[Path]) -> dict:
    """Run the Khronos glTF-Validator (npm gltf-validator) on glb files."""
    if shutil.which("node") is None or not (REPO / "node_modules" / "gltf-validator").is_dir():
        pytest.fail("node and node_modules/gltf-validator are needed: run scripts/install_node_deps.sh")
    script = """
const fs = require('fs'); const v = require('gltf-validator');
(async () => { const out = {};
  for (const f of JSON.parse(process.argv[1])) {
    const r = await v.validateBytes(new Uint8Array(fs.readFileSync(f)), {maxIssues: 20});
    out[f] = {errors: r.issues.numErrors, warnings: r.issues.numWarnings,
              messages: r.issues.messages.map(m => m.code + ' ' + m.message)}; }
  console.log(JSON.stringify(out)); })();
"""
    run = subprocess.run(["node", "-e", script, json.dumps([str(p) for p in paths])], cwd=REPO,
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(run.stdout)


# ---------------------------------------------------------------- tests

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    raster = analytic_raster()
    out = tmp_path_factory.mktemp("terrain")
    report = write_terrain_tileset(FakeStore({"ground": raster}), out, max_error_m=0.5)
    return raster, out, report, json.loads((out / "tileset.json").read_text())


def test_report_and_tree(built):
    raster, out, report, tileset = built
    assert report["max_error_m"] == 0.5
    assert 0 < report["achieved_error_m"] <= 0.5
    assert report["tiles"] == sum(1 for _ in walk(tileset["root"]))
    assert report["levels"] == 1 + max(d for _, d in walk(tileset["root"]))
    assert tileset["asset"]["version"] in ("1.0", "1.1")
    assert tileset["geometricError"] >= tileset["root"]["geometricError"]
    for tile, _ in walk(tileset["root"]):
        assert (out / tile["content"]["uri"]).is_file()
        for child in tile.get("children", []):
            assert child["geometricError"] <= tile["geometricError"]
    # a full-resolution leaf is much smaller than the raster it stands for
    assert report["leaf_triangles"] < 0.1 * 2 * raster.array.size


def test_root_transform_is_enu_at_the_centre(built):
    raster, _, _, tileset = built
    m = root_matrix(tileset)
    x0, y0, x1, y1 = raster.bounds
    lon, lat = Transformer.from_crs(UTM49, 4326, always_xy=True).transform((x0 + x1) / 2, (y0 + y1) / 2)
    origin = Transformer.from_crs(4979, 4978, always_xy=True).transform(lon, lat, 0.0)
    np.testing.assert_allclose(m[:3, 3], origin, atol=1e-3)
    np.testing.assert_allclose(m[:3, :3].T @ m[:3, :3], np.eye(3), atol=1e-12)
    up = np.array([np.cos(np.radians(lat)) * np.cos(np.radians(lon)),
                   np.cos(np.radians(lat)) * np.sin(np.radians(lon)), np.sin(np.radians(lat))])
    np.testing.assert_allclose(m[:3, 2], up, atol=1e-12)
    assert m[2, 1] > 0                                       # second axis points north


def test_vertices_round_trip_to_raster_cells_within_1cm(built):
    raster, out, _, tileset = built
    m = root_matrix(tileset)
    for tile, _ in walk(tileset["root"]):
        enu, _ = read_surface(out / tile["content"]["uri"])
        xyz = to_project(enu, m, UTM49)
        col = (xyz[:, 0] - X0) / RES - 0.5
        row = (Y0 + raster.shape[0] * RES - xyz[:, 1]) / RES - 0.5
        assert np.abs(col - np.rint(col)).max() * RES < 0.01
        assert np.abs(row - np.rint(row)).max() * RES < 0.01
        cell = raster.array[np.rint(row).astype(int), np.rint(col).astype(int)]
        assert np.abs(xyz[:, 2] - cell).max() < 0.01


def test_tin_error_within_each_tiles_geometric_error(built):
    raster, out, _, tileset = built
    m = root_matrix(tileset)
    rng = np.random.default_rng(7)
    rows, cols = raster.shape
    leaves_checked = 0
    for tile, _ in walk(tileset["root"]):
        enu, tri = read_surface(out / tile["content"]["uri"])
        xyz = to_project(enu, m, UTM49)
        # pixel centres strictly inside this tile's footprint
        c0, c1 = np.floor((xyz[:, 0].min() - X0) / RES), np.ceil((xyz[:, 0].max() - X0) / RES)
        r0 = np.floor((Y0 + rows * RES - xyz[:, 1].max()) / RES)
        r1 = np.ceil((Y0 + rows * RES - xyz[:, 1].min()) / RES)
        rr = rng.integers(int(r0), int(r1), 3000).clip(0, rows - 1)
        cc = rng.integers(int(c0), int(c1), 3000).clip(0, cols - 1)
        px, py = X0 + (cc + 0.5) * RES, Y0 + rows * RES - (rr + 0.5) * RES
        z = tin_heights(xyz, tri, px, py)
        hit = np.isfinite(z)
        assert hit.mean() > 0.95
        error = np.abs(z[hit] - raster.array[rr[hit], cc[hit]]).max()
        assert error <= tile["geometricError"] + 0.01
        if not tile.get("children"):
            leaves_checked += 1
            assert error <= 0.5 + 0.01                         # the stated bound
    assert leaves_checked >= 4


def test_glb_pass_khronos_validator(built):
    _, out, _, _ = built
    report = gltf_validate(sorted(out.rglob("*.glb")))
    assert report
    for path, result in report.items():
        assert result["errors"] == 0, (path, result["messages"])
        assert result["warnings"] == 0, (path, result["messages"])


def test_nodata_is_not_meshed(tmp_path):
    raster = analytic_raster(300, 300)
    raster.array[:, :150] = np.nan
    build_terrain_tileset(raster, tmp_path, max_error_m=0.25)
    tileset = json.loads((tmp_path / "tileset.json").read_text())
    m = root_matrix(tileset)
    for tile, _ in walk(tileset["root"]):
        enu, tri = read_surface(tmp_path / tile["content"]["uri"])
        xyz = to_project(enu, m, UTM49)
        in_gap = xyz[:, 0] < X0 + 150 * RES
        assert not in_gap[tri].all(axis=1).any()


def test_errors():
    with pytest.raises(TerrainError):
        write_terrain_tileset(FakeStore({}), Path("/nonexistent"))
    empty = analytic_raster(10, 10)
    empty.array[:] = np.nan
    with pytest.raises(TerrainError):
        build_terrain_tileset(empty, Path("/nonexistent"))
    with pytest.raises(TerrainError):
        build_terrain_tileset(analytic_raster(10, 10), Path("/nonexistent"), max_error_m=0)


def test_triangulate_vertices_index_the_grid():
    """pydelatin's y axis runs upward; our (row, col) must still index the grid it meshed."""
    from tiles.tin import tin_max_error, triangulate

    grid = np.random.default_rng(0).normal(size=(40, 57)) * 5
    rc, tri, reported = triangulate(grid, 1.0)
    assert rc[:, 0].max() == 39 and rc[:, 1].max() == 56
    assert tin_max_error(rc, grid[rc[:, 0], rc[:, 1]], tri, grid, np.ones(grid.shape, bool)) <= 1.0 + 1e-6


TIANHE = REPO / "data" / "tianhe" / "city.toml"


@pytest.mark.slow
def test_tianhe_ground_twin(tmp_path):
    if not TIANHE.is_file():
        pytest.skip(f"{TIANHE} not present")
    from tiles.quantized_mesh import write_quantized_mesh
    from twin.build import build_twin

    store = build_twin(TIANHE, tmp_path / "twin").store
    ground = store.read_raster("ground")
    report = write_terrain_tileset(store, tmp_path / "terrain", max_error_m=1.0)
    assert report["achieved_error_m"] <= 1.0
    tileset = json.loads((tmp_path / "terrain" / "tileset.json").read_text())
    m = root_matrix(tileset)
    leaf = next(t for t, _ in walk(tileset["root"]) if not t.get("children"))
    enu, _ = read_surface(tmp_path / "terrain" / leaf["content"]["uri"])
    xyz = to_project(enu, m, ground.crs)
    t = ground.transform
    col, row = (xyz[:, 0] - t.c) / t.a - 0.5, (xyz[:, 1] - t.f) / t.e - 0.5
    assert np.abs(col - np.rint(col)).max() * t.a < 0.01 and np.abs(row - np.rint(row)).max() * t.a < 0.01
    cell = ground.array[np.rint(row).astype(int), np.rint(col).astype(int)]
    valid = np.isfinite(cell)
    assert valid.mean() > 0.8 and np.abs(xyz[valid, 2] - cell[valid]).max() < 0.01
    assert all(r["errors"] == 0 for r in gltf_validate(sorted((tmp_path / "terrain").rglob("*.glb"))).values())

    qm = write_quantized_mesh(store, tmp_path / "qm")
    layer = json.loads((tmp_path / "qm" / "layer.json").read_text())
    assert qm["achieved_error_m"] <= 0.5 and layer["maxzoom"] == qm["max_zoom"] >= 13
