"""A Delft twin from real LiDAR, CityJSON and BGT data; heights checked against the GeoPackage."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest

from tests.conftest import ROOT, SHARED

DELFT_TOML = ROOT / "tests" / "fixtures" / "delft" / "city.toml"


@pytest.fixture(scope="module")
def delft(tmp_path_factory):
    from twin.build import build_twin

    return build_twin(DELFT_TOML, tmp_path_factory.mktemp("delft") / "twin").store


def test_lidar_heights_within_a_metre_of_the_reference(delft):
    ours = delft.read_layer("buildings")
    ref = gpd.read_file(SHARED / "delft" / "delft_district.gpkg", layer="buildings")
    assert len(ours) == len(ref) == 160
    assert (ours["height_rule"] == "lidar").mean() > 0.95
    joined = ours.merge(ref[["identificatiebagpnd", "height_m"]], left_on="source_id",
                        right_on="identificatiebagpnd", how="inner")
    lidar = joined[joined["height_rule"] == "lidar"]
    err = np.abs(lidar["height"] - lidar["height_m"])
    assert len(lidar) > 150
    assert (err < 1.0).mean() > 0.95, err.describe()
    assert err.median() < 0.3


def test_cityjson_solids_and_mesh(delft):
    lod1 = delft.read_layer("lod1")
    assert len(lod1) == 160
    assert (lod1["height_rule"] == "solid").all()
    mesh = delft.read_mesh("lod1")
    assert set(np.unique(mesh.face_feature)) == set(range(len(lod1)))
    # Mesh vertices lie within their footprints' bounding boxes (same CRS, no shift).
    b = lod1.geometry.bounds.to_numpy()
    per_face = mesh.vertices[mesh.faces[:, 0]]
    box = b[mesh.face_feature]
    assert ((per_face[:, 0] >= box[:, 0] - 0.01) & (per_face[:, 0] <= box[:, 2] + 0.01)).all()


def test_point_cloud_kept_for_tiles_and_ground_from_dtm(delft):
    m = delft.manifest()
    assert {"pointcloud/ahn3_cropped_1.laz", "pointcloud/ahn3_cropped_2.laz"} <= set(m.assets)
    assert m.rasters["ground"].method == "source"
    assert m.layers["water"].count == 3
