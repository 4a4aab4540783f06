"""Threshold alerts with hysteresis, and alert events with a lifecycle.

A Datastream's `properties["twin:thresholds"]` holds

    {"warning": 30.0, "alarm": 50.0, "hysteresis": 2.0, "direction": "above"}

Each level (warning, alarm) is a comparator with a dead band: for "above", it becomes active when
a value reaches the level (>=) and inactive only when a value falls below level - hysteresis; for
"below", active at <= level and inactive above level + hysteresis. Values in between keep the
state, so a reading wobbling around a level does not flap. Activation opens an event of that kind;
deactivation closes it (closed_by "system"). Operators acknowledge (open -> acknowledged) and may
close an event themselves; a manually closed event is not reopened until the level deactivates and
activates again. Readings are evaluated in phenomenonTime order; a reading older than the last one
evaluated for its Datastream is stored but does not move the alert state.

Forecast events (kinds "forecast-warning", "forecast-alarm") come from a model run, not a reading:
`evaluate_forecast` compares each point's predicted value with the same thresholds (and dead band),
so a run opens, updates or closes at most one forecast event per Datastream and level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from simulate.sensors.errors import InvalidEntity
from simulate.sensors.model import TWIN_THRESHOLDS

KINDS = ("warning", "alarm")
FORECAST_KINDS = ("forecast-warning", "forecast-alarm")
EVENT_KINDS = KINDS + FORECAST_KINDS
STATES = ("open", "acknowledged", "closed")


@dataclass(frozen=True)
class Thresholds:
    warning: float | None = None
    alarm: float | None = None
    hysteresis: float = 0.0
    direction: str = "above"

    @classmethod
    def from_properties(cls, properties: dict[str, Any] | None) -> "Thresholds | None":
        raw = (properties or {}).get(TWIN_THRESHOLDS)
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise InvalidEntity(f"{TWIN_THRESHOLDS} must be an object", field="properties")
        unknown = set(raw) - {"warning", "alarm", "hysteresis", "direction"}
        if unknown:
            raise InvalidEntity(f"{TWIN_THRESHOLDS} has unknown keys {sorted(unknown)}", field="properties")
        for key in ("warning", "alarm", "hysteresis"):
            v = raw.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise InvalidEntity(f"{TWIN_THRESHOLDS}.{key} must be a number", field="properties")
        t = cls(raw.get("warning"), raw.get("alarm"), float(raw.get("hysteresis", 0.0)), raw.get("direction", "above"))
        if t.direction not in ("above", "below"):
            raise InvalidEntity(f"{TWIN_THRESHOLDS}.direction must be 'above' or 'below'", field="properties")
        if t.hysteresis < 0:
            raise InvalidEntity(f"{TWIN_THRESHOLDS}.hysteresis must be >= 0", field="properties")
        if t.warning is not None and t.alarm is not None:
            if (t.alarm < t.warning) if t.direction == "above" else (t.alarm > t.warning):
                raise InvalidEntity(f"{TWIN_THRESHOLDS}: the alarm level must be beyond the warning level",
                                    field="properties")
        return t

    def levels(self) -> list[tuple[str, float]]:
        return [(k, float(v)) for k, v in (("warning", self.warning), ("alarm", self.alarm)) if v is not None]

    def next_state(self, level: float, active: bool, value: float) -> bool:
        if self.direction == "above":
            return value >= level if not active else not value < level - self.hysteresis
        return value <= level if not active else not value > level + self.hysteresis


@dataclass(frozen=True)
class Reading:
    datastream_id: int
    observation_id: int
    time: str
    value: float


@dataclass(frozen=True)
class Transition:
    """An alert level of a Datastream changing state on one reading."""

    datastream_id: int
    kind: str            # "warning" | "alarm"
    action: str          # "open" | "close" | "peak"
    time: str
    value: float
    threshold: float
    observation_id: int
    direction: str = "above"


@dataclass
class AlertState:
    """Which (datastream, kind) levels are active, and the time of the last reading evaluated."""

    active: set[tuple[int, str]] = field(default_factory=set)
    last_time: dict[int, str] = field(default_factory=dict)

    def copy(self) -> "AlertState":
        return AlertState(set(self.active), dict(self.last_time))


def evaluate(readings: Iterable[Reading], thresholds: dict[int, Thresholds], state: AlertState) -> tuple[list[Transition], AlertState]:
    """Transitions caused by `readings` (any order) and the state after them; `state` is not changed."""
    new = state.copy()
    out: list[Transition] = []
    peaks: dict[tuple[int, str], Transition] = {}
    for r in sorted(readings, key=lambda r: (r.datastream_id, r.time)):
        t = thresholds.get(r.datastream_id)
        last = new.last_time.get(r.datastream_id)
        if t is None or (last is not None and r.time <= last):
            continue
        new.last_time[r.datastream_id] = r.time
        for kind, level in t.levels():
            key = (r.datastream_id, kind)
            was = key in new.active
            now = t.next_state(level, was, r.value)
            if now and not was:
                new.active.add(key)
                out.append(Transition(r.datastream_id, kind, "open", r.time, r.value, level, r.observation_id,
                                      t.direction))
            elif was and not now:
                new.active.discard(key)
                if key in peaks:                 # the episode's peak goes on record before it closes
                    out.append(peaks.pop(key))
                out.append(Transition(r.datastream_id, kind, "close", r.time, r.value, level, r.observation_id,
                                      t.direction))
            elif now:
                best = peaks.get(key)
                if best is None or (r.value > best.value if t.direction == "above" else r.value < best.value):
                    peaks[key] = Transition(r.datastream_id, kind, "peak", r.time, r.value, level,
                                            r.observation_id, t.direction)
    return out + list(peaks.values()), new


@dataclass(frozen=True)
class Event:
    id: int
    kind: str
    state: str
    datastream_id: int
    thing_id: int | None
    opened_at: str
    threshold: float
    value: float                 # the reading that opened it
    peak: float                  # the most extreme reading while active
    peak_at: str
    closed_at: str | None
    closed_by: str | None
    acknowledged_at: str | None
    acknowledged_by: str | None
    lon: float | None
    lat: float | None
    twin_layer: str | None
    twin_feature: str | None
    message: str
    # forecast events only: the latest run's job, issue time, horizon, prediction and expected time
    forecast: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["location"] = None if self.lon is None else {"type": "Point", "coordinates": [self.lon, self.lat]}
        d["feature"] = (None if self.twin_layer is None else {"layer": self.twin_layer, "id": self.twin_feature})
        for k in ("lon", "lat", "twin_layer", "twin_feature"):
            d.pop(k)
        return d


@dataclass(frozen=True)
class EventFilter:
    state: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()
    datastream_id: int | None = None
    thing_id: int | None = None
    bbox: tuple[float, float, float, float] | None = None      # lon/lat
    since: str | None = None      # events active at or after this time
    until: str | None = None      # events opened at or before this time
    limit: int = 100
    offset: int = 0

    def __post_init__(self) -> None:
        bad = [s for s in self.state if s not in STATES]
        if bad:
            raise InvalidEntity(f"unknown event state {bad[0]!r} (one of {', '.join(STATES)})", field="state")
        bad = [k for k in self.kind if k not in EVENT_KINDS]
        if bad:
            raise InvalidEntity(f"unknown event kind {bad[0]!r} (one of {', '.join(EVENT_KINDS)})", field="kind")
        if self.bbox is not None and (self.bbox[0] > self.bbox[2] or self.bbox[1] > self.bbox[3]):
            raise InvalidEntity("bbox must be minlon,minlat,maxlon,maxlat", field="bbox")


# -- forecast events ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PointForecast:
    """What a run predicts for one Datastream within its horizon."""

    datastream_id: int
    predicted: float                  # the most extreme value expected (NaN: unknown, changes nothing)
    peak_at: str | None = None        # when it is expected
    reaches: dict[str, str] = field(default_factory=dict)   # level ("warning", "alarm") -> first expected time


@dataclass(frozen=True)
class ForecastRun:
    """One forecast issued at `issued_at` for `horizon_s` ahead; `run_id` is the job that made it."""

    run_id: str
    issued_at: str                    # canonical UTC text
    horizon_s: float
    points: tuple[PointForecast, ...]


@dataclass(frozen=True)
class ForecastTransition:
    datastream_id: int
    kind: str                         # "forecast-warning" | "forecast-alarm"
    action: str                       # "open" | "update" | "close"
    threshold: float
    point: PointForecast
    direction: str = "above"


def evaluate_forecast(run: ForecastRun, thresholds: dict[int, Thresholds],
                      active: set[tuple[int, str]]) -> list[ForecastTransition]:
    """Per point and level: open when the prediction reaches it, update while it stays there (within
    the dead band), close when it no longer does. Points without thresholds or prediction are skipped."""
    out: list[ForecastTransition] = []
    for p in run.points:
        t = thresholds.get(p.datastream_id)
        if t is None or math.isnan(p.predicted):          # unknown: keep the state
            continue
        for level_kind, level in t.levels():
            kind = f"forecast-{level_kind}"
            was = (p.datastream_id, kind) in active
            now = t.next_state(level, was, p.predicted)
            action = ("update" if was else "open") if now else ("close" if was else None)
            if action is not None:
                out.append(ForecastTransition(p.datastream_id, kind, action, level, p, t.direction))
    return out
