from __future__ import annotations

import json

from typer.testing import CliRunner

from twin.cli import app


def test_info_json_is_the_catalogue(tianhe_twin):
    root = tianhe_twin.store.root
    result = CliRunner().invoke(app, ["info", str(root), "--json"])
    assert result.exit_code == 0, result.output
    cat = json.loads(result.stdout)
    layers = {l["name"]: l for l in cat["layers"]}
    assert layers["buildings"]["count"] == 342
    for layer in layers.values():
        assert layer["crs"] == "EPSG:4547"
        assert len(layer["bbox"]) == 4 and layer["bbox"][0] < layer["bbox"][2]
        assert layer["schema"] and layer["licences"] and layer["classification"]
    assert {r["name"] for r in cat["rasters"]} == {"surface", "ground"}
    human = CliRunner().invoke(app, ["info", str(root)])
    assert human.exit_code == 0 and "buildings" in human.output


def test_info_on_a_folder_without_a_twin(tmp_path):
    result = CliRunner().invoke(app, ["info", str(tmp_path)])
    assert result.exit_code == 2
    assert "manifest.json missing" in result.output
