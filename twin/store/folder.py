"""The embedded twin store: one folder.

    DIR/
      manifest.json        provenance and catalogue (twin.manifest.Manifest)
      twin.gpkg            vector layers and tables
      rasters/<name>.tif   Cloud-Optimized GeoTIFFs in the project CRS
      meshes/<name>.npz    triangles of 3D layers (vertices in the project CRS)
      assets/...           files kept verbatim (e.g. LiDAR for point-cloud tiles)

A new version is written into a hidden sibling folder and swapped in on
commit, so readers never see a half-built twin and a failed build leaves the
previous one untouched.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import rasterio
from pyproj import CRS

from layers.base import MeshData, RasterData
from twin.errors import LayerNotFound, StoreError, TwinNotFound
from twin.manifest import Manifest
from twin.store.base import TwinStore, TwinWriter

GPKG = "twin.gpkg"
MANIFEST = "manifest.json"


class FolderStore(TwinStore):
    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not (self.root / MANIFEST).is_file():
            raise TwinNotFound("no twin here (manifest.json missing); build one with 'twin build'",
                               source=str(self.root))
        self._manifest: Manifest | None = None

    # -- catalogue
    def manifest(self) -> Manifest:
        if self._manifest is None:
            try:
                self._manifest = Manifest.model_validate_json((self.root / MANIFEST).read_text(encoding="utf-8"))
            except ValueError as exc:
                raise StoreError(f"manifest.json is damaged: {exc}", source=str(self.root)) from None
        return self._manifest

    def layer_names(self) -> list[str]:
        return list(self.manifest().layers)

    def raster_names(self) -> list[str]:
        return list(self.manifest().rasters)

    def mesh_names(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "meshes").glob("*.npz"))

    # -- reads
    def read_layer(self, name, *, bbox=None, columns=None) -> gpd.GeoDataFrame:
        if name not in self.manifest().layers:
            raise LayerNotFound(f"no layer '{name}'", source=str(self.root))
        frame = pyogrio.read_dataframe(self.root / GPKG, layer=name, bbox=bbox, columns=columns,
                                       fid_as_index=False)
        return _restore_types(frame)

    def read_table(self, name) -> pd.DataFrame:
        with sqlite3.connect(self.root / GPKG) as con:
            exists = con.execute("select 1 from sqlite_master where type='table' and name=?", (name,)).fetchone()
            if not exists:
                raise LayerNotFound(f"no table '{name}'", source=str(self.root))
            return pd.read_sql_query(f'select * from "{name}"', con)

    def read_raster(self, name) -> RasterData:
        with rasterio.open(self.raster_uri(name)) as ds:
            arr = ds.read(1, masked=True).astype(np.float32).filled(np.nan)
            return RasterData(array=arr, transform=ds.transform, crs=CRS.from_wkt(ds.crs.to_wkt()))

    def raster_uri(self, name) -> str:
        path = self.root / "rasters" / f"{name}.tif"
        if not path.is_file():
            raise LayerNotFound(f"no raster '{name}'", source=str(self.root))
        return str(path)

    def read_mesh(self, name) -> MeshData:
        path = self.root / "meshes" / f"{name}.npz"
        if not path.is_file():
            raise LayerNotFound(f"no mesh '{name}'", source=str(self.root))
        with np.load(path) as z:
            return MeshData(vertices=z["vertices"], faces=z["faces"], face_feature=z["face_feature"],
                            face_surface=z["face_surface"], crs=CRS.from_wkt(str(z["crs"])))

    def asset_path(self, name) -> str:
        rel = self.manifest().assets.get(name)
        if rel is None:
            raise LayerNotFound(f"no asset '{name}'", source=str(self.root))
        return str(self.root / rel)

    @staticmethod
    def writer(root: str | Path) -> "FolderWriter":
        return FolderWriter(Path(root))


def _restore_types(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    for col in ("underground", "oneway", "bridge", "tunnel"):
        if col in frame and frame[col].dtype != bool:
            frame[col] = frame[col].astype("boolean")
    return frame


class FolderWriter(TwinWriter):
    def __init__(self, root: Path):
        self.root = root.resolve()
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.root.parent / f".{self.root.name}.building-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir()
        (self.tmp / "rasters").mkdir()
        (self.tmp / "meshes").mkdir()
        self._assets: dict[str, str] = {}
        self._done = False

    def write_layer(self, name, frame) -> None:
        frame = frame.copy()
        for col in frame.columns:
            if col != frame.geometry.name and frame[col].dtype == object:
                frame[col] = frame[col].astype("string")
        pyogrio.write_dataframe(frame, self.tmp / GPKG, layer=name, driver="GPKG",
                                promote_to_multi=False, SPATIAL_INDEX="YES")

    def write_table(self, name, frame) -> None:
        with sqlite3.connect(self.tmp / GPKG) as con:
            frame.to_sql(name, con, if_exists="replace", index=False)

    def write_raster(self, name, raster: RasterData) -> None:
        h, w = raster.shape
        profile = dict(driver="COG", width=w, height=h, count=1, dtype="float32", crs=raster.crs.to_wkt(),
                       transform=raster.transform, nodata=np.nan, compress="DEFLATE", predictor=3,
                       blocksize=256, overview_resampling="average", BIGTIFF="IF_SAFER")
        with rasterio.open(self.tmp / "rasters" / f"{name}.tif", "w", **profile) as ds:
            ds.write(raster.array.astype(np.float32), 1)

    def write_mesh(self, name, mesh: MeshData) -> None:
        np.savez_compressed(self.tmp / "meshes" / f"{name}.npz", vertices=mesh.vertices, faces=mesh.faces,
                            face_feature=mesh.face_feature, face_surface=mesh.face_surface,
                            crs=np.array(mesh.crs.to_wkt()))

    def add_asset(self, name, src_path) -> None:
        rel = Path("assets") / name
        (self.tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src_path, self.tmp / rel)
        self._assets[name] = str(rel)

    def commit(self, manifest: Manifest) -> FolderStore:
        manifest = manifest.model_copy(update={"assets": {**manifest.assets, **self._assets}})
        (self.tmp / MANIFEST).write_text(manifest.model_dump_json(indent=2, by_alias=True), encoding="utf-8")
        old = self.root.parent / f".{self.root.name}.old-{uuid.uuid4().hex[:8]}"
        had_old = self.root.exists()
        if had_old:
            os.rename(self.root, old)
        try:
            os.rename(self.tmp, self.root)
        except OSError:
            if had_old:
                os.rename(old, self.root)
            raise
        if had_old:
            _keep_derived(old, self.root)
            shutil.rmtree(old, ignore_errors=True)
        self._done = True
        return FolderStore(self.root)

    def abort(self) -> None:
        if not self._done:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self._done = True


def _keep_derived(old: Path, new: Path) -> None:
    """Products made from the twin later (tiles, scenario jobs) survive a rebuild;
    the tiler's content hashes decide what to rewrite."""
    for name in ("tiles", "jobs", "sensors"):
        src = old / name
        if src.exists() and not (new / name).exists():
            os.rename(src, new / name)
