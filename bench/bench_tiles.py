"""Tiling throughput of LOD1 buildings, with py3dtiles' own writer on plain boxes as an anchor.

    .venv/bin/python bench/bench_tiles.py                 # 100,000 and 1,000,000 buildings
    .venv/bin/python bench/bench_tiles.py --sizes 20000   # quick run

Footprints are generated with numpy (rotated rectangles, a few with holes
would need GEOS; rectangles are the common case of real cities). Our figure
is the whole `build_tiles` call: extrusion, metadata, tree, glb encoding,
hashing and writing. The anchor builds the same number of flat-shaded boxes
(24 vertices, 12 triangles, normals, batch ids) in tiles of 2,000 with
`py3dtiles.tileset.content.B3dm.from_numpy_arrays` and writes them, without
batch tables, tree or metadata. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from tiles.build import build_tiles
from twin.manifest import Manifest
from twin.store.base import TwinStore

X0, Y0 = 430_000.0, 2_540_000.0
CRS_4547 = CRS.from_epsg(4547)
BOXES_PER_TILE = 2000


class BenchStore(TwinStore):
    """Only a buildings layer, held in memory."""

    def __init__(self, buildings: gpd.GeoDataFrame):
        self.buildings = buildings

    def manifest(self):
        b = tuple(self.buildings.total_bounds)
        return Manifest(tool_version="bench", city="synthetic", crs="EPSG:4547", crs_wkt=CRS_4547.to_wkt(),
                        vertical_datum="EGM2008", extent=b, extent_wgs84=b, built_at="2026-01-01T00:00:00Z",
                        build_seconds=0.0, config_sha256="0" * 64)

    def layer_names(self):
        return ["buildings"]

    def read_layer(self, name, *, bbox=None, columns=None):
        return self.buildings

    def read_table(self, name):
        return pd.DataFrame()

    def raster_names(self):
        return []

    def read_raster(self, name):
        raise KeyError(name)

    def raster_uri(self, name):
        raise KeyError(name)

    def mesh_names(self):
        return []

    def read_mesh(self, name):
        raise KeyError(name)

    def asset_path(self, name):
        raise KeyError(name)


def synthetic_buildings(n: int, seed: int = 0) -> gpd.GeoDataFrame:
    """n rotated rectangles at city density (about 2,500 per km^2) with the canonical columns."""
    rng = np.random.default_rng(seed)
    side = np.sqrt(n / 2500.0) * 1000.0
    centre = np.column_stack([X0 + rng.uniform(0, side, n), Y0 + rng.uniform(0, side, n)])
    half = np.column_stack([rng.uniform(4, 20, n), rng.uniform(4, 15, n)])
    angle = rng.uniform(0, np.pi / 2, n)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], float)
    local = corners[None] * half[:, None, :]
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    ring = np.stack([local[..., 0] * c - local[..., 1] * s, local[..., 0] * s + local[..., 1] * c], axis=-1)
    geoms = shapely.polygons(ring + centre[:, None, :])
    height = rng.gamma(2.0, 10.0, n) + 3.0
    ground = rng.uniform(0, 20, n)
    uses = np.array(["residential", "commercial", "office", "industrial", "school"])
    return gpd.GeoDataFrame({
        "id": np.char.add("b", np.arange(n).astype(str)).astype(object),
        "source": "synthetic", "source_id": np.arange(n).astype(str).astype(object),
        "name": None, "use": uses[rng.integers(0, len(uses), n)], "use_raw": "yes",
        "height": height, "height_rule": "explicit", "levels": np.round(height / 3.2),
        "ground": ground, "roof": ground + height, "underground": False,
        "area": shapely.area(geoms), "population": np.nan, "capacity": np.nan, "attrs": "{}",
    }, geometry=geoms, crs=CRS_4547)


def bench_ours(frame: gpd.GeoDataFrame, out: Path) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    report = build_tiles(BenchStore(frame), out)
    seconds = time.perf_counter() - t0
    layer = report.layers["buildings"]
    return seconds, layer.bytes, layer.tiles


def bench_py3dtiles_boxes(n: int, out: Path) -> tuple[float, int]:
    from py3dtiles.tileset.content import B3dm

    rng = np.random.default_rng(1)
    unit = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], float)
    faces = [((0, 3, 2, 1), (0, 0, -1)), ((4, 5, 6, 7), (0, 0, 1)), ((0, 1, 5, 4), (0, -1, 0)),
             ((1, 2, 6, 5), (1, 0, 0)), ((2, 3, 7, 6), (0, 1, 0)), ((3, 0, 4, 7), (-1, 0, 0))]
    box_vertices = unit[[i for quad, _ in faces for i in quad]]                      # 24
    box_normals = np.repeat(np.array([nrm for _, nrm in faces], np.float32), 4, axis=0)
    box_tris = np.array([[4 * f, 4 * f + 1, 4 * f + 2, 4 * f, 4 * f + 2, 4 * f + 3] for f in range(6)]).reshape(-1, 3)
    t0 = time.perf_counter()
    total_bytes = 0
    for tile, start in enumerate(range(0, n, BOXES_PER_TILE)):
        k = min(BOXES_PER_TILE, n - start)
        size = np.column_stack([rng.uniform(8, 40, k), rng.uniform(8, 30, k), rng.uniform(3, 60, k)])
        origin = np.column_stack([rng.uniform(0, 1000, k), rng.uniform(0, 1000, k), np.zeros(k)])
        points = (box_vertices[None] * size[:, None] + origin[:, None]).reshape(-1, 3).astype(np.float32)
        triangles = (box_tris[None] + 24 * np.arange(k)[:, None, None]).reshape(-1, 3).astype(np.uint32)
        b3dm = B3dm.from_numpy_arrays(points, triangles, normal=np.tile(box_normals, (k, 1)),
                                      batchids=np.repeat(np.arange(k, dtype=np.uint32), 24))
        data = b3dm.to_array().tobytes()
        (out / f"{tile}.b3dm").write_bytes(data)
        total_bytes += len(data)
    return time.perf_counter() - t0, total_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        frame = synthetic_buildings(n)
        with tempfile.TemporaryDirectory() as tmp:
            ours_s, ours_bytes, tiles = bench_ours(frame, Path(tmp) / "ours")
            (Path(tmp) / "anchor").mkdir()
            anchor_s, anchor_bytes = bench_py3dtiles_boxes(n, Path(tmp) / "anchor")
            shutil.rmtree(tmp, ignore_errors=True)
        rows.append((n, "city-twin LOD1 + metadata (glb 1.1)", ours_s, ours_bytes, tiles))
        rows.append((n, "py3dtiles B3dm.from_numpy_arrays, plain boxes", anchor_s, anchor_bytes,
                     -(-n // BOXES_PER_TILE)))
    print("| buildings | writer | seconds | buildings/s | bytes/building | tiles |")
    print("|---:|---|---:|---:|---:|---:|")
    for n, name, seconds, size, tiles in rows:
        print(f"| {n:,} | {name} | {seconds:.1f} | {n / seconds:,.0f} | {size / n:.0f} | {tiles:,} |")


if __name__ == "__main__":
    main()
