"""The 3D viewer at "/" in headless Chromium against the real app on a freshly built, tiled Tianhe twin.

Expected positions and attributes come from the twin store (geopandas + pyproj), not from the viewer:
the test clicks where the store says a building's roof is and checks the panel shows that building.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pyproj import Transformer

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
TIANHE_TOML = ROOT / "data" / "tianhe" / "city.toml"
KEY = "viewer-test-key"
LIBRARY = "广州图书馆"
BIM_ROOF = "Dach-1"


@pytest.fixture(scope="session")
def tiled_twin(tiled_tianhe) -> Path:
    return tiled_tianhe


@pytest.fixture(scope="session")
def viewer_url(tiled_twin, serve_app):
    from api.app import create_app
    from api.settings import ApiKey, Settings

    return serve_app(create_app(Settings(twin_dir=tiled_twin,
                                         api_keys=[ApiKey(key=KEY, name="viewer-test", clearance="restricted")])))


@pytest.fixture(scope="session")
def expected(tiled_twin) -> dict:
    """The library's and a BIM roof slab's anchor points, straight from the store."""
    from twin.store.folder import FolderStore

    store = FolderStore(tiled_twin)
    to_wgs84 = Transformer.from_crs(store.manifest().crs, "EPSG:4326", always_xy=True)
    buildings = store.read_layer("buildings")
    lib = buildings[buildings["name"] == LIBRARY].iloc[0]
    c = lib.geometry.centroid
    assert lib.geometry.contains(c)
    lon, lat = to_wgs84.transform(c.x, c.y)
    bim = store.read_layer("bim")
    roof = bim[bim["name"] == BIM_ROOF].iloc[0]
    rc = roof.geometry.centroid
    rlon, rlat = to_wgs84.transform(rc.x, rc.y)
    return {
        "library": {"id": lib["id"], "lon": lon, "lat": lat, "roof": float(lib["ground"] + lib["height"]),
                    "height": float(lib["height"])},
        # a planar sloped slab: its footprint centroid lies on it halfway between bottom and top
        "roof": {"global_id": roof["global_id"], "ifc_class": roof["ifc_class"], "lon": rlon, "lat": rlat,
                 "z": float(roof["z_min"] + roof["z_max"]) / 2},
    }


def _search_and_fly(page, text: str) -> None:
    page.fill("#search-input", text)
    page.wait_for_selector("#search.open li[data-id]")
    page.press("#search-input", "Enter")
    page.wait_for_function("!document.querySelector('#search').classList.contains('open')")
    page.wait_for_timeout(1600)                    # the flight (1.2 s)
    page.evaluate("twin.waitForTiles()")


def _click_at(page, lon: float, lat: float, height: float) -> None:
    pos = page.evaluate("([lon, lat, h]) => twin.screenPositionOf(lon, lat, h)", [lon, lat, height])
    assert pos is not None
    assert 300 < pos["x"] < 1280 - 350 and 60 < pos["y"] < 800, f"target off the free map area: {pos}"
    page.mouse.click(pos["x"], pos["y"])
    page.wait_for_function("twin.selection() !== null", timeout=10_000)


def test_viewer_pick_search_layers_and_language(open_viewer, viewer_url, expected, artifacts_dir):
    context, page, errors, foreign = open_viewer(viewer_url, KEY)
    try:
        page.wait_for_function("window.twin && window.twin.ready")
        page.evaluate("twin.ready")
        assert page.inner_text("#city-name").strip() == "广州天河 · 珠江新城"
        rows = page.eval_on_selector_all("#layer-list section", "els => els.map(e => e.dataset.layer)")
        assert {"buildings", "bim", "basemap"} <= set(rows)
        assert page.evaluate("twin.layers.get('buildings').tileset.tilesLoaded") is True
        page.screenshot(path=str(artifacts_dir / "viewer-overview.png"))

        # search -> fly -> click the library's roof where the store puts it
        lib = expected["library"]
        _search_and_fly(page, LIBRARY)
        _click_at(page, lib["lon"], lib["lat"], lib["roof"])
        selection = page.evaluate("twin.selection()")
        assert selection["layer"] == "buildings"
        assert selection["properties"]["id"] == lib["id"]
        panel = page.locator("#info-panel")
        assert panel.locator(".info-title").inner_text() == LIBRARY
        assert panel.locator("tr[data-field=height] th").inner_text() == "高度"
        assert panel.locator("tr[data-field=height] td").inner_text() == f"{lib['height']:.1f} m"
        page.screenshot(path=str(artifacts_dir / "viewer.png"))

        # colour by use: the legend follows
        page.click("#layer-list section[data-layer=buildings] .segmented button[data-mode=use]")
        assert "住宅" in page.inner_text("#layer-list section[data-layer=buildings] .legend")
        assert page.evaluate("twin.layers.get('buildings').mode") == "use"

        # toggle the buildings off from the layer panel: the tileset's show flag follows
        page.click("#layer-list section[data-layer=buildings] input.switch")
        assert page.evaluate("twin.layers.get('buildings').tileset.show") is False

        # with the buildings hidden, click the BIM roof slab where the store puts it
        roof = expected["roof"]
        _search_and_fly(page, roof["global_id"])
        page.evaluate("twin.info.clear()")
        _click_at(page, roof["lon"], roof["lat"], roof["z"])
        bim = page.evaluate("twin.selection()")
        assert bim["layer"] == "bim"
        assert bim["properties"]["global_id"] == roof["global_id"]
        assert panel.locator("tr[data-field=global_id] td").inner_text() == roof["global_id"]
        assert roof["ifc_class"] in panel.locator("tr[data-field=ifc_class] td").inner_text()
        assert panel.locator(".info-title").inner_text() == BIM_ROOF
        page.screenshot(path=str(artifacts_dir / "viewer-bim.png"))

        # English labels
        page.click("#lang-button")
        assert page.inner_text("#city-name").startswith("Guangzhou Tianhe")
        assert panel.locator("tr[data-field=ifc_class] th").inner_text() == "IFC class"
        assert panel.locator("h3").inner_text() == "IFC data"

        page.click("#layer-list section[data-layer=buildings] input.switch")
        assert page.evaluate("twin.layers.get('buildings').tileset.show") is True
        page.evaluate("twin.setLanguage('zh')")
    finally:
        context.close()
    assert errors == []
    assert foreign == []


def test_viewer_shows_only_layers_the_caller_may_read(open_viewer, viewer_url):
    context, page, errors, foreign = open_viewer(viewer_url)
    try:
        page.wait_for_selector("#layer-list section[data-layer=buildings]")
        rows = page.eval_on_selector_all("#layer-list section", "els => els.map(e => e.dataset.layer)")
        assert "bim" not in rows                     # restricted: not in an anonymous caller's catalogue
        hits = page.evaluate("fetch('/api/search?q=Dach').then(r => r.json())")
        assert hits["results"] == []
    finally:
        context.close()
    assert errors == []
    assert foreign == []
