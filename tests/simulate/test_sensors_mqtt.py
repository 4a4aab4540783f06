"""SensorThings over MQTT against a real Mosquitto: topics, ingest, storm replay and durability."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sensor_fixtures import M, private_broker, service, stream_body, thing_body  # noqa: F401

from simulate.sensors.alerts import EventFilter, Thresholds
from simulate.sensors.mqtt import BridgeConfig, MqttBridge
from simulate.sensors.service import SensorService
from simulate.sensors.store import Parent

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 6, 1, tzinfo=timezone.utc)


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def client(port: int, name: str, **kw) -> mqtt.Client:
    """A started client, returned once the broker has accepted it (CONNACK)."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{time.time_ns()}", **kw)
    connected = threading.Event()
    c.on_connect = lambda client, userdata, flags, reason, props: connected.set() if not reason.is_failure else None
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert connected.wait(20), f"{name}: no CONNACK from the broker on port {port}"
    return c


def subscribe(c: mqtt.Client, topics: list[tuple[str, int]]) -> None:
    """Subscribe and wait for the SUBACK: only then does the broker route those topics to `c`."""
    acked: set[int] = set()   # the SUBACK can arrive before subscribe() returns its mid
    c.on_subscribe = lambda client, userdata, mid, reasons, props: acked.add(mid)
    rc, mid = c.subscribe(topics)
    assert rc == mqtt.MQTT_ERR_SUCCESS and wait_for(lambda: mid in acked, 20), "no SUBACK from the broker"


def wait_for(pred, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


# Every test has a broker of its own: SensorThings topics are fixed ("v1.1/..."), so on a shared
# broker a test run would ingest, and count, what a concurrent run publishes.
@pytest.fixture
def bridge(service, private_broker):
    b = MqttBridge(service, BridgeConfig(port=private_broker.port, client_id=f"test-bridge-{time.time_ns()}",
                                         publish=("datastream", "navigation", "collection")))
    b.start()
    yield b
    b.stop(end_session=True)            # no session left queueing on the shared broker


def test_subscribe_sees_created_and_publish_is_stored(service, bridge, private_broker):
    got: list[tuple[str, dict]] = []
    sub = client(private_broker.port, "sub")
    def on_message(c, u, m):
        try:
            got.append((m.topic, json.loads(m.payload)))
        except ValueError:
            pass                                    # other clients' raw (and broken) create messages

    sub.on_message = on_message
    subscribe(sub, [("v1.1/Things", 1), ("v1.1/Datastreams(1)/Observations", 1), ("v1.1/Things(1)/Datastreams", 1)])
    service.create("Things", thing_body("T", 113.32, 23.12, [stream_body("depth", M)]))
    assert wait_for(lambda: any(t == "v1.1/Things" for t, _ in got))
    assert next(p for t, p in got if t == "v1.1/Things")["name"] == "T"
    extra = stream_body("level", M)
    extra["Thing"] = {"@iot.id": 1}
    service.create("Datastreams", extra)                    # announced on its Thing's navigation topic too
    assert wait_for(lambda: any(t == "v1.1/Things(1)/Datastreams" and p["name"] == "level" for t, p in got))
    # created over HTTP-less service call -> announced on the datastream topic
    service.create("Observations", {"phenomenonTime": iso(T0), "result": 0.5, "Datastream": {"@iot.id": 1}})
    assert wait_for(lambda: any(t.endswith("Observations") and p.get("@iot.id") == 1 for t, p in got))
    # published by a plain client -> stored, then announced with its new id
    pub = client(private_broker.port, "pub")
    pub.publish("v1.1/Datastreams(1)/Observations",
                json.dumps({"phenomenonTime": iso(T0 + timedelta(minutes=1)), "result": 0.75}), qos=1)
    assert wait_for(lambda: service.store.count_observations() == 2)
    assert wait_for(lambda: any(t.endswith("Observations") and p.get("@iot.id") == 2 and p["result"] == 0.75 for t, p in got))
    # bad messages are rejected and not stored
    pub.publish("v1.1/Datastreams(1)/Observations", b"{not json", qos=1)
    pub.publish("v1.1/Datastreams(1)/Observations", json.dumps({"phenomenonTime": iso(T0), "result": "x"}), qos=1)
    pub.publish("v1.1/Datastreams(77)/Observations", json.dumps({"phenomenonTime": iso(T0), "result": 1}), qos=1)
    assert wait_for(lambda: bridge.stats.rejected == 3)
    assert service.store.count_observations() == 2
    pub.disconnect(), sub.disconnect()


def _reference_events(values: list[tuple[str, float]], t: Thresholds) -> list[tuple[str, str, str | None]]:
    """Plain-Python hysteresis: (kind, opened_at, closed_at) per episode."""
    out = []
    for kind, level in (("warning", t.warning), ("alarm", t.alarm)):
        active, opened = False, None
        for when, v in values:
            if not active and v >= level:
                active, opened = True, when
            elif active and v < level - t.hysteresis:
                out.append((kind, opened, when))
                active = False
        if active:
            out.append((kind, opened, None))
    return sorted(out, key=lambda e: (e[0], e[1]))


def test_storm_replay_opens_and_closes_events(tianhe_twin, tmp_path, private_broker):
    from simulate.sensors.replay import Storm, replay, step_times, storm_series
    from simulate.sensors.sample import plan_network
    from twin.store.folder import FolderStore

    twin_dir = tmp_path / "twin"
    shutil.copytree(tianhe_twin.store.root, twin_dir, ignore=shutil.ignore_patterns("sensors"))
    svc = SensorService.for_twin(twin_dir)
    bridge = MqttBridge(svc, BridgeConfig(port=private_broker.port, client_id=f"replay-{time.time_ns()}"))
    bridge.start()
    try:
        end = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)
        report = replay(twin_dir, "burst", "3000x", port=private_broker.port, end=end)
        assert report.steps == 14 and report.wall_s < 5
        assert wait_for(lambda: svc.store.count_observations() == report.published, 30)
        sites = plan_network(FolderStore(twin_dir))
        series = storm_series(Storm.load("burst"), sites)
        times = step_times(Storm.load("burst"), end)
        from simulate.sensors.sample import THRESHOLDS, datastream_keys

        ids = datastream_keys(svc)
        events, _ = svc.events(EventFilter(limit=1000))
        by_ds: dict[int, list] = {}
        for e in events:
            by_ds.setdefault(e.datastream_id, []).append((e.kind, e.opened_at, e.closed_at))
        kinds = {"intensity": "intensity", "depth": "depth", "stage": "stage", "sump": "sump"}
        checked = 0
        for key, ds in ids.items():
            suffix = key.split("/")[1]
            values = [(times[k], float(step[key])) for k, step in enumerate(series)]
            stored = svc.query("Observations", svc.parse_query({"$orderby": "phenomenonTime", "$top": "100"}),
                               parent=Parent("Datastreams", ds, "Observations")).rows
            assert [(r["phenomenon_start"], float(r["result"])) for r in stored] == values, key
            if suffix in kinds:
                t = Thresholds.from_properties({"twin:thresholds": THRESHOLDS[suffix]})
                assert sorted(by_ds.get(ds, []), key=lambda e: (e[0], e[1])) == _reference_events(values, t), key
                checked += len(by_ds.get(ds, []))
        assert checked >= 8                                     # rain, river, ponding all crossed levels
        assert {e.kind for e in events} == {"warning", "alarm"} and any(e.closed_at for e in events)
        status = [step["pump-1/status"] for step in series]     # pumps switched on, then off again
        assert status.index(True) > 0 and status[-1] is False
        assert [float(r["result"]) for r in svc.query("Observations", svc.parse_query({"$orderby": "phenomenonTime"}),
                parent=Parent("Datastreams", ids["pump-1/status"], "Observations")).rows] == [float(v) for v in status]
    finally:
        bridge.stop(end_session=True)
        svc.close()


def _publisher(port: int) -> mqtt.Client:
    """A QoS 1 publisher that keeps (paho: unlimited queue) and resends what the broker has not PUBACKed."""
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dur-pub-{time.time_ns()}", clean_session=False)
    pub.max_queued_messages_set(0)
    pub.reconnect_delay_set(0.05, 0.5)
    connected = threading.Event()
    pub.on_connect = lambda client, userdata, flags, reason, props: connected.set()
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    assert connected.wait(20), "the publisher got no CONNACK"
    return pub


def _publish_range(pub: mqtt.Client, ds: int, lo: int, hi: int, pace_s: float) -> None:
    for i in range(lo, hi):
        body = {"phenomenonTime": iso(T0 + timedelta(seconds=i)), "result": float(i % 50)}
        pub.publish(f"v1.1/Datastreams({ds})/Observations", orjson.dumps(body), qos=1)
        if pace_s and i % 100 == 0:
            time.sleep(pace_s)


def _network(twin_dir: Path) -> None:
    svc = SensorService.for_twin(twin_dir)
    svc.create("Things", thing_body("Gauge", 113.32, 23.11, [stream_body("stage", M)]))
    svc.close()


def _missing(twin_dir: Path, n: int) -> list[int]:
    import sqlite3

    con = sqlite3.connect(twin_dir / "sensors" / "sensors.sqlite")
    have = {r[0] for r in con.execute("SELECT phenomenon_start FROM observations")}
    con.close()
    return [i for i in range(n) if iso(T0 + timedelta(seconds=i)) not in have]


def _count(twin_dir: Path) -> tuple[int, int]:
    import sqlite3

    con = sqlite3.connect(twin_dir / "sensors" / "sensors.sqlite")
    try:
        return con.execute("SELECT COUNT(*), COUNT(DISTINCT phenomenon_start) FROM observations").fetchone()
    finally:
        con.close()


def test_broker_restart_loses_nothing(tmp_path, private_broker):
    twin_dir = tmp_path / "twin"
    _network(twin_dir)
    svc = SensorService.for_twin(twin_dir)
    bridge = MqttBridge(svc, BridgeConfig(port=private_broker.port, client_id="dur-a-bridge"))
    bridge.start()
    pub = _publisher(private_broker.port)
    acked: list[int] = []
    pub.on_publish = lambda client, userdata, mid, rc, props: acked.append(mid)
    try:
        n = 6000
        _publish_range(pub, 1, 0, 2000, 0.002)
        # The broker has taken responsibility for these (PUBACK); most still sit in its
        # queue for the bridge when it goes down. Messages a publisher has not yet had
        # acknowledged are that publisher's to resend, which is not what this test is about.
        assert wait_for(lambda: len(acked) >= 2000, 20)
        private_broker.stop(signal.SIGTERM)                     # mid-stream
        writer = threading.Thread(target=_publish_range, args=(pub, 1, 2000, 4000, 0.002))
        writer.start()                                          # the publisher keeps going while it is down
        time.sleep(0.5)
        private_broker.start()
        writer.join()
        _publish_range(pub, 1, 4000, n, 0.002)
        assert wait_for(lambda: _count(twin_dir)[0] == n, 20), (_count(twin_dir), _missing(twin_dir, n), bridge.stats,
                                                                  private_broker.log_tail())
        assert _count(twin_dir) == (n, n)
        # the broker came back with the bridge's session (subscription and queue) from its database
        assert bridge.stats.connects == 2 and bridge.stats.sessions_lost == 0, bridge.stats
    finally:
        pub.disconnect()
        pub.loop_stop()
        bridge.stop(end_session=True)
        svc.close()


def test_ingest_crash_loses_nothing_and_stores_once(tmp_path, private_broker):
    twin_dir = tmp_path / "twin"
    _network(twin_dir)
    cmd = [sys.executable, "-m", "simulate.sensors.mqtt", str(twin_dir), "--port", str(private_broker.port),
           "--client-id", "dur-b-bridge"]

    def start() -> subprocess.Popen:
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert p.stdout.readline().strip() == "ready"
        return p

    proc = start()
    pub = _publisher(private_broker.port)
    try:
        n = 8000
        _publish_range(pub, 1, 0, 5000, 0)
        assert wait_for(lambda: _count(twin_dir)[0] > 200, 20)
        proc.send_signal(signal.SIGKILL)                         # mid-ingest
        proc.wait()
        partial = _count(twin_dir)[0]
        assert partial < n
        _publish_range(pub, 1, 5000, n, 0)                       # queued by the broker meanwhile
        time.sleep(0.3)
        proc = start()
        assert wait_for(lambda: _count(twin_dir)[0] == n, 40), _count(twin_dir)
        time.sleep(0.5)                                          # redeliveries (if any) must not add rows
        assert _count(twin_dir) == (n, n)
    finally:
        pub.disconnect()
        pub.loop_stop()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
