"""SensorThings and live routers over HTTP: codes, links, bad input, scopes, WebSocket, frost-sta-client."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sensor_fixtures import M, MM, stream_body, thing_body

from api import errors
from api.app import create_app
from api.routers import live, sensorthings
from api.settings import ApiKey, Settings
from simulate.sensors.errors import (BrokerError, EntityNotFound, EventNotFound, InvalidEntity, InvalidQuery,
                                     InvalidTransition, SensorError)
from simulate.sensors.service import SensorService

# the lines README/integration adds to api/errors.py STATUS (ahead of the TwinError catch-all)
SENSOR_STATUS = [(InvalidEntity, 400), (InvalidQuery, 400), (EntityNotFound, 404), (EventNotFound, 404),
                 (InvalidTransition, 409), (BrokerError, 503), (SensorError, 500)]
WRITER = {"X-API-Key": "sensor-key"}
OPERATOR = {"X-API-Key": "ops-key"}
KEYS = [ApiKey(key="sensor-key", name="ingest", scopes=["sensors:write"]),
        ApiKey(key="ops-key", name="operator-7", scopes=["alerts:write"])]
T0 = datetime(2024, 6, 1, tzinfo=timezone.utc)


def compose(twin_dir, service: SensorService):
    app = create_app(Settings(twin_dir=twin_dir, api_keys=KEYS))
    app.state.sensors = service
    app.include_router(sensorthings.router())
    app.include_router(live.router())
    return app


@pytest.fixture
def sta(tianhe_twin, tmp_path, monkeypatch):
    monkeypatch.setattr(errors, "STATUS", SENSOR_STATUS + errors.STATUS)
    service = SensorService.for_twin(tmp_path)
    with TestClient(compose(tianhe_twin.store.root, service)) as c:
        yield c, service
    service.close()


def test_crud_codes_links_and_paging(sta):
    c, service = sta
    body = thing_body("Gauge", 113.32, 23.11, [stream_body("rain", MM, {"warning": 10, "alarm": 20, "hysteresis": 2})],
                      **{"twin:layer": "buildings", "twin:feature": "b-1"})
    assert c.post("/sta/v1.1/Things", json=body).status_code == 401
    r = c.post("/sta/v1.1/Things", json=body, headers=WRITER)
    assert r.status_code == 201 and r.headers["Location"] == "http://testserver/sta/v1.1/Things(1)"
    assert r.json()["Datastreams@iot.navigationLink"] == "http://testserver/sta/v1.1/Things(1)/Datastreams"
    ds = c.get("/sta/v1.1/Things(1)/Datastreams").json()["value"][0]
    assert ds["@iot.selfLink"] == "http://testserver/sta/v1.1/Datastreams(1)"
    for k in range(25):
        r = c.post("/sta/v1.1/Datastreams(1)/Observations", headers=WRITER,
                   json={"phenomenonTime": (T0 + timedelta(minutes=k)).isoformat(), "result": float(k)})
        assert r.status_code == 201
    again = c.post("/sta/v1.1/Datastreams(1)/Observations", headers=WRITER,
                   json={"phenomenonTime": T0.isoformat(), "result": 0.0})
    assert again.status_code == 200 and again.headers["Location"].endswith("Observations(1)")
    page = c.get("/sta/v1.1/Observations?$top=10&$orderby=result desc&$count=true").json()
    assert page["@iot.count"] == 25 and [o["result"] for o in page["value"]] == [float(v) for v in range(24, 14, -1)]
    nxt = c.get(page["@iot.nextLink"].replace("http://testserver", "")).json()
    assert [o["result"] for o in nxt["value"]] == [float(v) for v in range(14, 4, -1)]
    assert c.get("/sta/v1.1/Datastreams(1)/Thing/name").json() == {"name": "Gauge"}
    assert c.get("/sta/v1.1/Datastreams(1)/Thing/name/$value").text == "Gauge"
    assert c.get("/sta/v1.1/Observations(3)/Datastream/Thing").json()["@iot.id"] == 1
    r = c.patch("/sta/v1.1/Things(1)", json={"description": "changed"}, headers=WRITER)
    assert r.status_code == 200 and r.json()["description"] == "changed"
    # dataArray
    arr = [{"Datastream": {"@iot.id": 1}, "components": ["phenomenonTime", "result"],
            "dataArray": [[(T0 + timedelta(hours=1, minutes=k)).isoformat(), 30.0 + k] for k in range(3)]}]
    r = c.post("/sta/v1.1/CreateObservations", json=arr, headers=WRITER)
    assert r.status_code == 201 and len(r.json()) == 3 and r.json()[0].endswith("Observations(26)")
    # events opened by the data: warning and alarm at 10 and 20, still open
    ev = c.get("/live/events?state=open&kind=alarm").json()
    assert ev["numberMatched"] == 1 and ev["events"][0]["feature"] == {"layer": "buildings", "id": "b-1"}
    eid = ev["events"][0]["id"]
    assert c.post(f"/live/events/{eid}/acknowledge").status_code == 401
    r = c.post(f"/live/events/{eid}/acknowledge", headers=OPERATOR)
    assert r.status_code == 200 and r.json()["acknowledged_by"] == "operator-7"
    assert c.post(f"/live/events/{eid}/acknowledge", headers=OPERATOR).status_code == 409
    assert c.post(f"/live/events/{eid}/close", headers=OPERATOR).json()["state"] == "closed"
    assert c.get("/live/events?bbox=113.3,23.1,113.33,23.12").json()["numberMatched"] == 2
    assert c.delete("/sta/v1.1/Things(1)", headers=WRITER).status_code == 200
    assert c.get("/sta/v1.1/Things(1)").status_code == 404
    assert service.store.count_observations() == 0


@pytest.mark.parametrize("path, body, status, reason", [
    ("/sta/v1.1/Datastreams(1)/Observations", b'{"result": 1,', 400, "malformed JSON"),
    ("/sta/v1.1/Datastreams(1)/Observations", b'{"phenomenonTime": "2024-06-01T00:00:00Z", "result": "x"}', 400,
     "does not fit"),
    ("/sta/v1.1/Datastreams(1)/Observations", b'{"phenomenonTime": "2024-06-01T00:00:00Z", "result": 1, '
     b'"parameters": {"unit": "m"}}', 400, "unit 'm'"),
    ("/sta/v1.1/Datastreams(1)/Observations", b'{"phenomenonTime": "2999-06-01T00:00:00Z", "result": 1}', 400,
     "future"),
    ("/sta/v1.1/Observations", b'{"phenomenonTime": "2024-06-01T00:00:00Z", "result": 1, "Datastream": {"@iot.id": 9}}',
     400, "no Datastream 9"),
    ("/sta/v1.1/Datastreams(9)/Observations", b'{"phenomenonTime": "2024-06-01T00:00:00Z", "result": 1}', 404,
     "no Datastream 9"),
    ("/sta/v1.1/CreateObservations", b'[{"Datastream": {"@iot.id": 1}, "components": ["phenomenonTime", "result"], '
     b'"dataArray": [["2024-06-01T00:00:00Z", 1], ["2024-06-01T00:01:00Z", "bad"]]}]', 400, "row 1"),
    ("/sta/v1.1/Things", b'{"name": "x"}', 400, "missing description"),
    ("/sta/v1.1/Things(1)", b'{"name": "x", "description": "y"}', 400, "POST to a collection"),
    ("/sta/v1.1/Datastreams(1)/Observations", b"", 400, "empty"),
])
def test_bad_input_is_4xx_with_reason_and_stores_nothing(sta, path, body, status, reason):
    c, service = sta
    c.post("/sta/v1.1/Things", json=thing_body("G", 113.3, 23.1, [stream_body("rain", MM)]), headers=WRITER)
    n = service.store.count_observations()
    r = c.post(path, content=body, headers={**WRITER, "Content-Type": "application/json"})
    assert r.status_code == status and reason in r.json()["description"], r.json()
    assert service.store.count_observations() == n
    bad_q = c.get("/sta/v1.1/Observations?$filter=result eqq 1")
    assert bad_q.status_code == 400 and "cannot parse $filter" in bad_q.json()["description"]


def test_websocket_pushes_latest_and_events(sta):
    c, service = sta
    c.post("/sta/v1.1/Things", headers=WRITER,
           json=thing_body("G", 113.3, 23.1, [stream_body("depth", M, {"warning": 0.15, "alarm": 0.3})]))
    with c.websocket_connect("/live") as ws:
        assert ws.receive_json()["type"] == "snapshot"
        c.post("/sta/v1.1/Datastreams(1)/Observations", headers=WRITER,
               json={"phenomenonTime": T0.isoformat(), "result": 0.2})
        first = ws.receive_json()
        assert first["type"] == "latest" and first["items"][0]["result"] == 0.2
        second = ws.receive_json()
        assert second["type"] == "event" and second["event"]["kind"] == "warning"


def test_frost_sta_client_reads_and_writes(sta, tianhe_twin, tmp_path):
    import socket

    import frost_sta_client as fsc
    import uvicorn

    c, service = sta
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(c.app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    while not server.started:
        time.sleep(0.05)
    try:
        svc = fsc.SensorThingsService(f"http://127.0.0.1:{port}/sta/v1.1")
        thing = fsc.Thing(name="frost thing", description="made by frost-sta-client", properties={"k": "v"})
        loc = fsc.Location(name="here", description="d", encoding_type="application/geo+json",
                           location=__import__("geojson").Point((113.32, 23.11)))
        thing.locations = [loc]
        ds = fsc.Datastream(name="ds", description="d",
                            observation_type="http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
                            unit_of_measurement=fsc.UnitOfMeasurement(name="millimetre", symbol="mm",
                                                                      definition="http://qudt.org/vocab/unit/MilliM"),
                            sensor=fsc.Sensor(name="s", description="d", encoding_type="text/html", metadata="m"),
                            observed_property=fsc.ObservedProperty(name="p", definition="http://x", description="d"))
        thing.datastreams = [ds]
        _with_key(svc)
        svc.create(thing)
        assert thing.id == 1
        obs = fsc.Observation(result=3.5, phenomenon_time="2024-06-01T00:00:00Z",
                              datastream=fsc.Datastream(id=1))
        svc.create(obs)
        got = list(svc.observations().query().filter("result gt 3").list())
        assert [o.result for o in got] == [3.5]
        things = list(svc.things().query().expand("Datastreams").list())
        assert things[0].name == "frost thing" and things[0].datastreams.entities[0].name == "ds"
    finally:
        server.should_exit = True
        t.join(timeout=5)


def _with_key(svc) -> None:
    """frost-sta-client only knows HTTP basic auth; add our API key header to each request."""
    original = svc.execute

    def execute(method, url, **kwargs):
        kwargs.setdefault("headers", {}).update(WRITER)
        return original(method, url, **kwargs)

    svc.execute = execute
