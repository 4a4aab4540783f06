"""Evacuation inputs: people per building, response times and agents, shelters, hazards.

References are computed by hand (floor areas, capacities, rounding), by a closed form
(the Rayleigh CDF), or by an independent tool (geopandas sjoin, pyproj)."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Transformer
from affine import Affine
from scipy import stats
from shapely.geometry import LineString, Point, box

from simulate.evacuation.demand import ResponseTime, largest_remainder, make_agents, snap_buildings
from simulate.evacuation.hazard import flood_hazard, link_closures, polygon_hazard
from simulate.evacuation.model import RoadNetwork
from simulate.evacuation.shelters import exits, find_shelters
from simulate.population import people_by_building
from simulate.process import ProcessError
from twin.config import EvacuationDefaults, ExplicitShelter, ShelterRules

CRS = "EPSG:4547"
X0, Y0 = 430000.0, 2557000.0     # a local origin inside the Tianhe extent (EPSG:4547)


def two_way_network(roads: gpd.GeoDataFrame, mode: str = "walk") -> RoadNetwork:
    """Nodes at the roads' end points, one link each way per road segment."""
    geoms = roads.geometry.to_numpy()
    ends = np.vstack([shapely.get_coordinates(shapely.get_point(geoms, 0)),
                      shapely.get_coordinates(shapely.get_point(geoms, -1))])
    node_xy, index = np.unique(np.round(ends, 3), axis=0, return_inverse=True)
    a, b = index[: len(roads)], index[len(roads):]
    rows = np.arange(len(roads))
    n = 2 * len(roads)
    return RoadNetwork(mode=mode, node_xy=node_xy, link_from=np.r_[a, b].astype(np.int32),
                       link_to=np.r_[b, a].astype(np.int32), length_m=np.tile(shapely.length(geoms), 2),
                       free_speed_ms=np.full(n, 1.34), capacity_per_s=np.ones(n), storage=np.full(n, 10.0),
                       road_row=np.r_[rows, rows].astype(np.int32), crs=CRS)


def street(*xy) -> LineString:
    return LineString([(X0 + x, Y0 + y) for x, y in xy])


def lot(x0, y0, x1, y1):
    return box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


# ---------------------------------------------------------------- population


def test_people_from_floor_area_population_and_time_of_day():
    """An office 20 x 10 m with 5 levels holds 200 x 5 / 15 = 66.7 by design; a 12 m tall
    school without levels has 4 storeys: 30 x 20 x 4 / 8 = 300. A given population is the
    residents, scaled by the residential factor. Underground and 'structure' hold nobody."""
    buildings = gpd.GeoDataFrame({
        "use": ["office", "school", "residential", "commercial", "structure"],
        "levels": [5, np.nan, 10, 2, 3], "height": [16.0, 12.0, 30.0, 7.0, 9.0],
        "population": [np.nan, np.nan, 120.0, np.nan, np.nan],
        "underground": [False, False, False, True, False]},
        geometry=[lot(0, 0, 20, 10), lot(50, 0, 80, 20), lot(100, 0, 110, 10), lot(0, 50, 40, 90),
                  lot(50, 50, 60, 60)], crs=CRS)
    people, source = people_by_building(buildings)
    assert people == pytest.approx([200 * 5 / 15, 600 * 4 / 8, 120.0, 0.0, 0.0])
    assert list(source) == ["floor_area", "floor_area", "population", "uninhabited", "uninhabited"]

    day, _ = people_by_building(buildings, time_of_day="day", day_factor={"office": 0.9, "school": 0.75,
                                                                         "residential": 0.25})
    assert day == pytest.approx([200 * 5 / 15 * 0.9, 300 * 0.75, 120 * 0.25, 0.0, 0.0])
    night, _ = people_by_building(buildings, time_of_day="night", night_factor={"office": 0.1, "school": 0.0,
                                                                               "residential": 1.0})
    assert night == pytest.approx([200 * 5 / 15 * 0.1, 0.0, 120.0, 0.0, 0.0])
    denser, _ = people_by_building(buildings.iloc[:1], floor_m2_per_person={"office": 10.0})
    assert denser == pytest.approx([100.0])


def test_defaults_empty_offices_at_night_and_homes_by_day():
    buildings = gpd.GeoDataFrame({"use": ["office", "residential", "school"], "levels": [4, 4, 2]},
                                 geometry=[lot(0, 0, 30, 30), lot(50, 0, 80, 30), lot(100, 0, 130, 30)], crs=CRS)
    design, _ = people_by_building(buildings)
    day, _ = people_by_building(buildings, time_of_day="day")
    night, _ = people_by_building(buildings, time_of_day="night")
    assert night[0] < 0.1 * design[0] and day[0] > 0.9 * design[0]
    assert night[1] == pytest.approx(design[1]) and day[1] < 0.6 * design[1]
    assert night[2] == 0.0


def test_flood_exposure_still_exports_estimate_people():
    from simulate.flood.exposure import FLOOR_M2_PER_PERSON as flood_table
    from simulate.flood.exposure import estimate_people as from_flood
    from simulate.population import FLOOR_M2_PER_PERSON, estimate_people

    assert from_flood is estimate_people and flood_table is FLOOR_M2_PER_PERSON


# ---------------------------------------------------------------- demand


def test_largest_remainder_keeps_totals_and_rounds_to_a_neighbour():
    assert largest_remainder(np.array([0.5, 0.5, 1.2, 2.8])).tolist() == [1, 0, 1, 3]
    values = np.random.default_rng(3).gamma(2.0, 7.3, 500)
    counts = largest_remainder(values)
    assert counts.sum() == round(values.sum())
    assert np.all((counts == np.floor(values)) | (counts == np.ceil(values)))


def test_rayleigh_response_times_follow_the_rayleigh_law():
    """Mean 600 s means scale sigma = 600 / sqrt(pi/2); CDF 1 - exp(-t^2 / (2 sigma^2))."""
    response = ResponseTime(distribution="rayleigh", mean_s=600.0)
    t = response.sample(np.random.default_rng(11), 20000)
    sigma = 600.0 / math.sqrt(math.pi / 2)
    assert t.mean() == pytest.approx(600.0, rel=0.02)
    ks = stats.kstest(t, lambda x: 1.0 - np.exp(-np.square(x) / (2 * sigma ** 2)))
    assert ks.pvalue > 0.01


def test_other_response_laws_and_their_parameters():
    rng = np.random.default_rng(5)
    assert np.all(ResponseTime().sample(rng, 10) == 0)
    u = ResponseTime(distribution="uniform", max_s=300).sample(rng, 5000)
    assert u.min() >= 0 and u.max() <= 300 and u.mean() == pytest.approx(150, rel=0.05)
    ln = ResponseTime(distribution="lognormal", median_s=400, sigma=0.6).sample(rng, 20000)
    assert np.median(ln) == pytest.approx(400, rel=0.03)
    with pytest.raises(ValueError, match="mean_s"):
        ResponseTime(distribution="rayleigh")
    with pytest.raises(ValueError, match="median_s and sigma"):
        ResponseTime(distribution="lognormal")


@pytest.fixture()
def line_network() -> RoadNetwork:
    """Five nodes 100 m apart along y = 0, road segments between neighbours."""
    roads = gpd.GeoDataFrame({"id": [f"r{i}" for i in range(4)]},
                             geometry=[street((100 * i, 0), (100 * i + 100, 0)) for i in range(4)], crs=CRS)
    return two_way_network(roads)


def test_walkers_one_per_person_depart_after_the_access_walk(line_network):
    people = np.array([2.4, 1.6, 3.0, 5.0])
    origins = np.array([0, 1, -1, 4])
    access = np.array([13.4, 0.0, 5.0, 26.8])
    agents = make_agents(origins, people, line_network, mode="walk", vehicle_occupancy=2.0,
                         response=ResponseTime(), seed=0, access_m=access)
    # 2.4 + 1.6 + 5.0 = 9 people with access: floors 2, 1, 5 and the one left to the 0.6 remainder.
    assert np.bincount(agents.group, minlength=4).tolist() == [2, 2, 0, 5]
    assert agents.persons.sum() == 9 and np.all(agents.persons == 1)
    assert agents.origin_node.tolist() == [0, 0, 1, 1, 4, 4, 4, 4, 4]
    labelled = make_agents(origins, people, line_network, mode="walk", group=np.array([10, 11, 12, 13]))
    assert labelled.group.tolist() == [10, 10, 11, 11, 13, 13, 13, 13, 13]
    assert agents.depart_s == pytest.approx([10, 10, 0, 0, 20, 20, 20, 20, 20])


def test_cars_carry_equal_shares_and_draws_repeat_with_the_seed(line_network):
    people = np.array([5.0, 0.3, 0.0])
    response = ResponseTime(distribution="rayleigh", mean_s=300)
    agents = make_agents(np.array([1, 2, 3]), people, line_network, mode="drive", vehicle_occupancy=2.0,
                         response=response, seed=7)
    assert np.bincount(agents.group, minlength=3).tolist() == [3, 1, 0]
    assert agents.persons == pytest.approx([5 / 3] * 3 + [0.3])
    again = make_agents(np.array([1, 2, 3]), people, line_network, mode="drive", vehicle_occupancy=2.0,
                        response=response, seed=7)
    assert np.array_equal(agents.depart_s, again.depart_s) and np.all(agents.depart_s > 0)


def test_buildings_snap_to_the_node_nearest_their_footprint(line_network):
    buildings = gpd.GeoDataFrame(geometry=[lot(180, 10, 260, 40), lot(0, 900, 10, 910)], crs=CRS)
    node, dist = snap_buildings(buildings, line_network, max_access_m=400)
    # Footprint edge at y = 10: node (200, 0) is 10 m away; the far lot is 900 m from (0, 0).
    nearest = int(np.flatnonzero(np.all(line_network.node_xy == [X0 + 200, Y0], axis=1))[0])
    assert node.tolist() == [nearest, -1]
    assert dist == pytest.approx([10.0, 900.0])


# ---------------------------------------------------------------- shelters


@pytest.fixture()
def town():
    """A street along y = 0 (x 0..600) and buildings north of it."""
    roads = gpd.GeoDataFrame({"id": [f"r{i}" for i in range(6)]},
                             geometry=[street((100 * i, 0), (100 * i + 100, 0)) for i in range(6)], crs=CRS)
    buildings = gpd.GeoDataFrame({
        "id": ["b-school", "b-public", "b-small", "b-home", "b-zone", "b-flooded", "b-shop"],
        "name": ["Big School", "Hall", "Kiosk Office", "Flats", "Zone School", "Wet School", "Shop"],
        "use": ["school", "public", "public", "residential", "school", "school", "commercial"],
        "use_raw": ["school", "government", "government", "apartments", "school", "school", "retail"],
        "levels": [2, 1, 1, 3, 2, 2, 1], "capacity": [np.nan, 120, np.nan, np.nan, np.nan, np.nan, np.nan],
        "underground": [False] * 7},
        geometry=[lot(10, 20, 50, 45), lot(110, 20, 130, 40), lot(210, 20, 220, 30), lot(310, 20, 340, 40),
                  lot(410, 20, 440, 40), lot(510, 20, 540, 40), lot(560, 20, 580, 40)], crs=CRS)
    pois = gpd.GeoDataFrame({
        "id": ["p-cc", "p-lib", "p-open", "p-food"], "kind": ["community_centre", "library", "shelter", "restaurant"],
        "name": ["Centre", "Library", "Square", "Noodles"], "capacity": [np.nan, np.nan, 300, np.nan]},
        geometry=[Point(X0 + 320, Y0 + 30), Point(X0 + 30, Y0 + 30), Point(X0 + 250, Y0 - 30),
                  Point(X0 + 570, Y0 + 30)], crs=CRS)
    return roads, buildings, pois, two_way_network(roads)


def test_shelters_capacity_dedup_exclusion_and_extras(town):
    roads, buildings, pois, network = town
    # A place 80 m north of the street's middle, given in lon/lat (rounded as a user would type it).
    to_lonlat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    lon, lat = (round(v, 6) for v in to_lonlat.transform(X0 + 300, Y0 + 80))
    rules = EvacuationDefaults(
        shelters=ShelterRules(m2_per_person=2.0, usable_floor_share=0.5, min_capacity=50),
        extra_shelters=[ExplicitShelter(name="Stadium", x=lon, y=lat, capacity=5000, kind="stadium")])
    zone = lot(400, 0, 450, 60)
    shelters = find_shelters(pois, buildings, network, rules, exclude=zone, crs=CRS,
                             flooded=np.array([5]))
    got = {fid or name: cap for fid, name, cap in zip(shelters.feature_id, shelters.name, shelters.capacity)}
    assert got == pytest.approx({
        "p-cc": 30 * 20 * 3 * 0.5 / 2.0,    # community centre POI inside the flats: the building's floor area
        "p-lib": 40 * 25 * 2 * 0.5 / 2.0,   # library POI inside the school: one shelter, the POI's id
        "p-open": 300.0,                     # shelter POI in no building: its own capacity
        "b-public": 120.0,                   # capacity attribute
        "Stadium": 5000.0,                   # configured; 10 x 10 m government kiosk (25) is under min_capacity
    })
    stadium = list(shelters.name).index("Stadium")
    ref = Transformer.from_crs("EPSG:4326", CRS, always_xy=True).transform(lon, lat)
    assert shelters.xy[stadium] == pytest.approx(ref, abs=1e-6)
    assert shelters.kind[stadium] == "stadium"


def test_shelters_snap_to_nodes_that_can_be_entered_and_left(town):
    roads, buildings, pois, network = town
    # Make node (600, 0) a dead end one can only enter: drop its outgoing link.
    end = int(np.flatnonzero(np.all(network.node_xy == [X0 + 600, Y0], axis=1))[0])
    keep = network.link_from != end
    one_way = RoadNetwork(mode="walk", node_xy=network.node_xy, link_from=network.link_from[keep],
                          link_to=network.link_to[keep], length_m=network.length_m[keep],
                          free_speed_ms=network.free_speed_ms[keep], capacity_per_s=network.capacity_per_s[keep],
                          storage=network.storage[keep], road_row=network.road_row[keep], crs=CRS)
    extra = ExplicitShelter(name="End", x=X0 + 605, y=Y0 + 5, crs=CRS, capacity=100)
    shelters = find_shelters(pois, buildings, one_way, EvacuationDefaults(extra_shelters=[extra]), crs=CRS)
    i = list(shelters.name).index("End")
    assert tuple(one_way.node_xy[shelters.node[i]]) == (X0 + 500, Y0)
    footprint = dict(zip(buildings["id"], buildings.geometry))["b-school"]
    j = list(shelters.feature_id).index("p-lib")
    distances = shapely.distance(footprint, shapely.points(one_way.node_xy))
    assert shelters.node[j] == np.argmin(distances)


def test_exits_are_the_nodes_just_outside_the_zone(line_network):
    zone = lot(-50, -50, 250, 50)        # holds nodes at x = 0, 100, 200
    out = exits(line_network, zone)
    assert [tuple(xy) for xy in out.xy] == [(X0 + 300, Y0)]
    assert np.isinf(out.capacity).all() and list(out.kind) == ["exit"]


# ---------------------------------------------------------------- hazards


def lonlat_square(lon0, lat0, lon1, lat1) -> dict:
    return {"type": "Polygon", "coordinates": [[[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]]}


def test_polygon_hazard_evacuates_exactly_the_intersecting_buildings(tianhe_twin):
    store = tianhe_twin.store
    buildings, roads = store.read_layer("buildings"), store.read_layer("roads")
    square = lonlat_square(113.315, 23.11, 113.325, 23.12)
    geojson = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": square}]}
    hazard = polygon_hazard(geojson, buildings, roads, store.manifest().crs, close_roads_inside=True)
    zone = gpd.GeoDataFrame(geometry=[shapely.geometry.shape(square)],
                            crs="EPSG:4326").to_crs(CRS)
    joined = gpd.sjoin(buildings, zone, predicate="intersects")
    assert hazard.evacuate.sum() > 10
    assert set(np.flatnonzero(hazard.evacuate)) == set(buildings.index.get_indexer(joined.index.unique()))
    midpoints = roads.geometry.interpolate(0.5, normalized=True)
    assert set(hazard.closed_roads) == set(np.flatnonzero(midpoints.within(zone.geometry.iloc[0]).to_numpy()))
    assert np.all(hazard.road_closure_s[hazard.closed_roads] == 0)
    assert hazard.source == {"kind": "polygon"}
    open_roads = polygon_hazard(geojson, buildings, roads, CRS)
    assert np.isnan(open_roads.road_closure_s).all()


@pytest.mark.parametrize("geojson, crs, problem", [
    ({"type": "LineString", "coordinates": [[113.31, 23.11], [113.32, 23.12]]}, "EPSG:4326", "Polygon or MultiPolygon"),
    ({"type": "Polygon", "coordinates": [[[113.31, 23.11], [113.32, 23.12], [113.32, 23.11], [113.31, 23.12],
                                          [113.31, 23.11]]]}, "EPSG:4326", "not valid"),
    (lonlat_square(X0, Y0, X0 + 100, Y0 + 100), "EPSG:4326", "cannot be longitude/latitude"),
    (lonlat_square(2.0, 48.0, 2.1, 48.1), "EPSG:4326", "does not overlap the twin"),
    ({"type": "FeatureCollection", "features": []}, "EPSG:4326", "no features"),
    ("not geojson", "EPSG:4326", "GeoJSON"),
])
def test_bad_hazard_polygons_are_refused_naming_the_problem(town, geojson, crs, problem):
    roads, buildings, _, _ = town
    with pytest.raises(ProcessError, match=problem) as info:
        polygon_hazard(geojson, buildings, roads, CRS, geojson_crs=crs)
    assert info.value.field == "hazard"


class FakeResults:
    """A PriorResults over frames and a raster made by the test."""

    def __init__(self, layers: dict, rasters: dict, process: str = "flood"):
        self.layers, self.rasters, self.process = layers, rasters, process

    def process_of(self, job_id):
        if job_id != "j1":
            raise ProcessError(f"no job '{job_id}'", field="hazard")
        return self.process

    def summary(self, job_id):
        return {}

    def layer(self, job_id, name):
        if name not in self.layers:
            raise ProcessError(f"job '{job_id}' has no result layer '{name}'", field="hazard")
        return self.layers[name]

    def raster_path(self, job_id, name):
        if name not in self.rasters:
            raise ProcessError(f"job '{job_id}' has no result raster '{name}'", field="hazard")
        return self.rasters[name]


@pytest.fixture()
def flooded_town(town, tmp_path):
    """The flood reached the flats and the shop; closed r1 after 600 s and r4 from the start.
    max_depth: 10 m cells, a 0.5 m deep 3 x 2 cell pond at x 300..330, y 20..40."""
    roads, buildings, pois, network = town
    flood_buildings = buildings.iloc[[3, 6]].assign(depth_m=[0.4, 0.2], flooded=True)
    flood_roads = roads.iloc[[1, 4]].assign(depth_max_m=[0.5, 0.9], impassable=True, impassable_at_s=[600.0, 0.0])
    depth = np.zeros((10, 10), np.float32)
    depth[6:8, 0:3] = 0.5                                   # rows from the top (y = 100)
    path = tmp_path / "max_depth.tif"
    with rasterio.open(path, "w", driver="GTiff", width=10, height=10, count=1, dtype="float32", crs=CRS,
                       transform=Affine(10, 0, X0 + 300, 0, -10, Y0 + 100), nodata=-9999) as dst:
        dst.write(depth, 1)
    results = FakeResults({"buildings": flood_buildings, "roads": flood_roads}, {"max_depth": path})
    return roads, buildings, network, results


def test_flood_hazard_closes_the_impassable_roads_at_their_times(flooded_town):
    roads, buildings, network, results = flooded_town
    hazard = flood_hazard(results, "j1", buildings, roads)
    assert np.flatnonzero(hazard.evacuate).tolist() == [3, 6]
    assert np.isnan(hazard.road_closure_s[[0, 2, 3, 5]]).all()
    assert hazard.road_closure_s[[1, 4]].tolist() == [600.0, 0.0]
    assert hazard.zone.area == pytest.approx(30 * 20)
    assert hazard.zone.equals(lot(300, 20, 330, 40))
    assert hazard.source == {"kind": "flood", "job": "j1"}
    deeper = flood_hazard(results, "j1", buildings, roads, depth_m=0.3)
    assert np.flatnonzero(deeper.evacuate).tolist() == [3]

    closures = link_closures(hazard, network)
    by_link = dict(zip(closures.link.tolist(), closures.at_s.tolist()))
    expect = {int(link): {1: 600.0, 4: 0.0}[int(row)]
              for link, row in enumerate(network.road_row) if row in (1, 4)}
    assert by_link == expect and len(expect) == 4


def test_flood_hazard_without_raster_draws_the_zone_around_flooded_features(flooded_town):
    roads, buildings, network, results = flooded_town
    results.rasters = {}
    hazard = flood_hazard(results, "j1", buildings, roads)
    assert any("max_depth" in note for note in hazard.notes)
    assert hazard.zone.contains(buildings.geometry.iloc[3]) and hazard.zone.contains(roads.geometry.iloc[1])
    assert not hazard.zone.intersects(buildings.geometry.iloc[0])


def test_flood_hazard_refuses_other_jobs_and_unknown_ids(flooded_town):
    roads, buildings, _, results = flooded_town
    with pytest.raises(ProcessError, match="not a flood job") as info:
        flood_hazard(FakeResults(results.layers, results.rasters, process="evacuation"), "j1", buildings, roads)
    assert info.value.field == "hazard"
    with pytest.raises(ProcessError, match="no job 'j2'"):
        flood_hazard(results, "j2", buildings, roads)
    stray = results.layers["buildings"].assign(id=["b-home", "b-elsewhere"])
    with pytest.raises(ProcessError, match="b-elsewhere") as info:
        flood_hazard(FakeResults({**results.layers, "buildings": stray}, results.rasters), "j1", buildings, roads)
    assert info.value.field == "hazard"


# ---------------------------------------------------------------- the Tianhe twin


def test_tianhe_shelters_from_its_pois(tianhe_twin):
    store = tianhe_twin.store
    buildings, roads, pois = store.read_layer("buildings"), store.read_layer("roads"), store.read_layer("pois")
    network = two_way_network(roads)
    rules = EvacuationDefaults.model_validate(store.manifest().rules.get("scenarios", {}).get("evacuation", {}))
    shelters = find_shelters(pois, buildings, network, rules, crs=store.manifest().crs)
    kinds = set(shelters.kind)
    assert {"library", "community_centre", "school"} <= kinds
    assert np.all(shelters.capacity >= rules.shelters.min_capacity)
    by_id = dict(zip(pois["id"], pois.geometry)) | dict(zip(buildings["id"], buildings.geometry))
    footprints = buildings.geometry.to_numpy()
    for fid, node in zip(shelters.feature_id, shelters.node):
        place = by_id[fid]
        inside = footprints[shapely.contains(footprints, place)] if place.geom_type == "Point" else [place]
        reach = shapely.distance(inside[0] if len(inside) else place, Point(network.node_xy[node]))
        assert reach <= 400.0
