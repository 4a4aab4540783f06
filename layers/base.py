"""The typed values that flow from drivers to the twin, and the driver base class.

A driver reads one source file and returns an `Ingested`: a GeoDataFrame of
features, raster grids, a triangle mesh and/or points, each carrying its CRS.
Normalisation (reprojection, repair, ids, heights) happens after, in
`layers.normalize`, so drivers stay small.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar

import numpy as np
from affine import Affine
from pyproj import CRS

if TYPE_CHECKING:
    import geopandas as gpd

    from twin.config import CityConfig, SourceConfig

# Semantic surface codes of mesh faces (CityJSON / IFC semantics, coarse).
SURFACE_UNKNOWN, SURFACE_GROUND, SURFACE_WALL, SURFACE_ROOF = 0, 1, 2, 3


@dataclass
class RasterData:
    """A single-band grid. `array` is float32 with NaN for no data."""

    array: np.ndarray
    transform: Affine
    crs: CRS

    @property
    def shape(self) -> tuple[int, int]:
        return self.array.shape  # type: ignore[return-value]

    @property
    def resolution(self) -> tuple[float, float]:
        return abs(self.transform.a), abs(self.transform.e)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        h, w = self.array.shape
        x0, y0 = self.transform @ (0, 0)
        x1, y1 = self.transform @ (w, h)
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


@dataclass
class MeshData:
    """Triangles of many features in one set of arrays.

    vertices: (N, 3) float64 in `crs` (z in metres above the vertical datum)
    faces: (M, 3) int64 indices into vertices, counter-clockwise seen from outside
    face_feature: (M,) int64 row of the feature (in the accompanying frame) each face belongs to
    face_surface: (M,) uint8 SURFACE_* code
    """

    vertices: np.ndarray
    faces: np.ndarray
    face_feature: np.ndarray
    crs: CRS
    face_surface: np.ndarray | None = None

    def __post_init__(self):
        self.vertices = np.asarray(self.vertices, dtype=np.float64).reshape(-1, 3)
        self.faces = np.asarray(self.faces, dtype=np.int64).reshape(-1, 3)
        self.face_feature = np.asarray(self.face_feature, dtype=np.int64).reshape(-1)
        if self.face_surface is None:
            self.face_surface = np.zeros(len(self.faces), dtype=np.uint8)
        self.face_surface = np.asarray(self.face_surface, dtype=np.uint8).reshape(-1)
        if not (len(self.faces) == len(self.face_feature) == len(self.face_surface)):
            raise ValueError("faces, face_feature and face_surface must have one entry per face")

    def select_features(self, keep: np.ndarray) -> "MeshData":
        """Keep only the faces of features where `keep` (bool per feature row) is true,
        renumbering features to the kept rows' new positions."""
        keep = np.asarray(keep, dtype=bool)
        new_index = np.cumsum(keep) - 1
        face_mask = keep[self.face_feature]
        faces = self.faces[face_mask]
        used, inverse = np.unique(faces, return_inverse=True)
        return MeshData(
            vertices=self.vertices[used],
            faces=inverse.reshape(-1, 3),
            face_feature=new_index[self.face_feature[face_mask]],
            crs=self.crs,
            face_surface=self.face_surface[face_mask],
        )


@dataclass
class PointSet:
    """LiDAR points: xyz float64 (N, 3) and ASPRS classification codes (N,)."""

    xyz: np.ndarray
    classification: np.ndarray
    crs: CRS


@dataclass
class Ingested:
    """What a driver read from one source, in the CRS each part states."""

    frame: "gpd.GeoDataFrame | None" = None
    rasters: dict[str, RasterData] = field(default_factory=dict)  # keyed "surface"/"ground"
    mesh: MeshData | None = None
    points: PointSet | None = None
    notes: list[str] = field(default_factory=list)  # for the build report
    provenance: dict = field(default_factory=dict)   # driver-specific facts (georef method, LoD...)


@dataclass
class IngestContext:
    """What drivers may need beyond their own file."""

    city: "CityConfig"
    crs: CRS                                  # project CRS (metric)
    extent: tuple[float, float, float, float]  # in the project CRS
    ground_at: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None  # project x, y -> z (NaN outside)


class Driver(ABC):
    """Reads one source format. Subclasses are registered in `layers.registry`."""

    formats: ClassVar[tuple[str, ...]] = ()
    kinds: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def read(self, path: Path, source: "SourceConfig", kind: str, ctx: IngestContext) -> Ingested:
        """Read `path` for a layer of `kind`. Raise `layers.errors.SourceError`
        subclasses naming `path` on any problem."""
