"""The flood nowcast: readings -> forcing (checked by hand), forecast events and their lifecycle,
the trigger's debounce, and a nowcast on the Tianhe twin whose warnings reach the events API."""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timedelta, timezone
from typing import ClassVar

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pyproj import Transformer
from sensor_fixtures import M, service, stream_body, thing_body  # noqa: F401

from simulate.flood.forcing import MM_H
from simulate.flood.grid import FloodGrid
from simulate.flood.process import build_forcing
from simulate.jobs import JobManager, JobStatus
from simulate.jobs.results import read_summary
from simulate.jobs.runner import validate_inputs
from simulate.nowcast.forcing import flood_inputs
from simulate.nowcast.inputs import NowcastInputs
from simulate.nowcast.process import NowcastProcess
from simulate.nowcast.readings import Gauge, Readings, read_sensors
from simulate.nowcast.trigger import NowcastTrigger
from simulate.process import OutputSpec, Process, ProcessError, ProcessResult
from simulate.sensors.alerts import EventFilter, ForecastRun, PointForecast
from simulate.sensors.errors import InvalidEntity
from simulate.sensors.model import format_time
from twin.config import RiverStageConfig

CRS = "EPSG:4547"
MM_PER_H = {"name": "millimetre per hour", "symbol": "mm/h", "definition": "http://qudt.org/vocab/unit/MilliM-PER-HR"}
DEPTH = {"warning": 0.15, "alarm": 0.30, "hysteresis": 0.03}
NOW = datetime.now(timezone.utc).replace(microsecond=0)
TO_WGS = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)


def observe(service, ds: int, value: float, when: datetime) -> None:
    service.create("Observations", {"Datastream": {"@iot.id": ds}, "phenomenonTime": format_time(when),
                                    "result": value})


def lonlat(x: float, y: float) -> tuple[float, float]:
    lon, lat = TO_WGS.transform(x, y)
    return lon, lat


# -- inputs ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad, field", [({"horizon": "13h"}, "horizon"), ({"horizon": "5min"}, "horizon"),
                                        ({"lookback": "2d"}, "lookback"), ({"at": "yesterday"}, "at"),
                                        ({"rain_ahead": "double"}, "rain_ahead"), ({"resolution_m": 1}, "resolution_m"),
                                        ({"rain_mm": 50}, "rain_mm")])
def test_bad_inputs_name_the_field(bad, field):
    with pytest.raises(ProcessError) as err:
        validate_inputs(NowcastProcess(), bad)
    assert err.value.field == field
    assert NowcastInputs().horizon_s == 7200 and NowcastInputs().lookback_s == 1800


# -- readings and forcing ----------------------------------------------------------------------------

def test_readings_keep_recent_values_in_the_project_crs(service):  # noqa: F811
    xy = {"r1": (430000.0, 2557000.0), "r2": (431000.0, 2557000.0), "r3": (430500.0, 2558000.0),
          "s1": (429000.0, 2556700.0), "w1": (430400.0, 2557400.0)}
    for name in ("r1", "r2", "r3"):
        service.create("Things", thing_body(name, *lonlat(*xy[name]), [stream_body(f"{name}-i", MM_PER_H)]))
    service.create("Things", thing_body("s1", *lonlat(*xy["s1"]), [stream_body("s1-stage", M)], kind="stage"))
    service.create("Things", thing_body("w1", *lonlat(*xy["w1"]), [stream_body("w1-depth", M, DEPTH)],
                                        kind="waterlogging"))
    observe(service, 1, 30.0, NOW - timedelta(minutes=50))        # r1: an old reading, then a recent one
    observe(service, 1, 42.0, NOW - timedelta(minutes=5))
    observe(service, 1, 99.0, NOW + timedelta(minutes=5))         # after the forecast's start: not used
    observe(service, 2, 12.0, NOW - timedelta(minutes=10))
    observe(service, 3, 80.0, NOW - timedelta(minutes=45))        # r3: stale
    observe(service, 4, 1.6, NOW - timedelta(minutes=1))
    r = read_sensors(service, CRS, NOW, 1800)
    assert {g.name: g.value for g in r.rain} == {"r1": 42.0, "r2": 12.0}
    assert r.stale == ["r3"] and [(g.name, g.value) for g in r.stages] == [("s1", 1.6)]
    assert [(p.name, p.thresholds.alarm, p.observed) for p in r.points] == [("w1", 0.30, None)]
    for g in r.rain + r.stages:
        assert np.hypot(g.x - xy[g.name][0], g.y - xy[g.name][1]) < 0.05
    # nothing within a 30-second lookback: the error names the lookback
    with pytest.raises(ProcessError) as err:
        read_sensors(service, CRS, NOW, 30)
    assert err.value.field == "lookback"


def test_no_gauges_is_an_error_naming_the_sensors(service):  # noqa: F811
    service.create("Things", thing_body("w1", 113.3, 23.1, [stream_body("w1-depth", M, DEPTH)], kind="waterlogging"))
    with pytest.raises(ProcessError) as err:
        read_sensors(service, CRS, NOW, 1800)
    assert err.value.field == "sensors"


def gauge(name: str, x: float, y: float, value: float) -> Gauge:
    return Gauge(0, name, 0, x, y, value, format_time(NOW))


def test_rain_field_is_the_inverse_distance_weighting_of_the_gauges():
    gauges = [gauge("a", 5.0, -5.0, 60.0), gauge("b", 95.0, -5.0, 20.0), gauge("c", 45.0, -75.0, 0.0)]
    grid = FloodGrid.from_arrays(np.zeros((8, 10)), 10.0, origin=(0.0, 0.0))
    for mode, per_hour in (("persist", 1.0), ("decay", 0.5)):
        inputs = NowcastInputs(horizon="1h", rain_ahead=mode, drainage_mm_h=0)
        flood, _ = flood_inputs(Readings(format_time(NOW), rain=gauges), inputs, [], (0, -80, 100, 0))
        assert [g.rain_mm for g in flood.rain_gauges] == pytest.approx([60 * per_hour, 20 * per_hour, 0.0])
        assert flood.horizon_s == 3600 and flood.duration_s == 3600
        rain, _ = build_forcing(flood).bind(grid).rain_at(0.0)
        # by hand: the cell centred at (25, -35), distances to the gauges squared
        d2 = np.array([20 ** 2 + 30 ** 2, 70 ** 2 + 30 ** 2, 20 ** 2 + 40 ** 2])
        expected = (60 / d2[0] + 20 / d2[1] + 0 / d2[2]) / (1 / d2).sum()
        # persist holds the intensity; decay starts at the middle of its first 5-minute step (11.5 / 12)
        scale = 1.0 if mode == "persist" else 11.5 / 12
        assert rain[3, 2] / MM_H == pytest.approx(expected * scale, rel=1e-9)
        assert rain[0, 0] / MM_H == pytest.approx(60 * scale, rel=1e-3)       # next to gauge a


def test_stage_gauges_map_to_rivers_by_name_then_nearest_crossing():
    extent = (0.0, 0.0, 1000.0, 800.0)
    rivers = [RiverStageConfig(name="Main", edge="west", span=(300, 400), normal_level_m=0.5, gauge="G-west"),
              RiverStageConfig(name="Main", edge="east", span=(100, 200), normal_level_m=0.2),   # same river
              RiverStageConfig(name="North", edge="north", span=(400, 600), normal_level_m=0.7)]
    stages = [gauge("G-west", 950.0, 150.0, 2.1),       # by name, although it stands by the east crossing
              gauge("near-east", 900.0, 160.0, 1.4),     # nearest crossing: the east one (100 m)
              gauge("mid", 620.0, 700.0, 1.0)]           # 102 m from the north crossing, 628 m from the east
    readings = Readings(format_time(NOW), stages=stages)
    flood, notes = flood_inputs(readings, NowcastInputs(), rivers, extent)
    levels = {(s.edge, tuple(s.span)): s.level_m for s in flood.stages}
    assert levels == {("west", (300, 400)): 2.1, ("east", (100, 200)): 1.4, ("north", (400, 600)): 1.0}
    flood, notes = flood_inputs(Readings(format_time(NOW), stages=stages[:2]), NowcastInputs(), rivers, extent)
    assert {s.edge: s.level_m for s in flood.stages}["north"] == 0.7
    assert any("North" in n and "normal level" in n for n in notes)
    assert flood.rain_gauges is None and flood.use_city_rivers is False


# -- forecast events ---------------------------------------------------------------------------------

def forecast(run_id: str, minutes: int, ds: int, predicted: float) -> ForecastRun:
    issued = NOW + timedelta(minutes=minutes)
    reaches = {k: format_time(issued + timedelta(minutes=20)) for k, v in (("warning", 0.15), ("alarm", 0.3))
               if predicted >= v}
    return ForecastRun(run_id, format_time(issued), 3600.0,
                       (PointForecast(ds, predicted, format_time(issued + timedelta(minutes=40)), reaches),))


def test_forecast_events_open_update_and_close_without_duplicates(service):  # noqa: F811
    service.create("Things", thing_body("w1", 113.3, 23.1, [stream_body("w1-depth", M, DEPTH)], kind="waterlogging"))
    heard = []
    service.hub.subscribe(heard.append)
    opened = service.apply_forecast(forecast("job-1", 0, 1, 0.40))
    assert sorted(e.kind for e in opened) == ["forecast-alarm", "forecast-warning"]
    alarm = next(e for e in opened if e.kind == "forecast-alarm")
    assert alarm.state == "open" and alarm.value == 0.40 and alarm.threshold == 0.30
    assert alarm.forecast["job"] == "job-1" and alarm.forecast["horizon_s"] == 3600
    assert alarm.forecast["expected_at"] == format_time(NOW + timedelta(minutes=20))
    assert [m["event"]["kind"] for m in heard if m["type"] == "event"] == [e.kind for e in opened]
    assert service.apply_forecast(forecast("job-1", 0, 1, 0.40)) == []           # the same job again
    assert service.apply_forecast(forecast("job-0", -15, 1, 0.05)) == []         # issued before the latest
    updated = service.apply_forecast(forecast("job-2", 15, 1, 0.50))             # a higher prediction
    assert sorted(e.id for e in updated) == sorted(e.id for e in opened)
    alarm = service.event(alarm.id)
    assert (alarm.peak, alarm.value, alarm.forecast["runs"], alarm.forecast["job"]) == (0.50, 0.40, 2, "job-2")
    service.apply_forecast(forecast("job-3", 30, 1, 0.28))                       # inside the alarm's dead band
    assert {e.kind: e.state for e in service.events(EventFilter(kind=("forecast-alarm", "forecast-warning")))[0]} \
        == {"forecast-alarm": "open", "forecast-warning": "open"}
    closed = service.apply_forecast(forecast("job-4", 45, 1, 0.02))
    assert {(e.kind, e.state, e.closed_by) for e in closed} == {("forecast-alarm", "closed", "nowcast"),
                                                              ("forecast-warning", "closed", "nowcast")}
    assert service.events(EventFilter(kind=("forecast-alarm",)))[1] == 1         # no duplicates
    assert service.events(EventFilter(kind=("alarm", "warning")))[1] == 0        # threshold events apart
    # an operator's close holds while the runs keep predicting it; a new episode opens a new event
    first = [e for e in service.apply_forecast(forecast("job-5", 60, 1, 0.2)) if e.kind == "forecast-warning"][0]
    service.close_event(first.id, "operator")
    assert service.apply_forecast(forecast("job-6", 75, 1, 0.2)) == []
    service.apply_forecast(forecast("job-7", 90, 1, 0.0))
    again = service.apply_forecast(forecast("job-8", 105, 1, 0.2))
    assert [e.kind for e in again] == ["forecast-warning"] and again[0].id != first.id
    with pytest.raises(InvalidEntity):
        EventFilter(kind=("forecast",))


# -- the trigger -------------------------------------------------------------------------------------

class StubNowcast(Process):
    """A nowcast that forecasts nothing, at once (the trigger's logic without the flood model)."""

    id: ClassVar[str] = "flood-nowcast"
    title: ClassVar[str] = "stub"
    inputs: ClassVar[type] = NowcastInputs
    outputs: ClassVar[dict] = {"summary": OutputSpec("summary", "summary")}

    def execute(self, store, inputs, workdir, progress, results=None) -> ProcessResult:
        return ProcessResult({"issued_at": format_time(inputs.start()), "horizon_s": inputs.horizon_s,
                              "forecast": []})


@pytest.fixture
def twin_copy(tianhe_twin, tmp_path):
    twin = tmp_path / "twin"
    shutil.copytree(tianhe_twin.store.root, twin, ignore=shutil.ignore_patterns("jobs", "tiles", "sensors"))
    return twin


def sample_network(twin):
    from simulate.sensors.sample import install_network, plan_network
    from simulate.sensors.service import SensorService
    from twin.store.folder import FolderStore

    service = SensorService.for_twin(twin)
    return service, install_network(service, plan_network(FolderStore(twin)))


def test_trigger_debounces_alarms_and_runs_on_schedule_only_while_raining(twin_copy):
    service, ids = sample_network(twin_copy)
    manager = JobManager(twin_copy, {"flood-nowcast": f"{__name__}:StubNowcast"})
    clock = [1000.0]
    trigger = NowcastTrigger(manager, service, every_s=900, on_alarm=True, min_interval_s=300, mode="sync",
                             clock=lambda: clock[0])
    trigger.start(background=False)                                    # the hub heard; polls driven by hand
    try:
        assert trigger.tick() is None                                  # no readings: nothing scheduled
        for key in ("wl-1/depth", "wl-2/depth"):                       # two alarms open at once
            observe(service, ids[key], 0.5, NOW - timedelta(minutes=2))
        job = trigger.tick()
        assert job.status is JobStatus.successful and job.inputs["at"] == format_time(NOW - timedelta(minutes=2))
        observe(service, ids["wl-3/depth"], 0.5, NOW - timedelta(minutes=1))   # a third, too soon after
        clock[0] += 60
        observe(service, ids["wl-1/depth"], 0.6, NOW - timedelta(minutes=1))   # a new peak, same alarm
        assert trigger.tick() is None and len(trigger.submitted) == 1
        clock[0] += 300                                                # the interval passed: the kept alarm runs
        assert trigger.tick() is not None and trigger.tick() is None and len(trigger.submitted) == 2
        observe(service, ids["wl-4/depth"], 0.1, NOW - timedelta(seconds=40))   # readings come in, but dry
        clock[0] += 900
        assert trigger.tick() is None
        observe(service, ids["rain-2/intensity"], 12.0, NOW - timedelta(seconds=20))
        clock[0] -= 300
        assert trigger.tick() is None                                  # raining, but 900 s have not passed
        clock[0] += 300
        job = trigger.tick()                                           # from the newest reading
        assert job is not None and job.inputs["at"] == format_time(NOW - timedelta(seconds=20))
        clock[0] += 900
        assert trigger.tick() is None                                  # no reading since: no run
        assert len(trigger.submitted) == 3 and manager.list(process=["flood-nowcast"])[1] == 3
    finally:
        trigger.stop()
        service.close()


# -- a nowcast on the Tianhe twin ----------------------------------------------------------------------

RUN = {"horizon": "20min", "resolution_m": 40, "frame_interval_min": 0, "backend": "numpy", "drainage_mm_h": 0}


@pytest.mark.slow
def test_an_alarm_runs_one_nowcast_whose_warnings_reach_the_events_api(twin_copy):
    from api.app import create_app
    from api.settings import Settings

    service, ids = sample_network(twin_copy)
    service.close()
    app = create_app(Settings(twin_dir=twin_copy, nowcast_on_alarm=True, nowcast_min_interval_s=600,
                              nowcast_inputs=RUN))
    with TestClient(app) as client:
        trigger, service = app.state.nowcast, app.state.sensors
        trigger.mode, trigger.poll_s = "sync", 0.1
        heard = []
        service.hub.subscribe(heard.append)
        for k in range(1, 5):
            observe(service, ids[f"rain-{k}/intensity"], 120.0, NOW - timedelta(minutes=3))
        for key in ("wl-1/depth", "wl-2/depth"):
            observe(service, ids[key], 0.5, NOW - timedelta(minutes=2))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(m["type"] == "event" and m["event"]["kind"] == "forecast-alarm"
                                                      for m in heard):
            time.sleep(0.1)
        assert any(m["type"] == "event" and m["event"]["kind"] == "forecast-alarm" for m in heard)
        jobs, total = app.state.jobs.list(process=["flood-nowcast"])
        assert total == 1 and jobs[0].status is JobStatus.successful, jobs[0].error
        job = jobs[0]
        summary = read_summary(app.state.jobs.jobs.job_dir(job.id))
        alarms = [f for f in summary["forecast"] if f["level"] == "alarm"]
        assert alarms and all(f["predicted"] >= 0.30 and f["reaches"]["alarm"] for f in alarms)
        assert "forecast" in job.results.layers
        listed = client.get("/live/events", params={"kind": "forecast-alarm", "state": "open"}).json()
        assert listed["numberMatched"] == len(alarms)
        assert {e["datastream_id"] for e in listed["events"]} == {f["datastream_id"] for f in alarms}
        assert all(e["forecast"]["job"] == job.id for e in listed["events"])
        with client.websocket_connect("/live") as ws:                  # a viewer connecting now sees them too
            snapshot = ws.receive_json()
        assert {e["id"] for e in listed["events"]} <= {e["id"] for e in snapshot["events"]}
        # six threshold alarms opened (four rain gauges, two depths) and one nowcast ran
        assert client.get("/live/events", params={"kind": "alarm"}).json()["numberMatched"] == 6

        # the rain stops: a nowcast run through the Processes API (applied by the trigger's watcher)
        # closes the forecast events instead of adding new ones
        before = client.get("/live/events", params={"kind": "forecast-alarm,forecast-warning"}).json()
        for k in range(1, 5):
            observe(service, ids[f"rain-{k}/intensity"], 0.0, NOW - timedelta(minutes=1))
        app.state.jobs.submit("flood-nowcast", RUN, owner="ops", mode="sync")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            after = client.get("/live/events", params={"kind": "forecast-alarm,forecast-warning"}).json()
            if all(e["state"] == "closed" for e in after["events"]):
                break
            time.sleep(0.1)
        assert {e["id"] for e in after["events"]} == {e["id"] for e in before["events"]}
        assert all(e["state"] == "closed" and e["closed_by"] == "nowcast" for e in after["events"])
        assert app.state.jobs.list(process=["flood-nowcast"])[1] == 2


def test_a_twin_without_sensors_cannot_nowcast(twin_copy, tmp_path):
    from twin.store.folder import FolderStore

    with pytest.raises(ProcessError) as err:
        NowcastProcess().execute(FolderStore(twin_copy), NowcastInputs(**RUN), tmp_path / "w", lambda r: None)
    assert err.value.field == "sensors"
    service, ids = sample_network(twin_copy)                         # a network, but its readings are old
    observe(service, ids["rain-1/intensity"], 50.0, NOW - timedelta(hours=3))
    service.close()
    with pytest.raises(ProcessError) as err:
        NowcastProcess().execute(FolderStore(twin_copy), NowcastInputs(**RUN), tmp_path / "w", lambda r: None)
    assert err.value.field == "lookback"
