"""Ground raster -> Cesium quantized-mesh-1.0 terrain (`layer.json` + `{z}/{x}/{y}.terrain`).

Geographic tiling scheme (EPSG:4326, two root tiles), TMS row order, as
`Cesium.CesiumTerrainProvider` reads it. Every tile samples the ground raster
(bilinear, at pixel centres) on a `GRID` x `GRID` lon/lat lattice; cells
outside the raster's valid data get height 0. pydelatin simplifies the lattice
within the level's error, counting the sag of straight triangles below the
curved ellipsoid, so coarse tiles stay on the globe. Tiles carry the
`octvertexnormals` extension. Files are written uncompressed (the server
gzips). Heights are the raster's, treated as ellipsoidal (see tiles.geodesy).

quantized-mesh-encoder's building blocks (header, zig-zag deltas, high-water
mark indices, edge lists, normals) do the encoding; the u/v/height
quantisation is done here in float64 with rounding, because `encode()` casts
longitudes to float32 (up to 0.8 m off at 113 E) and truncates.
"""

from __future__ import annotations

import importlib
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pyproj import CRS, Transformer
from scipy import ndimage

from tiles.tin import TerrainError, fill_nodata, orient_ccw, triangulate

if TYPE_CHECKING:
    from layers.base import RasterData
    from twin.store.base import TwinStore

__all__ = ["write_quantized_mesh", "build_quantized_mesh", "tile_bounds", "default_max_zoom",
           "level_geometric_error", "GRID", "TerrainError"]

GRID = 65                                   # samples across a tile, as Cesium assumes for its errors
QMAX = 32767
EARTH_RADIUS = 6378137.0
# Cesium: ellipsoid.maximumRadius * 2 pi * 0.25 / (65 * 2 level-zero tiles)
LEVEL_ZERO_ERROR = EARTH_RADIUS * 2 * math.pi * 0.25 / (65 * 2)
_METRES_PER_DEGREE = 111_320.0


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) degrees of TMS tile z/x/y in the geographic scheme."""
    d = 180.0 / 2 ** z
    return -180.0 + x * d, -90.0 + y * d, -180.0 + (x + 1) * d, -90.0 + (y + 1) * d


def level_geometric_error(z: int) -> float:
    """The geometric error Cesium assumes for a terrain tile at level `z`."""
    return LEVEL_ZERO_ERROR / 2 ** z


def default_max_zoom(resolution_m: float) -> int:
    """Smallest level whose lattice spacing (north-south) is at most the raster resolution."""
    return max(0, math.ceil(math.log2(180.0 * _METRES_PER_DEGREE / ((GRID - 1) * resolution_m))))


def write_quantized_mesh(store: "TwinStore", out_dir: Path, max_zoom: int | None = None,
                         *, max_error_m: float = 0.5) -> dict:
    """Write the quantized-mesh terrain of the twin's ground raster under `out_dir`."""
    if "ground" not in store.raster_names():
        raise TerrainError("the twin has no 'ground' raster")
    name = store.manifest().city
    return build_quantized_mesh(store.read_raster("ground"), Path(out_dir), max_zoom,
                                max_error_m=max_error_m, name=name)


def build_quantized_mesh(raster: "RasterData", out_dir: Path, max_zoom: int | None = None, *,
                         max_error_m: float = 0.5, name: str = "ground") -> dict:
    """Same as `write_quantized_mesh` for a raster in hand."""
    if not max_error_m > 0:
        raise TerrainError(f"max_error_m must be positive, got {max_error_m}")
    sampler = _RasterSampler(raster)
    if max_zoom is None:
        max_zoom = default_max_zoom(min(raster.resolution))
    if max_zoom < 0:
        raise TerrainError(f"max_zoom must be >= 0, got {max_zoom}")
    out_dir.mkdir(parents=True, exist_ok=True)
    west, south, east, north = sampler.lonlat_bounds

    available: list[list[dict]] = []
    tiles = n_bytes = n_tri = 0
    finest_error = 0.0
    for z in range(max_zoom + 1):
        if z == 0:
            xs, ys = (0, 1), (0, 0)
        else:
            d = 180.0 / 2 ** z
            xs = (int((west + 180) // d), min(int((east + 180) // d), 2 ** (z + 1) - 1))
            ys = (int((south + 90) // d), min(int((north + 90) // d), 2 ** z - 1))
        available.append([{"startX": xs[0], "startY": ys[0], "endX": xs[1], "endY": ys[1]}])
        tolerance = max_error_m if z == max_zoom else max(max_error_m, level_geometric_error(z))
        for x in range(xs[0], xs[1] + 1):
            for y in range(ys[0], ys[1] + 1):
                data, err, ntri = encode_tile(sampler, z, x, y, tolerance)
                path = out_dir / str(z) / str(x) / f"{y}.terrain"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                tiles, n_bytes, n_tri = tiles + 1, n_bytes + len(data), n_tri + ntri
                if z == max_zoom:
                    finest_error = max(finest_error, err)

    layer = {
        "tilejson": "2.1.0",
        "name": name,
        "description": "Bare-earth terrain of the city twin (ground raster)",
        "version": "1.0.0",
        "format": "quantized-mesh-1.0",
        "scheme": "tms",
        "projection": "EPSG:4326",
        "tiles": ["{z}/{x}/{y}.terrain?v={version}"],
        "bounds": [-180.0, -90.0, 180.0, 90.0],
        "minzoom": 0,
        "maxzoom": max_zoom,
        "extensions": ["octvertexnormals"],
        "available": available,
        "attribution": "",
    }
    (out_dir / "layer.json").write_text(json.dumps(layer, indent=1))
    return {
        "layer": str(out_dir / "layer.json"),
        "tiles": tiles,
        "triangles": n_tri,
        "bytes": n_bytes + (out_dir / "layer.json").stat().st_size,
        "max_zoom": max_zoom,
        "data_bounds_wgs84": [west, south, east, north],
        "max_error_m": float(max_error_m),
        "achieved_error_m": finest_error,
        "extensions": ["octvertexnormals"],
    }


class _RasterSampler:
    """Bilinear heights of the ground raster at lon/lat; 0 outside its valid data."""

    def __init__(self, raster: "RasterData"):
        self.values, self.valid = fill_nodata(raster.array)
        self.inverse = ~raster.transform
        self.to_project = Transformer.from_crs(CRS.from_epsg(4326), raster.crs, always_xy=True)
        to_lonlat = Transformer.from_crs(raster.crs, CRS.from_epsg(4326), always_xy=True)
        x0, y0, x1, y1 = raster.bounds
        t = np.linspace(0.0, 1.0, 65)
        bx = np.concatenate([x0 + (x1 - x0) * t, np.full_like(t, x1), x1 - (x1 - x0) * t, np.full_like(t, x0)])
        by = np.concatenate([np.full_like(t, y0), y0 + (y1 - y0) * t, np.full_like(t, y1), y1 - (y1 - y0) * t])
        lon, lat = to_lonlat.transform(bx, by)
        self.lonlat_bounds = (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))

    def heights(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", over="ignore"):
            x, y = self.to_project.transform(lon, lat)
            x, y, i = np.asarray(x), np.asarray(y), self.inverse
            col = i.a * x + i.b * y + i.c - 0.5
            row = i.d * x + i.e * y + i.f - 0.5
        n_rows, n_cols = self.values.shape
        inside = np.isfinite(col) & np.isfinite(row)
        inside &= (col >= -0.5) & (col <= n_cols - 0.5) & (row >= -0.5) & (row <= n_rows - 0.5)
        out = np.zeros(col.shape, dtype=np.float64)
        if inside.any():
            rc = np.vstack([row[inside], col[inside]])
            near = np.clip(np.rint(rc).astype(np.int64), 0, [[n_rows - 1], [n_cols - 1]])
            ok = self.valid[near[0], near[1]]
            h = ndimage.map_coordinates(self.values, rc, order=1, mode="nearest")
            out[inside] = np.where(ok, h, 0.0)
        return out


def encode_tile(sampler: _RasterSampler, z: int, x: int, y: int, max_error: float) -> tuple[bytes, float, int]:
    """Bytes of tile z/x/y, its TIN error against the tile's lattice, and its triangle count."""
    west, south, east, north = tile_bounds(z, x, y)
    # sample where the vertices will sit after quantisation to 0..32767
    steps = np.rint(np.arange(GRID) * QMAX / (GRID - 1)).astype(np.int64)
    lon = west + steps / QMAX * (east - west)
    lat = south + steps[::-1] / QMAX * (north - south)    # row 0 is the north edge
    glon, glat = np.meshgrid(lon, lat)
    heights = sampler.heights(glon.ravel(), glat.ravel()).reshape(GRID, GRID)
    # Straight triangles sag below the curved surface: triangulate heights minus the
    # drop of the ellipsoid below the tangent plane at the tile centre.
    lon_c, lat_c = (west + east) / 2, (south + north) / 2
    dx = np.radians(glon - lon_c) * EARTH_RADIUS * math.cos(math.radians(lat_c))
    dy = np.radians(glat - lat_c) * EARTH_RADIUS
    curved = heights - (dx ** 2 + dy ** 2) / (2 * EARTH_RADIUS)
    rc, triangles, error = triangulate(curved, max_error)

    u, v = steps[rc[:, 1]], steps[GRID - 1 - rc[:, 0]]
    h = heights[rc[:, 0], rc[:, 1]]
    triangles = orient_ccw(np.column_stack([u, v]).astype(np.float64), triangles)
    order = _first_use_order(triangles)
    u, v, h = u[order], v[order], h[order]
    remap = np.full(len(rc), -1, dtype=np.int64)
    remap[order] = np.arange(len(order))
    triangles = remap[triangles]
    positions = np.column_stack([west + u / QMAX * (east - west), south + v / QMAX * (north - south), h])
    return _encode(positions, np.column_stack([u, v]), triangles), error, len(triangles)


def _first_use_order(triangles: np.ndarray) -> np.ndarray:
    """Used vertex ids sorted by first appearance in the index list (needed by high-water marks)."""
    flat = triangles.ravel()
    used, first = np.unique(flat, return_index=True)
    return used[np.argsort(first)]


def _encode(positions: np.ndarray, uv: np.ndarray, triangles: np.ndarray) -> bytes:
    from quantized_mesh_encoder import VertexNormalsExtension

    qme = importlib.import_module("quantized_mesh_encoder.encode")  # the module, not the function

    h = positions[:, 2]
    h_min, h_max = float(h.min()), float(h.max())
    span = h_max - h_min
    hq = np.rint((h - h_min) / span * QMAX) if span > 0 else np.zeros(len(h))
    quantised = np.column_stack([uv, hq]).astype(np.int16)

    f = io.BytesIO()
    with np.errstate(divide="ignore", invalid="ignore"):
        header = qme.compute_header(positions.astype(np.float64), "naive")
    occlusion = [header[f"horizonOcclusionPoint{a}"] for a in "XYZ"]
    if not np.all(np.isfinite(occlusion)):
        # No horizon point exists for a tile spanning a hemisphere (level 0). NaN makes
        # Cesium's occlusion test false, so the tile is never horizon-culled; a finite
        # stand-in such as the earth's centre would always be culled, hiding the globe.
        for a in "XYZ":
            header[f"horizonOcclusionPoint{a}"] = float("nan")
    header["minimumHeight"], header["maximumHeight"] = h_min, h_max
    qme.encode_header(f, header)
    n = len(positions)
    qme.write_vertices(f, quantised, n)
    qme.write_indices(f, triangles.astype(np.uint32), n)
    qme.write_edge_indices(f, quantised, n)
    f.write(VertexNormalsExtension(indices=triangles.astype(np.uint32).ravel(),
                                   positions=positions.astype(np.float64)).encode())
    return f.getvalue()
