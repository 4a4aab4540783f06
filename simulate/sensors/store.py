"""The sensor store interface.

Everything SQL lives behind `SensorStore`: the embedded default is `SqliteSensorStore`
(DIR/sensors/sensors.sqlite, WAL); a PostgreSQL store implements the same class. Stores return
plain rows (column -> value, as in `model.ENTITIES`) and `Page`s; `render` makes SensorThings JSON.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

from simulate.sensors.alerts import (AlertState, Event, EventFilter, ForecastRun, ForecastTransition, Reading,
                                     Transition)
from simulate.sensors.entities import NewEntity
from simulate.sensors.odata import Query


@dataclass(frozen=True)
class Parent:
    """The navigation a request came through: /Things(1)/Datastreams is Parent("Things", 1, "Datastreams")."""

    set_name: str
    id: int
    nav: str


@dataclass
class Page:
    rows: list[dict[str, Any]]            # each row may carry "@expand" -> {nav: Page | row | None}
    count: int | None = None              # with $count=true
    next_skip: int | None = None          # where the next page starts, when there is one


@dataclass(frozen=True)
class DatastreamInfo:
    id: int
    observation_type: str
    unit: dict[str, Any] | None
    properties: dict[str, Any]
    thing_id: int


@dataclass
class ObservationIn:
    """A validated observation for the ingest fast path (MQTT, dataArray)."""

    datastream_id: int
    phenomenon_start: str
    phenomenon_end: str | None
    result: Any
    result_kind: str
    result_time: str | None = None
    result_quality: str | None = None
    valid_start: str | None = None
    valid_end: str | None = None
    parameters: str | None = None
    foi_id: int | None = None             # None: the Thing's default FeatureOfInterest


@dataclass
class IngestResult:
    ids: list[int]                        # per input, the stored id (the existing one for a duplicate)
    created: list[bool]                   # per input, False for a redelivered duplicate
    events: list[Event] = field(default_factory=list)   # events opened, closed or updated
    state: AlertState | None = None       # the alert state after this batch


Evaluate = Callable[[list[Reading]], tuple[list[Transition], AlertState]]
# the active forecast (datastream, kind) pairs -> what a forecast run changes
EvaluateForecast = Callable[[set[tuple[int, str]]], list[ForecastTransition]]


class SensorStore(ABC):
    """SensorThings entities, observations and alert events of one twin."""

    # -- entities
    @abstractmethod
    def create(self, entity: NewEntity, *, parent: Parent | None = None) -> tuple[int, bool]:
        """Store a (deep) entity in one transaction; (id, created). An Observation that repeats a
        Datastream's phenomenonTime is not stored again: its existing id comes back with False."""

    @abstractmethod
    def update(self, set_name: str, entity_id: int, patch: NewEntity) -> None:
        """PATCH: change the given properties and to-one links (and Thing Locations)."""

    @abstractmethod
    def delete(self, set_name: str, entity_id: int) -> None:
        """Delete with the SensorThings cascade (a Thing takes its Datastreams and their Observations)."""

    @abstractmethod
    def query(self, set_name: str, q: Query, *, parent: Parent | None = None) -> Page:
        """A collection, filtered, ordered, paged and expanded as `q` says."""

    @abstractmethod
    def get(self, set_name: str, entity_id: int, q: Query, *, parent: Parent | None = None) -> dict[str, Any]:
        """One entity (raises EntityNotFound); with a to-one `parent` nav, `entity_id` is ignored."""

    # -- the ingest fast path
    @abstractmethod
    def datastream_info(self, datastream_id: int) -> DatastreamInfo | None: ...

    @abstractmethod
    def default_feature(self, thing_id: int) -> int:
        """The FeatureOfInterest made from the Thing's current Location (created when missing)."""

    @abstractmethod
    def ingest(self, observations: list[ObservationIn], evaluate: Evaluate) -> IngestResult:
        """Insert idempotently, evaluate alerts on the new readings and record the events, all in one
        transaction; returns only after COMMIT."""

    @abstractmethod
    def latest(self, datastream_ids: list[int] | None = None) -> dict[int, dict[str, Any]]:
        """Per Datastream, its latest Observation row (by phenomenonTime)."""

    @abstractmethod
    def count_observations(self, datastream_id: int | None = None) -> int: ...

    # -- alerts
    @abstractmethod
    def alert_state(self) -> AlertState: ...

    @abstractmethod
    def events(self, f: EventFilter) -> tuple[list[Event], int]:
        """Events matching `f` (newest first) and how many match in all."""

    @abstractmethod
    def event(self, event_id: int) -> Event: ...

    @abstractmethod
    def set_event_state(self, event_id: int, state: str, who: str, when: str) -> Event:
        """Acknowledge or close (raises InvalidTransition when the lifecycle forbids it)."""

    def apply_forecast(self, run: ForecastRun, evaluate: EvaluateForecast, now: str) -> list[Event]:
        """Record the forecast events of a model run in one transaction: `evaluate(active)` says which
        to open, update or close. A run already applied, or issued before the latest applied, changes
        nothing. Returns the events changed. (Not abstract, so stores written before forecasts keep
        working; the embedded SQLite store's implementation lives in `sqlite_events`.)"""
        from simulate.sensors import sqlite_events
        from simulate.sensors.sqlite import SqliteSensorStore

        if isinstance(self, SqliteSensorStore):
            return sqlite_events.apply_forecast_in(self, run, evaluate, now)
        raise NotImplementedError(f"{type(self).__name__} does not record forecast events")

    @abstractmethod
    def close(self) -> None: ...
