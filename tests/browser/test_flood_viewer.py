"""The flood scenario panel in headless Chromium against the real app on a freshly built, tiled Tianhe twin:
run a storm from the panel, follow its progress, then check what the viewer shows against the results
API read independently by the test (flooded buildings counted from the buildings layer, the depth rasters
read with rasterio, the hydrograph fetched at the point the viewer picked)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from pyproj import Transformer

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
TIANHE_TOML = ROOT / "data" / "tianhe" / "city.toml"
KEY = "flood-viewer-key"
READ_ONLY_KEY = "flood-viewer-read-only"     # reads jobs, may not run them
FREE_X = (300, 1280 - 350)          # the map between the layer panel and the right column
FREE_Y = (90, 760)


@pytest.fixture(scope="module")
def flood_twin(tiled_tianhe, tmp_path_factory) -> Path:
    """A copy of the tiled Tianhe twin (its jobs stay here) whose manifest carries city.toml's flood
    defaults (sewers, the Pearl River), added here where the build does not record them yet."""
    import shutil

    from twin.config import load_city

    twin = tmp_path_factory.mktemp("flood-viewer") / "twin"
    shutil.copytree(tiled_tianhe, twin, ignore=shutil.ignore_patterns("jobs"))
    manifest = json.loads((twin / "manifest.json").read_text())
    scenarios = manifest.setdefault("rules", {}).setdefault("scenarios", {})
    scenarios.setdefault("flood", load_city(TIANHE_TOML).scenarios.flood.model_dump(mode="json"))
    (twin / "manifest.json").write_text(json.dumps(manifest))
    return twin


@pytest.fixture(scope="module")
def server(flood_twin, serve_app):
    from api.app import create_app
    from api.settings import ApiKey, Settings

    return serve_app(create_app(Settings(twin_dir=flood_twin, api_keys=[
        ApiKey(key=KEY, name="duty-officer", clearance="restricted", scopes=["scenario:run"]),
        ApiKey(key=READ_ONLY_KEY, name="analyst", clearance="internal")])))


def _get(url: str):
    request = urllib.request.Request(url, headers={"X-API-Key": KEY})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _wet_points(twin: Path, job_id: str, count: int = 60) -> list[dict]:
    """Cells deep in water (>= 0.3 m with every neighbour wet) from the max_depth raster, as lon/lat and the
    ground height there (from the twin's ground raster), deepest first."""
    import rasterio

    from simulate.jobs.manager import JobManager
    from twin.store.folder import FolderStore

    job, folder = JobManager(twin).results(job_id)
    with rasterio.open(folder / job.results.rasters["max_depth"]) as src:
        depth = src.read(1, masked=True).filled(np.nan)
        transform, crs = src.transform, src.crs
    padded = np.pad(depth, 1, constant_values=np.nan)
    neighbours = np.stack([padded[1 + dr:padded.shape[0] - 1 + dr, 1 + dc:padded.shape[1] - 1 + dc]
                           for dr in (-1, 0, 1) for dc in (-1, 0, 1)])
    ok = (depth >= 0.3) & np.all(neighbours >= 0.05, axis=0)
    rows, cols = np.nonzero(ok)
    order = np.argsort(-depth[rows, cols])[:count]
    ground = FolderStore(twin).read_raster("ground")
    to_wgs84 = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    out = []
    for r, c in zip(rows[order], cols[order]):
        x, y = transform * (c + 0.5, r + 0.5)
        gr, gc = ~ground.transform * (x, y)
        z = float(ground.array[int(gr), int(gc)])
        lon, lat = to_wgs84.transform(x, y)
        out.append({"lon": lon, "lat": lat, "z": z if np.isfinite(z) else 0.0, "depth": float(depth[r, c])})
    return out


def test_flood_scenario_from_the_panel(open_viewer, server, flood_twin, artifacts_dir):
    context, page, errors, foreign = open_viewer(server, KEY)
    try:
        page.wait_for_function("window.twin && window.twin.ready")
        page.evaluate("twin.ready")
        assert page.inner_text("#flood-panel .flood-title").strip() == "内涝情景"

        # the city's defaults: sewer capacity and the Pearl River at its normal level, with a warning preset
        page.evaluate("twin.flood.defaultsReady")
        city = _get(f"{server}/viewer-config.json")["scenarios"]["flood"]
        assert city["drainage_mm_h"] > 0 and city["rivers"]
        normal, warning = city["rivers"][0]["normal_level_m"], city["rivers"][0]["warning_level_m"]
        assert float(page.input_value("#flood-drainage")) == city["drainage_mm_h"]
        assert page.is_visible("#flood-river") and "珠江" in page.inner_text("#flood-river-label")
        assert float(page.input_value("#flood-river")) == normal
        assert f"{warning:.1f} 米" in page.inner_text("#flood-river-presets [data-river=warning]")
        assert page.get_attribute("#flood-river-note", "data-above-warning") == "false"
        page.click("#flood-river-presets [data-river=warning]")
        assert float(page.input_value("#flood-river")) == warning
        assert page.get_attribute("#flood-river-note", "data-above-warning") == "true"
        page.click("#flood-river-presets [data-river=normal]")
        assert float(page.input_value("#flood-river")) == normal
        page.click("#flood-river-presets [data-river=warning]")       # the run below: the river at its warning level

        # a 50-year storm (120 mm in 2 h) on a coarse grid, simulated for 2 h
        page.click("#flood-presets [data-preset=p50]")
        assert page.input_value("#flood-rain") == "120" and page.input_value("#flood-duration") == "2"
        page.fill("#flood-horizon", "2")
        page.select_option("#flood-resolution", "40")
        page.click("#flood-run")
        page.wait_for_selector("#flood-progress:not([hidden])")
        page.wait_for_function("twin.flood.state === 'done' || twin.flood.state === 'failed'", timeout=150_000)
        assert page.evaluate("twin.flood.state") == "done", page.inner_text("#flood-message")
        assert page.get_attribute("#flood-progress", "data-percent") == "100"
        assert "模拟时间 120 / 120 分钟" in page.inner_text("#flood-progress-text")
        job_id = page.evaluate("twin.flood.job.jobID")

        # the summary against the results API, read here: buildings at or above the flooded depth
        job = _get(f"{server}/ogc/jobs/{job_id}")
        assert job["status"] == "successful" and job["inputs"]["rain_mm"] == 120
        assert job["inputs"]["drainage_mm_h"] == city["drainage_mm_h"] and job["inputs"]["river_level_m"] == warning
        assert "排水 " in page.inner_text("#flood-inputs-text") and "珠江" in page.inner_text("#flood-inputs-text")
        threshold = job["inputs"]["flooded_depth_m"]
        layer = _get(f"{server}/ogc/jobs/{job_id}/results/buildings")
        flooded = sum(1 for f in layer["features"] if f["properties"]["depth_m"] >= threshold)
        assert flooded > 0
        stat = page.locator("#flood-summary [data-stat=buildings]")
        assert int(stat.get_attribute("data-value")) == flooded
        assert stat.locator(".value").inner_text().replace(",", "").split()[0] == str(flooded)
        assert page.evaluate("twin.layers.get('buildings').flood.size") == flooded
        summary = _get(f"{server}/ogc/jobs/{job_id}/results/summary")
        used = summary["boundaries"]
        assert used["drainage_mm_h"] == city["drainage_mm_h"]
        assert [(st["edge"], st["level_m"], st["source"]) for st in used["stages"]] == \
            [(r["edge"], warning, "river_level_m") for r in city["rivers"]]
        assert all(st["faces"] > 0 and st["above_warning"] for st in used["stages"])
        request = urllib.request.Request(f"{server}/ogc/jobs/{job_id}/results/hydrograph_png",
                                         headers={"X-API-Key": KEY})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.headers["Content-Type"] == "image/png" and response.read(8) == b"\x89PNG\r\n\x1a\n"
        depth_text = page.locator("#flood-summary [data-stat=depth] .value").inner_text()
        assert depth_text.split()[0] == f"{summary['max_depth_m']:.2f}"

        # layers with legends in the layer panel
        rows = page.eval_on_selector_all("#layer-list section", "els => els.map(e => e.dataset.layer)")
        assert {"flood-depth", "flood-max", "flood-buildings", "flood-roads"} <= set(rows)
        assert "0.3–0.5 米" in page.inner_text("#layer-list section[data-layer=flood-depth] .legend")

        # the depth overlay: the last frame is shown; the slider steps through frames
        frames = page.evaluate("twin.flood.overlay.frames")
        listing = _get(f"{server}/ogc/jobs/{job_id}/results/frames")
        assert len(frames) == len(listing["files"]) >= 3
        page.evaluate("twin.flood.overlay.whenFrameReady()")
        shown = page.evaluate("twin.flood.overlay.shownFrame()")
        assert shown["index"] == len(frames) - 1 and shown["show"] and shown["ready"] and shown["inViewer"]
        assert shown["url"].endswith(f"/ogc/jobs/{job_id}/imagery/{frames[-1]['name']}.png")
        page.focus("#flood-time")
        for _ in range(3):
            page.keyboard.press("ArrowLeft")
        page.evaluate("twin.flood.overlay.whenFrameReady()")
        moved = page.evaluate("twin.flood.overlay.shownFrame()")
        assert moved["index"] == len(frames) - 4
        assert moved["url"].endswith(f"{frames[-4]['name']}.png") and moved["show"] and moved["ready"]
        assert page.evaluate(f"twin.flood.overlay.frameLayers[{len(frames) - 1}].show") is False
        assert page.inner_text("#flood-time-label") == f"{frames[-4]['minutes']:g} 分钟"
        page.evaluate("twin.flood.showFrame(0)")
        page.click("#flood-play")
        page.wait_for_function("twin.flood.overlay.frameIndex >= 2", timeout=20_000)
        page.click("#flood-play")
        assert page.evaluate("twin.flood.player") is None

        # max depth layer: switched on from the layer panel, drawn from its PNG
        page.click("#layer-list section[data-layer=flood-max] input.switch")
        page.wait_for_function("twin.flood.overlay.maxLayer && twin.flood.overlay.maxLayer.ready", timeout=20_000)
        page.click("#layer-list section[data-layer=flood-max] input.switch")

        # hydrograph: pick a deep-water point on the map
        page.evaluate("twin.flood.showFrame(twin.flood.overlay.frames.length - 1)")
        candidates = _wet_points(flood_twin, job_id, count=600)   # deepest first; some are off screen
        assert candidates, "no deep water in the run"
        positions = page.evaluate("pts => pts.map(p => twin.screenPositionOf(p.lon, p.lat, p.z))", candidates)
        target = next(((p, s) for p, s in zip(candidates, positions)
                       if s and FREE_X[0] < s["x"] < FREE_X[1] and FREE_Y[0] < s["y"] < FREE_Y[1]), None)
        assert target is not None, "no deep-water point in view"
        point, pos = target
        page.click("#flood-pick")
        page.mouse.click(pos["x"], pos["y"])
        page.wait_for_selector("#flood-chart svg path.line")
        hydro = page.evaluate("twin.flood.hydrograph")
        assert abs(hydro["lon"] - point["lon"]) < 4e-4 and abs(hydro["lat"] - point["lat"]) < 4e-4
        assert len(hydro["series"]) == len(frames)
        assert page.locator("#flood-chart svg circle").count() == len(frames)
        again = _get(f"{server}/ogc/jobs/{job_id}/hydrograph?lon={hydro['lon']}&lat={hydro['lat']}")
        assert again["series"] == hydro["series"]
        assert max(p["depth_m"] for p in hydro["series"]) > 0.05

        # recent scenarios list this one
        assert page.locator(f"#flood-jobs li[data-job='{job_id}'].current").count() == 1

        page.evaluate("twin.home(0)")
        page.evaluate("twin.waitForTiles()")
        page.screenshot(path=str(artifacts_dir / "viewer-flood.png"))
    finally:
        context.close()
    assert errors == []
    assert foreign == []


def test_running_needs_a_key_with_the_run_scope(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(90_000)
    responses: list[tuple[int, str]] = []
    page.on("response", lambda r: responses.append((r.status, r.url)))
    try:
        page.goto(f"{server}/")
        page.wait_for_function("window.twin && window.twin.flood")
        page.click("#flood-run")                                   # no key: a message, no request
        assert "API 密钥" in page.inner_text("#flood-message")
        assert not any("/execution" in url for _, url in responses)

        page.evaluate(f"sessionStorage.setItem('twin.apiKey', {READ_ONLY_KEY!r})")
        page.click("#flood-run")
        page.wait_for_function("document.querySelector('#flood-message').textContent.includes('scenario:run')")
        assert "权限" in page.inner_text("#flood-message")
        assert [s for s, url in responses if url.endswith("/ogc/processes/flood/execution")] == [403]
        assert page.evaluate("twin.flood.state") == "failed"
        assert page.is_enabled("#flood-run")
    finally:
        context.close()
