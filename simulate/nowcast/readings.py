"""The latest usable readings of the live sensor network, for one nowcast.

Things are recognised as the sample network (`simulate.sensors.sample`) writes them, with fallbacks
for networks installed by hand:

    rain gauge          a Datastream in mm/h (precipitation intensity)
    river stage gauge   a Thing with properties.kind "stage", or named as a river's `gauge` in city.toml;
                        its first Datastream in metres
    waterlogging point  a Thing with properties.kind "waterlogging", or an observed property "... depth";
                        its Datastream in metres with twin:thresholds

A gauge counts with its latest reading at or before the forecast's start, if that reading is no
older than the lookback; locations are taken to the project CRS.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import orjson

from simulate.process import ProcessError
from simulate.sensors.alerts import Thresholds
from simulate.sensors.model import format_time
from simulate.sensors.service import SensorService
from simulate.sensors.store import Parent

RAIN_UNITS = ("mm/h", "mm h-1", "mm/hr")


@dataclass(frozen=True)
class Gauge:
    """A rain or stage gauge with its reading (mm/h or m) at `time`."""

    thing_id: int
    name: str
    datastream_id: int
    x: float
    y: float
    value: float
    time: str


@dataclass(frozen=True)
class Point:
    """A waterlogging point: where depth is forecast, and the thresholds it is judged by."""

    thing_id: int
    name: str
    datastream_id: int
    x: float
    y: float
    thresholds: Thresholds
    observed: float | None = None       # its latest depth reading, if recent
    observed_at: str | None = None


@dataclass
class Readings:
    at: str
    rain: list[Gauge] = field(default_factory=list)
    stages: list[Gauge] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)     # gauges with no reading within the lookback

    def summary(self) -> dict[str, Any]:
        return {"at": self.at, "rain": {g.name: g.value for g in self.rain},
                "stages": {g.name: g.value for g in self.stages}, "points": len(self.points), "stale": self.stale}


@dataclass(frozen=True)
class _Site:
    thing_id: int
    name: str
    role: str                 # rain | stage | point
    datastream_id: int
    lon: float
    lat: float
    thresholds: Thresholds | None = None


def _json(text: str | None) -> dict[str, Any]:
    return orjson.loads(text) if text else {}


def _sites(service: SensorService, stage_gauges: set[str]) -> list[_Site]:
    from shapely.geometry import shape

    q = service.parse_query({"$expand": "Locations($top=1;$orderby=id desc),Datastreams($top=1000;"
                                        "$expand=ObservedProperty)", "$top": "10000"})
    out = []
    for thing in service.query("Things", q).rows:
        locations = thing["@expand"]["Locations"].rows
        if not locations:
            continue
        centre = shape(orjson.loads(locations[0]["location"])).centroid
        kind = _json(thing.get("properties")).get("kind")
        streams = thing["@expand"]["Datastreams"].rows
        metres = [d for d in streams if _json(d["unit"]).get("symbol") == "m"]
        roles: list[tuple[str, dict, Thresholds | None]] = []
        for d in streams:
            if _json(d["unit"]).get("symbol") in RAIN_UNITS:
                roles.append(("rain", d, None))
        if (kind == "stage" or thing["name"] in stage_gauges) and metres:
            roles.append(("stage", metres[0], None))
        for d in metres:
            observed = (d.get("@expand", {}).get("ObservedProperty") or {}).get("name", "")
            t = Thresholds.from_properties(_json(d.get("properties")))
            if t is not None and (kind == "waterlogging" or (kind is None and "depth" in observed.lower())):
                roles.append(("point", d, t))
                break
        out += [_Site(thing["id"], thing["name"], role, d["id"], centre.x, centre.y, t) for role, d, t in roles]
    return out


def _reading_at(service: SensorService, datastream_id: int, at: str) -> tuple[str, float] | None:
    """The latest numeric reading at or before `at`: (time, value)."""
    q = service.parse_query({"$filter": f"phenomenonTime le {at}", "$orderby": "phenomenonTime desc", "$top": "1"})
    rows = service.query("Observations", q, parent=Parent("Datastreams", datastream_id, "Observations")).rows
    if not rows or rows[0]["result_kind"] != "n":
        return None
    row = rows[0]
    return row["phenomenon_end"] or row["phenomenon_start"], float(row["result"])


def read_sensors(service: SensorService, crs: str, at: datetime, lookback_s: float,
                 stage_gauges: Iterable[str] = ()) -> Readings:
    """The readings a nowcast starting at `at` uses. ProcessError (field "sensors") when the twin has
    no rain or stage gauge, (field "lookback") when none of them has a reading within the lookback."""
    from pyproj import Transformer

    sites = _sites(service, set(stage_gauges))
    if not any(s.role in ("rain", "stage") for s in sites):
        raise ProcessError("the twin has no rain or river stage gauges to nowcast from", field="sensors")
    at_text = format_time(at)
    since = format_time(at - timedelta(seconds=lookback_s))
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(
        np.array([s.lon for s in sites]), np.array([s.lat for s in sites]))
    out = Readings(at_text)
    for s, sx, sy in zip(sites, np.atleast_1d(x), np.atleast_1d(y)):
        reading = _reading_at(service, s.datastream_id, at_text)
        recent = reading is not None and reading[0] >= since and np.isfinite(reading[1])
        if s.role == "point":
            out.points.append(Point(s.thing_id, s.name, s.datastream_id, float(sx), float(sy), s.thresholds,
                                    *(reading[::-1] if recent else (None, None))))
        elif not recent:
            out.stale.append(s.name)
        else:
            gauge = Gauge(s.thing_id, s.name, s.datastream_id, float(sx), float(sy), max(reading[1], 0.0)
                          if s.role == "rain" else reading[1], reading[0])
            (out.rain if s.role == "rain" else out.stages).append(gauge)
    if not out.rain and not out.stages:
        raise ProcessError(f"no rain or river stage reading in the {lookback_s / 60:g} min before {at_text}",
                           field="lookback")
    return out


def raining(service: SensorService, at: datetime, lookback_s: float) -> bool:
    """Whether any rain gauge reads above zero within the lookback (cheap: no coordinates)."""
    at_text, since = format_time(at), format_time(at - timedelta(seconds=lookback_s))
    for s in _sites(service, set()):
        if s.role == "rain":
            reading = _reading_at(service, s.datastream_id, at_text)
            if reading is not None and reading[0] >= since and reading[1] > 0:
                return True
    return False
