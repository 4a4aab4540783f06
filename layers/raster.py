"""DEM / DSM / DTM GeoTIFFs in any CRS, warped into the project CRS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.warp import Resampling, calculate_default_transform, reproject

from layers.base import Driver, IngestContext, Ingested, RasterData
from layers.crs import parse_crs
from layers.errors import CRSError, SourceCorrupt, SourceNotFound


class GeoTiffDriver(Driver):
    formats = ("geotiff",)
    kinds = ("surface", "ground")

    def read(self, path: Path, source, kind: str, ctx: IngestContext) -> Ingested:
        if not path.exists():
            raise SourceNotFound("file not found", source=str(path))
        try:
            raster = read_raster(path, source_crs=source.crs)
            warped = warp_to(raster, ctx.crs, resolution=ctx.city.terrain.resolution)
        except RasterioIOError as exc:
            raise SourceCorrupt(f"cannot read raster: {exc}", source=str(path), detail=str(exc)) from None
        except RasterioError as exc:
            raise SourceCorrupt(f"cannot read raster: {exc}", source=str(path), detail=str(exc)) from None
        return Ingested(rasters={kind: warped},
                        provenance={"native_crs": raster.crs.to_string(),
                                    "native_resolution": list(raster.resolution)})


def read_raster(path: Path, *, source_crs: str | None = None) -> RasterData:
    with rasterio.open(path) as ds:
        if ds.count < 1:
            raise SourceCorrupt("raster has no bands", source=str(path))
        crs = ds.crs
        if source_crs:
            crs_obj = parse_crs(source_crs, source=str(path))
        elif crs is None:
            raise CRSError("the raster declares no CRS and city.toml gives none (set 'crs')",
                           source=str(path), field="crs")
        else:
            crs_obj = parse_crs(crs.to_wkt(), source=str(path))
        band = ds.read(1, masked=True)  # reads every block: truncation surfaces here
        array = band.astype(np.float32).filled(np.nan)
        return RasterData(array=array, transform=ds.transform, crs=crs_obj)


def warp_to(raster: RasterData, crs, *, resolution: float | None = None,
            resampling: Resampling = Resampling.bilinear) -> RasterData:
    """Reproject a raster into `crs`; keeps roughly the native cell size unless `resolution` is set."""
    h, w = raster.array.shape
    if raster.crs == crs and resolution is None:
        return raster
    left, bottom, right, top = raster.bounds
    kwargs = {"resolution": resolution} if resolution else {}
    transform, width, height = calculate_default_transform(
        raster.crs.to_wkt(), crs.to_wkt(), w, h, left, bottom, right, top, **kwargs)
    out = np.full((height, width), np.nan, dtype=np.float32)
    reproject(raster.array, out, src_transform=raster.transform, src_crs=raster.crs.to_wkt(),
              dst_transform=transform, dst_crs=crs.to_wkt(), resampling=resampling,
              src_nodata=np.nan, dst_nodata=np.nan)
    return RasterData(array=out, transform=transform, crs=crs)


def sample(raster: RasterData, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear sample at project coordinates; NaN outside the grid."""
    inv = ~raster.transform
    col, row = inv @ (np.asarray(x, float), np.asarray(y, float))
    col, row = np.asarray(col) - 0.5, np.asarray(row) - 0.5
    h, w = raster.array.shape
    c0, r0 = np.floor(col).astype(np.int64), np.floor(row).astype(np.int64)
    fc, fr = col - c0, row - r0
    out = np.full(col.shape, np.nan)
    c0c, c1c = np.clip(c0, 0, w - 1), np.clip(c0 + 1, 0, w - 1)
    r0c, r1c = np.clip(r0, 0, h - 1), np.clip(r0 + 1, 0, h - 1)
    a = raster.array
    v = (a[r0c, c0c] * (1 - fc) * (1 - fr) + a[r0c, c1c] * fc * (1 - fr)
         + a[r1c, c0c] * (1 - fc) * fr + a[r1c, c1c] * fc * fr)
    inside = (col >= -0.5) & (col <= w - 0.5) & (row >= -0.5) & (row <= h - 0.5)
    out[inside] = v[inside]
    # Near no-data cells the bilinear mix is NaN; fall back to the nearest cell.
    bad = inside & np.isnan(out)
    if bad.any():
        nc = np.clip(np.rint(col[bad]).astype(np.int64), 0, w - 1)
        nr = np.clip(np.rint(row[bad]).astype(np.int64), 0, h - 1)
        out[bad] = a[nr, nc]
    return out


def mosaic(rasters: list[RasterData]) -> RasterData:
    """Several rasters of one kind as one grid: the union of their extents at the finest
    cell size; where they overlap the first one listed wins."""
    if len(rasters) == 1:
        return rasters[0]
    from rasterio.transform import from_origin

    crs = rasters[0].crs
    res = min(min(r.resolution) for r in rasters)
    b = np.array([r.bounds for r in rasters])
    left, bottom = np.floor(b[:, 0].min() / res) * res, np.floor(b[:, 1].min() / res) * res
    right, top = np.ceil(b[:, 2].max() / res) * res, np.ceil(b[:, 3].max() / res) * res
    width, height = int(round((right - left) / res)), int(round((top - bottom) / res))
    transform = from_origin(left, top, res, res)
    out = np.full((height, width), np.nan, dtype=np.float32)
    for r in rasters:
        part = np.full_like(out, np.nan)
        reproject(r.array, part, src_transform=r.transform, src_crs=r.crs.to_wkt(), dst_transform=transform,
                  dst_crs=crs.to_wkt(), resampling=Resampling.bilinear, src_nodata=np.nan, dst_nodata=np.nan)
        fill = np.isnan(out) & np.isfinite(part)
        out[fill] = part[fill]
    return RasterData(array=out, transform=transform, crs=crs)
