"""Bare-earth derivation, checked against a real LiDAR DTM (Delft AHN3, an independent product)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from pyproj import CRS

from layers.base import RasterData
from layers.raster import read_raster, sample
from layers.terrain import derive_ground, ground_under, zonal_median_difference


def test_derived_ground_matches_the_lidar_dtm(shared_data):
    dsm = read_raster(shared_data / "delft" / "dsm_ahn3_0p5m.tif")
    dtm = read_raster(shared_data / "delft" / "dtm_ahn3_0p5m.tif")
    footprints = gpd.read_file(shared_data / "delft" / "delft_district.gpkg", layer="buildings").geometry.values
    ground, stats = derive_ground(dsm, footprints, window_m=80)
    ok = np.isfinite(ground.array) & np.isfinite(dtm.array)
    err = ground.array[ok] - dtm.array[ok]
    naive = dsm.array[ok] - dtm.array[ok]
    rmse, naive_rmse = np.sqrt(np.mean(err ** 2)), np.sqrt(np.mean(naive ** 2))
    # Using the DSM as ground is off by metres; the derived ground is within a metre (RMSE).
    assert rmse < 1.0, rmse
    assert rmse < 0.2 * naive_rmse
    assert np.median(np.abs(err)) < 0.3
    assert (ground.array[ok] <= dsm.array[ok] + 1e-4).all()


def _flat_with_box(height=20.0, ground_z=5.0):
    crs = CRS.from_epsg(32649)
    arr = np.full((100, 100), ground_z, dtype=np.float32)
    arr[40:60, 40:60] += height           # a 20 m x 20 m block of cells at 1 m
    t = Affine(1.0, 0, 1000.0, 0, -1.0, 2000.0)
    box = shapely.box(1040, 1940, 1060, 1960)  # the same block in map units
    return RasterData(arr, t, crs), RasterData(np.full_like(arr, ground_z), t, crs), box


def test_opening_removes_a_box_on_flat_ground():
    dsm, truth, box = _flat_with_box()
    ground, _ = derive_ground(dsm, np.array([]), window_m=41)
    assert np.allclose(ground.array, truth.array, atol=1e-3)


def test_zonal_difference_and_ground_under_on_an_analytic_case():
    dsm, dtm, box = _flat_with_box(height=20.0, ground_z=5.0)
    med, count = zonal_median_difference(dsm, dtm, np.array([box]))
    assert count[0] == 400 and med[0] == 20.0
    # A tilted plane z = 0.1 x: the lowest outline point of the box is at x = 1040.
    xs = np.arange(100) + 1000.5
    plane = RasterData(np.tile((0.1 * xs).astype(np.float32), (100, 1)), dsm.transform, dsm.crs)
    assert abs(ground_under(plane, np.array([box]))[0] - 104.0) < 1e-3
    assert abs(sample(plane, np.array([1050.0]), np.array([1950.0]))[0] - 105.0) < 1e-3
