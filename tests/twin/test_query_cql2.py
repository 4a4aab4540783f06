"""CQL2 filters on the sample twin; every expected set is computed with plain geopandas/shapely."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

from twin.query import LayerIndex
from twin.query import crs as crsmod
from twin.query.cql2 import parse
from twin.query.errors import QueryError
from twin.query.features import ItemsQuery, matching_rows

TO_XY = Transformer.from_crs("EPSG:4326", "EPSG:4547", always_xy=True)
POLY_LL = [(113.315, 23.115), (113.325, 23.115), (113.325, 23.125), (113.315, 23.125), (113.315, 23.115)]
WKT = "POLYGON((" + ",".join(f"{x} {y}" for x, y in POLY_LL) + "))"


@pytest.fixture(scope="module")
def index(tianhe_twin):
    return LayerIndex(tianhe_twin.store)


@pytest.fixture(scope="module")
def gdf(tianhe_twin):
    return tianhe_twin.store.read_layer("buildings")


def ids_of(index, text, lang="cql2-text", layer="buildings", filter_crs=crsmod.CRS84):
    q = ItemsQuery(limit=10_000, filter=parse(text, lang), filter_crs=crsmod.crs_info(filter_crs))
    rows = matching_rows(index, index.layer(layer), q)
    return set(index.layer(layer).ids[rows])


def poly_xy():
    return shapely.Polygon([TO_XY.transform(x, y) for x, y in POLY_LL])


CASES = [
    ("height > 30", lambda g: g.height > 30),
    ("height >= 30 AND use = 'office'", lambda g: (g.height >= 30) & (g.use == "office")),
    ("use <> 'other'", lambda g: g.use.notna() & (g.use != "other")),
    ("height < 10 OR levels > 20", lambda g: (g.height < 10) | (g.levels > 20)),
    ("NOT (height > 30)", lambda g: g.height.notna() & ~(g.height > 30)),
    ("height BETWEEN 10 AND 50", lambda g: g.height.between(10, 50)),
    ("height NOT BETWEEN 10 AND 50", lambda g: g.height.notna() & ~g.height.between(10, 50)),
    ("use IN ('office', 'school')", lambda g: g.use.isin(["office", "school"])),
    ("use NOT IN ('office', 'school')", lambda g: g.use.notna() & ~g.use.isin(["office", "school"])),
    ("levels IS NULL", lambda g: g.levels.isna()),
    ("name IS NOT NULL", lambda g: g.name.notna()),
    ("name LIKE '广州%'", lambda g: g.name.fillna("").str.startswith("广州") & g.name.notna()),
    ("height_rule LIKE 'lev_ls'", lambda g: g.height_rule == "levels"),
    ("underground = TRUE", lambda g: g.underground),
    ("id = 'buildings-044916b207366436'", lambda g: g.id == "buildings-044916b207366436"),
    ("roof > ground", lambda g: g.roof > g.ground),
]


@pytest.mark.parametrize("text,expected", CASES, ids=[c[0] for c in CASES])
def test_text_filters_match_geopandas(index, gdf, text, expected):
    want = set(gdf.id[expected(gdf).fillna(False).astype(bool)])
    assert ids_of(index, text) == want


def test_spatial_functions_match_shapely(index, gdf):
    area = poly_xy()
    assert ids_of(index, f"S_INTERSECTS(geometry, {WKT})") == set(gdf.id[gdf.intersects(area)])
    assert ids_of(index, f"S_WITHIN(geometry, {WKT})") == set(gdf.id[gdf.within(area)])
    assert ids_of(index, f"S_DISJOINT(geometry, {WKT})") == set(gdf.id[~gdf.intersects(area)])
    assert ids_of(index, f"S_CONTAINS({WKT}, geometry)") == set(gdf.id[gdf.within(area)])
    assert len(ids_of(index, f"S_WITHIN(geometry, {WKT})")) > 0
    pt = shapely.Point(TO_XY.transform(113.32, 23.119))
    want = set(gdf.id[gdf.distance(pt) <= 300])
    assert ids_of(index, "S_DWITHIN(geometry, POINT(113.32 23.119), 300)") == want
    assert ids_of(index, "S_DWITHIN(geometry, POINT(113.32 23.119), 0.3, kilometres)") == want
    box = shapely.box(*TO_XY.transform(113.315, 23.115), *TO_XY.transform(113.325, 23.125))
    assert ids_of(index, "S_INTERSECTS(geometry, BBOX(113.315, 23.115, 113.325, 23.125))") == \
        set(gdf.id[gdf.intersects(box)])


def test_filter_crs_4326_reads_lat_lon(index, gdf):
    wkt = "POLYGON((" + ",".join(f"{y} {x}" for x, y in POLY_LL) + "))"
    got = ids_of(index, f"S_INTERSECTS(geometry, {wkt})", filter_crs="http://www.opengis.net/def/crs/EPSG/0/4326")
    assert got == set(gdf.id[gdf.intersects(poly_xy())])


def test_json_equals_text(index, gdf):
    geo = {"type": "Polygon", "coordinates": [[list(p) for p in POLY_LL]]}
    js = {"op": "and", "args": [
        {"op": ">", "args": [{"property": "height"}, 20]},
        {"op": "s_intersects", "args": [{"property": "geometry"}, geo]},
        {"op": "not", "args": [{"op": "isNull", "args": [{"property": "name"}]}]},
        {"op": "in", "args": [{"property": "use"}, ["office", "other", "residential"]]},
        {"op": "like", "args": [{"property": "height_rule"}, "%"]},
        {"op": "between", "args": [{"property": "levels"}, 0, 200]}]}
    expected = gdf[(gdf.height > 20) & gdf.intersects(poly_xy()) & gdf.name.notna()
                   & gdf.use.isin(["office", "other", "residential"]) & gdf.height_rule.notna()
                   & gdf.levels.between(0, 200)]
    assert ids_of(index, json.dumps(js), "cql2-json") == set(expected.id)
    dw = {"op": "s_dwithin", "args": [{"property": "geometry"}, {"type": "Point", "coordinates": [113.32, 23.119]}, 150]}
    pt = shapely.Point(TO_XY.transform(113.32, 23.119))
    assert ids_of(index, json.dumps(dw), "cql2-json") == set(gdf.id[gdf.distance(pt) <= 150])


def test_timestamps_on_a_datetime_layer():
    from twin.manifest import LayerRecord
    from twin.query.cql2_eval import evaluate
    from twin.query.layer import LayerData
    import geopandas as gpd

    when = pd.to_datetime(["2024-01-01T10:00:00Z", "2024-06-01T00:00:00Z", None], utc=True)
    frame = gpd.GeoDataFrame({"id": ["a", "b", "c"], "observed_at": when},
                             geometry=shapely.points([[0, 0], [1, 1], [2, 2]]), crs="EPSG:4547")
    layer = LayerData.from_frame("events", LayerRecord(kind="events", classification="public", count=3), frame)
    p = crsmod.crs_info("http://www.opengis.net/def/crs/EPSG/0/4547")
    rows = np.arange(3)
    mask = evaluate(parse("observed_at > TIMESTAMP('2024-03-01T00:00:00Z')"), layer, rows, p, p)
    assert list(layer.ids[mask]) == ["b"]
    mask = evaluate(parse("observed_at < DATE('2024-02-01') OR observed_at IS NULL"), layer, rows, p, p)
    assert list(layer.ids[mask]) == ["a", "c"]


BAD = [
    "height >", "height > 'ten'", "nosuch = 1", "use LIKE 5", "S_INTERSECTS(geometry, POLYGON((0 0, 1)))",
    "S_DWITHIN(geometry, POINT(0 0), -1)", "S_DWITHIN(geometry, POINT(0 0), 1, furlongs)", "height IN ('a')",
    "(height > 1", "geometry = 1", "S_INTERSECTS(height, POINT(0 0))", "underground > TRUE",
    "height = DATE('2020-13-45')", "''", "   ",
]


@pytest.mark.parametrize("text", BAD)
def test_bad_text_filters_raise_query_error(index, text):
    with pytest.raises(QueryError) as err:
        ids_of(index, text)
    assert err.value.field == "filter"


@pytest.mark.parametrize("payload", ['{"op": "=", "args": [1]}', "[1,2]", "{bad json", '{"op": "nope", "args": []}',
                                     '{"op": "and", "args": [true]}', '{"op": "in", "args": [{"property": "use"}, 3]}',
                                     '{"op": "s_intersects", "args": [{"property": "geometry"}, {"type": "Polygon"}]}'])
def test_bad_json_filters_raise_query_error(index, payload):
    with pytest.raises(QueryError):
        ids_of(index, payload, "cql2-json")
