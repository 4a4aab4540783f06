"""Validation of SensorThings request bodies, independent of the database.

`normalise(set_name, body)` checks a create (or PATCH) body against the data model and returns a
`NewEntity` tree: column values ready to store plus the nested entities and references of a deep
insert. Nothing here touches storage; a store writes the tree in one transaction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from simulate.sensors.errors import InvalidEntity
from simulate.sensors.model import (ENTITIES, OBSERVATION_TYPES, TWIN_FEATURE, TWIN_LAYER, TWIN_THRESHOLDS,
                                    EntityType, canonical_time, format_time, parse_interval)

GEOJSON_TYPES = ("application/geo+json", "application/vnd.geo+json")


@dataclass(frozen=True)
class Ref:
    """A link to an existing entity: {"@iot.id": n}."""

    set_name: str
    id: int


@dataclass
class NewEntity:
    set_name: str
    values: dict[str, Any]                                  # column -> stored value
    links: dict[str, list["NewEntity | Ref"]] = field(default_factory=dict)   # nav name -> items
    body: dict[str, Any] = field(default_factory=dict)      # the raw JSON (for checks needing context)


@dataclass(frozen=True)
class Limits:
    """Clock checks: times more than `future_tolerance` ahead of `now` are rejected."""

    future_tolerance: timedelta = timedelta(minutes=5)

    def latest_allowed(self) -> str:
        return format_time(datetime.now(timezone.utc) + self.future_tolerance)


def parse_json(raw: bytes | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEntity(f"malformed JSON: {exc}") from None


def normalise(set_name: str, body: Any, *, partial: bool = False, limits: Limits = Limits()) -> NewEntity:
    """A create body (or, with `partial`, a PATCH body) as a `NewEntity` tree."""
    et = ENTITIES[set_name]
    if not isinstance(body, dict):
        raise InvalidEntity(f"a {et.singular} must be a JSON object")
    ent = NewEntity(set_name, {}, {}, body)
    for key, value in body.items():
        if key.startswith("@iot.") or key.endswith("@iot.navigationLink"):
            continue
        nav = et.nav(key)
        if nav is not None:
            ent.links[key] = _nav_items(et, key, nav.many, nav.target, value, limits)
            continue
        prop = et.prop(key)
        if prop is None:
            raise InvalidEntity(f"{et.singular} has no property '{key}'", field=key)
        if prop.kind == "derived":
            raise InvalidEntity(f"{et.singular}/{key} is computed by the service and cannot be set", field=key)
        _set_value(et, ent.values, prop.name, prop.column, prop.kind, value, limits)
    if not partial:
        if set_name == "Observations" and "phenomenonTime" not in body:
            ent.values["phenomenon_start"], ent.values["phenomenon_end"] = format_time(datetime.now(timezone.utc)), None
        missing = [p.name for p in et.props if p.required and p.name not in body]
        if missing:
            raise InvalidEntity(f"{et.singular} is missing {', '.join(missing)}", field=missing[0])
    _check_entity(et, ent, partial)
    return ent


def _nav_items(et: EntityType, key: str, many: bool, target: str, value: Any, limits: Limits) -> list:
    if many:
        if not isinstance(value, list):
            raise InvalidEntity(f"{et.singular}/{key} must be an array", field=key)
        items = value
    else:
        if not isinstance(value, dict):
            raise InvalidEntity(f"{et.singular}/{key} must be an object", field=key)
        items = [value]
    out: list[NewEntity | Ref] = []
    for item in items:
        if isinstance(item, dict) and set(item) == {"@iot.id"}:
            out.append(Ref(target, _ref_id(item["@iot.id"], key)))
        else:
            out.append(normalise(target, item, limits=limits))
    return out


def _ref_id(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
        raise InvalidEntity(f"@iot.id of {key} must be an integer id", field=key)
    return int(value)


def _set_value(et: EntityType, values: dict, name: str, column: str, kind: str, value: Any, limits: Limits) -> None:
    field_name = name
    if kind == "text":
        if not isinstance(value, str):
            raise InvalidEntity(f"{et.singular}/{name} must be a string", field=field_name)
        values[column] = value
    elif kind == "json":
        if name == "properties" and value is not None and not isinstance(value, dict):
            raise InvalidEntity(f"{et.singular}/properties must be an object", field=field_name)
        values[column] = None if value is None else orjson.dumps(value).decode()
    elif kind == "time":
        values[column] = None if value is None else _not_future(canonical_time(value, name), name, limits)
    elif kind == "interval":
        start, end = (None, None) if value is None else parse_interval(value, name)
        if start is not None:
            _not_future(start, name, limits)
        values[f"{column}_start"], values[f"{column}_end"] = start, end
    elif kind == "geo":
        geom = geometry_of(value, f"{et.singular}/{name}")
        values[column] = orjson.dumps(value).decode()
        values.update(zip(("minx", "miny", "maxx", "maxy"), geom.bounds))
    elif kind == "result":
        values["result"], values["result_kind"] = encode_result(value)
    else:  # pragma: no cover - the model has no other kinds
        raise InvalidEntity(f"cannot set {name}")


def _not_future(text: str, name: str, limits: Limits) -> str:
    if text > limits.latest_allowed():
        raise InvalidEntity(f"{name} {text} is in the future (more than "
                            f"{limits.future_tolerance.total_seconds():.0f} s ahead of the service clock)", field=name)
    return text


def geometry_of(value: Any, what: str) -> BaseGeometry:
    """A GeoJSON geometry or Feature as a shapely geometry (lon/lat, WGS84)."""
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    try:
        geom = shapely.geometry.shape(value)
    except Exception:  # shapely raises several types for bad GeoJSON
        raise InvalidEntity(f"{what} is not a GeoJSON geometry") from None
    if geom.is_empty or not all(math.isfinite(b) for b in geom.bounds):
        raise InvalidEntity(f"{what} is an empty or non-finite geometry")
    return geom


def encode_result(value: Any) -> tuple[Any, str]:
    if isinstance(value, bool):
        return int(value), "b"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidEntity("result must be a finite number", field="result")
        return value, "n"
    if isinstance(value, str):
        return value, "s"
    return orjson.dumps(value).decode(), "j"


def decode_result(value: Any, kind: str) -> Any:
    if kind == "b":
        return bool(value)
    if kind == "j":
        return orjson.loads(value) if value is not None else None
    return value


def _check_entity(et: EntityType, ent: NewEntity, partial: bool) -> None:
    v, body = ent.values, ent.body
    if "encoding_type" in v and et.set_name in ("Locations", "FeaturesOfInterest") and v["encoding_type"] not in GEOJSON_TYPES:
        raise InvalidEntity(f"{et.singular}/encodingType must be one of {', '.join(GEOJSON_TYPES)}",
                            field="encodingType")
    if et.set_name == "Datastreams":
        otype = body.get("observationType")
        if "observationType" in body and otype not in OBSERVATION_TYPES:
            raise InvalidEntity(f"unknown observationType '{otype}'", field="observationType")
        if "unitOfMeasurement" in body:
            unit = body["unitOfMeasurement"]
            if not isinstance(unit, dict) or not all(k in unit for k in ("name", "symbol", "definition")):
                raise InvalidEntity("unitOfMeasurement must be an object with name, symbol and definition",
                                    field="unitOfMeasurement")
        props = body.get("properties") or {}
        if TWIN_THRESHOLDS in props:
            from simulate.sensors.alerts import Thresholds

            Thresholds.from_properties(props)          # raises InvalidEntity when malformed
    if et.set_name == "Things":
        props = body.get("properties") or {}
        if TWIN_LAYER in props or TWIN_FEATURE in props:
            if not isinstance(props.get(TWIN_LAYER), str) or not isinstance(props.get(TWIN_FEATURE), (str, int)):
                raise InvalidEntity(f"a twin binding needs properties '{TWIN_LAYER}' (a layer name) and "
                                    f"'{TWIN_FEATURE}' (a feature id)", field="properties")


def check_result(result: Any, kind: str, observation_type: str, unit: dict | None, parameters: Any,
                 datastream_id: int) -> None:
    """An observation's result and declared unit against its Datastream."""
    expected = OBSERVATION_TYPES.get(observation_type, (object,))
    value = decode_result(result, kind)
    ok = object in expected or (isinstance(value, expected) and not (isinstance(value, bool) and bool not in expected))
    if not ok:
        short = observation_type.rsplit("/", 1)[-1]
        raise InvalidEntity(f"result {value!r} does not fit Datastream {datastream_id} ({short} expects "
                            f"{' or '.join(t.__name__ for t in expected)})", field="result")
    declared = declared_unit(parameters)
    if declared is not None and unit is not None and declared != unit.get("symbol"):
        raise InvalidEntity(f"unit '{declared}' does not match Datastream {datastream_id} unit "
                            f"'{unit.get('symbol')}'", field="parameters")


def declared_unit(parameters: Any) -> str | None:
    """The unit an observation declares in parameters.unit or parameters.unitOfMeasurement.symbol."""
    if isinstance(parameters, str):
        parameters = orjson.loads(parameters)
    if not isinstance(parameters, dict):
        return None
    if "unit" in parameters:
        return str(parameters["unit"])
    uom = parameters.get("unitOfMeasurement")
    if isinstance(uom, dict) and "symbol" in uom:
        return str(uom["symbol"])
    return None
