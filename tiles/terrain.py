"""Ground raster -> 3D Tiles 1.1 terrain tileset of simplified TIN meshes (glb).

A quadtree over the raster's cells: the leaves hold full-resolution TINs
within `max_error_m`; each level up halves the sampling and doubles the
allowed error. Every tile's `geometricError` is its TIN's measured maximum
vertical error against the full-resolution raster (never less than its
children's). Content is glb with float32 positions relative to a per-tile
node translation in a local ENU frame (glTF Y-up: x=east, y=up, z=-north),
vertex normals, and a skirt primitive hiding cracks between neighbours.
The root `transform` is the frame's ENU->ECEF matrix.

Raster heights are used as ellipsoidal heights, like `tiles.geodesy.LocalFrame`.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tiles.geodesy import LocalFrame, matrix_to_tileset
from tiles.tin import (
    TerrainError,
    drop_nodata_triangles,
    fill_nodata,
    orient_ccw,
    sample_indices,
    tin_max_error,
    triangulate,
    vertex_normals,
)

if TYPE_CHECKING:
    from layers.base import RasterData
    from twin.store.base import TwinStore

__all__ = ["TerrainError", "write_terrain_tileset", "build_terrain_tileset", "TILE_CELLS"]

TILE_CELLS = 256          # raster cells across a tile at its own sampling
GROUND = "ground"
_TERRAIN_COLOR = [0.56, 0.60, 0.50, 1.0]


@dataclass
class _Tile:
    level: int
    row: int
    col: int
    uri: str | None
    box: list[float]          # 3D Tiles box in the tileset frame (ENU)
    error: float              # measured max vertical error of this tile's TIN
    children: list["_Tile"]
    triangles: int = 0
    vertices: int = 0
    bytes: int = 0


def write_terrain_tileset(store: "TwinStore", out_dir: Path, max_error_m: float = 0.5) -> dict:
    """Write `tileset.json` and `tiles/{level}/{row}_{col}.glb` for the twin's ground raster."""
    if GROUND not in store.raster_names():
        raise TerrainError(f"the twin has no '{GROUND}' raster")
    return build_terrain_tileset(store.read_raster(GROUND), Path(out_dir), max_error_m)


def build_terrain_tileset(raster: "RasterData", out_dir: Path, max_error_m: float = 0.5) -> dict:
    """Same as `write_terrain_tileset` for a raster in hand."""
    if not max_error_m > 0:
        raise TerrainError(f"max_error_m must be positive, got {max_error_m}")
    values, valid = fill_nodata(raster.array)
    n_rows, n_cols = values.shape
    if n_rows < 2 or n_cols < 2:
        raise TerrainError(f"the ground raster is too small to mesh: {values.shape}")
    levels = max(0, math.ceil(math.log2(max(n_rows - 1, n_cols - 1) / TILE_CELLS)))
    x0, y0, x1, y1 = raster.bounds
    frame = LocalFrame(raster.crs, (x0 + x1) / 2, (y0 + y1) / 2, 0.0)
    out_dir.mkdir(parents=True, exist_ok=True)

    ctx = _Context(raster, values, valid, frame, out_dir, levels, float(max_error_m))
    root = ctx.build(0, 0, 0)
    if root is None:
        raise TerrainError("the ground raster produced no terrain triangles")

    finite = values[valid]
    relief = float(finite.max() - finite.min())
    leaves = list(_leaves(root))
    tileset = {
        "asset": {"version": "1.1", "generator": "city-twin tiles.terrain"},
        "geometricError": max(root.error * 2.0, relief, 1.0),
        "root": _tile_json(root, transform=matrix_to_tileset(frame.matrix)),
        "extras": {"kind": "terrain", "max_error_m": float(max_error_m), "crs": raster.crs.to_string()},
    }
    (out_dir / "tileset.json").write_text(json.dumps(tileset, indent=1))
    tiles = list(_walk(root))
    return {
        "tileset": str(out_dir / "tileset.json"),
        "tiles": len(tiles),
        "levels": levels + 1,
        "triangles": sum(t.triangles for t in tiles),
        "leaf_triangles": sum(t.triangles for t in leaves),
        "vertices": sum(t.vertices for t in tiles),
        "bytes": sum(t.bytes for t in tiles) + (out_dir / "tileset.json").stat().st_size,
        "max_error_m": float(max_error_m),
        "achieved_error_m": max(t.error for t in leaves),
        "root_error_m": root.error,
    }


class _Context:
    def __init__(self, raster, values, valid, frame, out_dir, levels, max_error):
        self.raster, self.values, self.valid, self.frame = raster, values, valid, frame
        self.out_dir, self.levels, self.max_error = out_dir, levels, max_error

    def build(self, level: int, row: int, col: int) -> _Tile | None:
        stride = 2 ** (self.levels - level)
        span = TILE_CELLS * stride
        n_rows, n_cols = self.values.shape
        r0, c0 = row * span, col * span
        if r0 >= n_rows - 1 or c0 >= n_cols - 1:
            return None
        r1, c1 = min(r0 + span, n_rows - 1), min(c0 + span, n_cols - 1)
        if not self.valid[r0:r1 + 1, c0:c1 + 1].any():
            return None

        children: list[_Tile] = []
        if level < self.levels:
            for dr in (0, 1):
                for dc in (0, 1):
                    child = self.build(level + 1, 2 * row + dr, 2 * col + dc)
                    if child is not None:
                        children.append(child)

        rows, cols = sample_indices(r0, r1, stride), sample_indices(c0, c1, stride)
        tolerance = self.max_error * stride
        rc_s, triangles, _ = triangulate(self.values[np.ix_(rows, cols)], tolerance)
        rc = np.column_stack([rows[rc_s[:, 0]], cols[rc_s[:, 1]]])
        triangles = drop_nodata_triangles(rc, triangles, self.valid)
        z = self.values[rc[:, 0], rc[:, 1]]
        window = (slice(r0, r1 + 1), slice(c0, c1 + 1))
        error = tin_max_error(rc, z, triangles, self.values[window], self.valid[window], (r0, c0))
        error = max([error] + [c.error for c in children])

        t = self.raster.transform
        pc, pr = rc[:, 1] + 0.5, rc[:, 0] + 0.5
        xs, ys = t.a * pc + t.b * pr + t.c, t.d * pc + t.e * pr + t.f
        enu = self.frame.to_enu(xs, ys, z)
        triangles = orient_ccw(enu[:, :2], triangles)
        used = np.unique(triangles)
        remap = np.full(len(enu), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        enu, triangles = enu[used], remap[triangles]

        uri = f"tiles/{level}/{row}_{col}.glb"
        path = self.out_dir / uri
        path.parent.mkdir(parents=True, exist_ok=True)
        skirt = max(2.0 * error, 1.0)
        size = write_terrain_glb(path, enu, triangles, skirt_depth=skirt)
        box = _union_box(_enu_box(enu, skirt), [c.box for c in children])
        return _Tile(level, row, col, uri, box, error, children, len(triangles), len(enu), size)


def write_terrain_glb(path: Path, enu: np.ndarray, triangles: np.ndarray, skirt_depth: float) -> int:
    """Write one terrain tile; returns its size in bytes.

    `enu` (N, 3) float64 metres in the tileset frame; `triangles` counter-
    clockwise seen from above. Mesh primitive 0 is the surface, primitive 1
    the skirt hanging `skirt_depth` below the boundary edges.
    """
    normals = vertex_normals(enu, triangles)
    skirt_pos, skirt_nrm, skirt_tri = _skirt(enu, normals, triangles, skirt_depth)
    centre = (enu.min(axis=0) + enu.max(axis=0)) / 2
    prims = [(enu - centre, normals, triangles), (skirt_pos - centre, skirt_nrm, skirt_tri)]
    prims = [p for p in prims if len(p[2])]
    path.write_bytes(_glb(prims, translation=_to_gltf_axes(centre[None, :])[0]))
    return path.stat().st_size


def _skirt(enu, normals, triangles, depth):
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    key = np.sort(edges, axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    boundary = edges[counts[inverse.reshape(-1)] == 1]          # directed as in their triangle
    if len(boundary) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    top = enu[boundary.reshape(-1)]
    bottom = top - np.array([0.0, 0.0, depth])
    positions = np.concatenate([top, bottom])
    nrm = np.concatenate([normals[boundary.reshape(-1)]] * 2)
    n = len(boundary)
    a, b = np.arange(n) * 2, np.arange(n) * 2 + 1                   # top ends of each edge
    a2, b2 = a + 2 * n, b + 2 * n                                   # the lowered copies
    tri = np.concatenate([np.column_stack([a, a2, b]), np.column_stack([b, a2, b2])])
    return positions, nrm, tri


def _to_gltf_axes(enu: np.ndarray) -> np.ndarray:
    """ENU (z up) -> glTF (y up): x=east, y=up, z=-north."""
    return np.column_stack([enu[:, 0], enu[:, 2], -enu[:, 1]])


def _glb(prims, translation) -> bytes:
    """Minimal glTF 2.0 binary: one node, one mesh, one primitive per (pos, nrm, tri)."""
    blob = bytearray()
    views, accessors, primitives = [], [], []

    def add(data: np.ndarray, target: int, acc: dict) -> int:
        while len(blob) % 4:
            blob.append(0)
        raw = np.ascontiguousarray(data).tobytes()
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(raw), "target": target})
        blob.extend(raw)
        accessors.append({"bufferView": len(views) - 1, **acc})
        return len(accessors) - 1

    for k, (pos, nrm, tri) in enumerate(prims):
        p = _to_gltf_axes(pos).astype(np.float32)
        nr = _to_gltf_axes(nrm).astype(np.float32)
        nr /= np.linalg.norm(nr, axis=1, keepdims=True)
        itype, ctype = (np.uint16, 5123) if len(p) < 65535 else (np.uint32, 5125)
        pa = add(p, 34962, {"componentType": 5126, "count": len(p), "type": "VEC3",
                            "min": p.min(axis=0).tolist(), "max": p.max(axis=0).tolist()})
        na = add(nr, 34962, {"componentType": 5126, "count": len(nr), "type": "VEC3"})
        ia = add(tri.astype(itype).reshape(-1), 34963,
                 {"componentType": ctype, "count": int(tri.size), "type": "SCALAR"})
        primitives.append({"attributes": {"POSITION": pa, "NORMAL": na}, "indices": ia,
                           "material": min(k, 1), "mode": 4})
    while len(blob) % 4:
        blob.append(0)
    material = {"pbrMetallicRoughness": {"baseColorFactor": _TERRAIN_COLOR, "metallicFactor": 0.0,
                                         "roughnessFactor": 1.0}}
    gltf = {
        "asset": {"version": "2.0", "generator": "city-twin tiles.terrain"},
        "scene": 0, "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "terrain", "translation": [float(v) for v in translation]}],
        "meshes": [{"primitives": primitives}],
        "materials": [{"name": "ground", **material}, {"name": "skirt", "doubleSided": True, **material}],
        "accessors": accessors, "bufferViews": views, "buffers": [{"byteLength": len(blob)}],
    }
    js = json.dumps(gltf, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 4)
    total = 12 + 8 + len(js) + 8 + len(blob)
    return (struct.pack("<III", 0x46546C67, 2, total) + struct.pack("<II", len(js), 0x4E4F534A) + js
            + struct.pack("<II", len(blob), 0x004E4942) + bytes(blob))


def _enu_box(enu: np.ndarray, skirt: float) -> list[float]:
    lo, hi = enu.min(axis=0), enu.max(axis=0)
    lo = lo - np.array([0.0, 0.0, skirt])
    return _box(lo, hi)


def _box(lo: np.ndarray, hi: np.ndarray) -> list[float]:
    c = (lo + hi) / 2
    h = np.maximum((hi - lo) / 2, 0.05)
    return [float(v) for v in (*c, h[0], 0, 0, 0, h[1], 0, 0, 0, h[2])]


def _union_box(box: list[float], others: list[list[float]]) -> list[float]:
    def lohi(b):
        c, h = np.array(b[:3]), np.array([b[3], b[7], b[11]])
        return c - h, c + h
    lo, hi = lohi(box)
    for o in others:
        olo, ohi = lohi(o)
        lo, hi = np.minimum(lo, olo), np.maximum(hi, ohi)
    return _box(lo, hi)


def _tile_json(tile: _Tile, transform: list[float] | None = None) -> dict:
    out: dict = {}
    if transform is not None:
        out["transform"] = transform
    out.update({"boundingVolume": {"box": tile.box}, "geometricError": tile.error, "refine": "REPLACE"})
    if tile.uri:
        out["content"] = {"uri": tile.uri}
    if tile.children:
        out["children"] = [_tile_json(c) for c in tile.children]
    return out


def _walk(tile: _Tile):
    yield tile
    for c in tile.children:
        yield from _walk(c)


def _leaves(tile: _Tile):
    if not tile.children:
        yield tile
    for c in tile.children:
        yield from _leaves(c)
