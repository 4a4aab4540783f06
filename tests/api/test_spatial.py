"""Spatial questions, checked against geopandas/shapely and an independent networkx-free Dijkstra."""

from __future__ import annotations

import heapq

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from tests.api.conftest import INTERNAL, RESTRICTED

TO_XY = Transformer.from_crs("EPSG:4326", "EPSG:4547", always_xy=True)
LON, LAT = 113.3200, 23.1190


@pytest.fixture(scope="module")
def layers(store):
    return {n: store.read_layer(n) for n in ("buildings", "roads", "pois")}


def test_what_is_here(client, layers):
    b, roads = layers["buildings"], layers["roads"]
    pt = shapely.Point(TO_XY.transform(LON, LAT))
    doc = client.get("/api/spatial/here", params={"lon": LON, "lat": LAT}).json()
    assert set(doc["layers"]) == {"buildings", "roads"}                 # pois are internal
    assert {f["id"] for f in doc["layers"]["buildings"]["features"]} == set(b.id[b.intersects(pt)])
    d = roads.distance(pt)
    near = doc["layers"]["roads"]["features"][0]
    assert near["distance_m"] == pytest.approx(d.min(), abs=0.01)
    doc = client.get("/api/spatial/here", params={"lon": LON, "lat": LAT, "radius": 200}, headers=INTERNAL).json()
    p = layers["pois"]
    assert {f["id"] for f in doc["layers"]["pois"]["features"]} == set(p.id[p.distance(pt) <= 200])
    x, y = pt.x, pt.y
    same = client.get("/api/spatial/here", params={"x": x, "y": y}).json()
    assert same["layers"]["buildings"] == client.get("/api/spatial/here", params={"lon": LON, "lat": LAT}).json()["layers"]["buildings"]


def test_within_radius_and_polygon(client, layers):
    b = layers["buildings"]
    pt = shapely.Point(TO_XY.transform(LON, LAT))
    fc = client.get("/api/spatial/within", params={"lon": LON, "lat": LAT, "radius": 250, "layer": "buildings"}).json()
    assert {f["id"] for f in fc["features"]} == set(b.id[b.distance(pt) <= 250])
    ll = [(113.315, 23.115), (113.325, 23.115), (113.325, 23.125), (113.315, 23.115)]
    poly = shapely.Polygon([TO_XY.transform(*p) for p in ll])
    want = set(b.id[b.intersects(poly)])
    geo = {"type": "Polygon", "coordinates": [[list(p) for p in ll]]}
    assert {f["id"] for f in client.post("/api/spatial/within", json={"layer": "buildings", "geometry": geo}).json()["features"]} == want
    wkt = "POLYGON((" + ",".join(f"{y} {x}" for x, y in ll) + "))"     # EPSG:4326 is lat/lon
    r = client.post("/api/spatial/within", json={"layer": "buildings", "geometry": wkt,
                                                 "crs": "http://www.opengis.net/def/crs/EPSG/0/4326"})
    assert {f["id"] for f in r.json()["features"]} == want and want


def _dijkstra(roads, src_xy, dst_xy) -> float:
    """Independent reference: heap Dijkstra over the u/v/length edges, snapping to the nearest end node."""
    start = shapely.get_coordinates(shapely.get_point(roads.geometry.values, 0))
    end = shapely.get_coordinates(shapely.get_point(roads.geometry.values, -1))
    pos = {}
    for node, xy in zip(list(roads.u) + list(roads.v), list(start) + list(end)):
        pos[int(node)] = xy
    adj: dict[int, list] = {}
    for u, v, w in zip(roads.u, roads.v, roads.length):
        adj.setdefault(int(u), []).append((int(v), w))
        adj.setdefault(int(v), []).append((int(u), w))
    ids = list(pos)
    coords = np.array([pos[i] for i in ids])
    snap = lambda xy: (ids[int(np.argmin(np.hypot(*(coords - xy).T)))], float(np.min(np.hypot(*(coords - xy).T))))
    (s, ds), (t, dt) = snap(src_xy), snap(dst_xy)
    dist, heap = {s: 0.0}, [(0.0, s)]
    while heap:
        d, n = heapq.heappop(heap)
        if n == t:
            return ds + d + dt
        if d > dist.get(n, np.inf):
            continue
        for m, w in adj.get(n, []):
            if d + w < dist.get(m, np.inf):
                dist[m] = d + w
                heapq.heappush(heap, (d + w, m))
    return np.inf


def test_nearest_by_line_and_road(client, layers):
    p, roads = layers["pois"], layers["roads"]
    lon, lat = 113.3235, 23.1250
    origin = np.array(TO_XY.transform(lon, lat))
    assert client.get("/api/spatial/nearest", params={"lon": lon, "lat": lat, "kind": "metro_station"}).status_code == 401
    doc = client.get("/api/spatial/nearest", params={"lon": lon, "lat": lat, "kind": "metro_station", "n": 3},
                     headers=INTERNAL).json()
    metro = p[p.kind == "metro_station"]
    d = metro.distance(shapely.Point(origin)).sort_values()
    assert [r["distance_line_m"] for r in doc["results"]] == pytest.approx(list(d.iloc[:3]), abs=0.01)
    for r in doc["results"]:
        geom = metro.geometry[metro.id == r["id"]].iloc[0]
        ref = _dijkstra(roads, origin, shapely.get_coordinates(geom.representative_point())[0])
        assert r["distance_road_m"] == pytest.approx(ref, abs=0.01)
        assert r["distance_road_m"] >= r["distance_line_m"] - 1e-6
    by_road = client.get("/api/spatial/nearest", params={"lon": lon, "lat": lat, "kind": "metro_station", "n": 9,
                                                         "by": "road"}, headers=INTERNAL).json()["results"]
    dists = [r["distance_road_m"] for r in by_road]
    assert dists == sorted(dists) and len(by_road) == len(metro)


def test_building_detail(client, layers):
    b = layers["buildings"]
    row = b.iloc[3]
    doc = client.get(f"/api/buildings/{row.id}").json()
    assert doc["ground_m"] == pytest.approx(row.ground) and doc["roof_m"] == pytest.approx(row.roof)
    assert doc["height_m"] == pytest.approx(row.height)
    assert doc["footprint_area_m2"] == pytest.approx(row.geometry.area, abs=0.01)
    assert client.get("/api/buildings/nope").status_code == 404


@pytest.mark.parametrize("path,params,field", [
    ("/api/spatial/here", {}, "lon"), ("/api/spatial/here", {"lon": 113.3}, "lat"),
    ("/api/spatial/here", {"lon": 200, "lat": 1}, "lon"), ("/api/spatial/here", {"lon": "x", "lat": 1}, "lon"),
    ("/api/spatial/here", {"lon": 113.3, "lat": 23.1, "x": 1, "y": 2}, "x"),
    ("/api/spatial/here", {"lon": 113.3, "lat": 23.1, "radius": -1}, "radius"),
    ("/api/spatial/here", {"lon": 113.3, "lat": 23.1, "zoom": 3}, "zoom"),
    ("/api/spatial/within", {"lon": 113.3, "lat": 23.1, "layer": "buildings"}, "radius"),
    ("/api/spatial/within", {"lon": 113.3, "lat": 23.1, "layer": "buildings", "radius": 1e9}, "radius"),
    ("/api/spatial/nearest", {"lon": 113.3, "lat": 23.1, "by": "air"}, "by"),
    ("/api/spatial/nearest", {"lon": 113.3, "lat": 23.1, "n": 0}, "n"),
    ("/api/spatial/nearest", {"lon": 113.3, "lat": 23.1, "layer": "buildings", "kind": "x"}, "kind"),
])
def test_spatial_400s(client, path, params, field):
    r = client.get(path, params=params, headers=RESTRICTED)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field


@pytest.mark.parametrize("body,field", [
    ({"layer": "buildings", "geometry": "POLYGON((1 2"}, "geometry"),
    ({"layer": "buildings", "geometry": {"type": "Polygon"}}, "geometry"),
    ({"layer": "buildings", "geometry": "POINT(1 2)", "crs": "EPSG:1"}, "crs"),
    ({"layer": "buildings"}, "geometry"), ({"layer": "buildings", "geometry": "POINT(1 2)", "radius": -5}, "radius"),
])
def test_within_body_400s(client, body, field):
    r = client.post("/api/spatial/within", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["field"].endswith(field)
