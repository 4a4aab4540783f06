"""A twin held in memory: the same read interface as a built twin, from parts.

For benchmarks, tests and derived twins (scenario layers) that never touch disk.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import geopandas as gpd
import pandas as pd
from pyproj import CRS

import twin
from layers.base import MeshData, RasterData
from twin.errors import LayerNotFound
from twin.manifest import LayerRecord, Manifest, RasterRecord
from twin.store.base import TwinStore


class MemoryStore(TwinStore):
    def __init__(self, crs: str | CRS, *, layers: dict[str, gpd.GeoDataFrame] | None = None,
                 rasters: dict[str, RasterData] | None = None, meshes: dict[str, MeshData] | None = None,
                 tables: dict[str, pd.DataFrame] | None = None, assets: dict[str, str | Path] | None = None,
                 kinds: dict[str, str] | None = None, classifications: dict[str, str] | None = None,
                 city: str = "in-memory twin", vertical_datum: str = "EGM2008"):
        self.crs = CRS.from_user_input(crs)
        self._layers = dict(layers or {})
        self._rasters = dict(rasters or {})
        self._meshes = dict(meshes or {})
        self._tables = dict(tables or {})
        self._assets = {k: str(v) for k, v in (assets or {}).items()}
        kinds = kinds or {}
        classes = classifications or {}
        bounds = [f.total_bounds for f in self._layers.values() if len(f)] + \
                 [r.bounds for r in self._rasters.values()]
        extent = (min(b[0] for b in bounds), min(b[1] for b in bounds), max(b[2] for b in bounds),
                  max(b[3] for b in bounds)) if bounds else (0.0, 0.0, 0.0, 0.0)
        self._manifest = Manifest(
            tool_version=twin.__version__, city=city, crs=self.crs.to_string(), crs_wkt=self.crs.to_wkt(),
            vertical_datum=vertical_datum, extent=extent, extent_wgs84=(0.0, 0.0, 0.0, 0.0),
            built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), build_seconds=0.0,
            config_sha256="0" * 64, assets=self._assets,
            layers={n: LayerRecord(kind=kinds.get(n, n), classification=classes.get(n, "public"), count=len(f),
                                   bbox=tuple(float(v) for v in f.total_bounds) if len(f) else None,
                                   has_mesh=n in self._meshes)
                    for n, f in self._layers.items()},
            rasters={n: RasterRecord(kind=n, classification=classes.get(n, "public"), path="", shape=r.shape,
                                     resolution=r.resolution, bounds=r.bounds, method="in memory")
                     for n, r in self._rasters.items()},
        )

    def manifest(self) -> Manifest:
        return self._manifest

    def layer_names(self) -> list[str]:
        return list(self._layers)

    def read_layer(self, name, *, bbox=None, columns=None) -> gpd.GeoDataFrame:
        frame = self._get(self._layers, name, "layer")
        if bbox is not None:
            frame = frame.cx[bbox[0]:bbox[2], bbox[1]:bbox[3]]
        return frame[[*columns, frame.geometry.name]].copy() if columns else frame.copy()

    def read_table(self, name) -> pd.DataFrame:
        return self._get(self._tables, name, "table").copy()

    def raster_names(self) -> list[str]:
        return list(self._rasters)

    def read_raster(self, name) -> RasterData:
        return self._get(self._rasters, name, "raster")

    def raster_uri(self, name) -> str:
        raise LayerNotFound(f"raster '{name}' is in memory and has no URI")

    def mesh_names(self) -> list[str]:
        return list(self._meshes)

    def read_mesh(self, name) -> MeshData:
        return self._get(self._meshes, name, "mesh")

    def asset_path(self, name) -> str:
        return self._get(self._assets, name, "asset")

    @staticmethod
    def _get(table: dict, name: str, what: str):
        if name not in table:
            raise LayerNotFound(f"no {what} '{name}'")
        return table[name]
