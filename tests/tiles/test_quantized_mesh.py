"""Quantized-mesh terrain, decoded here straight from the spec
(https://github.com/CesiumGS/quantized-mesh) and checked against the raster."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from pyproj import CRS, Transformer

from layers.base import RasterData
from tiles.quantized_mesh import TerrainError, build_quantized_mesh, write_quantized_mesh
from twin.store.memory import MemoryStore

UTM49 = CRS.from_epsg(32649)
RES = 2.0
X0, Y0 = 500_000.0, 2_560_000.0
ROWS, COLS = 200, 220
MAX_ERROR = 0.5


def FakeStore(rasters):
    return MemoryStore(UTM49, rasters=rasters, city="testville")


def analytic_raster() -> RasterData:
    c, r = np.meshgrid(np.arange(COLS), np.arange(ROWS))
    x = X0 + (c + 0.5) * RES
    y = Y0 + ROWS * RES - (r + 0.5) * RES
    z = 20.0 + 5.0 * np.sin((x - X0) / 50.0) + 3.0 * np.cos((y - Y0) / 35.0) + 0.02 * (y - Y0)
    return RasterData(z.astype(np.float32), Affine(RES, 0, X0, 0, -RES, Y0 + ROWS * RES), UTM49)


# ---------------------------------------------------------------- an independent decoder

@dataclass
class QMTile:
    header: dict
    u: np.ndarray
    v: np.ndarray
    height: np.ndarray          # metres
    triangles: np.ndarray
    edges: dict
    extensions: dict


def _zigzag_deltas(raw: np.ndarray) -> np.ndarray:
    raw = raw.astype(np.int64)
    deltas = (raw >> 1) ^ -(raw & 1)
    return np.cumsum(deltas)


def decode_terrain(data: bytes) -> QMTile:
    names = ["centerX", "centerY", "centerZ", "minimumHeight", "maximumHeight", "sphereX", "sphereY",
             "sphereZ", "sphereRadius", "occlusionX", "occlusionY", "occlusionZ"]
    header = dict(zip(names, struct.unpack_from("<3d2f4d3d", data, 0)))
    pos = 88
    (n,) = struct.unpack_from("<I", data, pos)
    pos += 4
    uvh = np.frombuffer(data, dtype="<u2", count=3 * n, offset=pos)
    pos += 6 * n
    u, v, hq = (_zigzag_deltas(uvh[k * n:(k + 1) * n]) for k in range(3))
    wide = n > 65536
    isize, itype = (4, "<u4") if wide else (2, "<u2")
    pos += (-pos) % isize
    (n_tri,) = struct.unpack_from("<I", data, pos)
    pos += 4
    codes = np.frombuffer(data, dtype=itype, count=3 * n_tri, offset=pos).astype(np.int64)
    pos += 3 * n_tri * isize
    indices = np.empty_like(codes)
    highest = 0
    for i, code in enumerate(codes):                 # high-water mark decoding
        indices[i] = highest - code
        if code == 0:
            highest += 1
    edges = {}
    for side in ("west", "south", "east", "north"):
        (count,) = struct.unpack_from("<I", data, pos)
        pos += 4
        edges[side] = np.frombuffer(data, dtype=itype, count=count, offset=pos).astype(np.int64)
        pos += count * isize
    extensions = {}
    while pos < len(data):
        ext_id, length = struct.unpack_from("<BI", data, pos)
        pos += 5
        extensions[ext_id] = data[pos:pos + length]
        pos += length
    assert pos == len(data)
    h = header["minimumHeight"] + hq / 32767.0 * (header["maximumHeight"] - header["minimumHeight"])
    return QMTile(header, u, v, h, indices.reshape(-1, 3), edges, extensions)


def oct_decode(raw: bytes) -> np.ndarray:
    e = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 2).astype(np.float64) / 255.0 * 2.0 - 1.0
    x, y = e[:, 0], e[:, 1]
    z = 1.0 - np.abs(x) - np.abs(y)
    neg = z < 0
    x2 = np.where(neg, (1.0 - np.abs(y)) * np.sign(x), x)
    y2 = np.where(neg, (1.0 - np.abs(x)) * np.sign(y), y)
    n = np.column_stack([x2, y2, z])
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def tile_rect(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    d = 180.0 / 2 ** z                        # geographic scheme: 2 x 1 root tiles, TMS rows
    return -180 + x * d, -90 + y * d, -180 + (x + 1) * d, -90 + (y + 1) * d


def bilinear(raster: RasterData, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heights at lon/lat by bilinear interpolation between pixel centres, and where all 4 exist."""
    x, y = Transformer.from_crs(4326, raster.crs, always_xy=True).transform(lon, lat)
    t = raster.transform
    col = (np.asarray(x) - t.c) / t.a - 0.5
    row = (np.asarray(y) - t.f) / t.e - 0.5
    c0, r0 = np.floor(col).astype(int), np.floor(row).astype(int)
    ok = (c0 >= 0) & (r0 >= 0) & (c0 + 1 < raster.shape[1]) & (r0 + 1 < raster.shape[0])
    c0, r0 = np.where(ok, c0, 0), np.where(ok, r0, 0)
    fc, fr = col - c0, row - r0
    a = raster.array.astype(np.float64)
    fc, fr = np.where(ok, fc, 0.0), np.where(ok, fr, 0.0)
    z = (a[r0, c0] * (1 - fc) * (1 - fr) + a[r0, c0 + 1] * fc * (1 - fr)
         + a[r0 + 1, c0] * (1 - fc) * fr + a[r0 + 1, c0 + 1] * fc * fr)
    return np.where(ok, z, np.nan), ok


def interpolate(tile: QMTile, qu: np.ndarray, qv: np.ndarray) -> np.ndarray:
    u, v, h = tile.u.astype(float), tile.v.astype(float), tile.height
    a, b, c = (tile.triangles[:, k] for k in range(3))
    det = (v[b] - v[c]) * (u[a] - u[c]) + (u[c] - u[b]) * (v[a] - v[c])
    qu, qv = qu[:, None], qv[:, None]
    la = ((v[b] - v[c]) * (qu - u[c]) + (u[c] - u[b]) * (qv - v[c])) / det
    lb = ((v[c] - v[a]) * (qu - u[c]) + (u[a] - u[c]) * (qv - v[c])) / det
    lc = 1 - la - lb
    inside = (la >= -1e-9) & (lb >= -1e-9) & (lc >= -1e-9)
    t = inside.argmax(axis=1)
    rows = np.arange(len(qu))
    z = la[rows, t] * h[a[t]] + lb[rows, t] * h[b[t]] + lc[rows, t] * h[c[t]]
    return np.where(inside.any(axis=1), z, np.nan)


# ---------------------------------------------------------------- tests

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("qm")
    raster = analytic_raster()
    report = write_quantized_mesh(FakeStore({"ground": raster}), out)
    return raster, out, report, json.loads((out / "layer.json").read_text())


def written_tiles(out: Path):
    for path in sorted(out.glob("*/*/*.terrain")):
        z, x = int(path.parts[-3]), int(path.parts[-2])
        yield z, x, int(path.stem), path


def test_layer_json_has_what_cesium_needs(built):
    raster, out, report, layer = built
    assert layer["format"] == "quantized-mesh-1.0"
    assert layer["tiles"] and "{z}" in layer["tiles"][0] and "{x}" in layer["tiles"][0] and "{y}" in layer["tiles"][0]
    assert layer.get("scheme", "tms") == "tms"
    assert layer.get("projection", "EPSG:4326") == "EPSG:4326"
    assert layer["name"] == "testville"
    assert "octvertexnormals" in layer["extensions"]
    available = layer["available"]
    assert len(available) == layer["maxzoom"] + 1 == report["max_zoom"] + 1
    assert {"startX": 0, "startY": 0, "endX": 1, "endY": 0} in available[0]
    # finest level about the raster resolution: tile width / 64 between res/2 and res
    tile_m = 180 / 2 ** layer["maxzoom"] * 110_574
    assert RES / 2 < tile_m / 64 <= RES * 1.01


def test_tiles_match_availability(built):
    _, out, _, layer = built
    written = {(z, x, y) for z, x, y, _ in written_tiles(out)}
    listed = {(z, x, y) for z, ranges in enumerate(layer["available"]) for r in ranges
              for x in range(r["startX"], r["endX"] + 1) for y in range(r["startY"], r["endY"] + 1)}
    assert written == listed
    # the raster's centre lies in the finest available range
    lon, lat = Transformer.from_crs(UTM49, 4326, always_xy=True).transform(X0 + COLS, Y0 + ROWS)
    z = layer["maxzoom"]
    d = 180 / 2 ** z
    assert (z, int((lon + 180) // d), int((lat + 90) // d)) in written


def test_decoded_vertices_match_raster(built):
    raster, out, _, layer = built
    z_max = layer["maxzoom"]
    checked = 0
    for z, x, y, path in written_tiles(out):
        tile = decode_terrain(path.read_bytes())
        assert tile.u.min() >= 0 and tile.u.max() <= 32767 and tile.v.min() >= 0 and tile.v.max() <= 32767
        assert tile.triangles.min() >= 0 and tile.triangles.max() < len(tile.u)
        w, s, e, n = tile_rect(z, x, y)
        lon, lat = w + tile.u / 32767 * (e - w), s + tile.v / 32767 * (n - s)
        expected, ok = bilinear(raster, lon, lat)
        quantum = (tile.header["maximumHeight"] - tile.header["minimumHeight"]) / 32767
        if ok.any():
            assert np.abs(tile.height[ok] - expected[ok]).max() <= quantum + 1e-3
            checked += ok.sum()
        if z == z_max and ok.all():
            # the TIN between its vertices, on a 65 x 65 lattice, within the stated error
            g = np.linspace(0, 32767, 65)
            gu, gv = np.meshgrid(g, g)
            tin = interpolate(tile, gu.ravel(), gv.ravel())
            ref, ok2 = bilinear(raster, w + gu.ravel() / 32767 * (e - w), s + gv.ravel() / 32767 * (n - s))
            assert np.isfinite(tin).all()
            assert np.abs(tin[ok2] - ref[ok2]).max() <= MAX_ERROR + quantum + 1e-3
    assert checked > 500


def test_structure_edges_winding_normals(built):
    raster, out, _, _ = built
    for z, x, y, path in written_tiles(out):
        tile = decode_terrain(path.read_bytes())
        for side, coord, value in (("west", tile.u, 0), ("east", tile.u, 32767),
                                   ("south", tile.v, 0), ("north", tile.v, 32767)):
            assert set(tile.edges[side]) == set(np.flatnonzero(coord == value)), (z, x, y, side)
        a, b, c = (tile.triangles[:, k] for k in range(3))
        area = (tile.u[b] - tile.u[a]) * (tile.v[c] - tile.v[a]) - (tile.v[b] - tile.v[a]) * (tile.u[c] - tile.u[a])
        assert (area > 0).all()                           # counter-clockwise seen from above
        normals = oct_decode(tile.extensions[1])
        assert len(normals) == len(tile.u)
        w, s, e, n = tile_rect(z, x, y)
        lon = np.radians(w + tile.u / 32767 * (e - w))
        lat = np.radians(s + tile.v / 32767 * (n - s))
        up = np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
        dot = np.einsum("ij,ij->i", normals, up)
        if np.all(tile.height == 0):
            assert (dot > 0.97).all()                        # flat tiles: near the ellipsoid normal (facets)
        elif bilinear(raster, np.degrees(lon), np.degrees(lat))[1].all():
            assert (dot > 0.8).all()                         # gentle slopes inside the data


def test_tiles_outside_the_data_are_flat_at_zero(built):
    _, out, _, _ = built
    western = decode_terrain((out / "0" / "0" / "0.terrain").read_bytes())
    assert np.allclose(western.height, 0.0)
    assert western.header["minimumHeight"] == western.header["maximumHeight"] == 0.0


def test_max_zoom_argument_and_errors(tmp_path):
    report = build_quantized_mesh(analytic_raster(), tmp_path, max_zoom=3)
    layer = json.loads((tmp_path / "layer.json").read_text())
    assert report["max_zoom"] == layer["maxzoom"] == 3 and len(layer["available"]) == 4
    with pytest.raises(TerrainError):
        write_quantized_mesh(FakeStore({}), tmp_path)
