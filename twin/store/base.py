"""The twin store interface.

Readers (tiles, simulate, api) use `TwinStore`; the build writes through a
`TwinWriter` that publishes everything at once on `commit()` and leaves the
previous twin untouched on failure. The embedded default is `FolderStore`
(GeoPackage + COG + npz meshes + manifest.json); a PostGIS store implements
the same two classes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd

    from layers.base import MeshData, RasterData
    from twin.manifest import Manifest


class TwinStore(ABC):
    """Read access to one built twin."""

    @abstractmethod
    def manifest(self) -> "Manifest":
        """Provenance and catalogue of the twin."""

    @abstractmethod
    def layer_names(self) -> list[str]:
        """Vector layers (feature tables) in the twin."""

    @abstractmethod
    def read_layer(self, name: str, *, bbox: tuple[float, float, float, float] | None = None,
                   columns: list[str] | None = None) -> "gpd.GeoDataFrame":
        """Features of a vector layer in the project CRS, optionally within `bbox` (project CRS)."""

    @abstractmethod
    def read_table(self, name: str) -> "pd.DataFrame":
        """A non-spatial table (for example `repairs`)."""

    @abstractmethod
    def raster_names(self) -> list[str]:
        """Raster layers, for example `surface` and `ground`."""

    @abstractmethod
    def read_raster(self, name: str) -> "RasterData":
        """A whole raster in the project CRS."""

    @abstractmethod
    def raster_uri(self, name: str) -> str:
        """Something rasterio can open (a path or a URL), for windowed reads."""

    @abstractmethod
    def mesh_names(self) -> list[str]:
        """Layers with 3D solids (CityJSON LoD2, BIM elements)."""

    @abstractmethod
    def read_mesh(self, name: str) -> "MeshData":
        """Triangles of a layer's features; `face_feature` indexes rows of `read_layer(name)`."""

    @abstractmethod
    def asset_path(self, name: str) -> str:
        """Location of a named extra asset (for example LiDAR files kept for point-cloud tiles)."""


class TwinWriter(ABC):
    """Builds a new version of a twin; nothing is visible until `commit()`."""

    @abstractmethod
    def write_layer(self, name: str, frame: "gpd.GeoDataFrame") -> None: ...

    @abstractmethod
    def write_table(self, name: str, frame: "pd.DataFrame") -> None: ...

    @abstractmethod
    def write_raster(self, name: str, raster: "RasterData") -> None: ...

    @abstractmethod
    def write_mesh(self, name: str, mesh: "MeshData") -> None: ...

    @abstractmethod
    def add_asset(self, name: str, src_path: str) -> None:
        """Copy a file into the twin under `name` (kept verbatim)."""

    @abstractmethod
    def commit(self, manifest: "Manifest") -> TwinStore:
        """Publish atomically and return a reader on the new twin."""

    @abstractmethod
    def abort(self) -> None:
        """Throw away everything written; the previous twin stays as it was."""

    def __enter__(self) -> "TwinWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
