"""Sensor ingest benchmark: sustained MQTT and HTTP (dataArray) ingest, loss count, push latency.

    .venv/bin/python bench/bench_sensors.py [--seconds 60] [--streams 100] [--port 1883]
                                            [--paths mqtt,http] [--publisher raw|paho] [--rate 10000]

The service side (SensorService + MqttBridge + uvicorn with the SensorThings and live routers)
runs in this process, as it would in `twin serve`; the MQTT publisher, the HTTP client and the
WebSocket listener run in their own processes. Loss is counted at the end from the database.
Latency is publish -> WebSocket push, for the sampled observations that a push carried (the
WebSocket sends the latest value per Datastream per committed batch). "service CPU" is the CPU
time of this process (bridge, store, HTTP server) per stored observation: unlike obs/s it does
not depend on what else the machine is running.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import socket
import sqlite3
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

T0 = datetime(2020, 1, 1, tzinfo=timezone.utc)
SAMPLE = 50          # every 50th MQTT message is timed


def iso(i: int, offset_s: int = 0) -> str:
    t = T0 + timedelta(milliseconds=i * 10, seconds=offset_s)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def publisher(port: int, streams: int, seconds: float, out: mp.Queue, kind: str = "raw", rate: float = 0) -> None:
    """Publish QoS 1 observations for `seconds`, at most INFLIGHT unacknowledged; report when all are PUBACKed."""
    if kind == "raw":
        raw_publisher(port, streams, seconds, out, rate)
    else:
        paho_publisher(port, streams, seconds, out)


INFLIGHT = 5000


def raw_publisher(port: int, streams: int, seconds: float, out: mp.Queue, rate: float) -> None:
    """A lean MQTT 3.1.1 QoS 1 publisher on a plain socket.

    paho's publish() costs about as much CPU as the service spends storing the message, and its
    network thread shares the GIL with the publishing loop: on two cores a paho publisher gets
    about 2,000 messages/s onto the wire, so it measured itself, not the service (publish() returns
    long before the message is sent). This one writes packets in blocks of 500 and counts PUBACKs.
    It publishes at `rate` messages/s (0: as fast as it can). A broker PUBACKs on receipt, so a
    publisher faster than the service fills the broker's queue for the service, and Mosquitto drops
    what is past `max_queued_messages` (1,000 by default): "sustained" means at a fixed rate.
    """
    import socket
    import struct

    def varint(n: int) -> bytes:
        b = bytearray()
        while True:
            n, d = divmod(n, 128)
            b.append(d | 0x80 if n else d)
            if not n:
                return bytes(b)

    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    cid = f"bench-pub-{time.time_ns()}".encode()
    vh = b"\x00\x04MQTT\x04\x02\x00\x00" + struct.pack("!H", len(cid)) + cid   # clean session, no keepalive
    sock.sendall(b"\x10" + varint(len(vh)) + vh)
    assert sock.recv(4)[:2] == b"\x20\x02", "no CONNACK"
    topics = [struct.pack("!H", len(t)) + t for t in (f"v1.1/Datastreams({d})/Observations".encode()
                                                      for d in range(1, streams + 1))]
    sent = acked = 0
    pending = b""
    stamps = {}
    start = time.time()
    end = start + seconds

    def read_acks(block: bool) -> None:
        nonlocal acked, pending
        sock.setblocking(block)
        try:
            data = sock.recv(1 << 16)
        except BlockingIOError:
            return
        assert data, "the broker closed the connection"
        pending += data
        while len(pending) >= 4:
            assert pending[0] == 0x40, f"unexpected packet {pending[:4].hex()}"
            acked += 1
            pending = pending[4:]

    while time.time() < end:
        if sent - acked > INFLIGHT - 500:
            read_acks(True)
            continue
        if rate and sent > (time.time() - start) * rate:
            time.sleep(min(0.01, max(0.0, sent / rate - (time.time() - start))))
            read_acks(False)
            continue
        block = []
        for _ in range(500):
            ds = sent % streams
            pt = iso(sent)
            body = topics[ds] + struct.pack("!H", sent % 65535 + 1) + orjson.dumps(
                {"phenomenonTime": pt, "result": float(sent % 97)})
            block.append(b"\x32" + varint(len(body)) + body)
            if sent % SAMPLE == 0:
                stamps[f"{ds + 1}|{pt}"] = 0.0
            sent += 1
        sock.setblocking(True)
        sock.sendall(b"".join(block))
        now = time.time()
        for k in [k for k, v in stamps.items() if v == 0.0]:
            stamps[k] = now
        read_acks(False)
    while acked < sent:
        read_acks(True)
    sock.sendall(b"\xe0\x00")                                  # DISCONNECT
    sock.close()
    out.put((sent, stamps))


def paho_publisher(port: int, streams: int, seconds: float, out: mp.Queue) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{time.time_ns()}")
    c.max_inflight_messages_set(INFLIGHT)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    sent, stamps = 0, {}
    end = time.time() + seconds
    infos = []
    while time.time() < end:
        for _ in range(200):
            ds = sent % streams + 1
            pt = iso(sent)
            if sent % SAMPLE == 0:
                stamps[f"{ds}|{pt}"] = time.time()
            infos.append(c.publish(f"v1.1/Datastreams({ds})/Observations",
                                   orjson.dumps({"phenomenonTime": pt, "result": float(sent % 97)}), qos=1))
            sent += 1
        if len(infos) > 20_000:
            infos[0].wait_for_publish(30)
            infos = [i for i in infos if not i.is_published()]
    for i in infos:
        i.wait_for_publish(60)
    c.disconnect()
    c.loop_stop()
    out.put((sent, stamps))


def http_client(url: str, key: str, streams: int, seconds: float, out: mp.Queue) -> None:
    import httpx

    sent, block = 0, 2000
    end = time.time() + seconds
    with httpx.Client(timeout=60, headers={"X-API-Key": key}) as h:
        while time.time() < end:
            arrays = {}
            for k in range(block):
                ds = (sent + k) % streams + 1
                arrays.setdefault(ds, []).append([iso(sent + k, 10_000_000), float(k % 97)])
            body = [{"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime", "result"], "dataArray": rows}
                    for ds, rows in arrays.items()]
            r = h.post(url, content=orjson.dumps(body), headers={"Content-Type": "application/json"})
            r.raise_for_status()
            sent += block
    out.put((sent, {}))


def listener(url: str, seconds: float, out: mp.Queue, ready: mp.Event) -> None:
    import websockets

    async def run() -> dict[str, float]:
        seen: dict[str, float] = {}
        async with websockets.connect(url, max_size=None) as ws:
            await ws.recv()
            ready.set()
            end = time.time() + seconds
            while time.time() < end:
                try:
                    msg = orjson.loads(await asyncio.wait_for(ws.recv(), timeout=1.0))
                except asyncio.TimeoutError:
                    continue
                now = time.time()
                if msg.get("type") == "latest":
                    for item in msg["items"]:
                        seen[f"{item['datastream']}|{item['phenomenonTime']}"] = now
        return seen

    out.put(asyncio.run(run()))


def count(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT COUNT(*) FROM observations").fetchone()[0]
    finally:
        con.close()


def bench_mqtt(a, ctx, q, lq, ready, http_port: int, db: Path) -> tuple:
    """Publish as fast as the publisher can for `a.seconds`; rate = stored / (time until all are stored)."""
    lis = ctx.Process(target=listener, args=(f"ws://127.0.0.1:{http_port}/live", a.seconds + 15, lq, ready))
    lis.start()
    ready.wait(30)
    before = count(db)
    t0, cpu0 = time.time(), time.process_time()
    pub = ctx.Process(target=publisher, args=(a.port, a.streams, a.seconds, q, a.publisher, a.rate))
    pub.start()
    sent, stamps = q.get()
    pub.join()
    while count(db) - before < sent and time.time() - t0 < a.seconds + 120:
        time.sleep(0.1)
    elapsed, cpu = time.time() - t0, time.process_time() - cpu0
    stored = count(db) - before
    seen = lq.get()
    lis.join()
    lat = sorted((seen[k] - v) * 1000 for k, v in stamps.items() if k in seen)
    pct = (lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] if lat else float("nan"))
    paced = f"{a.rate:,.0f}/s" if a.publisher == "raw" and a.rate else "unpaced"
    return (f"MQTT (QoS 1, 1 obs/message, {a.publisher} publisher {paced})", sent, stored, sent - stored, stored / elapsed, pct(0.5), pct(0.99),
            len(lat), cpu / max(stored, 1) * 1e6)


def bench_http(a, ctx, q, http_port: int, db: Path) -> tuple:
    before = count(db)
    t0, cpu0 = time.time(), time.process_time()
    hp = ctx.Process(target=http_client, args=(f"http://127.0.0.1:{http_port}/sta/v1.1/CreateObservations", "k",
                                               a.streams, a.seconds, q))
    hp.start()
    sent, _ = q.get()
    hp.join()
    elapsed, cpu = time.time() - t0, time.process_time() - cpu0
    stored = count(db) - before
    return ("HTTP dataArray (2,000 obs/request)", sent, stored, sent - stored, stored / elapsed, float("nan"),
            float("nan"), 0, cpu / max(stored, 1) * 1e6)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--streams", type=int, default=100)
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--paths", default="mqtt,http", help="comma-separated: mqtt, http")
    p.add_argument("--publisher", choices=("raw", "paho"), default="raw",
                   help="MQTT load generator: a lean socket publisher, or paho (which tops out near 2,000/s)")
    p.add_argument("--rate", type=float, default=10_000, help="raw publisher: messages/s (0: unpaced)")
    a = p.parse_args()
    paths = set(a.paths.split(","))

    import uvicorn
    from fastapi import FastAPI

    from api import errors
    from api.auth import KeyRing
    from api.routers import live, sensorthings
    from api.settings import ApiKey, Settings
    from simulate.sensors.mqtt import BridgeConfig, MqttBridge
    from simulate.sensors.service import SensorService

    folder = Path(tempfile.mkdtemp(prefix="bench-sensors-"))
    service = SensorService.for_twin(folder)
    for t in range(max(1, a.streams // 10)):
        service.create("Things", {"name": f"bench {t}", "description": "bench", "Locations": [{
            "name": "l", "description": "l", "encodingType": "application/geo+json",
            "location": {"type": "Point", "coordinates": [113.3 + t * 0.001, 23.1]}}], "Datastreams": [{
                "name": f"ds {t}.{k}", "description": "d",
                "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
                "unitOfMeasurement": {"name": "millimetre", "symbol": "mm", "definition": "http://qudt.org/vocab/unit/MilliM"},
                "properties": {"twin:thresholds": {"warning": 60, "alarm": 90, "hysteresis": 5}},
                "Sensor": {"name": "s", "description": "s", "encodingType": "text/html", "metadata": "m"},
                "ObservedProperty": {"name": "p", "definition": "http://x", "description": "p"}} for k in range(10)]})
    app = FastAPI()
    app.state.sensors = service
    app.state.keyring = KeyRing(Settings(api_keys=[ApiKey(key="k", name="bench", scopes=["sensors:write"])]))
    errors.install(app)
    app.include_router(sensorthings.router())
    app.include_router(live.router())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        http_port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=http_port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    bridge = MqttBridge(service, BridgeConfig(port=a.port, client_id=f"bench-bridge-{time.time_ns()}",
                                              publish=("datastream",)))
    bridge.start()
    db = folder / "sensors" / "sensors.sqlite"
    ctx = mp.get_context("spawn")
    rows = []
    # MQTT, with the WebSocket listener timing pushes; then HTTP dataArray
    q, lq, ready = ctx.Queue(), ctx.Queue(), ctx.Event()
    if "mqtt" in paths:
        rows.append(bench_mqtt(a, ctx, q, lq, ready, http_port, db))
    if "http" in paths:
        rows.append(bench_http(a, ctx, q, http_port, db))
    bridge.stop(end_session=True)
    server.should_exit = True
    events = service.events(__import__("simulate.sensors.alerts", fromlist=["EventFilter"]).EventFilter())[1]
    print(f"\n{a.seconds:.0f} s per path, {a.streams} datastreams with thresholds, SQLite WAL synchronous=FULL; "
          f"{events} alert events recorded; bridge stats {bridge.stats}\n")
    print("| path | sent | stored | lost | obs/s | push p50 ms | push p99 ms | timed | service CPU µs/obs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, s_, st, lost, rate, p50, p99, n, us in rows:
        print(f"| {name} | {s_:,} | {st:,} | {lost} | {rate:,.0f} | {p50:.1f} | {p99:.1f} | {n:,} | {us:.0f} |")
    service.close()


if __name__ == "__main__":
    main()
