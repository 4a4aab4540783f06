"""The evacuation scenario panel in headless Chromium against the real app on a freshly built, tiled Tianhe twin:
a flood runs through the API, the panel takes it as the hazard (after a zone is drawn and dropped), runs the
evacuation as a job, and what the viewer shows is checked against the results API read independently here
(the summary, the curve CSV, link_loads.json and the shelter and link layers)."""

from __future__ import annotations

import json
import math
import re
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

KEY = "evac-viewer-key"
FLOOD = {"rain_mm": 150, "duration": "1h", "resolution_m": 40, "horizon": "90min"}
# the roads of the sample cover about 1.1 x 1.1 km around Huacheng Square; the zone drawn lies inside
ROADS_VIEW = (113.3155, 23.1235)
ZONE = [(113.3135, 23.1215), (113.3175, 23.1215), (113.3175, 23.1250), (113.3135, 23.1250)]
# evacuation-layers.js: load / storage -> colour, linear in RGB between these stops; closed links
LOAD_STOPS = [(0.0, "#2e9d5b"), (0.5, "#f1c40f"), (1.0, "#c0392b")]
EMPTY, FULL, CLOSED = LOAD_STOPS[0][1], LOAD_STOPS[-1][1], "#111111"


def load_colour(share: float) -> str:
    s = min(1.0, max(0.0, share))
    k = max(1, next(i for i, (at, _) in enumerate(LOAD_STOPS) if at >= s))
    (a, ca), (b, cb) = LOAD_STOPS[k - 1], LOAD_STOPS[k]
    f = (s - a) / (b - a)
    rgb = [int(ca[i:i + 2], 16) + (int(cb[i:i + 2], 16) - int(ca[i:i + 2], 16)) * f for i in (1, 3, 5)]
    return "#" + "".join(f"{math.floor(v + 0.5):02x}" for v in rgb)


@pytest.fixture(scope="module")
def evac_twin(tiled_tianhe, tmp_path_factory) -> Path:
    """A copy of the tiled Tianhe twin whose jobs stay here."""
    import shutil

    twin = tmp_path_factory.mktemp("evac-viewer") / "twin"
    shutil.copytree(tiled_tianhe, twin, ignore=shutil.ignore_patterns("jobs"))
    return twin


@pytest.fixture(scope="module")
def server(evac_twin, serve_app):
    from api.app import create_app
    from api.settings import ApiKey, Settings

    return serve_app(create_app(Settings(twin_dir=evac_twin, api_keys=[
        ApiKey(key=KEY, name="duty-officer", clearance="restricted", scopes=["scenario:run"])])))


def _request(url: str, body: dict | None = None, headers: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"X-API-Key": KEY, "Content-Type": "application/json",
                                                              **(headers or {})})
    return urllib.request.urlopen(request, timeout=30)


def _get(url: str):
    with _request(url) as response:
        return json.loads(response.read())


def _text(url: str) -> str:
    with _request(url) as response:
        return response.read().decode("utf-8")


def _submit_flood(server: str) -> str:
    with _request(f"{server}/ogc/processes/flood/execution", {"inputs": FLOOD}, {"Prefer": "respond-async"}) as r:
        assert r.status == 201
        return json.loads(r.read())["jobID"]


def _wait(server: str, job_id: str, timeout_s: float = 150) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        job = _get(f"{server}/ogc/jobs/{job_id}")
        if job["status"] not in ("accepted", "running"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        time.sleep(0.5)


def _flooded_near_roads(server: str, twin: Path, flood_id: str, threshold: float) -> int:
    """Flooded buildings whose centre lies within the extent of the road data."""
    from shapely.geometry import shape

    from twin.store.folder import FolderStore

    w, s, e, n = FolderStore(twin).read_layer("roads").to_crs(4326).total_bounds
    layer = _get(f"{server}/ogc/jobs/{flood_id}/results/buildings")
    centres = [shape(f["geometry"]).centroid for f in layer["features"] if f["properties"]["depth_m"] >= threshold]
    return sum(1 for c in centres if w <= c.x <= e and s <= c.y <= n)


def _vertices(path_d: str) -> int:
    return len(re.findall(r"[ML]", path_d))


def test_evacuation_from_the_panel(open_viewer, server, evac_twin, artifacts_dir):
    started = time.monotonic()
    flood_id = _submit_flood(server)                 # runs while the viewer loads
    context, page, errors, foreign = open_viewer(server, KEY)
    try:
        page.wait_for_function("window.twin && window.twin.ready")
        page.evaluate("twin.ready")
        flood = _wait(server, flood_id)
        assert flood["status"] == "successful", flood.get("message")
        assert _flooded_near_roads(server, evac_twin, flood_id, flood["inputs"]["flooded_depth_m"]) >= 5

        # the flood panel shows the flood; the evacuation panel offers it first
        page.evaluate("id => twin.flood.open(id)", flood_id)
        for layer in ("flood-depth", "flood-buildings", "flood-roads"):     # less to draw (software GL) and to see
            page.evaluate("id => twin.layers.get(id) && twin.layers.setVisible(id, false)", layer)
        page.click("#scenario-tabs [data-tab=evacuation]")
        assert page.is_visible("#evac-panel") and not page.is_visible("#flood-panel")
        assert page.inner_text("#evac-panel .flood-title").strip() == "疏散情景"
        # the flood panel finishes opening its job asynchronously; the panel re-renders on tab show and refresh
        page.wait_for_function(
            """id => { const s = document.querySelector('#evac-flood-job');
                       if (!(s.value === id && s.selectedOptions[0].textContent.includes('当前显示'))) {
                         twin.evacuation.refreshFloodJobs(); return false; }
                       return true; }""", arg=flood_id, polling=500, timeout=20000)

        # drawing a zone: clicks add corners, Esc drops it, a double-click closes it
        page.evaluate(f"twin.flyTo({ROADS_VIEW[0]}, {ROADS_VIEW[1]}, 0, {{range: 1500, duration: 0, pitchDeg: -58}})")
        page.click("#evac-hazard [data-hazard=polygon]")
        assert page.is_visible("#evac-draw") and not page.is_visible("#evac-flood-job")
        page.click("#evac-draw")
        corners = page.evaluate("""cs => cs.map(([lon, lat]) => twin.screenPositionOf(lon, lat,
            twin.viewer.scene.globe.getHeight(Cesium.Cartographic.fromDegrees(lon, lat)) || 0))""", ZONE)
        assert all(c and 300 < c["x"] < 930 and 80 < c["y"] < 760 for c in corners), corners
        for c in corners[:2]:
            page.mouse.click(c["x"], c["y"])
        assert page.evaluate("twin.evacuation.drawer.points.length") == 2
        assert "2 个顶点" in page.inner_text("#evac-zone-text")
        page.keyboard.press("Escape")
        assert page.evaluate("[twin.evacuation.drawer.points.length, twin.evacuation.drawer.active]") == [0, False]
        page.click("#evac-draw")
        for c in corners[:3]:
            page.mouse.click(c["x"], c["y"])
        page.mouse.dblclick(corners[3]["x"], corners[3]["y"])
        assert page.evaluate("[twin.evacuation.drawer.active, twin.evacuation.drawer.closed]") == [False, True]
        polygon = page.evaluate("twin.evacuation.formInputs().hazard.polygon")
        ring = polygon["coordinates"][0]
        assert len(ring) == 5 and ring[0] == ring[-1]
        for (lon, lat), (want_lon, want_lat) in zip(ring, ZONE):
            assert abs(lon - want_lon) < 3e-5 and abs(lat - want_lat) < 3e-5
        assert page.evaluate("twin.selection()") is None          # the clicks drew, they did not pick buildings

        # the flood as the hazard, everyone leaving at once, on foot by day, 3 h
        page.click("#evac-hazard [data-hazard=flood]")
        page.click("#evac-response [data-response=immediate]")
        page.click("#evac-run")
        page.wait_for_selector("#evac-progress:not([hidden])")
        page.wait_for_function("twin.evacuation.state === 'done' || twin.evacuation.state === 'failed'",
                               timeout=120_000)
        assert page.evaluate("twin.evacuation.state") == "done", page.inner_text("#evac-message")
        assert page.get_attribute("#evac-progress", "data-percent") == "100"
        assert "模拟时间 180 / 180 分钟" in page.inner_text("#evac-progress-text")
        job_id = page.evaluate("twin.evacuation.job.jobID")
        job = _get(f"{server}/ogc/jobs/{job_id}")
        assert job["processID"] == "evacuation" and job["status"] == "successful"
        assert job["inputs"]["hazard"]["flood_job"] == flood_id
        assert job["inputs"]["response"]["distribution"] == "immediate"
        assert (job["inputs"]["mode"], job["inputs"]["time_of_day"], job["inputs"]["destinations"]) == \
            ("walk", "day", "shelters")

        # the summary against the API's
        doc = _get(f"{server}/ogc/jobs/{job_id}/results")
        summary = doc["summary"]
        assert summary["population"] > 0 and summary["hazard"]["job"] == flood_id
        for key in ("population", "evacuated", "trapped"):
            stat = page.locator(f"#evac-summary [data-stat={key}]")
            assert float(stat.get_attribute("data-value")) == summary[key]
            assert stat.locator(".value").inner_text().split()[0].replace(",", "") == str(round(summary[key]))
        c90 = summary["clearance_s"]["90"]
        stat90 = page.locator("#evac-summary [data-stat=clearance-90]")
        if c90 is None:
            assert stat90.get_attribute("data-value") == "" and "未达到" in stat90.inner_text()
        else:
            assert stat90.get_attribute("data-value") == str(round(c90 / 60))
            assert stat90.locator(".value").inner_text().split()[0] == str(round(c90 / 60))
        outside = summary["outside_road_data"]
        if outside["buildings"]:
            assert "花城广场" in page.inner_text("#evac-summary .evac-note")
        shown = page.eval_on_selector_all("#evac-summary .evac-bottlenecks li",
                                          "els => els.map(e => Number(e.dataset.link))")
        assert shown == [b["link"] for b in summary["bottlenecks"]]

        # result layers in the registry, visible, with rows in the layer panel
        for layer in ("evac-hazard", "evac-links", "evac-shelters", "evac-trapped"):
            assert page.evaluate(f"twin.layers.get('{layer}') && twin.layers.get('{layer}').visible"), layer
        assert page.evaluate("twin.layers.get('evac-routes').visible") is False
        rows = page.eval_on_selector_all("#layer-list section", "els => els.map(e => e.dataset.layer)")
        assert {"evac-hazard", "evac-links", "evac-shelters", "evac-trapped", "evac-routes"} <= set(rows)

        # road colours follow link_loads.json: all empty at t = 0, the fullest link at the peak as full as it is
        loads = _get(doc["link_loads"]["href"])
        links = _get(f"{server}/ogc/jobs/{job_id}/results/links")["features"]
        closed_at = {f["properties"]["link"]: f["properties"]["closed_at_s"] for f in links}
        assert sorted(closed_at) == sorted(loads["links"])
        page.evaluate("twin.evacuation.setTime(0)")
        page.evaluate("twin.evacuation.overlay.whenReady()")
        colours = page.evaluate("ids => ids.map(id => twin.evacuation.overlay.linkColour(id))", loads["links"])
        assert all(c == (CLOSED if closed_at[i] is not None and closed_at[i] <= 0 else EMPTY)
                   for i, c in zip(loads["links"], colours))
        totals = [sum(row) for row in loads["loads"]]
        peak = totals.index(max(totals))
        t_peak = loads["times_s"][peak]
        open_links = [k for k, i in enumerate(loads["links"]) if closed_at[i] is None or closed_at[i] > t_peak]
        k = max(open_links, key=lambda k: loads["loads"][peak][k] / loads["storage"][k] if loads["storage"][k] else 0)
        share = loads["loads"][peak][k] / loads["storage"][k]
        assert share >= 0.5, "no crowded road at the peak"
        link = loads["links"][k]
        assert page.evaluate("t => twin.evacuation.setTime(t)", t_peak) == t_peak
        page.evaluate("twin.evacuation.overlay.whenReady()")
        assert page.evaluate("id => twin.evacuation.overlay.linkColour(id)", link) == load_colour(share)
        if share >= 1:
            assert load_colour(share) == FULL
        drawn = page.evaluate("id => twin.evacuation.overlay.drawnLink(id)", link)
        assert drawn == {"colour": load_colour(share), "show": True, "closed": False}
        closed_now = [i for i in loads["links"] if closed_at[i] is not None and closed_at[i] <= t_peak]
        if closed_now:
            assert page.evaluate("id => twin.evacuation.overlay.linkColour(id)", closed_now[0]) == CLOSED
            assert page.evaluate("id => twin.evacuation.overlay.drawnLink(id)", closed_now[0])["closed"] is True

        # the slider steps through the samples; the chart cursor follows
        assert int(page.input_value("#evac-time-slider")) == peak
        page.focus("#evac-time-slider")
        page.keyboard.press("ArrowRight")
        assert page.evaluate("twin.evacuation.overlay.shownTime()") == loads["times_s"][peak + 1]
        assert page.inner_text("#evac-time-label") == f"{round(loads['times_s'][peak + 1] / 60)} 分钟"
        assert float(page.get_attribute("#evac-chart line.cursor", "data-t")) == loads["times_s"][peak + 1]

        # the chart holds the curve CSV
        lines = _text(doc["curve"]["href"]).strip().splitlines()
        header = lines[0].split(",")
        csv_rows = [dict(zip(header, map(float, line.split(",")))) for line in lines[1:]]
        assert page.evaluate("twin.evacuation.curve") == csv_rows
        for series in ("evacuated", "en_route", "not_departed", "trapped"):
            d = page.get_attribute(f"#evac-chart path.series[data-series={series}]", "d")
            assert _vertices(d) == len(csv_rows)
        markers = page.eval_on_selector_all("#evac-chart .clearance-marker", "els => els.map(e => e.dataset.share)")
        assert markers == [s for s in ("90", "100") if summary["clearance_s"][s] is not None]

        # shelters at the end hold what the shelters layer says
        page.evaluate("t => twin.evacuation.setTime(t)", loads["times_s"][-1])
        shelters = _get(f"{server}/ogc/jobs/{job_id}/results/shelters")["features"]
        state = {s["shelter"]: s["occupancy"] for s in page.evaluate("twin.evacuation.overlay.shelterState()")}
        assert state == {f["properties"]["shelter"]: f["properties"]["occupancy"] for f in shelters}

        # a bottleneck: click flies there and highlights the road
        if summary["bottlenecks"]:
            page.click("#evac-summary .evac-bottlenecks li:first-child")
            page.wait_for_selector("#evac-summary .evac-bottlenecks li.active")
            assert page.evaluate("twin.evacuation.overlay.sources.highlight.entities.values.length") >= 1

        # recent evacuations list this one; English on the toggle
        assert page.locator(f"#evac-jobs li[data-job='{job_id}'].current").count() == 1
        page.evaluate("twin.setLanguage('en')")
        assert page.inner_text("#evac-panel .flood-title").strip() == "Evacuation scenario"
        assert "Must leave" in page.inner_text("#evac-summary")
        page.evaluate("twin.setLanguage('zh')")

        page.evaluate("t => twin.evacuation.setTime(t)", t_peak)       # the view is still the one drawn in
        page.evaluate("twin.evacuation.overlay.whenReady()")
        page.evaluate("twin.waitForTiles()")
        page.evaluate("document.querySelector('#evac-panel').scrollTop = 0")
        page.screenshot(path=str(artifacts_dir / "viewer-evacuation.png"))
    finally:
        context.close()
    assert errors == []
    assert foreign == []
