"""GeoJSON, GeoPackage, Shapefile and FlatGeobuf give the same layer."""

from __future__ import annotations

import geopandas as gpd
import pyogrio
import pytest

from tests.conftest import ROOT
from twin.build import build_twin

EXT = {"geojson": "geojson", "gpkg": "gpkg", "shapefile": "shp", "flatgeobuf": "fgb"}
DRIVER = {"geojson": "GeoJSON", "gpkg": "GPKG", "shapefile": "ESRI Shapefile", "flatgeobuf": "FlatGeobuf"}


@pytest.mark.parametrize("fmt", list(EXT))
def test_formats_agree(tmp_path, fmt):
    src = gpd.read_file(ROOT / "data" / "tianhe" / "buildings_osm.geojson")[["osm_id", "building_levels", "geometry"]]
    src = src.rename(columns={"building_levels": "levels"}).iloc[:60]
    path = tmp_path / f"b.{EXT[fmt]}"
    pyogrio.write_dataframe(src, path, driver=DRIVER[fmt])
    (tmp_path / "city.toml").write_text(f'''
name = "f"
crs = "EPSG:4547"
extent = [113.30, 23.09, 113.34, 23.13]
[layers.buildings]
kind = "buildings"
[[layers.buildings.sources]]
path = "{path.name}"
name = "osm"
licence = "ODbL-1.0"
attribution = "OSM"
[layers.buildings.sources.fields]
id = "osm_id"
levels = "levels"
''')
    twin = build_twin(tmp_path / "city.toml", tmp_path / "twin").store
    b = twin.read_layer("buildings").set_index("source_id").sort_index()
    ref = src.set_index("osm_id").sort_index().to_crs(4547)
    assert list(b.index) == list(ref.index)
    assert (b.geometry.symmetric_difference(ref.geometry, align=False).area < 1e-6).all()
    levels = ref["levels"].astype(float).to_numpy()
    assert ((b["height_rule"] == "levels").to_numpy() == (levels > 0)).all()
