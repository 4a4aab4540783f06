"""Format name -> driver class, imported only when a source of that format is read."""

from __future__ import annotations

from importlib import import_module

from layers.base import Driver
from layers.errors import SourceError

_DRIVERS: dict[str, str] = {
    "geojson": "layers.vector:VectorDriver",
    "gpkg": "layers.vector:VectorDriver",
    "shapefile": "layers.vector:VectorDriver",
    "flatgeobuf": "layers.vector:VectorDriver",
    "osm-pbf": "layers.osm:OsmPbfDriver",
    "cityjson": "layers.cityjson:CityJsonDriver",
    "geotiff": "layers.raster:GeoTiffDriver",
    "las": "layers.lidar:LidarDriver",
    "ifc": "layers.ifc:IfcDriver",
}


def formats() -> list[str]:
    return sorted(_DRIVERS)


def driver_for(fmt: str) -> Driver:
    target = _DRIVERS.get(fmt)
    if target is None:
        raise SourceError(f"unknown source format '{fmt}'; known: {', '.join(formats())}")
    module_name, cls_name = target.split(":")
    cls = getattr(import_module(module_name), cls_name)
    return cls()
