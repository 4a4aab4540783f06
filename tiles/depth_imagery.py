"""Flood depth rasters as pictures a browser can drape, and depth over time at a point.

A flood run writes depth GeoTIFFs in the project CRS (the maximum depth, and one
frame per interval, `frames/depth_NNNNNmin.tif`). `render_depth_png` warps one to
WGS84 (nearest neighbour: every pixel keeps a modelled value) and colours it by
depth class into a transparent PNG with its lon/lat `Rectangle`, which is what
Cesium's `SingleTileImageryProvider` drapes over the globe. Water shallower than
`DRY_DEPTH_M`, and no-data cells (dry frames, buildings), are transparent.

`depth_series(frames_dir, lon, lat)` samples every frame at one point: the depth
hydrograph there. Pure: files in, arrays and bytes out; `cached_depth_png`
keeps a rendering next to its source until the source changes.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tiles.files import read_json, write_atomic
from tiles.imagery import Rectangle, encode_png
from twin.errors import TwinError

WGS84 = "EPSG:4326"
DRY_DEPTH_M = 0.05
FRAME_NAME = re.compile(r"^depth_(?P<minutes>\d+)min\.tif$")


class DepthImageryError(TwinError):
    """A depth raster could not be read or rendered."""


class PointOutside(DepthImageryError):
    """The point asked for lies outside the depth rasters."""


@dataclass(frozen=True)
class DepthClass:
    """Depths in [lower, upper) metres drawn in `rgba` (alpha 0-255)."""

    lower: float
    upper: float
    rgba: tuple[int, int, int, int]

    @property
    def css(self) -> str:
        return "#{:02x}{:02x}{:02x}".format(*self.rgba[:3])

    def legend(self) -> dict:
        return {"min_m": self.lower, "max_m": None if math.isinf(self.upper) else self.upper,
                "color": self.css, "alpha": round(self.rgba[3] / 255, 3)}


# Sequential blues, deeper is darker and more opaque; below DRY_DEPTH_M nothing is drawn.
DEPTH_CLASSES: tuple[DepthClass, ...] = (
    DepthClass(DRY_DEPTH_M, 0.15, (189, 222, 247, 150)),
    DepthClass(0.15, 0.30, (120, 184, 232, 180)),
    DepthClass(0.30, 0.50, (55, 140, 210, 200)),
    DepthClass(0.50, 1.00, (23, 98, 180, 215)),
    DepthClass(1.00, 2.00, (10, 62, 140, 230)),
    DepthClass(2.00, math.inf, (6, 34, 92, 240)),
)


def colourise(depth: np.ndarray, classes: tuple[DepthClass, ...] = DEPTH_CLASSES) -> np.ndarray:
    """(H, W, 4) uint8 RGBA of a depth array (m): each class's colour, transparent elsewhere (NaN, dry)."""
    depth = np.asarray(depth, dtype=np.float64)
    out = np.zeros((*depth.shape, 4), np.uint8)
    finite = np.isfinite(depth)
    for c in classes:
        out[finite & (depth >= c.lower) & (depth < c.upper)] = c.rgba
    return out


@dataclass(frozen=True)
class DepthImage:
    """A rendered depth raster: PNG bytes over `rectangle` (WGS84 degrees)."""

    png: bytes
    rectangle: Rectangle
    width: int
    height: int
    max_depth_m: float | None    # deepest finite value of the source (None: all dry)
    wet_fraction: float          # share of the picture's pixels drawn (depth >= DRY_DEPTH_M)

    def meta(self) -> dict:
        return {"rectangle": asdict(self.rectangle), "width": self.width, "height": self.height,
                "max_depth_m": self.max_depth_m, "wet_fraction": self.wet_fraction,
                "dry_depth_m": DRY_DEPTH_M, "legend": depth_legend()}


def depth_legend() -> list[dict]:
    return [c.legend() for c in DEPTH_CLASSES]


def warp_to_wgs84(path: str | Path, *, min_pixels: int = 512, max_pixels: int = 2048
                  ) -> tuple[np.ndarray, Rectangle]:
    """The depth raster at `path` on a lon/lat grid (nearest neighbour, NaN no data) and that grid's
    rectangle. Pixels are at most the source cell size, finer (by a whole factor) until the longer
    side reaches `min_pixels`, never longer than `max_pixels`."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioIOError
    from rasterio.warp import calculate_default_transform, reproject, transform_bounds

    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise DepthImageryError("the depth raster has no CRS", source=Path(path).name)
            data = src.read(1, masked=True).astype(np.float32).filled(np.nan)
            transform, _, _ = calculate_default_transform(src.crs, WGS84, src.width, src.height, *src.bounds)
            west, south, east, north = transform_bounds(src.crs, WGS84, *src.bounds, densify_pts=21)
            src_crs, src_transform = src.crs, src.transform
    except RasterioIOError as exc:
        raise DepthImageryError("the depth raster cannot be read", source=Path(path).name,
                                detail=str(exc)) from None
    # pixels about the size of the source cells (the default resolution), over the whole footprint
    width = max(1, math.ceil((east - west) / transform.a - 1e-6))
    height = max(1, math.ceil((north - south) / -transform.e - 1e-6))
    longest = max(width, height)
    if longest > max_pixels:
        scale: float = max_pixels / longest
    else:
        scale = max(1, min(math.ceil(min_pixels / longest), max_pixels // longest))
    rect = Rectangle(west=west, south=south, east=east, north=north)
    width, height = max(1, round(width * scale)), max(1, round(height * scale))
    out = np.full((height, width), np.nan, np.float32)
    reproject(data, out, src_transform=src_transform, src_crs=src_crs, src_nodata=np.nan,
              dst_transform=rect.transform(width, height), dst_crs=WGS84, dst_nodata=np.nan,
              resampling=Resampling.nearest)
    return out, rect


def render_depth_png(path: str | Path, **kwargs) -> DepthImage:
    """A transparent PNG of the depth raster at `path`, warped to WGS84 and coloured by `DEPTH_CLASSES`."""
    depth, rect = warp_to_wgs84(path, **kwargs)
    finite = depth[np.isfinite(depth)]
    rgba = colourise(depth)
    h, w = depth.shape
    return DepthImage(png=encode_png(rgba), rectangle=rect, width=w, height=h,
                      max_depth_m=float(finite.max()) if finite.size else None,
                      wet_fraction=float((rgba[..., 3] > 0).mean()))


def cached_depth_png(src: str | Path, png: str | Path, **kwargs) -> tuple[Path, dict]:
    """`png` (and its metadata, `png` with suffix .json) rendered from `src`, again when `src` changed."""
    src, png = Path(src), Path(png)
    meta_path = png.with_suffix(".json")
    try:
        stamp = src.stat().st_mtime_ns
    except OSError as exc:
        raise DepthImageryError("the depth raster is missing", source=src.name, detail=str(exc)) from None
    meta = read_json(meta_path)
    if png.is_file() and meta is not None and meta.get("source_mtime_ns") == stamp:
        return png, meta
    img = render_depth_png(src, **kwargs)
    meta = {**img.meta(), "source_mtime_ns": stamp}
    png.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(png, img.png)
    write_atomic(meta_path, json.dumps(meta, indent=1).encode("utf-8"))
    return png, meta


def frame_minutes(path: str | Path) -> float | None:
    """Minutes from the start of a frame file named depth_NNNNNmin.tif; None for other names."""
    m = FRAME_NAME.match(Path(path).name)
    return float(m["minutes"]) if m else None


def list_frames(frames_dir: str | Path) -> list[tuple[float, Path]]:
    """(minutes, path) of the depth frames in a folder, in time order."""
    folder = Path(frames_dir)
    if not folder.is_dir():
        return []
    frames = [(frame_minutes(p), p) for p in folder.iterdir() if p.is_file()]
    return sorted((m, p) for m, p in frames if m is not None)


def depth_series(frames_dir: str | Path, lon: float, lat: float) -> list[tuple[float, float]]:
    """(minutes, depth in m) at (lon, lat) for every frame in `frames_dir`, in time order. A frame's
    no data (dry, or a building) reads as 0. PointOutside when the point is off the frames' grid."""
    import rasterio
    from rasterio.warp import transform as transform_points
    from rasterio.windows import Window

    frames = list_frames(frames_dir)
    if not frames:
        raise DepthImageryError("the run wrote no depth frames", source=Path(frames_dir).name)
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise PointOutside(f"({lon}, {lat}) is not a longitude/latitude", field="lon")
    series = []
    cell = None
    for minutes, path in frames:
        with rasterio.open(path) as src:
            if cell is None:
                xs, ys = transform_points(WGS84, src.crs, [lon], [lat])
                row, col = src.index(xs[0], ys[0])
                if not (0 <= row < src.height and 0 <= col < src.width):
                    raise PointOutside(f"({lon:.6f}, {lat:.6f}) is outside the flood model's grid", field="lon")
                cell = (row, col)
            value = src.read(1, window=Window(cell[1], cell[0], 1, 1), masked=True)[0, 0]
        depth = 0.0 if np.ma.is_masked(value) or not np.isfinite(value) else float(value)
        series.append((minutes, depth))
    return series


__all__ = ["DEPTH_CLASSES", "DRY_DEPTH_M", "DepthClass", "DepthImage", "DepthImageryError", "PointOutside",
           "cached_depth_png", "colourise", "depth_legend", "depth_series", "frame_minutes", "list_frames",
           "render_depth_png", "warp_to_wgs84"]
