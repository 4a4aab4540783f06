"""Bad input: each case exits non-zero with a message naming the source and the problem,
and an existing twin is never left half-rebuilt."""

from __future__ import annotations

import json
import shutil

import pyogrio
import geopandas as gpd
from typer.testing import CliRunner

from tests.conftest import ROOT, SHARED
from twin.cli import app

TIANHE = ROOT / "data" / "tianhe"
runner = CliRunner()


def _city(tmp_path, *, buildings="b.geojson", crs="EPSG:4547", extra="", fmt=None, bld_fields=True):
    fields = '\n[layers.buildings.sources.fields]\nid = "osm_id"\nlevels = "building_levels"\n' if bld_fields else ""
    fmt_line = f'format = "{fmt}"\n' if fmt else ""
    text = f'''
name = "test city"
crs = "{crs}"
extent = [113.30, 23.09, 113.34, 23.13]
[layers.buildings]
kind = "buildings"
[[layers.buildings.sources]]
path = "{buildings}"
{fmt_line}licence = "ODbL-1.0"
attribution = "(c) OpenStreetMap contributors"
{fields}
{extra}
'''
    path = tmp_path / "city.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _small_buildings(tmp_path, name="b.geojson", n=20, shift=0.0):
    data = json.loads((TIANHE / "buildings_osm.geojson").read_text(encoding="utf-8"))
    data["features"] = data["features"][:n]
    if shift:
        for f in data["features"]:
            f["geometry"]["coordinates"] = [[[x + shift, y] for x, y in ring] for ring in f["geometry"]["coordinates"]]
    (tmp_path / name).write_text(json.dumps(data), encoding="utf-8")
    return tmp_path / name


def _build(city, out):
    return runner.invoke(app, ["build", str(city), "--out", str(out)])


def _assert_fails(result, *fragments):
    assert result.exit_code != 0, result.output
    text = result.output.lower()
    for frag in fragments:
        assert frag.lower() in text, f"{frag!r} not in: {result.output}"


def test_good_small_city_builds(tmp_path):
    _small_buildings(tmp_path)
    result = _build(_city(tmp_path), tmp_path / "twin")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "twin" / "twin.gpkg").is_file()


def test_missing_file(tmp_path):
    _assert_fails(_build(_city(tmp_path, buildings="nope.geojson"), tmp_path / "t"), "nope.geojson", "not found")


def test_truncated_vector_file(tmp_path):
    full = (TIANHE / "buildings_osm.geojson").read_bytes()
    (tmp_path / "b.geojson").write_bytes(full[: len(full) // 2])
    _assert_fails(_build(_city(tmp_path), tmp_path / "t"), "b.geojson", "cannot read")


def test_truncated_raster(tmp_path):
    _small_buildings(tmp_path)
    full = (TIANHE / "dem_copernicus_glo30_wgs84.tif").read_bytes()
    (tmp_path / "dem.tif").write_bytes(full[: len(full) // 3])
    extra = '''[layers.dem]
kind = "surface"
[[layers.dem.sources]]
path = "dem.tif"
licence = "x"
attribution = "x"'''
    _assert_fails(_build(_city(tmp_path, extra=extra), tmp_path / "t"), "dem.tif")


def test_unknown_crs(tmp_path):
    _small_buildings(tmp_path)
    _assert_fails(_build(_city(tmp_path, crs="EPSG:999999"), tmp_path / "t"), "unknown crs", "EPSG:999999")


def test_geographic_project_crs_is_refused(tmp_path):
    _small_buildings(tmp_path)
    _assert_fails(_build(_city(tmp_path, crs="EPSG:4326"), tmp_path / "t"), "not projected")


def test_file_without_crs(tmp_path):
    frame = gpd.read_file(_small_buildings(tmp_path)).to_crs(4547)
    frame = frame.set_crs(None, allow_override=True)
    pyogrio.write_dataframe(frame[["osm_id", "building_levels", "geometry"]], tmp_path / "nocrs.gpkg")
    _assert_fails(_build(_city(tmp_path, buildings="nocrs.gpkg"), tmp_path / "t"), "nocrs.gpkg", "no crs")


def test_layer_outside_the_city(tmp_path):
    _small_buildings(tmp_path, shift=1.5)
    _assert_fails(_build(_city(tmp_path), tmp_path / "t"), "b.geojson", "does not overlap")


def test_empty_layer(tmp_path):
    (tmp_path / "b.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    _assert_fails(_build(_city(tmp_path, bld_fields=False), tmp_path / "t"), "b.geojson", "no features")


def test_filter_that_removes_everything(tmp_path):
    _small_buildings(tmp_path)
    city = _city(tmp_path)
    text = city.read_text().replace('[layers.buildings.sources.fields]',
                                    '[layers.buildings.sources.filter]\ntags = { building = "castle" }\n'
                                    '[layers.buildings.sources.fields]')
    city.write_text(text)
    _assert_fails(_build(city, tmp_path / "t"), "b.geojson", "no features after filtering")


def test_wrong_geometry_type(tmp_path):
    shutil.copy(TIANHE / "pois_from_buildings.geojson", tmp_path / "b.geojson")
    _assert_fails(_build(_city(tmp_path, bld_fields=False), tmp_path / "t"), "b.geojson", "point", "polygon")


def test_ifc_without_georeference_or_placement(tmp_path):
    _small_buildings(tmp_path)
    shutil.copy(SHARED / "bim" / "IfcOpenHouse_IFC4.ifc", tmp_path / "house.ifc")
    extra = '''[layers.bim]
kind = "bim"
[[layers.bim.sources]]
path = "house.ifc"
licence = "x"
attribution = "x"'''
    _assert_fails(_build(_city(tmp_path, extra=extra), tmp_path / "t"), "house.ifc", "placement")


def test_invalid_config_names_the_field(tmp_path):
    _small_buildings(tmp_path)
    city = _city(tmp_path)
    city.write_text(city.read_text().replace('kind = "buildings"', 'kind = "castles"'))
    _assert_fails(_build(city, tmp_path / "t"), "layers.buildings.kind")


def test_failed_rebuild_leaves_the_previous_twin(tmp_path):
    _small_buildings(tmp_path)
    out = tmp_path / "twin"
    assert _build(_city(tmp_path), out).exit_code == 0
    before = (out / "manifest.json").read_bytes()
    bad = _city(tmp_path, buildings="missing.geojson")
    assert _build(bad, out).exit_code != 0
    (tmp_path / "b.geojson").write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    assert _build(_city(tmp_path), out).exit_code != 0
    assert (out / "manifest.json").read_bytes() == before
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".twin.")]
    assert leftovers == []
