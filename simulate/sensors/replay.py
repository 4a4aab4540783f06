"""Storm replay: drive the sample network through a storm and publish it over MQTT at a speed factor.

A storm is a hyetograph (rain intensity, mm/h, per step). `storm_series` turns it into readings for
every sample datastream with simple, deterministic responses:

    rain gauges     intensity x a per-gauge factor; accumulation integrates it
    river stage     base + tide + a linear reservoir of the mean intensity (lagged, slow to fall)
    waterlogging    depth grows while intensity exceeds the drainage capacity and drains after,
                    faster while the paired pump runs
    pumps           start when the sump level reaches `pump_start_m`, stop below `pump_stop_m`;
                    flow is the capacity while running

`replay(...)` publishes each step to v1.1/Datastreams(<id>)/Observations (QoS 1) and sleeps
step_s / speed between steps. Storm times end at the moment the replay starts (so no reading is
in the future); CLI: `twin sensors replay DIR --storm FILE|preset --speed 60x`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import orjson

from simulate.sensors.errors import SensorError
from simulate.sensors.model import format_time
from simulate.sensors.sample import Site

PRESETS: dict[str, dict] = {
    # a 2-hour Guangzhou-style convective storm, 5-minute steps, peak 85 mm/h
    "tianhe-2h": {"step_s": 300, "rain_mm_h": [2, 5, 10, 20, 35, 60, 85, 70, 45, 30, 18, 10, 6, 3, 1, 0,
                                                0, 0, 0, 0, 0, 0, 0, 0]},
    # a short sharp cell for tests and demos: 70 minutes in 5-minute steps
    "burst": {"step_s": 300, "rain_mm_h": [0, 20, 40, 60, 80, 60, 40, 20, 10, 0, 0, 0, 0, 0]},
}


@dataclass(frozen=True)
class Storm:
    name: str
    step_s: float
    rain_mm_h: list[float]
    river_base_m: float = 0.8
    tide_amplitude_m: float = 0.25
    drainage_mm_h: float = 36.0       # what the drains take before water ponds
    ponding_factor: float = 20.0      # catchment concentration into a low spot
    river_gain_m: float = 0.03        # stage rise per mm/h of smoothed rain
    river_lag_s: float = 1800.0
    pump_start_m: float = 2.0
    pump_stop_m: float = 1.4
    pump_capacity_m3_s: float = 2.5

    @classmethod
    def load(cls, spec: str | Path) -> "Storm":
        if str(spec) in PRESETS:
            return cls(name=str(spec), **PRESETS[str(spec)])
        path = Path(spec)
        if not path.is_file():
            raise SensorError(f"no storm preset or file '{spec}' (presets: {', '.join(PRESETS)})")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(name=data.pop("name", path.stem), **data)
        except (ValueError, TypeError) as exc:
            raise SensorError(f"storm file {path} is invalid: {exc}") from None

    @property
    def duration_s(self) -> float:
        return self.step_s * len(self.rain_mm_h)


@dataclass
class ReplayReport:
    storm: str
    steps: int
    published: int
    start: str
    end: str
    wall_s: float
    per_key: dict[str, int] = field(default_factory=dict)


def parse_speed(text: str | float) -> float:
    """'60x', '60' or 60 -> 60.0."""
    value = float(str(text).strip().rstrip("xX"))
    if value <= 0:
        raise SensorError(f"speed must be positive, not {text}")
    return value


def storm_series(storm: Storm, sites: list[Site]) -> list[dict[str, float | bool]]:
    """Per step, {datastream key: value} for every stream of the sites."""
    n_rain = max(1, sum(s.kind == "rain" for s in sites))
    factors = {s.key: 0.85 + 0.3 * (i / max(1, n_rain - 1)) for i, s in enumerate(x for x in sites if x.kind == "rain")}
    acc = {k: 0.0 for k in factors}
    depth = {s.key: 0.0 for s in sites if s.kind == "waterlogging"}
    running = {s.group: False for s in sites if s.kind == "pump"}
    smooth = 0.0
    out: list[dict[str, float | bool]] = []
    dt = storm.step_s
    for k, rain in enumerate(storm.rain_mm_h):
        step: dict[str, float | bool] = {}
        t = k * dt
        smooth += (rain - smooth) * min(1.0, dt / storm.river_lag_s)
        for s in sites:
            if s.kind == "rain":
                i = round(rain * factors[s.key], 2)
                acc[s.key] += i * dt / 3600.0
                step[f"{s.key}/intensity"] = i
                step[f"{s.key}/accumulation"] = round(acc[s.key], 2)
            elif s.kind == "stage":
                tide = storm.tide_amplitude_m * math.sin(2 * math.pi * t / (12.42 * 3600))
                step[f"{s.key}/stage"] = round(storm.river_base_m + tide + storm.river_gain_m * smooth
                                               - 0.02 * int(s.key.split("-")[-1]), 3)
            elif s.kind == "waterlogging":
                pump = running.get(s.group, False)
                excess = (rain - storm.drainage_mm_h) / 1000.0 * dt / 3600.0 * storm.ponding_factor
                if excess < 0:
                    excess *= 2.0 if pump else 0.7
                depth[s.key] = max(0.0, depth[s.key] + excess)
                step[f"{s.key}/depth"] = round(depth[s.key], 3)
        for s in sites:
            if s.kind != "pump":
                continue
            points = [depth[p.key] for p in sites if p.kind == "waterlogging" and p.group == s.group]
            sump = 1.0 + 8.0 * (max(points) if points else 0.0)
            if not running[s.group] and sump >= storm.pump_start_m:
                running[s.group] = True
            elif running[s.group] and sump <= storm.pump_stop_m:
                running[s.group] = False
            step[f"{s.key}/status"] = running[s.group]
            step[f"{s.key}/flow"] = storm.pump_capacity_m3_s if running[s.group] else 0.0
            step[f"{s.key}/sump"] = round(sump, 3)
        out.append(step)
    return out


def step_times(storm: Storm, end: datetime) -> list[str]:
    start = end - timedelta(seconds=storm.duration_s)
    return [format_time(start + timedelta(seconds=(k + 1) * storm.step_s)) for k in range(len(storm.rain_mm_h))]


def replay(twin_dir: str | Path, storm: str | Path | Storm, speed: str | float = "60x", *,
           host: str = "127.0.0.1", port: int = 1883, end: datetime | None = None,
           on_step: Callable[[int, int], None] | None = None) -> ReplayReport:
    """Install the sample network if needed and publish the storm over MQTT; blocks until done."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from simulate.sensors.sample import install_network, plan_network
    from simulate.sensors.service import SensorService
    from twin.store.folder import FolderStore

    storm = storm if isinstance(storm, Storm) else Storm.load(storm)
    factor = parse_speed(speed)
    sites = plan_network(FolderStore(twin_dir))
    service = SensorService.for_twin(twin_dir)
    try:
        ids = install_network(service, sites)
    finally:
        service.close()
    series = storm_series(storm, sites)
    end = (end or datetime.now(timezone.utc)).replace(microsecond=0)
    times = step_times(storm, end)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"twin-replay-{time.time_ns()}")
    try:
        client.connect(host, port)
    except OSError as exc:
        raise SensorError(f"cannot reach the MQTT broker at {host}:{port}", detail=str(exc)) from None
    client.loop_start()
    wall0 = time.monotonic()
    published, per_key = 0, {}
    infos = []
    try:
        for k, (when, step) in enumerate(zip(times, series)):
            target = wall0 + k * storm.step_s / factor
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for key, value in step.items():
                payload = orjson.dumps({"phenomenonTime": when, "result": value})
                infos.append(client.publish(f"v1.1/Datastreams({ids[key]})/Observations", payload, qos=1))
                published += 1
                per_key[key] = per_key.get(key, 0) + 1
            if on_step is not None:
                on_step(k, len(times))
        for info in infos:
            info.wait_for_publish(timeout=30)
    finally:
        client.disconnect()
        client.loop_stop()
    return ReplayReport(storm.name, len(times), published, times[0], times[-1], time.monotonic() - wall0, per_key)
