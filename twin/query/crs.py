"""Coordinate reference systems of the feature API: OGC URIs <-> pyproj, axis order.

Coordinates are always exchanged in the axis order the CRS authority defines
(OGC API - Features Part 2): EPSG:4326 is latitude, longitude; CRS84 is
longitude, latitude; EPSG:4547 (a Gauss-Kruger CRS) is northing, easting.
Internally everything is x/y (easting, northing), so reordering happens only
at the boundary, in `to_project` / `to_output`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from pyproj import CRS, Transformer

from twin.query.errors import QueryError

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{code}"
_EPSG_RE = re.compile(r"^(?:https?://www\.opengis\.net/def/crs/EPSG/0/|\[?EPSG:(?:0?:)?)(\d{4,6})\]?$", re.I)
_CRS84_RE = re.compile(r"^(?:https?://www\.opengis\.net/def/crs/OGC/1\.3/CRS84|\[?OGC:CRS84\]?|CRS84)$", re.I)
EXTRA = (4326, 3857)   # offered beside CRS84 and the project CRS


@dataclass(frozen=True)
class CrsInfo:
    uri: str
    crs: CRS
    swap: bool        # authority axis order is north-first (lat/lon, northing/easting)
    geographic: bool

    @property
    def precision(self) -> float:
        """Grid to round output coordinates to (about 1 cm)."""
        return 1e-7 if self.geographic else 0.01


@lru_cache(maxsize=64)
def crs_info(uri: str) -> CrsInfo:
    crs = CRS.from_user_input("OGC:CRS84" if uri == CRS84 else uri.replace(EPSG_URI.format(code=""), "EPSG:"))
    first = crs.axis_info[0].direction.lower() if crs.axis_info else "east"
    return CrsInfo(uri=uri, crs=crs, swap=first in ("north", "south"), geographic=crs.is_geographic)


def uri_of(code: str) -> str:
    """Canonical URI of a CRS written as a URI, `EPSG:n`, `[EPSG:n]` or `CRS84`."""
    text = code.strip()
    if _CRS84_RE.match(text):
        return CRS84
    m = _EPSG_RE.match(text)
    if m:
        return EPSG_URI.format(code=int(m.group(1)))
    raise ValueError(text)


def project_uri(project_crs: str) -> str:
    try:
        return uri_of(project_crs)
    except ValueError:
        return project_crs


def supported_uris(project_crs: str) -> list[str]:
    """CRS84 first (the default), then the project CRS and the extras, without repeats."""
    out = [CRS84, project_uri(project_crs)] + [EPSG_URI.format(code=c) for c in EXTRA]
    return list(dict.fromkeys(out))


def resolve(value: str | None, project_crs: str, *, field: str) -> CrsInfo:
    """The CrsInfo for a client parameter (default CRS84); QueryError naming `field` if unsupported."""
    if value is None or value == "":
        return crs_info(CRS84)
    try:
        uri = uri_of(value)
    except ValueError:
        raise QueryError(f"'{value}' is not a CRS URI (use e.g. {CRS84})", field=field) from None
    allowed = supported_uris(project_crs)
    if uri not in allowed:
        raise QueryError(f"CRS {uri} is not supported; use one of {', '.join(allowed)}", field=field)
    return crs_info(uri)


@lru_cache(maxsize=64)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(crs_info(src).crs, crs_info(dst).crs, always_xy=True)


def _xy(coords: np.ndarray, swap: bool) -> np.ndarray:
    return coords[:, ::-1] if swap else coords


def to_output(geoms: np.ndarray, project: CrsInfo, dst: CrsInfo) -> np.ndarray:
    """Project geometries (x/y, as stored) -> geometries in `dst`, in `dst` authority axis order."""
    if dst.uri == project.uri:
        return shapely.transform(geoms, lambda c: c[:, ::-1]) if dst.swap else geoms
    t = _transformer(project.uri, dst.uri)

    def fn(coords: np.ndarray) -> np.ndarray:
        x, y = t.transform(coords[:, 0], coords[:, 1])
        return _xy(np.column_stack([x, y]), dst.swap)

    return shapely.transform(geoms, fn)


def to_project(geoms, src: CrsInfo, project: CrsInfo):
    """Geometries written in `src` authority axis order -> project x/y (as stored)."""
    if src.uri == project.uri:
        return shapely.transform(geoms, lambda c: c[:, ::-1]) if src.swap else geoms
    t = _transformer(src.uri, project.uri)

    def fn(coords: np.ndarray) -> np.ndarray:
        xy = _xy(coords, src.swap)
        x, y = t.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, fn)


def bbox_to_project(bbox: tuple[float, ...], bbox_crs: CrsInfo, project: CrsInfo) -> shapely.Geometry:
    """A bbox given in `bbox_crs` axis order as a (densified) polygon in project x/y."""
    if len(bbox) == 6:
        bbox = (bbox[0], bbox[1], bbox[3], bbox[4])
    a0, a1, b0, b1 = bbox
    minx, miny, maxx, maxy = (a1, a0, b1, b0) if bbox_crs.swap else (a0, a1, b0, b1)
    box = shapely.box(minx, miny, maxx, maxy)
    if bbox_crs.uri == project.uri:
        return box
    box = shapely.segmentize(box, max(maxx - minx, maxy - miny) / 16 or 1.0)
    t = _transformer(bbox_crs.uri, project.uri)
    return shapely.transform(box, lambda c: np.column_stack(t.transform(c[:, 0], c[:, 1])))


def bbox_core(bbox: tuple[float, ...], bbox_crs: CrsInfo, project: CrsInfo,
              area: shapely.Geometry) -> tuple[float, float, float, float] | None:
    """An axis-aligned rectangle in project x/y lying inside `area` (`bbox_to_project` of the same
    bbox), or None: a feature whose envelope lies in it intersects the bbox with no exact test.

    The bbox's corners are transformed and the rectangle is taken between the inner ones (right
    for a slightly rotated quadrilateral), shrunk a hair for the curved edges and then checked
    with GEOS, so the shortcut never changes an answer."""
    if len(bbox) == 6:
        bbox = (bbox[0], bbox[1], bbox[3], bbox[4])
    a0, a1, b0, b1 = bbox
    minx, miny, maxx, maxy = (a1, a0, b1, b0) if bbox_crs.swap else (a0, a1, b0, b1)
    if bbox_crs.uri == project.uri:
        return minx, miny, maxx, maxy
    xs, ys = _transformer(bbox_crs.uri, project.uri).transform([minx, minx, maxx, maxx], [miny, maxy, miny, maxy])
    x0, y0, x1, y1 = max(xs[0], xs[1]), max(ys[0], ys[2]), min(xs[2], xs[3]), min(ys[1], ys[3])
    if not all(map(np.isfinite, (x0, y0, x1, y1))):
        return None
    pad = 1e-6 * max(x1 - x0, y1 - y0)
    core = (x0 + pad, y0 + pad, x1 - pad, y1 - pad)
    if core[0] >= core[2] or core[1] >= core[3] or not shapely.contains(area, shapely.box(*core)):
        return None
    return core


def bounds_from_project(bounds: tuple[float, float, float, float], project: CrsInfo, dst: CrsInfo) -> list[float]:
    """Project x/y bounds -> [minx, miny, maxx, maxy] in `dst`, in `dst` axis order."""
    if dst.uri == project.uri:
        b = list(bounds)
    else:
        b = list(_transformer(project.uri, dst.uri).transform_bounds(*bounds, densify_pts=21))
    return [b[1], b[0], b[3], b[2]] if dst.swap else b
