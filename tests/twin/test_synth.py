"""The synthetic city generator, checked with GDAL (pyogrio), rasterio, shapely and scipy."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely
from scipy import ndimage

from twin.config import load_city
from twin.synth import synthesize

N = 3000


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return synthesize(out, N, seed=7)


@pytest.fixture(scope="module")
def buildings(city):
    return pyogrio.read_dataframe(city.parent / "buildings.gpkg")


@pytest.fixture(scope="module")
def roads(city):
    return pyogrio.read_dataframe(city.parent / "roads.gpkg")


def test_deterministic(city, tmp_path):
    again = synthesize(tmp_path, N, seed=7)
    for name in ("buildings", "roads", "river", "pois"):
        a = pyogrio.read_dataframe(city.parent / f"{name}.gpkg")
        b = pyogrio.read_dataframe(again.parent / f"{name}.gpkg")
        assert shapely.to_wkb(a.geometry.values).tolist() == shapely.to_wkb(b.geometry.values).tolist()
        pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
    for name in ("terrain.tif", "surface.tif"):
        assert (city.parent / name).read_bytes() == (again.parent / name).read_bytes()
    other = synthesize(tmp_path / "other", N, seed=8)
    b = pyogrio.read_dataframe(other.parent / "buildings.gpkg")
    assert not shapely.equals(b.geometry.values[:50], pyogrio.read_dataframe(
        city.parent / "buildings.gpkg").geometry.values[:50]).all()


@pytest.mark.parametrize("n", [1, 57])
def test_count_honoured_small(tmp_path, n):
    toml = synthesize(tmp_path, n)
    assert pyogrio.read_info(toml.parent / "buildings.gpkg")["features"] == n


def test_buildings(buildings):
    assert len(buildings) == N and buildings["id"].is_unique
    geoms = buildings.geometry.values
    assert shapely.is_valid(geoms).all()
    assert (shapely.area(geoms) > 20).all()
    types = pd.Series(shapely.get_type_id(geoms))
    assert (types == 6).any() and (types == 3).any()  # polygons and multipolygons
    assert (shapely.get_num_interior_rings(shapely.get_geometry(geoms, 0)) > 0).any()  # courtyards
    assert 0.1 < buildings["height"].notna().mean() < 0.3
    assert 0.3 < buildings["levels"].notna().mean() < 0.5
    assert {"residential", "commercial", "school", "public"} <= set(buildings["use"])
    assert (buildings["layer"] < 0).sum() >= 1 and (buildings["layer"] < 0).mean() < 0.02


def test_no_overlaps(buildings):
    geoms = buildings.geometry.values
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    pairs = left < right
    shared = shapely.area(shapely.intersection(geoms[left[pairs]], geoms[right[pairs]]))
    assert shared.sum() < 1e-6


def test_density_realistic(buildings, roads):
    minx, miny, maxx, maxy = roads.total_bounds
    per_km2 = len(buildings) / ((maxx - minx) * (maxy - miny) / 1e6)
    assert 1000 < per_km2 < 5000


def test_road_nodes_consistent(roads):
    nodes = roads["nodes"].map(json.loads)
    coords = shapely.get_coordinates(roads.geometry.values)
    counts = shapely.get_num_coordinates(roads.geometry.values)
    assert (nodes.map(len).to_numpy() == counts).all()
    ids = np.concatenate(nodes.to_numpy())
    table = pd.DataFrame({"id": ids, "x": coords[:, 0], "y": coords[:, 1]})
    per_id = table.groupby("id").agg(x=("x", "nunique"), y=("y", "nunique"), n=("x", "size"))
    assert (per_id[["x", "y"]] == 1).all().all()
    assert (per_id["n"] > 1).sum() > 10  # ways really meet at shared nodes
    assert (nodes.str[0] == roads["u"]).all() and (nodes.str[-1] == roads["v"]).all()
    assert {"primary", "secondary", "tertiary", "residential"} <= set(roads["highway"])
    assert roads["oneway"].any() and not roads["oneway"].all()


def test_river_crosses_extent(city, roads):
    river = pyogrio.read_dataframe(city.parent / "river.gpkg").geometry.values[0]
    minx, miny, maxx, maxy = roads.total_bounds
    assert shapely.intersects(river, shapely.linestrings([[minx, miny], [minx, maxy]]))
    assert shapely.intersects(river, shapely.linestrings([[maxx, miny], [maxx, maxy]]))


def test_no_building_in_river(city, buildings):
    river = pyogrio.read_dataframe(city.parent / "river.gpkg").geometry.values[0]
    assert not shapely.intersects(buildings.geometry.values, river).any()


def test_dem_has_closed_depression(city):
    with rasterio.open(city.parent / "terrain.tif") as src:
        dem = src.read(1)
        assert src.crs.to_epsg() == 4547 and 5 <= src.res[0] <= 10
    r = 16
    ring = np.zeros((2 * r + 1, 2 * r + 1), dtype=bool)
    ring[[0, -1], :] = ring[:, [0, -1]] = True
    ring_min = ndimage.minimum_filter(dem, footprint=ring, mode="nearest")
    local_min = dem < ndimage.minimum_filter(dem, footprint=np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]]),
                                             mode="nearest")
    # lower than all 8 neighbours and half a metre below every cell on a ring 16 cells out
    assert (local_min & (dem + 0.5 < ring_min))[r:-r, r:-r].any()


def test_surface_is_ground_plus_buildings(city, buildings):
    with rasterio.open(city.parent / "terrain.tif") as g, rasterio.open(city.parent / "surface.tif") as s:
        dtm, dsm, transform = g.read(1), s.read(1), g.transform
    diff = dsm - dtm
    assert diff.min() >= -1e-4
    tall = buildings[buildings["height"].notna() & (buildings["layer"] >= 0)]
    centre = shapely.get_coordinates(shapely.point_on_surface(tall.geometry.values))
    rows, cols = rasterio.transform.rowcol(transform, centre[:, 0], centre[:, 1])
    sampled = diff[np.asarray(rows), np.asarray(cols)]
    # a cell inside a footprint carries that building's height (or a taller one's)
    assert np.median(np.abs(sampled - tall["height"].to_numpy())) < 0.01


def test_pois(city):
    pois = pyogrio.read_dataframe(city.parent / "pois.gpkg")
    assert {"school", "shelter", "fire_station"} <= set(pois["kind"])
    assert pois["name"].notna().all() and (pois["capacity"] > 0).all()
    assert (pois.geometry.geom_type == "Point").all()


def test_city_toml_validates(city):
    cfg = load_city(city)
    assert cfg.crs == "EPSG:4547"
    assert {l.kind for l in cfg.layers.values()} >= {"buildings", "roads", "water", "pois", "ground", "surface"}
    for layer in cfg.layers.values():
        for src in layer.sources:
            assert src.licence == "CC0-1.0" and src.attribution == "synthetic city by city-twin"
            assert cfg.source_path(src).is_file()
    lon0, lat0, lon1, lat1 = cfg.extent
    assert lon0 < 113.33 < lon1 and lat0 < 23.11 < lat1


@pytest.mark.slow
def test_a_large_city_is_complete(tmp_path):
    """Scale (its speed is in bench/bench_build.py, not here): 100,000 buildings all written."""
    synthesize(tmp_path, 100_000, seed=1)
    assert pyogrio.read_info(tmp_path / "buildings.gpkg")["features"] == 100_000
