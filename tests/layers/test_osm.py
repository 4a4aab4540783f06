"""OsmPbfDriver against GDAL's own OSM driver (read through pyogrio) on pyrosm's test extract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from pyproj import CRS, Transformer

from layers.base import IngestContext
from layers.errors import SourceCorrupt, SourceNotFound
from layers.osm import OsmPbfDriver, building_layer, parse_height, parse_oneway
from twin.config import parse_city

pyrosm = pytest.importorskip("pyrosm")

METRIC = "EPSG:3067"  # ETRS-TM35FIN, the extract is in Finland
EXTENT = (26.85, 60.45, 27.05, 60.6)
# Highway values pyrosm's "all" network leaves out (OSMnx 'all'), so GDAL's lines are cut alike.
NOT_NETWORK = {"abandoned", "construction", "no", "planned", "platform", "proposed", "raceway",
               "razed", "rest_area", "services"}


@pytest.fixture(scope="module")
def pbf() -> Path:
    return Path(pyrosm.get_data("test_pbf"))  # ships inside the wheel: no download


def _city(pbf: Path, **filter_):
    return parse_city({
        "name": "osm-test", "extent": list(EXTENT),
        "layers": {"x": {"kind": "buildings", "sources": [{
            "path": str(pbf), "licence": "ODbL-1.0", "attribution": "OpenStreetMap contributors",
            "filter": filter_}]}},
    }, base_dir=pbf.parent)


def _read(pbf: Path, kind: str, **filter_):
    city = _city(pbf, **filter_)
    extent = Transformer.from_crs(4326, METRIC, always_xy=True).transform_bounds(*EXTENT)
    ctx = IngestContext(city=city, crs=CRS.from_user_input(METRIC), extent=extent)
    return OsmPbfDriver().read(pbf, city.layers["x"].sources[0], kind, ctx).frame


@pytest.fixture(scope="module")
def buildings(pbf):
    return _read(pbf, "buildings")


@pytest.fixture(scope="module")
def roads(pbf):
    return _read(pbf, "roads")


@pytest.fixture(scope="module")
def gdal_polygons(pbf):
    return pyogrio.read_dataframe(pbf, layer="multipolygons", on_invalid="ignore")


@pytest.fixture(scope="module")
def gdal_lines(pbf):
    return pyogrio.read_dataframe(pbf, layer="lines")


def _gdal_buildings(gdal_polygons, building: str | None = None):
    b = gdal_polygons[gdal_polygons["building"].notna()]
    if building is not None:
        b = b[b["building"] == building]
    # Ways whose nodes were cut off by the extract collapse to rings with no area; GDAL
    # emits some of them (or no geometry) and the driver drops them, so compare real ones.
    real = b.geometry.notna() & (shapely.area(b.geometry.values) > 0)
    ways = b["osm_way_id"].notna()
    return (set(b.loc[ways & real, "osm_way_id"].astype(np.int64)),
            set(b.loc[ways & ~real, "osm_way_id"].astype(np.int64)),
            set(b.loc[b["osm_id"].notna(), "osm_id"].astype(np.int64)))


def _ids(frame, prefix: str) -> set[int]:
    sid = frame["source_id"]
    return set(sid[sid.str.startswith(prefix)].str[1:].astype(np.int64))


def test_building_ways_agree_with_gdal(buildings, gdal_polygons):
    real, degenerate, relations = _gdal_buildings(gdal_polygons)
    ours = _ids(buildings, "w")
    assert ours == real
    assert not (ours & degenerate)
    assert relations <= _ids(buildings, "r")  # GDAL skips incomplete relations, never adds


def test_building_columns(buildings, gdal_polygons):
    assert buildings.crs == CRS.from_epsg(4326)
    assert buildings.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).all()
    b = gdal_polygons[gdal_polygons["osm_way_id"].notna() & gdal_polygons["building"].notna()]
    gdal_use = dict(zip("w" + b["osm_way_id"].astype(str), b["building"]))
    assert (buildings["use_raw"] == buildings["source_id"].map(gdal_use)).all()
    gdal_name = dict(zip("w" + b["osm_way_id"].astype(str), b["name"]))
    assert buildings["name"].fillna("").eq(buildings["source_id"].map(gdal_name).fillna("")).all()
    assert buildings["attrs"].map(json.loads).map(lambda d: "building" not in d).all()


def test_tag_filter_matches_gdal_selection(pbf, gdal_polygons):
    frame = _read(pbf, "buildings", tags={"building": "residential"})
    real, _, _ = _gdal_buildings(gdal_polygons, "residential")
    assert len(real) > 10
    assert _ids(frame, "w") == real


def test_exclude_filter_and_bbox(pbf, buildings):
    box = (26.94, 60.52, 26.96, 60.53)
    frame = _read(pbf, "buildings", bbox=list(box), exclude_tags={"building": ["yes"]})
    assert (frame["use_raw"] != "yes").all()
    inside = buildings[shapely.intersects(buildings.geometry.values, shapely.box(*box))
                       & (buildings["use_raw"] != "yes")]
    assert 0 < len(frame) < len(buildings)
    assert set(frame["source_id"]) == set(inside["source_id"])


def test_bbox_in_other_crs(pbf, buildings):
    box4326 = (26.94, 60.52, 26.96, 60.53)
    box = Transformer.from_crs(4326, METRIC, always_xy=True).transform_bounds(*box4326)
    frame = _read(pbf, "buildings", bbox=list(box), bbox_crs=METRIC)
    near = buildings[shapely.intersects(buildings.geometry.values, shapely.box(*box4326))]
    assert abs(len(frame) - len(near)) <= 0.05 * len(near)  # the metric box is slightly larger


def test_road_graph_endpoints_are_osm_vertices(roads, gdal_lines):
    hw = gdal_lines[gdal_lines["highway"].notna()]
    vertices = {tuple(xy) for xy in np.round(shapely.get_coordinates(hw.geometry.values), 7)}
    first = np.round(shapely.get_coordinates(shapely.get_point(roads.geometry.values, 0)), 7)
    last = np.round(shapely.get_coordinates(shapely.get_point(roads.geometry.values, -1)), 7)
    assert all(tuple(xy) in vertices for xy in first)
    assert all(tuple(xy) in vertices for xy in last)
    # one node id, one position
    ends = pd.DataFrame({"id": np.concatenate([roads["u"], roads["v"]]),
                         "x": np.concatenate([first[:, 0], last[:, 0]]),
                         "y": np.concatenate([first[:, 1], last[:, 1]])})
    assert (ends.groupby("id")[["x", "y"]].nunique() == 1).all().all()


def test_road_nodes_follow_geometry(roads):
    nodes = roads["nodes"].map(json.loads)
    assert (nodes.str[0] == roads["u"]).all() and (nodes.str[-1] == roads["v"]).all()
    assert (nodes.map(len) == shapely.get_num_coordinates(roads.geometry.values)).all()
    assert nodes.map(len).max() > 2  # segments of a way are joined between junctions


def test_road_length_matches_gdal(roads, gdal_lines):
    hw = gdal_lines[gdal_lines["highway"].notna() & ~gdal_lines["highway"].isin(NOT_NETWORK)]
    hw = hw[~hw["other_tags"].fillna("").str.contains('"area"=>"yes"', regex=False)]
    expected = hw.to_crs(METRIC).geometry.length.sum()
    assert roads["length"].sum() == pytest.approx(expected, rel=0.015)
    ours_metric = roads.to_crs(METRIC).geometry.length.to_numpy()
    np.testing.assert_allclose(roads["length"].to_numpy(), ours_metric, rtol=0.01, atol=0.05)


def test_road_classes_match_gdal(roads, gdal_lines):
    hw = gdal_lines[gdal_lines["highway"].notna()]
    by_way = dict(zip("w" + hw["osm_id"].astype(str), hw["highway"]))
    assert (roads["source_id"].map(by_way) == roads["highway"]).all()


def test_motorways_one_way(roads):
    assert roads.loc[roads["highway"] == "motorway", "oneway"].all()
    assert roads["oneway"].dtype == bool and roads["bridge"].dtype == bool


@pytest.mark.parametrize("oneway, highway, junction, expected, reversed_", [
    ("yes", "residential", None, True, False),
    ("true", "residential", None, True, False),
    ("1", "residential", None, True, False),
    ("-1", "residential", None, True, True),
    ("no", "residential", None, False, False),
    (None, "residential", None, False, False),
    (None, "motorway", None, True, False),
    ("no", "motorway", None, False, False),
    (None, "primary", "roundabout", True, False),
    ("reversible", "primary", None, False, False),
])
def test_parse_oneway(oneway, highway, junction, expected, reversed_):
    one, rev = parse_oneway(pd.Series([oneway], dtype=object), pd.Series([highway], dtype=object),
                            pd.Series([junction], dtype=object))
    assert bool(one[0]) is expected and bool(rev[0]) is reversed_


def test_parse_height():
    got = parse_height(pd.Series(["12 m", "12", "12.5m", "7,5", "40 ft", "tall", None, "0"], dtype=object))
    np.testing.assert_allclose(got, [12, 12, 12.5, 7.5, 40 * 0.3048, np.nan, np.nan, np.nan])


def test_underground_layer():
    tags = [{"layer": "-2"}, {"location": "underground"}, {"building": "underground"},
            {"layer": "1"}, {}, {"layer": "1", "location": "underground"}]
    assert building_layer(tags).tolist() == [-2, -1, -1, 1, 0, -1]


def test_pois_agree_with_gdal_points(pbf):
    pois = _read(pbf, "pois")
    assert pois.geometry.geom_type.eq("Point").all()
    pts = pyogrio.read_dataframe(pbf, layer="points")
    amenity = pts["other_tags"].fillna("").str.extract(r'"amenity"=>"([^"]*)"')[0]
    expected = dict(zip("n" + pts.loc[amenity.notna(), "osm_id"].astype(str), amenity.dropna()))
    assert expected
    got = dict(zip(pois["source_id"], pois["kind"]))
    assert all(got.get(k) == v for k, v in expected.items())


def test_water_kinds(pbf, gdal_lines):
    water = _read(pbf, "water")
    ways = gdal_lines[gdal_lines["waterway"].notna()]
    expected = dict(zip("w" + ways["osm_id"].astype(str), ways["waterway"]))
    lines = water[water["source_id"].isin(list(expected))]
    assert len(lines) == len(expected) > 0
    assert (lines["kind"] == lines["source_id"].map(expected)).all()


def test_missing_file(tmp_path, pbf):
    with pytest.raises(SourceNotFound, match="nope.osm.pbf"):
        _read(tmp_path / "nope.osm.pbf", "buildings")


@pytest.mark.parametrize("make", [
    lambda data: data[: len(data) // 2],   # truncated
    lambda data: b"<osm>not a pbf</osm>",  # another format
])
def test_corrupt_file(tmp_path, pbf, make):
    bad = tmp_path / "bad.osm.pbf"
    bad.write_bytes(make(pbf.read_bytes()))
    with pytest.raises(SourceCorrupt, match="bad.osm.pbf") as info:
        _read(bad, "buildings")
    assert info.value.detail
