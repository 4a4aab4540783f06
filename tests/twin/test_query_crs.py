"""CRS URIs and axis order, checked against pyproj as the independent reference."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from twin.query import crs as crsmod
from twin.query.errors import QueryError

P = crsmod.crs_info(crsmod.EPSG_URI.format(code=4547))
LONLAT = np.array([[113.3200, 23.1190], [113.3301, 23.1254], [113.3105, 23.1011]])


def _authority(dst: str, lonlat: np.ndarray) -> np.ndarray:
    """pyproj with the authority axis order (always_xy=False) from WGS 84 lat/lon."""
    t = Transformer.from_crs("EPSG:4326", dst, always_xy=False)
    a, b = t.transform(lonlat[:, 1], lonlat[:, 0])
    return np.column_stack([a, b])


@pytest.mark.parametrize("code", ["EPSG:4326", "EPSG:4547", "EPSG:3857", "OGC:CRS84"])
def test_to_output_uses_authority_axis_order(code):
    xy = Transformer.from_crs("EPSG:4326", "EPSG:4547", always_xy=True).transform(LONLAT[:, 0], LONLAT[:, 1])
    pts = shapely.points(np.column_stack(xy))
    out = crsmod.crs_info(crsmod.uri_of(code.replace("OGC:", "")))
    got = shapely.get_coordinates(crsmod.to_output(pts, P, out))
    np.testing.assert_allclose(got, _authority(code, LONLAT), rtol=0, atol=1e-6 if out.geographic else 1e-3)


def test_4326_is_lat_lon_and_crs84_lon_lat():
    assert crsmod.crs_info(crsmod.EPSG_URI.format(code=4326)).swap
    assert not crsmod.crs_info(crsmod.CRS84).swap
    assert P.swap          # EPSG:4547 is northing, easting


@pytest.mark.parametrize("code", ["EPSG:4326", "EPSG:4547", "EPSG:3857", "CRS84"])
def test_to_project_round_trip(code):
    src = crsmod.crs_info(crsmod.uri_of(code))
    written = shapely.points(_authority("OGC:CRS84" if code == "CRS84" else code, LONLAT))
    back = shapely.get_coordinates(crsmod.to_project(written, src, P))
    ref = np.column_stack(Transformer.from_crs("EPSG:4326", "EPSG:4547", always_xy=True)
                          .transform(LONLAT[:, 0], LONLAT[:, 1]))
    np.testing.assert_allclose(back, ref, atol=1e-3)


def test_bbox_in_4326_is_lat_lon():
    lat_lon = (23.10, 113.31, 23.12, 113.33)
    poly = crsmod.bbox_to_project(lat_lon, crsmod.crs_info(crsmod.EPSG_URI.format(code=4326)), P)
    t = Transformer.from_crs("EPSG:4326", "EPSG:4547", always_xy=True)
    inside = shapely.Point(*t.transform(113.32, 23.11))
    outside = shapely.Point(*t.transform(113.35, 23.11))
    assert poly.contains(inside) and not poly.contains(outside)


@pytest.mark.parametrize("text,uri", [
    ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", crsmod.CRS84), ("CRS84", crsmod.CRS84),
    ("EPSG:4326", "http://www.opengis.net/def/crs/EPSG/0/4326"), ("[EPSG:3857]", "http://www.opengis.net/def/crs/EPSG/0/3857"),
    ("http://www.opengis.net/def/crs/EPSG/0/4547", "http://www.opengis.net/def/crs/EPSG/0/4547")])
def test_uri_forms(text, uri):
    assert crsmod.uri_of(text) == uri


@pytest.mark.parametrize("bad", ["EPSG:2000", "foo", "http://example.com/crs", "EPSG:", "4326"])
def test_unsupported_crs_names_the_parameter(bad):
    with pytest.raises(QueryError) as err:
        crsmod.resolve(bad, "EPSG:4547", field="bbox-crs")
    assert err.value.field == "bbox-crs"
