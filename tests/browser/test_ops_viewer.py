"""The live operations view in headless Chromium against the real app on a tiled Tianhe twin with the sample
sensor network installed. Observations go in through the SensorThings HTTP API, as a gateway would send them;
the view must follow over the /live WebSocket alone. What it shows is checked against the API, read here."""

from __future__ import annotations

import json
import shutil
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

KEY = "ops-duty-officer"              # writes observations and handles alerts
VIEW_KEY = "ops-watch"                # reads everything, may not handle alerts
COLOURS = {"normal": "#2e9d5b", "warning": "#f0a202", "alarm": "#d93025", "offline": "#8a949e"}


@pytest.fixture(scope="module")
def ops_twin(tiled_tianhe, tmp_path_factory) -> Path:
    """A private copy of the tiled twin (its own sensor database) with the sample network installed."""
    from simulate.sensors.sample import install_network, plan_network
    from simulate.sensors.service import SensorService
    from twin.store.folder import FolderStore

    out = tmp_path_factory.mktemp("ops-twin") / "twin"
    shutil.copytree(tiled_tianhe, out, ignore=shutil.ignore_patterns("sensors", "jobs"))
    service = SensorService.for_twin(out)
    try:
        install_network(service, plan_network(FolderStore(out)))
    finally:
        service.close()
    return out


@pytest.fixture(scope="module")
def server(ops_twin, serve_app):
    from api.app import create_app
    from api.settings import ApiKey, Settings

    return serve_app(create_app(Settings(twin_dir=ops_twin, api_keys=[
        ApiKey(key=KEY, name="duty-officer", clearance="restricted", scopes=["sensors:write", "alerts:write"]),
        ApiKey(key=VIEW_KEY, name="watch", clearance="restricted")])))


def _call(url: str, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"X-API-Key": KEY, "Content-Type": "application/json"},
                                     method="GET" if body is None else "POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _ingest(server: str, rows: dict[int, object], when: datetime) -> None:
    """One dataArray request (CreateObservations): a value per Datastream at `when`."""
    body = [{"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime", "result"], "dataArray": [[_iso(when), v]]}
            for ds, v in rows.items()]
    _call(f"{server}/sta/v1.1/CreateObservations", body)


def _wait_site(page, site_id: int, state: str, timeout: int = 8000) -> None:
    page.wait_for_function("([id, s]) => twin.ops.sensors().find(x => x.id === id).state === s", arg=[site_id, state],
                           timeout=timeout)


def test_live_operations_view(open_viewer, server, artifacts_dir):
    things = _call(f"{server}/sta/v1.1/Things?$expand=Datastreams&$top=100")["value"]
    n = len(things)
    assert n >= 10
    point = next(t for t in things if t["properties"]["kind"] == "waterlogging")
    stream = point["Datastreams"][0]
    ds = stream["@iot.id"]
    thr = stream["properties"]["twin:thresholds"]
    warning, alarm, band = thr["warning"], thr["alarm"], thr["hysteresis"]

    context, page, errors, foreign = open_viewer(server, KEY)
    try:
        page.wait_for_function("window.twin && window.twin.ready && window.twin.ops")
        page.evaluate("twin.ready")
        page.click("#scenario-tabs [data-tab=ops]")
        assert page.is_visible("#ops-panel") and not page.is_visible("#flood-panel")
        assert page.inner_text("#ops-title") == "实时监测"
        page.evaluate("twin.ops.ready")
        page.wait_for_function("twin.ops.connected && twin.ops.sensors().length === %d" % n)
        assert page.get_attribute("#ops-conn", "data-status") == "open"

        # every site is on the map and, with no reading yet, offline
        sensors = page.evaluate("twin.ops.sensors()")
        assert {s["id"] for s in sensors} == {t["@iot.id"] for t in things}
        assert {s["kind"] for s in sensors} == {"rain", "stage", "waterlogging", "pump"}
        assert page.evaluate("twin.ops.counts()") == {"normal": 0, "warning": 0, "alarm": 0, "offline": n}
        assert page.get_attribute("#ops-counts [data-state=offline]", "data-value") == str(n)
        assert page.evaluate("twin.ops.layer.source.entities.values.length") == n
        assert page.evaluate(f"twin.ops.layer.colourOf({point['@iot.id']})") == COLOURS["offline"]
        assert "传感器" in page.inner_text("#layer-list section[data-layer=sensors]")
        assert page.locator("#ops-sensors li.ops-sensor").count() == n

        # baseline readings for every Datastream: all normal; the pumps stopped
        now = datetime.now(timezone.utc)
        base = {d["@iot.id"]: (False if d["observationType"].endswith("TruthObservation") else 0.0)
                for t in things for d in t["Datastreams"]}
        base[ds] = 0.02
        _ingest(server, base, now - timedelta(minutes=6))
        page.wait_for_function("twin.ops.counts().normal === %d" % n, timeout=8000)
        pumps = [s for s in page.evaluate("twin.ops.sensors()") if s["kind"] == "pump"]
        assert pumps and all(p["running"] is False for p in pumps)

        # the waterlogging point crosses its warning, then its alarm level
        _ingest(server, {ds: round(warning + 0.02, 3)}, now - timedelta(minutes=5))
        _wait_site(page, point["@iot.id"], "warning")
        _ingest(server, {ds: round(alarm + 0.05, 3)}, now - timedelta(minutes=4))
        _wait_site(page, point["@iot.id"], "alarm")
        assert page.evaluate(f"twin.ops.layer.colourOf({point['@iot.id']})") == COLOURS["alarm"]
        assert page.evaluate("twin.ops.counts()") == {"normal": n - 1, "warning": 0, "alarm": 1, "offline": 0}
        assert page.get_attribute("#ops-counts [data-state=alarm]", "data-value") == "1"
        events = _call(f"{server}/live/events?state=open&datastream={ds}")["events"]
        alarm_event = next(e for e in events if e["kind"] == "alarm")
        row = f"#ops-events li[data-event='{alarm_event['id']}']"
        page.wait_for_selector(row)
        shown = page.evaluate("twin.ops.events()")
        assert shown[0]["id"] == alarm_event["id"]               # newest first
        assert {e["kind"] for e in shown} == {"warning", "alarm"}
        assert page.get_attribute(row, "data-state") == "open"
        assert "报警" in page.inner_text(f"{row} .ev-kind") and "未确认" in page.inner_text(f"{row} .ev-state")
        assert f"{alarm + 0.05:g} m ≥ {alarm:g} m" in page.inner_text(f"{row} .ev-detail")

        # acknowledging needs alerts:write: a clear message with a key that lacks it
        page.evaluate(f"sessionStorage.setItem('twin.apiKey', {VIEW_KEY!r})")
        page.click(f"{row} button[data-action=acknowledge]")
        page.wait_for_function("document.querySelector('#ops-message').textContent.includes('alerts:write')")
        assert _call(f"{server}/live/events/{alarm_event['id']}")["state"] == "open"
        page.evaluate(f"sessionStorage.setItem('twin.apiKey', {KEY!r})")
        page.click(f"{row} button[data-action=acknowledge]")
        page.wait_for_function(f"document.querySelector(\"{row}\").dataset.state === 'acknowledged'")
        assert _call(f"{server}/live/events/{alarm_event['id']}")["state"] == "acknowledged"
        assert "已确认" in page.inner_text(f"{row} .ev-state")
        assert page.inner_text("#ops-message") == ""

        # a row click flies to the sensor and opens it; then a click on its symbol on the map selects it too
        page.click(row)
        page.wait_for_function(f"twin.ops.chart && twin.ops.chart.datastream === {ds}")
        page.evaluate("twin.ops.flight")
        page.evaluate("twin.ops.clearSelection()")
        site = next(s for s in page.evaluate("twin.ops.sensors()") if s["id"] == point["@iot.id"])
        page.wait_for_timeout(300)
        pos = page.evaluate("s => twin.ops.layer.screenPositionOf(s)", site)
        assert pos and 300 < pos["x"] < 1280 - 350 and 60 < pos["y"] < 800, pos
        page.mouse.click(pos["x"], pos["y"])
        page.wait_for_function(f"twin.ops.chart && twin.ops.chart.datastream === {ds}")
        assert page.get_attribute("#ops-detail", "data-site") == str(point["@iot.id"])
        page.mouse.move(pos["x"] + 2, pos["y"] + 1)
        page.wait_for_function(f"twin.ops.layer.hovered === {point['@iot.id']}")
        assert page.get_attribute("#ops-detail .ops-badge", "data-state") == "alarm"
        page.screenshot(path=str(artifacts_dir / "viewer-ops.png"))

        # back into the dead band: still alarm (hysteresis); below alarm - hysteresis: the alarm closes,
        # below warning - hysteresis: normal again
        _ingest(server, {ds: round(alarm - band / 2, 3)}, now - timedelta(minutes=3))
        page.wait_for_function(f"twin.ops.chart.series.length === 4")
        assert page.evaluate(f"twin.ops.sensors().find(x => x.id === {point['@iot.id']}).state") == "alarm"
        _ingest(server, {ds: round(warning - band - 0.01, 3)}, now - timedelta(minutes=2))
        _wait_site(page, point["@iot.id"], "normal")
        assert page.evaluate(f"twin.ops.layer.colourOf({point['@iot.id']})") == COLOURS["normal"]
        assert page.evaluate("twin.ops.counts()") == {"normal": n, "warning": 0, "alarm": 0, "offline": 0}
        page.wait_for_function(f"document.querySelector(\"{row}\").dataset.state === 'closed'")
        assert _call(f"{server}/live/events/{alarm_event['id']}")["state"] == "closed"
        assert page.locator(f"{row} button").count() == 0

        # the chart: every reading ingested for it, the thresholds of the Datastream as the API gives them
        api = _call(f"{server}/sta/v1.1/Datastreams({ds})/Observations?$orderby=phenomenonTime%20asc"
                    "&$select=phenomenonTime,result")["value"]
        page.evaluate(f"twin.ops.select({ds})")
        chart = page.evaluate("twin.ops.chart")
        assert [(p["phenomenonTime"], p["value"]) for p in chart["series"]] == [(o["phenomenonTime"], o["result"])
                                                                               for o in api]
        assert len(api) == 5
        props = _call(f"{server}/sta/v1.1/Datastreams({ds})")["properties"]["twin:thresholds"]
        assert chart["thresholds"]["warning"] == props["warning"] and chart["thresholds"]["alarm"] == props["alarm"]
        assert chart["unit"] == _call(f"{server}/sta/v1.1/Datastreams({ds})")["unitOfMeasurement"]["symbol"]
        lines = page.eval_on_selector_all("#ops-chart line.threshold",
                                          "els => els.map(e => [e.classList[1], Number(e.dataset.value)])")
        assert sorted(map(tuple, lines)) == [("alarm", props["alarm"]), ("warning", props["warning"])]
        assert page.locator("#ops-chart svg circle").count() == len(api)
        assert page.inner_text("#ops-latest-value") == f"{api[-1]['result']:g} m"

        # English labels
        page.click("#lang-button")
        assert page.inner_text("#ops-title") == "Live operations"
        assert page.inner_text("#ops-counts [data-state=normal] .name") == "Normal"
        page.evaluate("twin.setLanguage('zh')")

        # forecast events (from a nowcast: kind "forecast-…" with the run's details) mark their site without
        # changing its observed state; an event of a kind the view does not know is listed as it comes
        gauge = next(t for t in things if t["properties"]["kind"] == "stage")
        gauge_ds = gauge["Datastreams"][0]["@iot.id"]
        issued = _iso(datetime.now(timezone.utc))
        page.evaluate("""([ds, thing, issued, lon, lat]) => {
            const base = {state: "open", opened_at: issued, closed_at: null, acknowledged_at: null,
                          location: {type: "Point", coordinates: [lon, lat]}};
            twin.ops.receive({type: "event", event: {...base, id: 900001, kind: "forecast-alarm", datastream_id: ds,
                thing_id: thing, value: 2.6, threshold: 2.3, peak: 2.6, message: "nowcast",
                forecast: {job: "j1", issued_at: issued, horizon_s: 3600, predicted: 2.6, expected_at: issued}}});
            twin.ops.receive({type: "event", event: {...base, id: 900002, kind: "surge", datastream_id: null,
                thing_id: null, message: "tide", forecast: null}});
        }""", [gauge_ds, gauge["@iot.id"], issued, site["lon"] + 0.002, site["lat"]])
        forecast = "#ops-events li[data-event='900001']"
        assert page.get_attribute(forecast, "class").split()[1] == "forecast"
        assert page.inner_text(f"{forecast} .ev-kind") == "预报预警"
        assert "预计 2.6 m ≥ 2.3 m" in page.inner_text(f"{forecast} .ev-detail")
        marked = next(s for s in page.evaluate("twin.ops.sensors()") if s["id"] == gauge["@iot.id"])
        assert marked["forecast"] is True and marked["state"] == "normal"
        assert page.evaluate(f"!!twin.ops.layer.source.entities.getById('forecast-ring-{gauge['@iot.id']}')")
        assert page.inner_text("#ops-events li[data-event='900002'] .ev-kind") == "surge"
        assert page.evaluate("!!twin.ops.layer.source.entities.getById('ops-event-900002')")
        assert page.evaluate("twin.ops.counts()")["normal"] == n

        # the connection drops and comes back by itself
        page.evaluate("twin.ops.live.drop()")
        page.wait_for_function("!twin.ops.connected")
        page.wait_for_function("twin.ops.connected", timeout=10_000)
        _ingest(server, {ds: round(alarm + 0.1, 3)}, now - timedelta(minutes=1))
        _wait_site(page, point["@iot.id"], "alarm")
    finally:
        context.close()
    # the 403 of the acknowledge with the watch key was expected
    assert [e for e in errors if "403" not in e] == []
    assert foreign == []
