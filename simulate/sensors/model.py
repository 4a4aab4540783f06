"""The OGC SensorThings API v1.1 data model: entity types, their properties and navigation.

One table drives storage, the OData compiler and the JSON rendering, so a property or a
relation is declared once. Property kinds:

    text      a string column
    json      any JSON value kept as text (properties, unitOfMeasurement, parameters...)
    time      an ISO 8601 instant, stored as canonical UTC text (`canonical_time`)
    interval  an instant or a "start/end" interval: two columns `<col>_start`, `<col>_end`
    geo       GeoJSON kept as text, with bbox columns for a cheap prefilter
    result    an Observation result: a dynamically typed column plus `result_kind`
    derived   computed on read (Datastream phenomenonTime/resultTime/observedArea)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from simulate.sensors.errors import InvalidEntity

API_VERSION = "v1.1"


@dataclass(frozen=True)
class Prop:
    name: str
    column: str
    kind: str = "text"
    required: bool = False


@dataclass(frozen=True)
class Nav:
    """A navigation property. to-one: `fk` is a column of the source table. to-many: `fk` is a
    column of the target table, or `link` = (table, source column, target column) for m:n."""

    name: str
    target: str
    many: bool
    fk: str | None = None
    link: tuple[str, str, str] | None = None


@dataclass(frozen=True)
class EntityType:
    set_name: str
    singular: str
    table: str
    props: tuple[Prop, ...]
    navs: tuple[Nav, ...]

    def prop(self, name: str) -> Prop | None:
        return next((p for p in self.props if p.name == name), None)

    def nav(self, name: str) -> Nav | None:
        return next((n for n in self.navs if n.name == name), None)


def _common(*extra: Prop) -> tuple[Prop, ...]:
    return (Prop("name", "name", required=True), Prop("description", "description", required=True),
            *extra, Prop("properties", "properties", "json"))


ENTITIES: dict[str, EntityType] = {e.set_name: e for e in (
    EntityType("Things", "Thing", "things", _common(), (
        Nav("Locations", "Locations", True, link=("thing_locations", "thing_id", "location_id")),
        Nav("HistoricalLocations", "HistoricalLocations", True, fk="thing_id"),
        Nav("Datastreams", "Datastreams", True, fk="thing_id"))),
    EntityType("Locations", "Location", "locations", _common(
        Prop("encodingType", "encoding_type", required=True), Prop("location", "location", "geo", True)), (
        Nav("Things", "Things", True, link=("thing_locations", "location_id", "thing_id")),
        Nav("HistoricalLocations", "HistoricalLocations", True,
            link=("hist_locations", "location_id", "hist_id")))),
    EntityType("HistoricalLocations", "HistoricalLocation", "historical_locations",
               (Prop("time", "time", "time", True),), (
        Nav("Thing", "Things", False, fk="thing_id"),
        Nav("Locations", "Locations", True, link=("hist_locations", "hist_id", "location_id")))),
    EntityType("Sensors", "Sensor", "sensors", _common(
        Prop("encodingType", "encoding_type", required=True), Prop("metadata", "metadata", "json", True)), (
        Nav("Datastreams", "Datastreams", True, fk="sensor_id"),)),
    EntityType("ObservedProperties", "ObservedProperty", "observed_properties", _common(
        Prop("definition", "definition", required=True)), (
        Nav("Datastreams", "Datastreams", True, fk="observed_property_id"),)),
    EntityType("Datastreams", "Datastream", "datastreams", _common(
        Prop("unitOfMeasurement", "unit", "json", True), Prop("observationType", "observation_type", required=True),
        Prop("observedArea", "observed_area", "derived"), Prop("phenomenonTime", "phenomenon_time", "derived"),
        Prop("resultTime", "result_time", "derived")), (
        Nav("Thing", "Things", False, fk="thing_id"),
        Nav("Sensor", "Sensors", False, fk="sensor_id"),
        Nav("ObservedProperty", "ObservedProperties", False, fk="observed_property_id"),
        Nav("Observations", "Observations", True, fk="datastream_id"))),
    EntityType("FeaturesOfInterest", "FeatureOfInterest", "features", _common(
        Prop("encodingType", "encoding_type", required=True), Prop("feature", "feature", "geo", True)), (
        Nav("Observations", "Observations", True, fk="foi_id"),)),
    EntityType("Observations", "Observation", "observations", (
        Prop("phenomenonTime", "phenomenon", "interval"), Prop("result", "result", "result", True),
        Prop("resultTime", "result_time", "time"), Prop("resultQuality", "result_quality", "json"),
        Prop("validTime", "valid", "interval"), Prop("parameters", "parameters", "json")), (
        Nav("Datastream", "Datastreams", False, fk="datastream_id"),
        Nav("FeatureOfInterest", "FeaturesOfInterest", False, fk="foi_id"))),
)}

BY_SINGULAR: dict[str, EntityType] = {e.singular: e for e in ENTITIES.values()}

# observationType -> the Python types a result may have
OBSERVATION_TYPES: dict[str, tuple[type, ...]] = {
    "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement": (int, float),
    "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CountObservation": (int,),
    "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CategoryObservation": (str,),
    "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_TruthObservation": (bool,),
    "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Observation": (object,),
}
OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
OM_TRUTH = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_TruthObservation"
OM_CATEGORY = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CategoryObservation"

# The binding of a Thing to a twin feature (in Thing.properties).
TWIN_LAYER = "twin:layer"
TWIN_FEATURE = "twin:feature"
# Alert thresholds of a Datastream (in Datastream.properties): see simulate.sensors.alerts.
TWIN_THRESHOLDS = "twin:thresholds"

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")


def parse_time(value: object, field: str) -> datetime:
    """An ISO 8601 instant (UTC assumed when no offset) as an aware datetime."""
    if not isinstance(value, str) or not _ISO.match(value.strip()):
        raise InvalidEntity(f"'{value}' is not an ISO 8601 time", field=field)
    text = value.strip().replace("Z", "+00:00")
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidEntity(f"'{value}' is not an ISO 8601 time", field=field) from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def format_time(t: datetime) -> str:
    """Canonical stored form: UTC, millisecond precision, `Z` (sorts as text)."""
    t = t.astimezone(timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def canonical_time(value: object, field: str) -> str:
    return format_time(parse_time(value, field))


def parse_interval(value: object, field: str) -> tuple[str, str | None]:
    """An instant or "start/end": canonical (start, end or None)."""
    if isinstance(value, str) and "/" in value:
        a, b = value.split("/", 1)
        start, end = canonical_time(a, field), canonical_time(b, field)
        if end < start:
            raise InvalidEntity(f"interval '{value}' ends before it starts", field=field)
        return start, end
    return canonical_time(value, field), None


def render_interval(start: str | None, end: str | None) -> str | None:
    if start is None:
        return None
    return f"{start}/{end}" if end else start


def now_text() -> str:
    return format_time(datetime.now(timezone.utc))


def self_link(base: str, set_name: str, entity_id: int) -> str:
    return f"{base}/{set_name}({entity_id})"
