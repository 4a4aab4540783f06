from __future__ import annotations

import pytest
from typer.testing import CliRunner

from layers.crs import project_crs
from tests.conftest import TIANHE_TOML
from twin.cli import app
from twin.config import load_city, parse_city
from twin.errors import ConfigError


def test_the_sample_config_validates():
    city = load_city(TIANHE_TOML)
    assert city.crs == "EPSG:4547"
    assert {l.classification for l in city.layers.values()} <= {"public", "internal", "restricted"}
    assert all(s.licence and s.attribution for l in city.layers.values() for s in l.sources)
    result = CliRunner().invoke(app, ["config", "validate", str(TIANHE_TOML)])
    assert result.exit_code == 0, result.output


def test_errors_name_the_field(tmp_path):
    base = {"name": "x", "extent": [1, 1, 2, 2], "layers": {"b": {"kind": "buildings", "sources": []}}}
    with pytest.raises(ConfigError) as e:
        parse_city(base, base_dir=tmp_path)
    assert e.value.field == "layers.b.sources"
    with pytest.raises(ConfigError) as e:
        parse_city({**base, "extent": [2, 2, 1, 1]}, base_dir=tmp_path)
    assert "extent" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_city({**base, "colour": "red"}, base_dir=tmp_path)
    assert "colour" in str(e.value)


def test_default_crs_is_the_utm_zone_of_the_extent():
    # Zone number from the textbook formula, independent of pyproj's database query.
    lon = 113.32
    zone = int((lon + 180) // 6) + 1
    crs = project_crs(None, (113.30, 23.09, 113.34, 23.13), origin="t")
    assert crs.to_epsg() == 32600 + zone == 32649
