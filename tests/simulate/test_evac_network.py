"""build_network: oneway handling, mode filters, the speed / capacity / storage tables, snapped
nodes, bad input, and the Tianhe roads checked against an independent count and search."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from simulate.evacuation.network import NetworkParams, build_network
from simulate.evacuation.routing import Router, link_costs, route_table
from simulate.process import ProcessError


def roads(rows: list[dict]) -> gpd.GeoDataFrame:
    frame = pd.DataFrame(rows)
    geometry = [shapely.LineString(r) if not isinstance(r, shapely.Geometry) else r for r in frame.pop("xy")]
    for col, default in (("oneway", np.nan), ("lanes", np.nan), ("length", np.nan)):
        if col not in frame:
            frame[col] = default
    frame["u"] = frame["u"].astype("Int64")
    frame["v"] = frame["v"].astype("Int64")
    return gpd.GeoDataFrame(frame, geometry=geometry, crs="EPSG:4547")


def osm_pairs(net) -> set[tuple[int, int]]:
    ids = net.node_osm_id
    return set(zip(ids[net.link_from].tolist(), ids[net.link_to].tolist()))


def test_oneway_forward_reverse_and_two_way():
    frame = roads([
        {"id": "fwd", "highway": "residential", "oneway": "yes", "u": 1, "v": 2, "xy": [(0, 0), (100, 0)]},
        {"id": "rev", "highway": "residential", "oneway": "-1", "u": 2, "v": 3, "xy": [(100, 0), (200, 0)]},
        {"id": "both", "highway": "residential", "oneway": "no", "u": 3, "v": 4, "xy": [(200, 0), (300, 0)]},
        {"id": "nan", "highway": "residential", "u": 4, "v": 5, "xy": [(300, 0), (400, 0)]},
        {"id": "bool", "highway": "residential", "oneway": True, "u": 5, "v": 6, "xy": [(400, 0), (500, 0)]},
    ])
    drive = build_network(frame, "drive")
    assert drive.n_links == 1 + 1 + 2 + 2 + 1
    assert osm_pairs(drive) == {(1, 2), (3, 2), (3, 4), (4, 3), (4, 5), (5, 4), (5, 6)}
    # geometry runs from -> to: the reverse link of "rev" starts at x = 200
    rev = np.flatnonzero(drive.road_row == 1)
    assert shapely.get_coordinates(drive.geometry[rev[0]])[0].tolist() == [200.0, 0.0]
    walk = build_network(frame, "walk")                       # walkers ignore oneway
    assert walk.n_links == 10


def test_mode_filters():
    frame = roads([
        {"id": "m", "highway": "motorway", "u": 1, "v": 2, "xy": [(0, 0), (100, 0)]},
        {"id": "ml", "highway": "motorway_link", "u": 2, "v": 3, "xy": [(100, 0), (100, 100)]},
        {"id": "f", "highway": "footway", "u": 2, "v": 4, "xy": [(100, 0), (200, 0)]},
        {"id": "s", "highway": "steps", "u": 4, "v": 5, "xy": [(200, 0), (200, 30)]},
        {"id": "r", "highway": "residential", "u": 4, "v": 6, "xy": [(200, 0), (300, 0)]},
    ])
    walk = build_network(frame, "walk")
    drive = build_network(frame, "drive")
    assert sorted(set(frame["id"].to_numpy()[walk.road_row])) == ["f", "r", "s"]
    assert sorted(set(frame["id"].to_numpy()[drive.road_row])) == ["m", "ml", "r"]


def test_drive_tables():
    frame = roads([
        {"id": "p4", "highway": "primary", "lanes": 4.0, "u": 1, "v": 2, "xy": [(0, 0), (300, 0)]},
        {"id": "p1", "highway": "primary", "oneway": "yes", "lanes": 3.0, "u": 2, "v": 3, "xy": [(300, 0), (600, 0)]},
        {"id": "pn", "highway": "primary", "u": 3, "v": 4, "xy": [(600, 0), (900, 0)]},
        {"id": "pl", "highway": "primary_link", "oneway": "yes", "u": 4, "v": 5, "xy": [(900, 0), (900, 150)]},
        {"id": "r", "highway": "residential", "lanes": 1.0, "u": 5, "v": 6, "length": 120.0,
         "xy": [(900, 150), (1000, 150)]},
    ])
    net = build_network(frame, "drive")
    row = frame["id"].to_numpy()[net.road_row]
    lanes = {"p4": 2.0, "p1": 3.0, "pn": 2.0, "pl": 1.0, "r": 1.0}  # per direction (r: lanes/2 < 1 -> 1)
    per_lane = {"p4": 1500, "p1": 1500, "pn": 1500, "pl": 1500, "r": 600}
    speed = {"p4": 60, "p1": 60, "pn": 60, "pl": 60, "r": 30}
    length = {"p4": 300.0, "p1": 300.0, "pn": 300.0, "pl": 150.0, "r": 120.0}  # r: the given length
    for i, rid in enumerate(row):
        assert net.capacity_per_s[i] == pytest.approx(lanes[rid] * per_lane[rid] / 3600.0)
        assert net.free_speed_ms[i] == pytest.approx(speed[rid] / 3.6)
        assert net.length_m[i] == pytest.approx(length[rid])
        assert net.storage[i] == pytest.approx(max(length[rid] * lanes[rid] / 7.5, 1.0))
    assert net.free_time_s[row == "p4"] == pytest.approx([18.0, 18.0])


def test_walk_tables():
    frame = roads([
        {"id": "f", "highway": "footway", "u": 1, "v": 2, "xy": [(0, 0), (50, 0)]},
        {"id": "s", "highway": "steps", "u": 2, "v": 3, "xy": [(50, 0), (50, 12)]},
        {"id": "p", "highway": "pedestrian", "u": 3, "v": 4, "xy": [(50, 12), (90, 12)]},
    ])
    net = build_network(frame, "walk")
    p = NetworkParams()
    row = frame["id"].to_numpy()[net.road_row]
    width = {"f": 2.0, "s": 1.5, "p": 6.0}
    for i, rid in enumerate(row):
        assert net.capacity_per_s[i] == pytest.approx(1.3 * width[rid])
        assert net.storage[i] == pytest.approx(net.length_m[i] * width[rid] * 4.0)
        assert net.free_speed_ms[i] == pytest.approx(0.6 if rid == "s" else 1.34)
    assert p.specific_flow == 1.3 and p.walk_speed_ms == 1.34


def test_rows_without_node_ids_snap_onto_the_graph():
    frame = roads([
        {"id": "a", "highway": "residential", "u": 10, "v": 20, "xy": [(0, 0), (100, 0)]},
        {"id": "b", "highway": "residential", "u": None, "v": None, "xy": [(100.02, 0.01), (100, 100)]},
        {"id": "c", "highway": "residential", "u": None, "v": None, "xy": [(100, 100), (0, 100)]},
        {"id": "m", "highway": "residential", "u": 10, "v": 30,
         "xy": shapely.MultiLineString([[(0, 100), (0, 50)], [(0, 50), (0, 0)]])},
    ])
    net = build_network(frame, "walk")
    assert net.n_nodes == 4                                   # (0,0) (100,0) (100,100) (0,100)
    assert net.n_links == 8
    assert (net.node_osm_id >= 0).sum() == 2                  # 10 and 20; the rest were snapped
    b = np.flatnonzero(net.road_row == 1)[0]
    assert net.node_osm_id[net.link_from[b]] == 20            # b's start joined OSM node 20
    m = np.flatnonzero(net.road_row == 3)
    assert net.length_m[m] == pytest.approx([100.0, 100.0])   # merged MultiLineString
    # a ring: every node reaches every other
    graph = csr_matrix((np.ones(net.n_links), (net.link_from, net.link_to)), shape=(4, 4))
    assert connected_components(graph, connection="strong")[0] == 1


def test_bad_geometry_and_empty_networks_raise():
    frame = roads([
        {"id": "ok", "highway": "footway", "u": 1, "v": 2, "xy": [(0, 0), (10, 0)]},
        {"id": "blob", "highway": "footway", "u": 3, "v": 4, "xy": shapely.box(0, 0, 5, 5)},
    ])
    with pytest.raises(ProcessError) as err:
        build_network(frame, "walk")
    assert err.value.field == "geometry" and "blob" in str(err.value)
    with pytest.raises(ProcessError) as err:
        build_network(frame.iloc[:1], "drive")                # footways only: nothing to drive on
    assert err.value.field == "highway"
    with pytest.raises(ProcessError):
        build_network(frame.iloc[:1], "fly")  # type: ignore[arg-type]


def test_parallel_links_route_by_the_cheapest():
    frame = roads([
        {"id": "long", "highway": "footway", "u": 1, "v": 2, "xy": [(0, 0), (50, 50), (100, 0)]},
        {"id": "short", "highway": "footway", "u": 1, "v": 2, "xy": [(0, 0), (100, 0)]},
    ])
    net = build_network(frame, "walk")
    start = int(np.flatnonzero(net.node_osm_id == 1)[0])
    end = int(np.flatnonzero(net.node_osm_id == 2)[0])
    table = route_table(net, np.array([end]))
    assert table.cost_s[start] == pytest.approx(100.0 / 1.34)
    assert net.road_row[table.next_link[start]] == 1
    assert table.destination[start] == end and table.next_link[end] == -1


@pytest.fixture(scope="module")
def tianhe_roads(tianhe_twin):
    return tianhe_twin.store.read_layer("roads")


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_tianhe_roads_against_an_independent_graph(tianhe_roads, mode):
    net = build_network(tianhe_roads, mode)
    frame = tianhe_roads
    excluded = NetworkParams().walk_excluded if mode == "walk" else NetworkParams().drive_excluded
    kept = frame[~frame["highway"].isin(excluded) & (frame["u"] != frame["v"])]
    two_way = np.ones(len(kept), bool) if mode == "walk" else ~kept["oneway"].astype(bool).to_numpy()
    # independent edge list: (u, v, length) forward for every kept way, (v, u) for two-way ones
    edges = pd.concat([
        pd.DataFrame({"a": kept["u"].to_numpy(), "b": kept["v"].to_numpy(), "w": kept["length"].to_numpy()}),
        pd.DataFrame({"a": kept["v"].to_numpy()[two_way], "b": kept["u"].to_numpy()[two_way],
                      "w": kept["length"].to_numpy()[two_way]})])
    assert net.n_links == len(edges)
    ids = np.unique(np.concatenate([kept["u"], kept["v"]]).astype(np.int64))
    assert np.array_equal(np.sort(net.node_osm_id), ids)
    out_degree = edges.groupby("a").size()
    ours = pd.Series(np.bincount(net.link_from, minlength=net.n_nodes), index=net.node_osm_id)
    assert (ours.loc[out_degree.index].to_numpy() == out_degree.to_numpy()).all()

    graph = csr_matrix((np.ones(net.n_links), (net.link_from, net.link_to)), shape=(net.n_nodes,) * 2)
    _, label = connected_components(graph, connection="strong")
    assert np.bincount(label).max() >= (0.9 if mode == "walk" else 0.7) * net.n_nodes

    # shortest distances by length: ours (Router, parallel links collapsed) against scipy on the
    # independent edge list with duplicates reduced to their minimum by pandas
    code = {osm: i for i, osm in enumerate(ids)}
    best = edges.assign(a=edges["a"].map(code), b=edges["b"].map(code)).groupby(["a", "b"])["w"].min().reset_index()
    # reversed graph: distance from every node to the target
    reference = csr_matrix((best["w"], (best["b"], best["a"])), shape=(len(ids), len(ids)))
    position = {osm: i for i, osm in enumerate(net.node_osm_id)}
    length_cost = net.length_m
    router = Router(net)
    for target in ids[:: max(1, len(ids) // 5)]:
        ours = router.table(np.array([position[target]]), length_cost).cost_s
        theirs = dijkstra(reference, indices=code[target])
        assert np.allclose(ours[[position[i] for i in ids]], theirs, rtol=1e-9, equal_nan=False)
    assert np.isfinite(link_costs(net)).all()
