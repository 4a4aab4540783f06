"""The computational grid: terrain resampled to a resolution, buildings burned in as
blocked cells, and Manning's n by land cover.

`FloodGrid` is plain arrays plus georeferencing; the model never looks at vector
layers. Build one from a twin with `build_grid`, or from arrays with `FloodGrid.from_arrays`
(tests, analytic cases).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from affine import Affine
from pyproj import CRS

from layers.base import RasterData
from simulate.flood.errors import FloodInputError

ROAD_WIDTH_M: dict[str, float] = {   # carriageway width used to paint road roughness
    "motorway": 24.0, "trunk": 20.0, "primary": 16.0, "secondary": 12.0, "tertiary": 9.0,
    "residential": 7.0, "unclassified": 6.0, "service": 4.0,
}
DEFAULT_ROAD_WIDTH_M = 6.0


@dataclass(frozen=True)
class ManningTable:
    """Manning's n (s m^-1/3) by land cover; cells of no listed cover get `default`."""

    default: float = 0.035   # open ground, grass, mixed urban surface
    road: float = 0.016      # asphalt carriageway
    water: float = 0.030     # channels and ponds

    def __post_init__(self) -> None:
        for name in ("default", "road", "water"):
            value = getattr(self, name)
            if not (0.0 <= value <= 0.5):
                raise FloodInputError(f"Manning's n must be within 0..0.5, got {value}", field=f"manning.{name}")


@dataclass
class FloodGrid:
    """Cell-centred grid, row 0 at the top (north), square or rectangular cells.

    z       : bed level of each cell (m), float64; NaN never (no data is blocked)
    blocked : cells water cannot enter (buildings, outside the terrain)
    n       : Manning's n per cell
    roofs   : the blocked cells that are buildings (rain on them runs off to open ground)
    """

    z: np.ndarray
    blocked: np.ndarray
    n: np.ndarray
    transform: Affine
    crs: CRS | None = None
    roofs: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.z = np.asarray(self.z, dtype=np.float64)
        self.blocked = np.asarray(self.blocked, dtype=bool)
        self.n = np.broadcast_to(np.asarray(self.n, dtype=np.float64), self.z.shape).copy()
        if self.z.ndim != 2 or self.blocked.shape != self.z.shape:
            raise FloodInputError("z and blocked must be 2D arrays of one shape", field="grid")
        if self.z.shape[0] < 2 or self.z.shape[1] < 2:
            raise FloodInputError("the grid needs at least 2 x 2 cells", field="resolution_m")
        if abs(self.transform.b) > 0 or abs(self.transform.d) > 0:
            raise FloodInputError("rotated grids are not supported", field="grid")
        self.roofs = np.zeros(self.z.shape, bool) if self.roofs is None else np.asarray(self.roofs, bool) & self.blocked
        bad = ~np.isfinite(self.z)
        if bad.any():
            self.blocked = self.blocked | bad
            self.z = np.where(bad, 0.0, self.z)

    @classmethod
    def from_arrays(cls, z: np.ndarray, dx: float, *, dy: float | None = None, blocked: np.ndarray | None = None,
                    n: float | np.ndarray = 0.035, origin: tuple[float, float] = (0.0, 0.0),
                    crs: CRS | str | None = None) -> FloodGrid:
        """A grid whose top-left corner is at `origin` (x, y) with cells dx by dy metres."""
        z = np.asarray(z, dtype=np.float64)
        dy = dx if dy is None else dy
        transform = Affine(dx, 0.0, origin[0], 0.0, -dy, origin[1])
        blocked = np.zeros(z.shape, bool) if blocked is None else np.asarray(blocked, bool)
        return cls(z=z, blocked=blocked, n=n, transform=transform, roofs=blocked.copy(),
                   crs=None if crs is None else CRS.from_user_input(crs))

    @property
    def shape(self) -> tuple[int, int]:
        return self.z.shape  # type: ignore[return-value]

    @property
    def dx(self) -> float:
        return abs(self.transform.a)

    @property
    def dy(self) -> float:
        return abs(self.transform.e)

    @property
    def cell_area(self) -> float:
        return self.dx * self.dy

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """x (nx,) and y (ny,) of cell centres."""
        ny, nx = self.shape
        x = self.transform.c + self.transform.a * (np.arange(nx) + 0.5)
        y = self.transform.f + self.transform.e * (np.arange(ny) + 0.5)
        return x, y

    def cell_of(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, col, inside) of points in project coordinates."""
        col, row = ~self.transform @ (np.asarray(x, dtype=float), np.asarray(y, dtype=float))
        col, row = np.floor(np.asarray(col)).astype(np.int64), np.floor(np.asarray(row)).astype(np.int64)
        ny, nx = self.shape
        inside = (row >= 0) & (row < ny) & (col >= 0) & (col < nx)
        return np.clip(row, 0, ny - 1), np.clip(col, 0, nx - 1), inside

    def to_raster(self, array: np.ndarray) -> RasterData:
        if self.crs is None:
            raise FloodInputError("this grid has no CRS; give one to write georeferenced outputs", field="crs")
        return RasterData(array=np.asarray(array, dtype=np.float32), transform=self.transform, crs=self.crs)


def build_grid(ground: RasterData, resolution_m: float, *, buildings=None, roads=None,
               manning: ManningTable = ManningTable(), block_buildings: bool = True) -> FloodGrid:
    """Resample `ground` to `resolution_m`, paint road roughness and block building footprints.

    A cell is a building when its centre is inside a footprint (underground parts excluded);
    at coarse resolutions small buildings therefore vanish, which the notes record.
    """
    from rasterio.features import rasterize
    from rasterio.transform import from_origin
    from rasterio.warp import Resampling, reproject

    if not (resolution_m > 0):
        raise FloodInputError("resolution must be positive", field="resolution_m")
    left, bottom, right, top = ground.bounds
    nx, ny = int((right - left) // resolution_m), int((top - bottom) // resolution_m)
    if nx < 2 or ny < 2:
        raise FloodInputError(f"resolution {resolution_m} m leaves fewer than 2 x 2 cells", field="resolution_m")
    transform = from_origin(left, top, resolution_m, resolution_m)
    z = np.full((ny, nx), np.nan, dtype=np.float32)
    coarser = resolution_m > max(ground.resolution)
    reproject(ground.array.astype(np.float32), z, src_transform=ground.transform, src_crs=ground.crs.to_wkt(),
              dst_transform=transform, dst_crs=ground.crs.to_wkt(),
              resampling=Resampling.average if coarser else Resampling.bilinear, src_nodata=np.nan, dst_nodata=np.nan)
    notes: list[str] = []
    n = np.full((ny, nx), manning.default)
    if roads is not None and len(roads):
        widths = roads["highway"].map(ROAD_WIDTH_M).fillna(DEFAULT_ROAD_WIDTH_M) if "highway" in roads \
            else DEFAULT_ROAD_WIDTH_M
        areas = roads.geometry.buffer(np.asarray(widths, dtype=float) / 2.0 if np.ndim(widths) else widths / 2.0)
        road_mask = rasterize(((g, 1) for g in areas if g is not None and not g.is_empty), out_shape=(ny, nx),
                              transform=transform, fill=0, dtype="uint8", all_touched=True).astype(bool)
        n[road_mask] = manning.road
        notes.append(f"roads: {int(road_mask.sum())} cells at n={manning.road}")
    blocked = ~np.isfinite(z)
    roofs = np.zeros((ny, nx), bool)
    if block_buildings and buildings is not None and len(buildings):
        keep = buildings
        if "underground" in buildings:
            keep = buildings[~buildings["underground"].fillna(False).astype(bool)]
        geoms = [g for g in keep.geometry if g is not None and not g.is_empty]
        if geoms:
            bmask = rasterize(((g, 1) for g in geoms), out_shape=(ny, nx), transform=transform, fill=0,
                              dtype="uint8", all_touched=False).astype(bool)
            roofs = bmask & ~blocked
            blocked |= bmask
            notes.append(f"buildings: {int(bmask.sum())} blocked cells from {len(geoms)} footprints")
    return FloodGrid(z=z.astype(np.float64), blocked=blocked, n=n, transform=transform, crs=ground.crs, roofs=roofs,
                     notes=notes)
