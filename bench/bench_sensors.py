"""Sensor ingest benchmark: sustained MQTT and HTTP (dataArray) ingest, loss count, push latency.

    .venv/bin/python bench/bench_sensors.py [--seconds 60] [--streams 100] [--port 1883]

The service side (SensorService + MqttBridge + uvicorn with the SensorThings and live routers)
runs in this process, as it would in `twin serve`; the MQTT publisher, the HTTP client and the
WebSocket listener run in their own processes. Loss is counted at the end from the database.
Latency is publish -> WebSocket push, for the sampled observations that a push carried (the
WebSocket sends the latest value per Datastream per committed batch).
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


def publisher(port: int, streams: int, seconds: float, out: mp.Queue) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{time.time_ns()}")
    c.max_inflight_messages_set(5000)
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
                stamps[(ds, pt)] = time.time()
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
    out.put((sent, {f"{k[0]}|{k[1]}": v for k, v in stamps.items()}))


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--streams", type=int, default=100)
    p.add_argument("--port", type=int, default=1883)
    a = p.parse_args()

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

    # -- MQTT, with the WebSocket listener timing pushes
    q, lq, ready = ctx.Queue(), ctx.Queue(), ctx.Event()
    lis = ctx.Process(target=listener, args=(f"ws://127.0.0.1:{http_port}/live", a.seconds + 15, lq, ready))
    lis.start()
    ready.wait(30)
    before = count(db)
    t0 = time.time()
    pub = ctx.Process(target=publisher, args=(a.port, a.streams, a.seconds, q))
    pub.start()
    sent, stamps = q.get()
    pub.join()
    while count(db) - before < sent and time.time() - t0 < a.seconds + 120:
        time.sleep(0.1)
    elapsed = time.time() - t0
    stored = count(db) - before
    seen = lq.get()
    lis.join()
    lat = sorted((seen[k] - v) * 1000 for k, v in stamps.items() if k in seen)
    pct = (lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] if lat else float("nan"))
    rows.append(("MQTT (QoS 1, 1 obs/message)", sent, stored, sent - stored, stored / elapsed, pct(0.5), pct(0.99),
                 len(lat)))

    # -- HTTP dataArray
    before = count(db)
    t0 = time.time()
    hp = ctx.Process(target=http_client, args=(f"http://127.0.0.1:{http_port}/sta/v1.1/CreateObservations", "k",
                                               a.streams, a.seconds, q))
    hp.start()
    sent, _ = q.get()
    hp.join()
    elapsed = time.time() - t0
    stored = count(db) - before
    rows.append(("HTTP dataArray (2,000 obs/request)", sent, stored, sent - stored, stored / elapsed, float("nan"),
                 float("nan"), 0))

    bridge.stop()
    server.should_exit = True
    events = service.events(__import__("simulate.sensors.alerts", fromlist=["EventFilter"]).EventFilter())[1]
    print(f"\n{a.seconds:.0f} s per path, {a.streams} datastreams with thresholds, SQLite WAL synchronous=FULL; "
          f"{events} alert events recorded; bridge stats {bridge.stats}\n")
    print("| path | sent | stored | lost | obs/s | push p50 ms | push p99 ms | timed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, s_, st, lost, rate, p50, p99, n in rows:
        print(f"| {name} | {s_:,} | {st:,} | {lost} | {rate:,.0f} | {p50:.1f} | {p99:.1f} | {n:,} |")
    service.close()


if __name__ == "__main__":
    main()
