"""OGC API - Features over the sample twin: documents, parameters, CRS, filters, access and 400s."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from tests.api.conftest import INTERNAL, RESTRICTED

ITEMS = "/ogc/collections/buildings/items"
E4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"
E4547 = "http://www.opengis.net/def/crs/EPSG/0/4547"
E3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


@pytest.fixture(scope="module")
def gdf(store):
    return store.read_layer("buildings")


def test_landing_conformance_and_openapi(client, app):
    doc = client.get("/ogc").json()
    rels = {l["rel"] for l in doc["links"]}
    assert {"self", "alternate", "service-desc", "conformance", "data"} <= rels
    assert client.get("/ogc/").status_code == 200
    conf = client.get("/ogc/conformance").json()["conformsTo"]
    for c in ("ogcapi-features-1/1.0/conf/core", "ogcapi-features-1/1.0/conf/geojson", "ogcapi-features-2/1.0/conf/crs",
              "ogcapi-features-3/1.0/conf/filter", "ogcapi-features-3/1.0/conf/features-filter",
              "cql2/1.0/conf/cql2-text", "cql2/1.0/conf/cql2-json", "cql2/1.0/conf/basic-cql2"):
        assert any(x.endswith(c) for x in conf), c
    spec = json.dumps(app.openapi())
    assert not re.findall(r'"\$ref":\s*"https?:', spec)
    for path in ("/ogc/collections/{collection_id}/items", "/ogc/collections/{collection_id}/queryables",
                 "/api/spatial/nearest", "/api/buildings/{building_id}"):
        assert path in app.openapi()["paths"]
    params = {p["name"] for p in app.openapi()["paths"]["/ogc/collections/{collection_id}/items"]["get"]["parameters"]}
    assert {"bbox", "bbox-crs", "crs", "datetime", "filter", "filter-lang", "filter-crs", "limit", "offset"} <= params


def test_collections_only_readable(client):
    names = lambda h=None: {c["id"] for c in client.get("/ogc/collections", headers=h).json()["collections"]}
    assert names() == {"buildings", "roads"}
    assert names(INTERNAL) == {"buildings", "roads", "pois"}
    assert names(RESTRICTED) == {"buildings", "roads", "pois", "bim"}


def test_collection_document(client, store):
    doc = client.get("/ogc/collections/buildings").json()
    assert doc["storageCrs"] == E4547
    assert set(doc["crs"]) == {CRS84, E4326, E4547, E3857}
    bbox = doc["extent"]["spatial"]["bbox"][0]
    ref = Transformer.from_crs("EPSG:4547", "OGC:CRS84", always_xy=True).transform_bounds(
        *store.manifest().layers["buildings"].bbox, densify_pts=21)
    np.testing.assert_allclose(bbox, ref, atol=1e-9)


@pytest.mark.parametrize("path", ["/ogc/collections/bim", "/ogc/collections/bim/items",
                                  "/ogc/collections/bim/queryables", "/ogc/collections/pois/items"])
def test_access(client, path):
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"X-API-Key": "internal-key"}).status_code == (403 if "bim" in path else 200)
    assert client.get(path, headers=RESTRICTED).status_code == 200
    assert client.get(path, headers={"X-API-Key": "wrong"}).status_code == 401


def test_paging_links_and_counts(client, gdf):
    r = client.get(ITEMS, params={"limit": 50, "offset": 100})
    assert r.headers["content-type"] == "application/geo+json"
    fc = r.json()
    assert fc["numberMatched"] == len(gdf) and fc["numberReturned"] == 50
    assert [f["id"] for f in fc["features"]] == list(gdf.id[100:150])
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fc["timeStamp"])
    rels = {l["rel"]: l["href"] for l in fc["links"] if l["type"] == "application/geo+json"}
    assert "offset=150" in rels["next"] and "offset=50" in rels["prev"]
    last = client.get(ITEMS, params={"limit": 50, "offset": 300}).json()
    assert last["numberReturned"] == len(gdf) - 300 and not any(l["rel"] == "next" for l in last["links"])


def test_limit_default_and_cap(client):
    assert client.get(ITEMS).json()["numberReturned"] == 10          # default_page_size
    assert client.get(ITEMS, params={"limit": 100000}).json()["numberReturned"] == 200   # capped


def test_bbox_crs84_and_4326_agree_with_geopandas(client, gdf):
    ll = (113.315, 23.115, 113.325, 23.125)
    t = Transformer.from_crs("OGC:CRS84", "EPSG:4547", always_xy=True)
    box = shapely.segmentize(shapely.box(*ll), 0.0005)
    want = set(gdf.id[gdf.intersects(shapely.transform(box, lambda c: np.column_stack(t.transform(c[:, 0], c[:, 1]))))])
    got84 = {f["id"] for f in client.get(ITEMS, params={"bbox": ",".join(map(str, ll)), "limit": 200}).json()["features"]}
    latlon = f"{ll[1]},{ll[0]},{ll[3]},{ll[2]}"
    got4326 = {f["id"] for f in client.get(ITEMS, params={"bbox": latlon, "bbox-crs": E4326, "limit": 200}).json()["features"]}
    assert got84 == want == got4326 and want


def test_bbox_in_project_crs_uses_northing_easting(client, gdf):
    minx, miny, maxx, maxy = 429800, 2556500, 430400, 2557200
    want = set(gdf.id[gdf.intersects(shapely.box(minx, miny, maxx, maxy))])
    got = client.get(ITEMS, params={"bbox": f"{miny},{minx},{maxy},{maxx}", "bbox-crs": E4547, "limit": 200}).json()
    assert {f["id"] for f in got["features"]} == want and want


@pytest.mark.parametrize("uri,code", [(E4326, "EPSG:4326"), (E3857, "EPSG:3857"), (E4547, "EPSG:4547"), (CRS84, "OGC:CRS84")])
def test_output_crs_axis_order(client, gdf, uri, code):
    fid = gdf.id.iloc[0]
    r = client.get(f"{ITEMS}/{fid}", params={"crs": uri})
    assert r.headers["content-crs"] == f"<{uri}>"
    got = np.array(r.json()["geometry"]["coordinates"][0])
    xy = shapely.get_coordinates(gdf.geometry.iloc[0].exterior)
    ref = np.column_stack(Transformer.from_crs("EPSG:4547", code, always_xy=False).transform(xy[:, 1], xy[:, 0]))
    np.testing.assert_allclose(got, ref, atol=1e-6 if code in ("EPSG:4326", "OGC:CRS84") else 0.01)


def test_filter_text_and_json(client, gdf):
    want = set(gdf.id[(gdf.height > 30) & (gdf.use == "office")])
    got = client.get(ITEMS, params={"filter": "height > 30 AND use = 'office'", "limit": 200}).json()
    assert {f["id"] for f in got["features"]} == want and got["numberMatched"] == len(want)
    js = json.dumps({"op": "and", "args": [{"op": ">", "args": [{"property": "height"}, 30]},
                                           {"op": "=", "args": [{"property": "use"}, "office"]}]})
    got = client.get(ITEMS, params={"filter": js, "filter-lang": "cql2-json", "limit": 200}).json()
    assert {f["id"] for f in got["features"]} == want


def test_filter_crs_4326(client, gdf):
    pt = shapely.Point(Transformer.from_crs("EPSG:4326", "EPSG:4547", always_xy=True).transform(113.32, 23.119))
    want = set(gdf.id[gdf.distance(pt) <= 200])
    got = client.get(ITEMS, params={"filter": "S_DWITHIN(geometry, POINT(23.119 113.32), 200)", "filter-crs": E4326,
                                    "limit": 200}).json()
    assert {f["id"] for f in got["features"]} == want and want


def test_properties_and_datetime(client, gdf):
    fc = client.get(ITEMS, params={"properties": "height,name", "limit": 3}).json()
    assert all(set(f["properties"]) == {"height", "name"} for f in fc["features"])
    # buildings have no temporal property: a valid datetime is accepted and ignored
    for dt in ("2024-01-01T00:00:00Z", "2020-01-01/..", "../2030-12-31", "2021-05-05"):
        assert client.get(ITEMS, params={"datetime": dt}).json()["numberMatched"] == len(gdf)


def test_queryables(client, gdf):
    r = client.get("/ogc/collections/buildings/queryables")
    assert r.headers["content-type"].startswith("application/schema+json")
    q = r.json()
    assert q["type"] == "object" and "$ref" not in json.dumps(q)
    assert q["properties"]["height"]["type"] == "number" and q["properties"]["name"]["type"] == "string"
    assert q["properties"]["underground"]["type"] == "boolean" and "geometry" in q["properties"]
    assert set(q["properties"]) == set(gdf.columns)


def test_html_views(client):
    for path in ("/ogc", "/ogc/collections", "/ogc/collections/buildings", f"{ITEMS}?limit=5", "/ogc/conformance"):
        r = client.get(path, headers={"Accept": "text/html"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
    r = client.get(ITEMS, params={"f": "html", "limit": 5})
    assert "<svg" in r.text and "<table>" in r.text


def test_item_and_missing(client, gdf):
    fid = gdf.id.iloc[5]
    f = client.get(f"{ITEMS}/{fid}").json()
    assert f["id"] == fid and f["properties"]["height"] == pytest.approx(gdf.height.iloc[5])
    assert client.get(f"{ITEMS}/nope").status_code == 404
    assert client.get("/ogc/collections/nope/items").status_code == 404


BAD = [
    ("foo", "1"), ("limit", "0"), ("limit", "-3"), ("limit", "ten"), ("limit", "1.5"), ("offset", "-1"), ("offset", "x"),
    ("bbox", "1,2,3"), ("bbox", "a,b,c,d"), ("bbox", "3,2,1,4"), ("bbox", "1,2,3,4,5"), ("bbox", "nan,1,2,3"),
    ("bbox", ""), ("bbox-crs", "EPSG:9999"), ("bbox-crs", "nonsense"), ("crs", "EPSG:27700"), ("crs", "x"),
    ("datetime", "yesterday"), ("datetime", "2020-13-01"), ("datetime", "../.."), ("datetime", "2021-01-01/2020-01-01"),
    ("datetime", "a/b/c"), ("filter", "height >"), ("filter", "nosuch = 3"), ("filter", "height = 'x'"),
    ("filter-lang", "ecql"), ("filter-crs", "EPSG:1"), ("properties", "nosuch"), ("f", "xml"),
    ("filter", "S_INTERSECTS(geometry, POLYGON((1 2)))"),
]


@pytest.mark.parametrize("name,value", BAD, ids=[f"{n}={v}" for n, v in BAD])
def test_bad_parameters_are_400_naming_the_parameter(client, name, value):
    params = {name: value}
    if name == "filter-lang":
        params["filter"] = "height > 1"
    r = client.get(ITEMS, params=params)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == name


def test_bad_parameters_on_other_routes(client):
    for path in ("/ogc", "/ogc/collections", "/ogc/conformance", "/ogc/collections/buildings",
                 "/ogc/collections/buildings/queryables"):
        assert client.get(path, params={"bogus": 1}).status_code == 400
    assert client.get(f"{ITEMS}?limit=1&limit=2").json()["field"] == "limit"
    r = client.get(f"{ITEMS}/x", params={"bbox": "1,2,3,4"})
    assert r.status_code == 400 and r.json()["field"] == "bbox"


# -- the /items hot path (async, no FastAPI validation) and the bbox shortcut ------------------
def _without_timestamp(fc: dict) -> dict:
    return {k: v for k, v in fc.items() if k != "timeStamp"}


def test_items_cold_and_warm_paths_agree(twin_dir):
    """The first request loads the layer in the threadpool, later ones answer on the event loop:
    same documents, same 400s."""
    from fastapi.testclient import TestClient

    from tests.api.conftest import compose

    params = {"bbox": "113.31,23.11,113.33,23.13", "limit": 7, "offset": 3}
    with TestClient(compose(twin_dir, max_page_size=200, default_page_size=10)) as c:
        cold = c.get(ITEMS, params=params)
        index = c.app.state.layer_index
        assert index.loaded("buildings") is not None and index.loaded("buildings").serialised(CRS84)
        warm = c.get(ITEMS, params=params)
        assert cold.status_code == warm.status_code == 200
        assert warm.headers["content-type"] == "application/geo+json"
        assert warm.headers["content-crs"] == f"<{CRS84}>"
        assert _without_timestamp(cold.json()) == _without_timestamp(warm.json())
        for bad in ({"bogus": "1"}, {"limit": "x"}, {"bbox": "1,2,3"}, {"f": "xml"}, {"crs": "EPSG:1"}):
            r = c.get(ITEMS, params=bad)
            assert r.status_code == 400 and r.json()["field"] == next(iter(bad)), (bad, r.text)
        assert c.get("/ogc/collections/nosuch/items").status_code == 404
        assert c.get("/ogc/collections/pois/items").status_code == 401
        assert c.get(ITEMS, headers={"X-API-Key": "wrong"}).status_code == 401
        html_page = c.get(ITEMS, params={"f": "html", "limit": 2})
        assert html_page.status_code == 200 and html_page.headers["content-type"].startswith("text/html")


def test_items_parameters_documented_in_openapi(app):
    params = {p["name"]: p for p in app.openapi()["paths"]["/ogc/collections/{collection_id}/items"]["get"]
              ["parameters"]}
    assert params["collection_id"]["in"] == "path"
    assert params["limit"]["schema"]["type"] == "integer" and params["f"]["schema"]["enum"] == ["json", "html"]
    assert all(p["in"] == "query" for n, p in params.items() if n != "collection_id")


@pytest.mark.parametrize("uri", [CRS84, E4326, E3857, E4547])
def test_bbox_shortcut_matches_exact_intersects(store, uri):
    """Features inside the bbox's inner rectangle skip the GEOS test; the answer must not change."""
    from twin.query import LayerIndex
    from twin.query import crs as crsmod

    index = LayerIndex(store)
    layer = index.layer("buildings")
    out = crsmod.crs_info(uri)
    x0, y0, x1, y1 = store.manifest().layers["buildings"].bbox
    rng = np.random.default_rng(7)
    for _ in range(20):
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        half = rng.uniform(20, 400)
        bbox = tuple(crsmod.bounds_from_project((cx - half, cy - half, cx + half, cy + half), index.project, out))
        area = crsmod.bbox_to_project(bbox, out, index.project)
        core = crsmod.bbox_core(bbox, out, index.project, area)
        assert core is not None
        assert shapely.contains(area, shapely.box(*core))
        want = np.sort(layer.tree.query(area, predicate="intersects"))
        np.testing.assert_array_equal(layer.intersecting(area, core), want)


def test_app_from_env_warms_layers(twin_dir, monkeypatch):
    import gc

    from api.app import app_from_env

    monkeypatch.setattr(gc, "freeze", lambda: None)      # keep the test session's GC as it is
    monkeypatch.setenv("TWIN_TWIN_DIR", str(twin_dir))
    monkeypatch.setenv("TWIN_WARM", "buildings")
    app = app_from_env()
    layer = app.state.layer_index.loaded("buildings")
    assert layer is not None and layer.serialised(CRS84)
    assert app.state.layer_index.loaded("roads") is None
