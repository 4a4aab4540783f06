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
