"""The twin's own base imagery: one PNG over a lon/lat rectangle, for offline viewers.

A hillshade of the ground raster, tinted by elevation, with water, roads and
building footprints drawn over it. The picture covers `Rectangle` (WGS84
degrees) in a plate-carrée grid, which is what Cesium's
`SingleTileImageryProvider` drapes over the globe. Pure: a store in, bytes
out; `write_base_imagery` caches the result next to the tiles.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import rasterize
from rasterio.io import MemoryFile
from rasterio.transform import Affine
from rasterio.warp import reproject, transform_bounds

from tiles.files import read_json, write_atomic
from twin.errors import TwinError

if TYPE_CHECKING:
    import geopandas as gpd

    from twin.store.base import TwinStore

WGS84 = "EPSG:4326"
METRES_PER_DEGREE_LAT = 110_574.0       # mean length of a degree of latitude near 23 N (WGS84)
METRES_PER_DEGREE_LON_EQUATOR = 111_320.0

# Colours (R, G, B).
LAND_LOW = np.array([222, 226, 214], np.float32)
LAND_HIGH = np.array([196, 186, 160], np.float32)
BACKGROUND = (233, 236, 229)
WATER = (156, 192, 226)
BUILDING = (205, 198, 190)
BUILDING_EDGE = (160, 152, 144)
ROAD_CASING = (170, 170, 170)
ROAD_FILL = (255, 255, 255)
MAJOR_ROAD_FILL = (252, 226, 160)

# Road half-width in metres by OSM highway class (drawn as buffers in the project CRS).
ROAD_HALF_WIDTH = {"motorway": 12.0, "trunk": 11.0, "primary": 10.0, "secondary": 8.0, "tertiary": 6.5,
                   "motorway_link": 5.0, "trunk_link": 5.0, "primary_link": 5.0, "residential": 4.5,
                   "unclassified": 4.5, "living_street": 3.5, "service": 3.0, "pedestrian": 3.0,
                   "footway": 1.5, "path": 1.2, "cycleway": 1.5, "steps": 1.2}
MAJOR_ROADS = {"motorway", "trunk", "primary", "secondary", "motorway_link", "trunk_link", "primary_link"}


class ImageryError(TwinError):
    """The base imagery could not be rendered."""


@dataclass(frozen=True)
class Rectangle:
    """A lon/lat rectangle in degrees (Cesium.Rectangle.fromDegrees order)."""

    west: float
    south: float
    east: float
    north: float

    def transform(self, width: int, height: int) -> Affine:
        return Affine((self.east - self.west) / width, 0.0, self.west, 0.0, -(self.north - self.south) / height, self.north)


@dataclass(frozen=True)
class BaseImagery:
    png: bytes
    rectangle: Rectangle
    width: int
    height: int
    attributions: tuple[str, ...]


def hillshade(z: np.ndarray, dx: float, dy: float, azimuth_deg: float = 315.0,
              altitude_deg: float = 45.0) -> np.ndarray:
    """Lambertian hillshade in [0, 1] of a north-up grid (row 0 to the north).

    The standard formula (Burrough & McDonnell; ESRI): with zenith Z = 90 -
    altitude and the light's azimuth A turned to maths convention,
    shade = cos Z cos S + sin Z sin S cos(A - aspect), slope S and aspect from
    the gradient (dz/dx to the east, dz/dy to the south, aspect = atan2(dz/dy,
    -dz/dx)). Slopes use central differences
    (one-sided at the edges); NaN heights give NaN.
    """
    z = np.asarray(z, np.float64)
    if z.ndim != 2 or min(z.shape) < 2:
        raise ImageryError("hillshade needs a grid of at least 2 x 2 cells")
    dz_drow, dz_dcol = np.gradient(z, dy, dx)
    dzdx = dz_dcol                     # towards the east
    dzdy = dz_drow                     # towards the south (rows run south), as in ESRI's kernel
    slope = np.arctan(np.hypot(dzdx, dzdy))
    aspect = np.arctan2(dzdy, -dzdx)
    zenith = math.radians(90.0 - altitude_deg)
    azimuth = math.radians((360.0 - azimuth_deg + 90.0) % 360.0)
    shade = math.cos(zenith) * np.cos(slope) + math.sin(zenith) * np.sin(slope) * np.cos(azimuth - aspect)
    return np.clip(shade, 0.0, 1.0)


def imagery_rectangle(store: "TwinStore") -> Rectangle:
    """The ground raster's bounds in lon/lat, else the twin's extent."""
    m = store.manifest()
    if "ground" in m.rasters:
        w, s, e, n = transform_bounds(m.crs, WGS84, *m.rasters["ground"].bounds, densify_pts=21)
        return Rectangle(w, s, e, n)
    return Rectangle(*m.extent_wgs84)


def grid_size(rect: Rectangle, metres_per_pixel: float, max_pixels: int) -> tuple[int, int]:
    """(width, height) of a plate-carrée grid of about `metres_per_pixel`, longer side at most `max_pixels`."""
    lat = math.radians((rect.south + rect.north) / 2.0)
    w_m = (rect.east - rect.west) * METRES_PER_DEGREE_LON_EQUATOR * math.cos(lat)
    h_m = (rect.north - rect.south) * METRES_PER_DEGREE_LAT
    scale = max(metres_per_pixel, max(w_m, h_m) / max_pixels)
    return max(2, round(w_m / scale)), max(2, round(h_m / scale))


def render_base_imagery(store: "TwinStore", *, metres_per_pixel: float = 2.0, max_pixels: int = 2048,
                        classifications: Iterable[str] = ("public",)) -> BaseImagery:
    """Render the base imagery of `store`, drawing only layers of the given classifications."""
    allowed = set(classifications)
    m = store.manifest()
    rect = imagery_rectangle(store)
    width, height = grid_size(rect, metres_per_pixel, max_pixels)
    transform = rect.transform(width, height)
    attributions: list[str] = []

    rgb = np.empty((height, width, 3), np.float32)
    rgb[:] = BACKGROUND
    if "ground" in m.rasters and m.rasters["ground"].classification in allowed:
        ground = _ground_on_grid(store, transform, width, height)
        rgb = _shaded_relief(ground, rect, width, height)
        attributions += m.rasters["ground"].attributions
    image = np.clip(rgb, 0, 255).astype(np.uint8)

    def layer(name: str) -> "gpd.GeoDataFrame | None":
        if name not in m.layers or m.layers[name].classification not in allowed:
            return None
        frame = store.read_layer(name)
        frame = frame[~frame.geometry.isna() & ~frame.geometry.is_empty]
        if len(frame):
            attributions.extend(m.layers[name].attributions)
            return frame
        return None

    water = layer("water")
    if water is not None:
        _paint(image, _burn(water.to_crs(WGS84).geometry, transform, width, height), WATER)
    roads = layer("roads")
    if roads is not None:
        _draw_roads(image, roads, transform, width, height)
    buildings = layer("buildings")
    if buildings is not None:
        if "underground" in buildings.columns:
            buildings = buildings[~buildings["underground"].fillna(False).astype(bool)]
        footprints = buildings.to_crs(WGS84).geometry
        _paint(image, _burn(footprints, transform, width, height), BUILDING)
        _paint(image, _burn(footprints.boundary, transform, width, height), BUILDING_EDGE)
    return BaseImagery(png=encode_png(image), rectangle=rect, width=width, height=height,
                       attributions=tuple(dict.fromkeys(attributions)))


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 image (GDAL's PNG driver, no extra dependency)."""
    h, w, bands = image.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)   # a picture, not a GeoTIFF
        with MemoryFile() as mem:
            with mem.open(driver="PNG", width=w, height=h, count=bands, dtype="uint8") as dst:
                dst.write(np.moveaxis(image, 2, 0))
            return mem.read()


def write_base_imagery(store: "TwinStore", out_dir: Path, **kwargs) -> tuple[Path, Path]:
    """Render and write `base.png` and `base.json` under `out_dir` (atomically); returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    img = render_base_imagery(store, **kwargs)
    meta = {"rectangle": asdict(img.rectangle), "width": img.width, "height": img.height,
            "attributions": list(img.attributions), "twin_built_at": store.manifest().built_at}
    png, js = out_dir / "base.png", out_dir / "base.json"
    write_atomic(png, img.png)
    write_atomic(js, json.dumps(meta, ensure_ascii=False, indent=1).encode("utf-8"))
    return png, js


def cached_base_imagery(store: "TwinStore", out_dir: Path, **kwargs) -> tuple[Path, dict]:
    """`base.png` and its metadata under `out_dir`, rendered again when the twin was rebuilt."""
    png, js = Path(out_dir) / "base.png", Path(out_dir) / "base.json"
    meta = read_json(js)
    if not png.is_file() or meta is None or meta.get("twin_built_at") != store.manifest().built_at:
        png, js = write_base_imagery(store, out_dir, **kwargs)
        meta = read_json(js)
        if meta is None:
            raise ImageryError("base imagery metadata could not be read back", source=str(js))
    return png, meta


def _ground_on_grid(store: "TwinStore", transform: Affine, width: int, height: int) -> np.ndarray:
    raster = store.read_raster("ground")
    out = np.full((height, width), np.nan, np.float32)
    reproject(raster.array.astype(np.float32), out, src_transform=raster.transform, src_crs=raster.crs,
              src_nodata=np.nan, dst_transform=transform, dst_crs=WGS84, dst_nodata=np.nan,
              resampling=Resampling.bilinear)
    return out


def _shaded_relief(ground: np.ndarray, rect: Rectangle, width: int, height: int) -> np.ndarray:
    valid = np.isfinite(ground)
    if not valid.any():
        rgb = np.empty((height, width, 3), np.float32)
        rgb[:] = BACKGROUND
        return rgb
    filled = np.where(valid, ground, np.nanmean(ground))
    lat = math.radians((rect.south + rect.north) / 2.0)
    dx = (rect.east - rect.west) / width * METRES_PER_DEGREE_LON_EQUATOR * math.cos(lat)
    dy = (rect.north - rect.south) / height * METRES_PER_DEGREE_LAT
    shade = hillshade(filled, dx, dy)
    lo, hi = np.nanpercentile(ground, [2, 98])
    t = np.clip((filled - lo) / max(hi - lo, 1e-6), 0, 1)[..., None]
    tint = LAND_LOW * (1 - t) + LAND_HIGH * t
    flat = math.cos(math.radians(45.0))          # shade of flat ground: keep it at the tint
    rgb = tint * np.clip(0.72 + 0.28 * shade[..., None] / flat, 0.0, 1.15)
    rgb[~valid] = BACKGROUND
    return rgb


def _burn(geoms, transform: Affine, width: int, height: int) -> np.ndarray:
    shapes = [(g, 1) for g in geoms if g is not None and not g.is_empty]
    if not shapes:
        return np.zeros((height, width), bool)
    return rasterize(shapes, out_shape=(height, width), transform=transform, fill=0, dtype="uint8",
                     all_touched=False).astype(bool)


def _paint(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> None:
    image[mask] = colour


def _draw_roads(image: np.ndarray, roads: "gpd.GeoDataFrame", transform: Affine, width: int, height: int) -> None:
    """Cased roads: buffers in the (metric) project CRS, minor roads first, major ones on top."""
    kind = roads["highway"].astype(str) if "highway" in roads.columns else None
    half = np.array([ROAD_HALF_WIDTH.get(k, 3.0) for k in kind]) if kind is not None else np.full(len(roads), 3.0)
    if "tunnel" in roads.columns:
        keep = ~roads["tunnel"].fillna(False).astype(bool).to_numpy()
        roads, half = roads[keep], half[keep]
        kind = kind[keep] if kind is not None else None
    major = kind.isin(MAJOR_ROADS).to_numpy() if kind is not None else np.zeros(len(roads), bool)
    casing = roads.geometry.buffer(half + 1.5, cap_style="flat").to_crs(WGS84)
    fill = roads.geometry.buffer(half, cap_style="flat").to_crs(WGS84)
    _paint(image, _burn(casing, transform, width, height), ROAD_CASING)
    _paint(image, _burn(fill[~major], transform, width, height), ROAD_FILL)
    _paint(image, _burn(fill[major], transform, width, height), MAJOR_ROAD_FILL)


__all__ = ["BaseImagery", "ImageryError", "Rectangle", "cached_base_imagery", "encode_png", "grid_size",
           "hillshade", "imagery_rectangle", "render_base_imagery", "write_base_imagery"]
