"""Exposure on small analytic cases, and a full process run on the Tianhe twin."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from shapely.geometry import LineString, Point, box

from simulate.flood.exposure import (
    buildings_exposure,
    estimate_people,
    facilities_exposure,
    roads_exposure,
)
from simulate.flood.forcing import EdgeInflow, Forcing, Series
from simulate.flood.grid import FloodGrid
from simulate.flood.model import FloodModel
from simulate.flood.process import FloodInputs, FloodProcess

CRS = "EPSG:4547"


def test_building_in_a_basin_gets_the_basin_depth():
    """A still lake at 1.25 m over a basin floor at 0 m around a building (blocked cells):
    the building's depth is the lake depth, 1.25 m; a building on a dry hill is not flooded.
    People: population column where given, floor area x levels / m2 per person otherwise."""
    z = np.zeros((30, 40))
    z[:, 22:] = 5.0                                           # a hill east of the basin
    grid = FloodGrid.from_arrays(z, 2.0, origin=(0.0, 60.0), crs=CRS)
    houses = gpd.GeoDataFrame(
        {"use": ["residential", "office"], "population": [12.0, np.nan], "area": [100.0, 64.0],
         "levels": [3.0, 5.0], "height": [9.0, 15.0]},
        geometry=[box(20, 20, 30, 30), box(60, 40, 68, 48)], crs=CRS)
    blocked = np.zeros(z.shape, bool)
    r, c, _ = grid.cell_of(np.array([25.0]), np.array([25.0]))
    blocked[int(r[0]) - 2:int(r[0]) + 3, int(c[0]) - 2:int(c[0]) + 3] = True
    grid = FloodGrid(z=z, blocked=blocked, n=0.03, transform=grid.transform, crs=grid.crs, roofs=blocked)
    model = FloodModel(grid, initial_level=1.25, dtype=np.float64)
    model.run(60.0)
    out = buildings_exposure(houses, grid, model.host("max_depth"))
    assert out["depth_m"].iloc[0] == pytest.approx(1.25, abs=1e-9)
    assert out["flooded"].tolist() == [True, False]
    people, source = estimate_people(houses)
    assert people[0] == 12.0 and source[0] == "population"
    assert people[1] == pytest.approx(64.0 * 5 / 15.0) and source[1] == "floor_area"
    pois = gpd.GeoDataFrame({"kind": ["school", "fire_station"]}, geometry=[Point(25, 25), Point(70, 44)], crs=CRS)
    fac = facilities_exposure(pois, grid, model.host("max_depth"), model.host("time_wet"))
    assert fac["at_risk"].tolist() == [True, False] and fac["depth_m"].iloc[0] == pytest.approx(1.25)


def test_road_crossing_becomes_impassable_when_the_channel_passes_0_3_m():
    """A frictionless-ish flat channel filled from its west edge at a known rate: with the
    surface nearly flat, depth(t) = Q t / area, so a road crossing it goes impassable
    (0.3 m) at t = 0.3 area / Q; the model's time must agree within one CFL step plus the
    small tilt of the filling surface (2 %). A road beside the channel never does."""
    ny, nx, dx = 6, 20, 5.0
    z = np.full((ny, nx), 10.0)
    z[1:5, :] = 0.0                                          # channel, rows 1..4, walls on both sides
    grid = FloodGrid.from_arrays(z, dx, origin=(0.0, ny * dx), n=0.01, crs=CRS)
    q = 2.0                                                   # m3/s
    forcing = Forcing(edge_inflows=[EdgeInflow("west", Series.constant(q))])
    model = FloodModel(grid, forcing, dtype=np.float64)
    model.run(600.0)
    roads = gpd.GeoDataFrame({"id": ["cross", "bank"]},
                             geometry=[LineString([(52.0, 0.0), (52.0, 30.0)]), LineString([(0.0, 28.0), (99.0, 28.0)])],
                             crs=CRS)
    out = roads_exposure(roads, grid, model.host("max_depth"), model.host("time_deep"))
    expected = 0.3 * (4 * nx * dx * dx) / q
    assert out["impassable"].tolist() == [True, False]
    assert out["impassable_at_s"].iloc[0] == pytest.approx(expected, rel=0.02)
    assert np.isnan(out["impassable_at_s"].iloc[1])


def test_tianhe_120_mm_in_2_hours(tianhe_twin, tmp_path):
    """The sample district at 20 m through FloodProcess.execute: closes the
    water budget to 0.1 %, writes COGs that rasterio reads back in the project CRS, and
    reports buildings, roads and facilities."""
    store = tianhe_twin.store
    reports = []
    result = FloodProcess().execute(store, FloodInputs(rain_mm=120, duration="2h", resolution_m=20,
                                                       frame_interval_min=30), tmp_path, reports.append)
    mb = result.summary["mass_balance"]
    assert mb["relative_error"] < 1e-3
    assert mb["rain_m3"] == pytest.approx(0.120 * result.summary["grid"]["rows"] * result.summary["grid"]["cols"]
                                          * 400.0, rel=0.01)
    assert reports[-1].percent == 100.0 and reports[0].percent == 0.0
    for name in ("max_depth", "max_speed", "time_wet", "time_deep"):
        with rasterio.open(result.rasters[name]) as ds:
            assert ds.driver == "GTiff" and ds.crs.to_epsg() == 4547
            assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert ds.res == (20.0, 20.0)
            grid_bounds = store.read_raster("ground").bounds
            assert ds.bounds.left == pytest.approx(grid_bounds[0]) and ds.bounds.top == pytest.approx(grid_bounds[3])
            data = ds.read(1)
            assert np.isfinite(data).any()
    with rasterio.open(result.rasters["max_depth"]) as ds:
        assert np.nanmax(ds.read(1)) == pytest.approx(result.summary["max_depth_m"], rel=1e-6)
    assert len(list((tmp_path / "frames").glob("depth_*min.tif"))) == 7      # 0, 30, ... 180 min
    assert json.loads(result.files["mass_balance"].read_text())["relative_error"] < 1e-3
    exposure = result.summary["exposure"]
    assert exposure["buildings_flooded"] == len(result.layers["buildings"]) > 0
    assert (result.layers["buildings"]["depth_m"] >= 0.15).all()
    assert exposure["road_segments_impassable"] == len(result.layers["roads"])
    assert result.layers["roads"]["impassable_at_s"].between(0, 3 * 3600).all()
    assert "facilities" in result.layers
