"""The sensor service: validation, idempotent ingest, live state and alerts over one `SensorStore`.

HTTP routes, the MQTT bridge and the replay all go through `SensorService`, so every observation
is validated the same way, evaluated against its Datastream's thresholds in the same transaction
that stores it, and announced on the `hub` only after COMMIT.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from simulate.sensors.alerts import (AlertState, Event, EventFilter, ForecastRun, Thresholds, evaluate,
                                     evaluate_forecast)
from simulate.sensors.entities import Limits, NewEntity, Ref, check_result, decode_result, normalise, parse_json
from simulate.sensors.errors import EntityNotFound, InvalidEntity
from simulate.sensors.hub import Hub
from simulate.sensors.model import ENTITIES, now_text, render_interval
from simulate.sensors.odata import Query, QueryParser
from simulate.sensors.render import entity as render_entity
from simulate.sensors.store import DatastreamInfo, IngestResult, ObservationIn, Page, Parent, SensorStore

DATA_ARRAY_COMPONENTS = {"id", "phenomenonTime", "resultTime", "result", "resultQuality", "validTime",
                         "parameters", "FeatureOfInterest/id"}


@dataclass
class _Cached:
    info: DatastreamInfo
    thresholds: Thresholds | None
    expires: float


class SensorService:
    def __init__(self, store: SensorStore, *, base_url: str = "/sta/v1.1", limits: Limits = Limits(),
                 info_ttl_s: float = 5.0):
        self.store = store
        self.base_url = base_url.rstrip("/")
        self.limits = limits
        self.hub = Hub()
        self.parser = QueryParser()
        self._ttl = info_ttl_s
        self._info: dict[int, _Cached] = {}
        self._foi: dict[int, int] = {}                     # thing id -> default FeatureOfInterest id
        self._ingest_lock = threading.Lock()
        self._state: AlertState | None = None
        self._latest: dict[int, dict[str, Any]] | None = None

    @classmethod
    def for_twin(cls, twin_dir: str | Path, **kw: Any) -> "SensorService":
        from simulate.sensors.sqlite import SqliteSensorStore

        return cls(SqliteSensorStore.for_twin(twin_dir), **kw)

    def close(self) -> None:
        self.store.close()

    # -- entities
    def parse_query(self, params: dict[str, str]) -> Query:
        return self.parser.parse(params)

    def create(self, set_name: str, body: Any, *, parent: Parent | None = None) -> tuple[int, bool]:
        """Create (deep insert); (id, created). Observations go through the ingest path."""
        if isinstance(body, (bytes, str)):
            body = parse_json(body)
        if set_name == "Observations":
            ds_id = parent.id if parent is not None and parent.set_name == "Datastreams" else None
            if parent is not None and ds_id is None:
                raise InvalidEntity(f"Observations cannot be created under {parent.set_name}")
            if ds_id is not None and self.store.datastream_info(ds_id) is None:
                raise EntityNotFound(f"no Datastream {ds_id}")
            obs = self.observation_from(body, ds_id)
            res = self.ingest([obs])
            return res.ids[0], res.created[0]
        ent = normalise(set_name, body, limits=self.limits)
        new_id, created = self.store.create(ent, parent=parent)
        self._invalidate()
        self._announce(set_name, new_id)
        return new_id, created

    def update(self, set_name: str, entity_id: int, body: Any) -> None:
        if isinstance(body, (bytes, str)):
            body = parse_json(body)
        self.store.update(set_name, entity_id, normalise(set_name, body, partial=True, limits=self.limits))
        self._invalidate()
        self._announce(set_name, entity_id)

    def delete(self, set_name: str, entity_id: int) -> None:
        self.store.delete(set_name, entity_id)
        self._invalidate()
        if set_name in ("Datastreams", "Things", "Sensors", "ObservedProperties"):
            with self._ingest_lock:
                self._state = None
                self._latest = None

    def query(self, set_name: str, q: Query, *, parent: Parent | None = None) -> Page:
        return self.store.query(set_name, q, parent=parent)

    def get(self, set_name: str, entity_id: int, q: Query, *, parent: Parent | None = None) -> dict[str, Any]:
        return self.store.get(set_name, entity_id, q, parent=parent)

    def _invalidate(self) -> None:
        self._info.clear()
        self._foi.clear()

    def _announce(self, set_name: str, entity_id: int) -> None:
        if not self.hub.subscribers:
            return
        row = self.store.get(set_name, entity_id, Query())
        self.hub.publish({"type": "entity", "set": set_name, "id": entity_id, "row": row,
                          "json": render_entity(ENTITIES[set_name], row, self.base_url, Query())})

    # -- observations
    def info(self, datastream_id: int) -> tuple[DatastreamInfo, Thresholds | None]:
        now = time.monotonic()
        hit = self._info.get(datastream_id)
        if hit is None or hit.expires < now:
            info = self.store.datastream_info(datastream_id)
            if info is None:
                raise InvalidEntity(f"no Datastream {datastream_id}", field="Datastream")
            hit = _Cached(info, Thresholds.from_properties(info.properties), now + self._ttl)
            self._info[datastream_id] = hit
        return hit.info, hit.thresholds

    def observation_from(self, body: Any, datastream_id: int | None = None) -> ObservationIn:
        """A validated observation from a JSON body (and the Datastream of the topic or URL)."""
        if isinstance(body, (bytes, str)):
            body = parse_json(body)
        ent = normalise("Observations", body, limits=self.limits)
        ds_link = ent.links.get("Datastream")
        if ds_link:
            if not isinstance(ds_link[0], Ref):
                raise InvalidEntity("an Observation refers to an existing Datastream by @iot.id", field="Datastream")
            if datastream_id is not None and ds_link[0].id != datastream_id:
                raise InvalidEntity(f"the body names Datastream {ds_link[0].id} but the target is {datastream_id}",
                                    field="Datastream")
            datastream_id = ds_link[0].id
        if datastream_id is None:
            raise InvalidEntity("an Observation needs a Datastream", field="Datastream")
        info, _ = self.info(datastream_id)
        v = ent.values
        check_result(v["result"], v["result_kind"], info.observation_type, info.unit, v.get("parameters"),
                     datastream_id)
        foi = ent.links.get("FeatureOfInterest")
        foi_id: int | None = None
        if foi:
            foi_id = foi[0].id if isinstance(foi[0], Ref) else self.store.create(foi[0])[0]
        return ObservationIn(datastream_id, v["phenomenon_start"], v.get("phenomenon_end"), v["result"],
                             v["result_kind"], v.get("result_time"), v.get("result_quality"), v.get("valid_start"),
                             v.get("valid_end"), v.get("parameters"), foi_id)

    def observations_from_data_array(self, body: Any) -> list[ObservationIn]:
        """The dataArray extension (POST /CreateObservations): all rows valid, or an error naming the row."""
        if isinstance(body, (bytes, str)):
            body = parse_json(body)
        if not isinstance(body, list):
            raise InvalidEntity("CreateObservations expects a JSON array of dataArray blocks")
        out: list[ObservationIn] = []
        for b, block in enumerate(body):
            if not isinstance(block, dict) or not isinstance(block.get("components"), list) \
                    or not isinstance(block.get("dataArray"), list):
                raise InvalidEntity(f"block {b} needs Datastream, components and dataArray")
            ds = block.get("Datastream")
            if not isinstance(ds, dict) or "@iot.id" not in ds:
                raise InvalidEntity(f"block {b} needs a Datastream with @iot.id", field="Datastream")
            comps = block["components"]
            unknown = [c for c in comps if c not in DATA_ARRAY_COMPONENTS]
            if unknown or "result" not in comps:
                raise InvalidEntity(f"block {b}: components must include result and be among "
                                    f"{sorted(DATA_ARRAY_COMPONENTS)} (got {unknown or comps})", field="components")
            for r, row in enumerate(block["dataArray"]):
                if not isinstance(row, list) or len(row) != len(comps):
                    raise InvalidEntity(f"block {b} row {r} must be an array of {len(comps)} values")
                item: dict[str, Any] = {"Datastream": {"@iot.id": ds["@iot.id"]}}
                for c, value in zip(comps, row):
                    if c == "FeatureOfInterest/id":
                        item["FeatureOfInterest"] = {"@iot.id": value}
                    elif c != "id":
                        item[c] = value
                try:
                    out.append(self.observation_from(item))
                except InvalidEntity as exc:
                    raise InvalidEntity(f"block {b} row {r}: {exc.message}", field=exc.field) from None
        return out

    def ingest(self, items: list[ObservationIn]) -> IngestResult:
        """Store validated observations (idempotently) and evaluate alerts; announce after COMMIT."""
        if not items:
            return IngestResult([], [])
        for o in items:
            if o.foi_id is None:
                info, _ = self.info(o.datastream_id)
                foi = self._foi.get(info.thing_id)
                if foi is None:
                    foi = self._foi[info.thing_id] = self.store.default_feature(info.thing_id)
                o.foi_id = foi
        with self._ingest_lock:
            if self._state is None:
                self._state = self.store.alert_state()
            state = self._state
            thresholds = {ds: t for ds in {o.datastream_id for o in items}
                          if (t := self.info(ds)[1]) is not None}
            res = self.store.ingest(items, lambda readings: evaluate(readings, thresholds, state))
            self._state = res.state
            latest = self._update_latest(items, res)
        self._publish(items, res, latest)
        return res

    def _update_latest(self, items: list[ObservationIn], res: IngestResult) -> list[dict[str, Any]]:
        if self._latest is None:
            self._latest = {ds: self._latest_item(ds, row["id"], row["phenomenon_start"], row["phenomenon_end"],
                                                  decode_result(row["result"], row["result_kind"]))
                            for ds, row in self.store.latest().items()}
        changed: dict[int, dict[str, Any]] = {}
        for o, oid, created in zip(items, res.ids, res.created):
            cur = self._latest.get(o.datastream_id)
            if created and (cur is None or o.phenomenon_start >= cur["_start"]):
                item = self._latest_item(o.datastream_id, oid, o.phenomenon_start, o.phenomenon_end,
                                         decode_result(o.result, o.result_kind))
                self._latest[o.datastream_id] = changed[o.datastream_id] = item
        return [{k: v for k, v in item.items() if k != "_start"} for item in changed.values()]

    @staticmethod
    def _latest_item(ds: int, oid: int, start: str, end: str | None, result: Any) -> dict[str, Any]:
        return {"datastream": ds, "observation": oid, "phenomenonTime": render_interval(start, end),
                "result": result, "_start": start}

    def _publish(self, items: list[ObservationIn], res: IngestResult, latest: list[dict[str, Any]]) -> None:
        if not self.hub.subscribers:
            return
        created = [(o, oid) for o, oid, c in zip(items, res.ids, res.created) if c]
        if created:
            self.hub.publish({"type": "observations", "latest": latest,
                              "created": [(o.datastream_id, o.foi_id, self._observation_json(o, oid))
                                          for o, oid in created]})
        for e in res.events:
            self.hub.publish({"type": "event", "event": e.to_json()})

    def _observation_json(self, o: ObservationIn, oid: int) -> dict[str, Any]:
        link = f"{self.base_url}/Observations({oid})"
        return {"@iot.id": oid, "@iot.selfLink": link,
                "phenomenonTime": render_interval(o.phenomenon_start, o.phenomenon_end),
                "result": decode_result(o.result, o.result_kind), "resultTime": o.result_time,
                "resultQuality": None if o.result_quality is None else orjson.loads(o.result_quality),
                "validTime": render_interval(o.valid_start, o.valid_end),
                "parameters": None if o.parameters is None else orjson.loads(o.parameters),
                "Datastream@iot.navigationLink": f"{link}/Datastream",
                "FeatureOfInterest@iot.navigationLink": f"{link}/FeatureOfInterest"}

    # -- live state and alerts
    def latest(self) -> list[dict[str, Any]]:
        with self._ingest_lock:
            self._update_latest([], IngestResult([], []))
            return [{k: v for k, v in item.items() if k != "_start"} for item in self._latest.values()]

    def events(self, f: EventFilter) -> tuple[list[Event], int]:
        return self.store.events(f)

    def event(self, event_id: int) -> Event:
        return self.store.event(event_id)

    def acknowledge(self, event_id: int, who: str) -> Event:
        return self._set_state(event_id, "acknowledged", who)

    def close_event(self, event_id: int, who: str) -> Event:
        return self._set_state(event_id, "closed", who)

    def apply_forecast(self, run: ForecastRun) -> list[Event]:
        """Open, update or close forecast events from a model run (against each point's Datastream
        thresholds) and announce the changed ones like threshold events."""
        thresholds: dict[int, Thresholds] = {}
        for p in run.points:
            try:
                t = self.info(p.datastream_id)[1]
            except InvalidEntity:            # the Datastream was deleted since the run read it
                continue
            if t is not None:
                thresholds[p.datastream_id] = t
        events = self.store.apply_forecast(run, lambda active: evaluate_forecast(run, thresholds, active),
                                           now_text())
        for e in events:
            self.hub.publish({"type": "event", "event": e.to_json()})
        return events

    def _set_state(self, event_id: int, state: str, who: str) -> Event:
        event = self.store.set_event_state(event_id, state, who, now_text())
        self.hub.publish({"type": "event", "event": event.to_json()})
        return event


def as_new_entity(set_name: str, body: dict[str, Any], limits: Limits = Limits()) -> NewEntity:
    """Shortcut for generators: a validated entity tree from a body."""
    return normalise(set_name, body, limits=limits)
