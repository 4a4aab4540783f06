"""Placing project-CRS coordinates on the globe: ECEF and local east-north-up frames.

A tileset root carries a float64 ENU->ECEF matrix at a local origin; content
vertices are float32 offsets from that origin (east, north, up), which keeps
sub-centimetre precision for a city-sized tile.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from pyproj import CRS, Transformer

ECEF = CRS.from_epsg(4978)
GEOGRAPHIC_3D = CRS.from_epsg(4979)


@lru_cache(maxsize=32)
def _to_geographic(crs_wkt: str) -> Transformer:
    return Transformer.from_crs(CRS.from_wkt(crs_wkt), CRS.from_epsg(4326), always_xy=True)


@lru_cache(maxsize=32)
def _geographic_to_ecef() -> Transformer:
    return Transformer.from_crs(GEOGRAPHIC_3D, ECEF, always_xy=True)


def project_to_lonlat(crs: CRS, x, y) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = _to_geographic(crs.to_wkt()).transform(np.asarray(x, float), np.asarray(y, float))
    return np.asarray(lon), np.asarray(lat)


def lonlat_to_ecef(lon, lat, h) -> np.ndarray:
    """(N,) lon/lat degrees and ellipsoidal height (m) -> (N, 3) ECEF metres."""
    x, y, z = _geographic_to_ecef().transform(np.asarray(lon, float), np.asarray(lat, float), np.asarray(h, float))
    return np.column_stack([x, y, z])


def enu_to_ecef_matrix(lon: float, lat: float, h: float) -> np.ndarray:
    """4x4 column-major-ready matrix taking local ENU metres at (lon, lat, h) to ECEF."""
    lam, phi = np.radians(lon), np.radians(lat)
    east = np.array([-np.sin(lam), np.cos(lam), 0.0])
    north = np.array([-np.sin(phi) * np.cos(lam), -np.sin(phi) * np.sin(lam), np.cos(phi)])
    up = np.array([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])
    origin = np.array(_geographic_to_ecef().transform(float(lon), float(lat), float(h)))
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = east, north, up, origin
    return m


def matrix_to_tileset(m: np.ndarray) -> list[float]:
    """3D Tiles `transform`: 16 numbers, column-major."""
    return [float(v) for v in np.asarray(m).T.reshape(-1)]


class LocalFrame:
    """East-north-up frame at an origin given in the project CRS.

    `to_enu` maps project x, y, z (z = height above the vertical datum, treated
    as ellipsoidal) to metres in the frame, exactly through ECEF, so the
    curvature and the projection's scale factor are both accounted for.
    """

    def __init__(self, crs: CRS, origin_x: float, origin_y: float, origin_z: float = 0.0):
        self.crs = crs
        self.origin_x, self.origin_y = float(origin_x), float(origin_y)
        lon, lat = _to_geographic(crs.to_wkt()).transform(float(origin_x), float(origin_y))
        self.lon, self.lat, self.h = float(lon), float(lat), float(origin_z)
        self.matrix = enu_to_ecef_matrix(self.lon, self.lat, self.h)
        self._inverse = np.linalg.inv(self.matrix)

    def to_enu(self, x, y, z) -> np.ndarray:
        lon, lat = project_to_lonlat(self.crs, x, y)
        ecef = lonlat_to_ecef(lon, lat, np.asarray(z, float))
        hom = np.column_stack([ecef, np.ones(len(ecef))])
        return (hom @ self._inverse.T)[:, :3]

    def to_project(self, enu: np.ndarray) -> np.ndarray:
        """Inverse of `to_enu`, for round-trip checks."""
        enu = np.asarray(enu, float).reshape(-1, 3)
        ecef = (np.column_stack([enu, np.ones(len(enu))]) @ self.matrix.T)[:, :3]
        back = Transformer.from_crs(ECEF, GEOGRAPHIC_3D, always_xy=True)
        lon, lat, h = back.transform(ecef[:, 0], ecef[:, 1], ecef[:, 2])
        fwd = Transformer.from_crs(CRS.from_epsg(4326), self.crs, always_xy=True)
        x, y = fwd.transform(lon, lat)
        return np.column_stack([x, y, h])


# ---------------------------------------------------------------------------
# Fast path: the ENU mapping of a city as a validated polynomial surface
# ---------------------------------------------------------------------------

SURFACE_TOLERANCE_M = 5e-5     # accepted max error of a fitted surface at its validation points
SURFACE_HEIGHT_M = 2000.0      # up-vector errors are checked as the displacement at this height
SURFACE_DEGREES = (4, 6)       # tried in order; 4 is sub-micrometre on a 60 km city
SURFACE_CHUNK = 1 << 17        # points evaluated per block (bounds the Vandermonde matrix's memory)


class EnuSurface:
    """ENU position at height 0 and the up vector of project (x, y), as bivariate
    polynomials fitted to exact transforms over a box of the project CRS.

    The mapping projection -> geodetic -> ECEF -> ENU is smooth over a city, so a
    degree-4 least-squares polynomial in normalised coordinates reproduces it to
    well under a micrometre across tens of kilometres. `fit` validates each fit
    against the exact path on a grid four times denser than its control points
    (every control cell's centre and edge midpoints) and returns None when the
    error exceeds `SURFACE_TOLERANCE_M`; callers then use the exact path.
    """

    def __init__(self, bounds: tuple[float, float, float, float], degree: int, coef: np.ndarray,
                 max_error_m: float):
        x0, y0, x1, y1 = bounds
        self.bounds = bounds
        self.centre = ((x0 + x1) / 2.0, (y0 + y1) / 2.0)
        self.half = (max((x1 - x0) / 2.0, 1.0), max((y1 - y0) / 2.0, 1.0))
        self.degree = degree
        self.coef = coef
        self.max_error_m = max_error_m

    @staticmethod
    def _terms(degree: int) -> list[tuple[int, int]]:
        return [(i, j) for i in range(degree + 1) for j in range(degree + 1 - i)]

    def _vandermonde(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        u = (np.asarray(x, np.float64) - self.centre[0]) / self.half[0]
        v = (np.asarray(y, np.float64) - self.centre[1]) / self.half[1]
        pu = [np.ones_like(u)]
        pv = [np.ones_like(v)]
        for _ in range(self.degree):
            pu.append(pu[-1] * u)
            pv.append(pv[-1] * v)
        out = np.empty((len(u), len(self._terms(self.degree))))
        for k, (i, j) in enumerate(self._terms(self.degree)):
            np.multiply(pu[i], pv[j], out=out[:, k])
        return out

    def covers(self, x0: float, y0: float, x1: float, y1: float) -> bool:
        bx0, by0, bx1, by1 = self.bounds
        return bx0 <= x0 and by0 <= y0 and x1 <= bx1 and y1 <= by1

    def evaluate(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) ENU base points and (N, 3) ENU up vectors."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        out = np.empty((len(x), 6))
        for start in range(0, len(x), SURFACE_CHUNK):
            stop = start + SURFACE_CHUNK
            # einsum's own loop, not BLAS: a fixed summation order (identical bytes on every run,
            # whatever the thread count) and no thread spin on a busy machine
            np.einsum("ij,jk->ik", self._vandermonde(x[start:stop], y[start:stop]), self.coef,
                      out=out[start:stop])
        return out[:, :3], out[:, 3:]

    @classmethod
    def fit(cls, exact, bounds: tuple[float, float, float, float], *,
            degrees: tuple[int, ...] = SURFACE_DEGREES, tolerance_m: float = SURFACE_TOLERANCE_M
            ) -> "EnuSurface | None":
        """Fit `exact(x, y) -> (base, up)` over `bounds`; None when no degree meets the tolerance."""
        x0, y0, x1, y1 = bounds
        for degree in degrees:
            n = 4 * degree + 1
            gx, gy = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
            base, up = exact(gx.ravel(), gy.ravel())
            surface = cls(bounds, degree, np.zeros((len(cls._terms(degree)), 6)), np.inf)
            target = np.column_stack([base, up])
            surface.coef = np.linalg.lstsq(surface._vandermonde(gx.ravel(), gy.ravel()), target, rcond=None)[0]
            m = 4 * (n - 1) + 1   # validation grid: control points, cell centres and edge midpoints
            vx, vy = np.meshgrid(np.linspace(x0, x1, m), np.linspace(y0, y1, m))
            vb, vu = exact(vx.ravel(), vy.ravel())
            fb, fu = surface.evaluate(vx.ravel(), vy.ravel())
            error = max(float(np.abs(fb - vb).max()), float(np.abs(fu - vu).max()) * SURFACE_HEIGHT_M)
            if error <= tolerance_m:
                surface.max_error_m = error
                return surface
        return None
