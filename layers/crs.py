"""Choosing and checking the project CRS."""

from __future__ import annotations

from pyproj import CRS, Transformer
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info
from pyproj.exceptions import CRSError as ProjCRSError

from layers.errors import CRSError


def parse_crs(text: str, *, source: str, field: str = "crs") -> CRS:
    try:
        return CRS.from_user_input(text)
    except ProjCRSError as exc:
        raise CRSError(f"unknown CRS '{text}'", source=source, field=field, detail=str(exc)) from None


def require_metric(crs: CRS, *, source: str, field: str = "crs") -> CRS:
    horizontal = crs.sub_crs_list[0] if crs.is_compound else crs
    if not horizontal.is_projected:
        raise CRSError(f"project CRS {crs.to_string()} is not projected; a metric CRS is required",
                       source=source, field=field)
    units = {ax.unit_name for ax in horizontal.axis_info[:2]}
    if not units <= {"metre", "meter", "m"}:
        raise CRSError(f"project CRS {crs.to_string()} has units {sorted(units)}, not metres",
                       source=source, field=field)
    return horizontal


def utm_crs_for(lon_min: float, lat_min: float, lon_max: float, lat_max: float) -> CRS:
    infos = query_utm_crs_info(datum_name="WGS 84",
                               area_of_interest=AreaOfInterest(lon_min, lat_min, lon_max, lat_max))
    if not infos:
        raise CRSError("no UTM zone covers the city extent", source="city.toml", field="extent")
    return CRS.from_epsg(int(infos[0].code))


def project_crs(configured: str | None, extent_wgs84: tuple[float, float, float, float], *,
                origin: str) -> CRS:
    """The configured CRS if given (must be metric), else the UTM zone of the extent."""
    if configured:
        return require_metric(parse_crs(configured, source=origin), source=origin)
    return utm_crs_for(*extent_wgs84)


def transform_bounds(bounds, src: CRS, dst: CRS) -> tuple[float, float, float, float]:
    if src == dst:
        return tuple(float(v) for v in bounds)  # type: ignore[return-value]
    t = Transformer.from_crs(src, dst, always_xy=True)
    return tuple(float(v) for v in t.transform_bounds(*bounds, densify_pts=21))  # type: ignore[return-value]
