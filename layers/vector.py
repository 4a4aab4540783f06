"""Plain vector files (GeoJSON, GeoPackage, Shapefile, FlatGeobuf) through pyogrio."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pyogrio
from pyogrio.errors import DataLayerError, DataSourceError

from layers.base import Driver, IngestContext, Ingested
from layers.errors import CRSError, SourceCorrupt, SourceNotFound
from layers.crs import parse_crs


class VectorDriver(Driver):
    formats = ("geojson", "gpkg", "shapefile", "flatgeobuf")
    kinds = ("buildings", "roads", "pois", "water", "landuse")

    def read(self, path: Path, source, kind: str, ctx: IngestContext) -> Ingested:
        if not path.exists():
            raise SourceNotFound("file not found", source=str(path))
        bbox = None
        if source.filter.bbox is not None:
            bbox = _bbox_in_file_crs(path, source)
        try:
            frame = pyogrio.read_dataframe(path, layer=source.layer, bbox=bbox, use_arrow=_has_arrow())
        except (DataSourceError, DataLayerError) as exc:
            raise SourceCorrupt(f"cannot read as {source.resolved_format}: {_short(exc)}",
                                source=str(path), detail=str(exc)) from None
        except Exception as exc:  # GDAL surfaces truncation as assorted errors
            raise SourceCorrupt(f"cannot read as {source.resolved_format}: {_short(exc)}",
                                source=str(path), detail=repr(exc)) from None
        if not isinstance(frame, gpd.GeoDataFrame) or "geometry" not in frame:
            raise SourceCorrupt("no geometry column", source=str(path))
        if frame.crs is None:
            if not source.crs:
                raise CRSError("the file declares no CRS and city.toml gives none (set 'crs')",
                               source=str(path), field="crs")
            frame = frame.set_crs(parse_crs(source.crs, source=str(path)))
        elif source.crs:
            frame = frame.set_crs(parse_crs(source.crs, source=str(path)), allow_override=True)
        return Ingested(frame=frame)


def _bbox_in_file_crs(path: Path, source) -> tuple[float, float, float, float]:
    from layers.crs import transform_bounds

    info = pyogrio.read_info(path, layer=source.layer)
    file_crs = info.get("crs") or source.crs
    if not file_crs:
        return source.filter.bbox
    return transform_bounds(source.filter.bbox, parse_crs(source.filter.bbox_crs, source=str(path)),
                            parse_crs(file_crs, source=str(path)))


def _has_arrow() -> bool:
    try:
        import pyarrow  # noqa: F401
        return True
    except ImportError:
        return False


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
