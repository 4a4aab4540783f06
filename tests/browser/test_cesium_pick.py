"""CesiumJS loads the Tianhe buildings tileset and a click answers "what is this?"
from the tile's own metadata (EXT_structural_metadata)."""

from __future__ import annotations

import json

import pytest
import shapely

from tests.conftest import ROOT

LIBRARY = "广州图书馆"       # Guangzhou Library: building:levels = 7 in the OSM source
STOREY = 3.2                 # data/tianhe/city.toml


@pytest.fixture(scope="module")
def tianhe_tiles(tianhe_twin, tmp_path_factory):
    from tiles.build import build_tiles

    out = tmp_path_factory.mktemp("tianhe-tiles")
    build_tiles(tianhe_twin.store, out)
    return tianhe_twin.store, out


def _library_from_source():
    data = json.loads((ROOT / "data" / "tianhe" / "buildings_osm.geojson").read_text(encoding="utf-8"))
    f = next(f for f in data["features"] if f["properties"]["name"] == LIBRARY)
    return f["properties"], shapely.geometry.shape(f["geometry"])


@pytest.mark.browser
def test_pick_a_known_building(cesium_page, static_server, tianhe_tiles, artifacts_dir):
    store, out = tianhe_tiles
    props, footprint = _library_from_source()
    expected_height = float(props["building_levels"]) * STOREY
    base = static_server(out)
    page = cesium_page
    page.evaluate("url => loadTileset(url)", f"{base}/buildings/tileset.json")

    # Where the roof is: the footprint's inner point (lon/lat from the source file) at
    # the twin's roof elevation, looked at from straight above.
    inner = footprint.representative_point()
    b = store.read_layer("buildings").set_index("source_id").loc[props["osm_id"]]
    roof = float(b["roof"])
    page.evaluate("([lon, lat, h]) => setView(lon, lat, h, 0, -90)", [inner.x, inner.y, roof + 350])
    page.evaluate("() => new Promise(r => setTimeout(r, 300))")
    page.wait_for_function("window.tilesets[0].tilesLoaded", timeout=60_000)
    xy = page.evaluate("""([lon, lat, h]) => {
        const c = Cesium.Cartesian3.fromDegrees(lon, lat, h);
        const w = (Cesium.SceneTransforms.worldToWindowCoordinates || Cesium.SceneTransforms.wgs84ToWindowCoordinates)(viewer.scene, c);
        return [w.x, w.y];
    }""", [inner.x, inner.y, roof])
    picked = page.evaluate("([x, y]) => pickAt(x, y)", xy)
    page.screenshot(path=str(artifacts_dir / "cesium_pick.png"))
    assert picked is not None, "nothing picked at the building's screen position"
    assert picked["name"] == LIBRARY
    assert picked["height"] == pytest.approx(expected_height, abs=0.01)
    assert picked["id"] == b["id"]
    errors = [e for e in page.console_errors + page.evaluate("window.harnessErrors")]
    assert errors == []
