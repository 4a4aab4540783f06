"""The embedded sensor store: SQLite in WAL mode at DIR/sensors/sensors.sqlite.

One writer connection (behind a lock; every write is one `BEGIN IMMEDIATE ... COMMIT`) and one
reader connection per thread; WAL lets readers run while the writer commits. The folder lives in
the twin folder, and `FolderWriter` carries `sensors/` over when the twin is rebuilt.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import orjson

from simulate.sensors import sqlite_events as ev
from simulate.sensors.alerts import AlertState, Event, EventFilter, Reading
from simulate.sensors.entities import NewEntity, Ref, check_result
from simulate.sensors.errors import EntityNotFound, InvalidEntity, InvalidQuery
from simulate.sensors.model import ENTITIES, EntityType, Nav, now_text
from simulate.sensors.odata import Compiler, Query, compile_order
from simulate.sensors.sqlite_schema import connect, create_schema
from simulate.sensors.store import (DatastreamInfo, Evaluate, IngestResult, ObservationIn, Page, Parent,
                                    SensorStore)

# to-one links an entity cannot be created without
REQUIRED_LINKS = {"Datastreams": ("thing_id", "sensor_id", "observed_property_id"),
                  "Observations": ("datastream_id",), "HistoricalLocations": ("thing_id",)}

_OBS_COLS = ("phenomenon_start", "phenomenon_end", "result", "result_kind", "result_time", "result_quality",
             "valid_start", "valid_end", "parameters", "datastream_id", "foi_id")
_OBS_INSERT = (f"INSERT INTO observations({', '.join(_OBS_COLS)}) VALUES ({', '.join('?' * len(_OBS_COLS))}) "
               "ON CONFLICT(datastream_id, phenomenon_start) DO NOTHING RETURNING id")


class SqliteSensorStore(SensorStore):
    def __init__(self, path: str | Path, *, default_top: int = 100, max_top: int = 10_000,
                 synchronous: str = "FULL"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.default_top = default_top
        self.max_top = max_top
        self._sync = synchronous
        self._lock = threading.Lock()
        self._writer = connect(str(self.path), synchronous=synchronous)
        create_schema(self._writer)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    @classmethod
    def for_twin(cls, twin_dir: str | Path, **kw: Any) -> "SqliteSensorStore":
        return cls(Path(twin_dir) / "sensors" / "sensors.sqlite", **kw)

    # -- connections
    def _reader(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = connect(str(self.path), synchronous=self._sync)
            self._local.con = con
            with self._readers_lock:
                self._readers.append(con)
        return con

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cur = self._writer.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")

    def close(self) -> None:
        with self._readers_lock:
            for con in self._readers:
                con.close()
            self._readers.clear()
        with self._lock:
            self._writer.close()

    # -- create
    def create(self, entity: NewEntity, *, parent: Parent | None = None) -> tuple[int, bool]:
        with self._write() as cur:
            extra: dict[str, Any] = {}
            link: tuple[tuple[str, str, str], int] | None = None
            if parent is not None:
                nav = self._parent_nav(parent, entity.set_name)
                self._require(cur, parent.set_name, parent.id)
                if not nav.many:
                    raise InvalidEntity(f"cannot create through the to-one navigation {parent.nav}")
                if nav.fk:
                    extra[nav.fk] = parent.id
                else:
                    link = (nav.link, parent.id)
            new_id, created = self._insert(cur, entity, extra)
            if link is not None:
                self._link(cur, link[0], link[1], new_id)
                if link[0][0] == "thing_locations":
                    thing = link[1] if link[0][1] == "thing_id" else new_id
                    self._history(cur, thing)
            return new_id, created

    def _insert(self, cur: sqlite3.Cursor, ent: NewEntity, extra: dict[str, Any]) -> tuple[int, bool]:
        et = ENTITIES[ent.set_name]
        cols = {**ent.values, **extra}
        for nav_name, items in ent.links.items():
            nav = et.nav(nav_name)
            if not nav.many:
                cols[nav.fk] = self._resolve(cur, items[0])
        missing = [c for c in REQUIRED_LINKS.get(ent.set_name, ()) if cols.get(c) is None]
        if missing:
            navs = [n.name for n in et.navs if n.fk in missing]
            raise InvalidEntity(f"a {et.singular} needs a {' and a '.join(navs)}", field=navs[0])
        if ent.set_name == "Observations":
            return self._insert_observation(cur, cols)
        names = list(cols)
        new_id = cur.execute(f"INSERT INTO {et.table}({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                             [cols[n] for n in names]).lastrowid
        for nav_name, items in ent.links.items():
            nav = et.nav(nav_name)
            if nav.many:
                for item in items:
                    self._attach(cur, et, nav, new_id, item)
        if ent.set_name == "Things" and "Locations" in ent.links:
            self._history(cur, new_id)
        return new_id, True

    def _insert_observation(self, cur: sqlite3.Cursor, cols: dict[str, Any]) -> tuple[int, bool]:
        ds = cur.execute("SELECT observation_type, unit, thing_id FROM datastreams WHERE id = ?",
                         (cols["datastream_id"],)).fetchone()
        if ds is None:
            raise InvalidEntity(f"no Datastream {cols['datastream_id']}", field="Datastream")
        check_result(cols["result"], cols["result_kind"], ds[0], orjson.loads(ds[1]), cols.get("parameters"),
                     cols["datastream_id"])
        if cols.get("foi_id") is None:
            cols["foi_id"] = self._default_feature(cur, ds[2])
        row = cur.execute(_OBS_INSERT, [cols.get(c) for c in _OBS_COLS]).fetchone()
        if row is not None:
            return row[0], True
        return self._existing_observation(cur, cols["datastream_id"], cols["phenomenon_start"]), False

    @staticmethod
    def _existing_observation(cur: sqlite3.Cursor, ds: int, start: str) -> int:
        return cur.execute("SELECT id FROM observations WHERE datastream_id = ? AND phenomenon_start = ?",
                           (ds, start)).fetchone()[0]

    def _attach(self, cur: sqlite3.Cursor, et: EntityType, nav: Nav, owner: int, item: NewEntity | Ref) -> None:
        if nav.fk:
            if isinstance(item, Ref):
                target = ENTITIES[nav.target]
                if cur.execute(f"UPDATE {target.table} SET {nav.fk} = ? WHERE id = ?", (owner, item.id)).rowcount == 0:
                    raise InvalidEntity(f"no {target.singular} {item.id}", field=nav.name)
            else:
                self._insert(cur, item, {nav.fk: owner})
        else:
            self._link(cur, nav.link, owner, self._resolve(cur, item))

    def _resolve(self, cur: sqlite3.Cursor, item: NewEntity | Ref) -> int:
        if isinstance(item, Ref):
            target = ENTITIES[item.set_name]
            if cur.execute(f"SELECT 1 FROM {target.table} WHERE id = ?", (item.id,)).fetchone() is None:
                raise InvalidEntity(f"no {target.singular} {item.id}", field=target.singular)
            return item.id
        return self._insert(cur, item, {})[0]

    @staticmethod
    def _link(cur: sqlite3.Cursor, link: tuple[str, str, str], source: int, target: int) -> None:
        table, src, dst = link
        cur.execute(f"INSERT OR IGNORE INTO {table}({src}, {dst}) VALUES (?, ?)", (source, target))

    @staticmethod
    def _history(cur: sqlite3.Cursor, thing_id: int) -> None:
        """A HistoricalLocation recording the Thing's current Locations."""
        hist = cur.execute("INSERT INTO historical_locations(time, thing_id) VALUES (?, ?)",
                           (now_text(), thing_id)).lastrowid
        cur.execute("INSERT INTO hist_locations(hist_id, location_id) SELECT ?, location_id FROM thing_locations "
                    "WHERE thing_id = ?", (hist, thing_id))

    def _require(self, con: sqlite3.Connection | sqlite3.Cursor, set_name: str, entity_id: int) -> None:
        et = ENTITIES[set_name]
        if con.execute(f"SELECT 1 FROM {et.table} WHERE id = ?", (entity_id,)).fetchone() is None:
            raise EntityNotFound(f"no {et.singular} {entity_id}")

    @staticmethod
    def _parent_nav(parent: Parent, target: str | None = None) -> Nav:
        pet = ENTITIES.get(parent.set_name)
        nav = pet.nav(parent.nav) if pet else None
        if nav is None:
            raise EntityNotFound(f"{parent.set_name} has no navigation property {parent.nav}")
        if target is not None and nav.target != target:
            raise InvalidEntity(f"{parent.set_name}/{parent.nav} holds {nav.target}, not {target}")
        return nav

    def _default_feature(self, cur: sqlite3.Cursor, thing_id: int) -> int:
        loc = cur.execute("SELECT l.id, l.name, l.description, l.encoding_type, l.location, l.minx, l.miny, l.maxx, "
                          "l.maxy FROM locations l JOIN thing_locations tl ON tl.location_id = l.id "
                          "WHERE tl.thing_id = ? ORDER BY l.id DESC LIMIT 1", (thing_id,)).fetchone()
        if loc is None:
            raise InvalidEntity(f"the Observation has no FeatureOfInterest and Thing {thing_id} has no Location "
                                "to make one from", field="FeatureOfInterest")
        row = cur.execute("SELECT id FROM features WHERE location_id = ?", (loc[0],)).fetchone()
        if row is not None:
            return row[0]
        return cur.execute("INSERT INTO features(name, description, encoding_type, feature, minx, miny, maxx, maxy, "
                           "location_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (*loc[1:], loc[0])).lastrowid

    def default_feature(self, thing_id: int) -> int:
        with self._write() as cur:
            return self._default_feature(cur, thing_id)

    # -- update / delete
    def update(self, set_name: str, entity_id: int, patch: NewEntity) -> None:
        et = ENTITIES[set_name]
        with self._write() as cur:
            self._require(cur, set_name, entity_id)
            cols = dict(patch.values)
            for nav_name, items in patch.links.items():
                nav = et.nav(nav_name)
                if not nav.many:
                    cols[nav.fk] = self._resolve(cur, items[0])
            if set_name == "Observations" and ("result" in cols or "parameters" in cols):
                cur_row = cur.execute("SELECT result, result_kind, parameters, datastream_id FROM observations "
                                      "WHERE id = ?", (entity_id,)).fetchone()
                merged = {"result": cur_row[0], "result_kind": cur_row[1], "parameters": cur_row[2],
                          "datastream_id": cur_row[3], **cols}
                ds = cur.execute("SELECT observation_type, unit FROM datastreams WHERE id = ?",
                                 (merged["datastream_id"],)).fetchone()
                check_result(merged["result"], merged["result_kind"], ds[0], orjson.loads(ds[1]),
                             merged["parameters"], merged["datastream_id"])
            if cols:
                try:
                    cur.execute(f"UPDATE {et.table} SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?",
                                [*cols.values(), entity_id])
                except sqlite3.IntegrityError as exc:
                    raise InvalidEntity(f"the change conflicts with stored data ({exc})") from None
            for nav_name, items in patch.links.items():
                nav = et.nav(nav_name)
                if not nav.many:
                    continue
                if nav.link:
                    cur.execute(f"DELETE FROM {nav.link[0]} WHERE {nav.link[1]} = ?", (entity_id,))
                for item in items:
                    self._attach(cur, et, nav, entity_id, item)
                if set_name == "Things" and nav_name == "Locations":
                    self._history(cur, entity_id)

    def delete(self, set_name: str, entity_id: int) -> None:
        et = ENTITIES[set_name]
        with self._write() as cur:
            if cur.execute(f"DELETE FROM {et.table} WHERE id = ?", (entity_id,)).rowcount == 0:
                raise EntityNotFound(f"no {et.singular} {entity_id}")

    # -- reads
    def query(self, set_name: str, q: Query, *, parent: Parent | None = None) -> Page:
        con = self._reader()
        if parent is not None:
            self._require(con, parent.set_name, parent.id)
        return self._query(con, ENTITIES[set_name], q, parent)

    def get(self, set_name: str, entity_id: int, q: Query, *, parent: Parent | None = None) -> dict[str, Any]:
        con = self._reader()
        et = ENTITIES[set_name]
        if parent is not None:
            nav = self._parent_nav(parent, set_name)
            self._require(con, parent.set_name, parent.id)
            if nav.many:
                row = self._select_one(con, et, f"t0.id = ? AND {self._parent_clause(nav, parent)}",
                                       [entity_id, parent.id])
            else:
                row = self._select_one(con, et, f"t0.id = (SELECT {nav.fk} FROM {ENTITIES[parent.set_name].table} "
                                       "WHERE id = ?)", [parent.id])
        else:
            row = self._select_one(con, et, "t0.id = ?", [entity_id])
        if row is None:
            raise EntityNotFound(f"no {et.singular} {entity_id}" if parent is None or
                                 self._parent_nav(parent).many else f"{parent.set_name}({parent.id}) has no {parent.nav}")
        self._expand(con, et, [row], q)
        return row

    def _select_one(self, con: sqlite3.Connection, et: EntityType, where: str, params: list) -> dict | None:
        cur = con.execute(f"SELECT t0.* FROM {et.table} AS t0 WHERE {where}", params)
        row = cur.fetchone()
        if row is None:
            return None
        out = dict(zip([d[0] for d in cur.description], row))
        self._derived(con, et, [out])
        return out

    @staticmethod
    def _parent_clause(nav: Nav, parent: Parent) -> str:
        if nav.fk:
            return f"t0.{nav.fk} = ?"
        table, src, dst = nav.link
        return f"t0.id IN (SELECT {dst} FROM {table} WHERE {src} = ?)"

    def _query(self, con: sqlite3.Connection, et: EntityType, q: Query, parent: Parent | None) -> Page:
        params: list[Any] = []
        comp = Compiler(params)
        where: list[str] = []
        if parent is not None:
            nav = self._parent_nav(parent, et.set_name)
            if not nav.many:
                raise InvalidQuery(f"{parent.set_name}/{parent.nav} is a single entity, not a collection")
            where.append(self._parent_clause(nav, parent))
            params.append(parent.id)
        if q.filter is not None:
            where.append(comp.expr(q.filter, et, "t0"))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        n_where = len(params)
        order = compile_order(q.orderby, et, "t0", comp)
        top = min(self.default_top if q.top is None else q.top, self.max_top)
        sql = f"SELECT t0.* FROM {et.table} AS t0 {clause} ORDER BY {order} LIMIT ? OFFSET ?"
        try:
            cur = con.execute(sql, [*params, top + 1, q.skip])
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r)) for r in cur.fetchall()]
            total = (con.execute(f"SELECT COUNT(*) FROM {et.table} AS t0 {clause}", params[:n_where]).fetchone()[0]
                     if q.count else None)
        except sqlite3.OperationalError as exc:
            raise InvalidQuery(f"the query cannot be evaluated: {exc}") from None
        more = len(rows) > top
        rows = rows[:top]
        self._derived(con, et, rows)
        self._expand(con, et, rows, q)
        return Page(rows, total, q.skip + top if more else None)

    def _derived(self, con: sqlite3.Connection, et: EntityType, rows: list[dict]) -> None:
        if et.set_name != "Datastreams":
            return
        for row in rows:
            lo, hi = con.execute("SELECT MIN(phenomenon_start), MAX(phenomenon_start) FROM observations "
                                 "WHERE datastream_id = ?", (row["id"],)).fetchone()
            row["phenomenon_time"] = None if lo is None else (lo if lo == hi else f"{lo}/{hi}")
            row["result_time"] = None
            row["observed_area"] = None

    def _expand(self, con: sqlite3.Connection, et: EntityType, rows: list[dict], q: Query) -> None:
        for e in q.expand:
            nav = et.nav(e.nav)
            if nav is None:
                raise InvalidQuery(f"{et.singular} has no navigation property '{e.nav}' to expand", field="$expand")
            target = ENTITIES[nav.target]
            for row in rows:
                if nav.many:
                    value: Any = self._query(con, target, e.query, Parent(et.set_name, row["id"], nav.name))
                else:
                    value = self._select_one(con, target, "t0.id = ?", [row[nav.fk]])
                    if value is not None:
                        self._expand(con, target, [value], e.query)
                row.setdefault("@expand", {})[nav.name] = value

    # -- ingest fast path
    def datastream_info(self, datastream_id: int) -> DatastreamInfo | None:
        row = self._reader().execute("SELECT id, observation_type, unit, properties, thing_id FROM datastreams "
                                     "WHERE id = ?", (datastream_id,)).fetchone()
        if row is None:
            return None
        return DatastreamInfo(row[0], row[1], orjson.loads(row[2]), orjson.loads(row[3]) if row[3] else {}, row[4])

    def ingest(self, observations: list[ObservationIn], evaluate: Evaluate) -> IngestResult:
        ids: list[int] = []
        created: list[bool] = []
        readings: list[Reading] = []
        with self._write() as cur:
            for o in observations:
                if o.foi_id is None:
                    thing = cur.execute("SELECT thing_id FROM datastreams WHERE id = ?", (o.datastream_id,)).fetchone()
                    if thing is None:
                        raise InvalidEntity(f"no Datastream {o.datastream_id}", field="Datastream")
                    o.foi_id = self._default_feature(cur, thing[0])
                try:
                    row = cur.execute(_OBS_INSERT, (o.phenomenon_start, o.phenomenon_end, o.result, o.result_kind,
                                                    o.result_time, o.result_quality, o.valid_start, o.valid_end,
                                                    o.parameters, o.datastream_id, o.foi_id)).fetchone()
                except sqlite3.IntegrityError:
                    raise InvalidEntity(f"no Datastream {o.datastream_id} or FeatureOfInterest {o.foi_id}",
                                        field="Datastream") from None
                if row is None:
                    ids.append(self._existing_observation(cur, o.datastream_id, o.phenomenon_start))
                    created.append(False)
                    continue
                ids.append(row[0])
                created.append(True)
                if o.result_kind == "n" or o.result_kind == "b":
                    readings.append(Reading(o.datastream_id, row[0], o.phenomenon_start, float(o.result)))
            transitions, state = evaluate(readings)
            changed = ev.apply(cur, transitions, state, {r.datastream_id for r in readings})
            events = ev.get_many(cur.connection, changed) if changed else []
        return IngestResult(ids, created, events, state)

    def latest(self, datastream_ids: list[int] | None = None) -> dict[int, dict[str, Any]]:
        con = self._reader()
        ids = datastream_ids if datastream_ids is not None else [r[0] for r in con.execute("SELECT id FROM datastreams")]
        out: dict[int, dict[str, Any]] = {}
        for ds in ids:
            cur = con.execute("SELECT * FROM observations WHERE datastream_id = ? ORDER BY phenomenon_start DESC "
                              "LIMIT 1", (ds,))
            row = cur.fetchone()
            if row is not None:
                out[ds] = dict(zip([d[0] for d in cur.description], row))
        return out

    def count_observations(self, datastream_id: int | None = None) -> int:
        con = self._reader()
        if datastream_id is None:
            return con.execute("SELECT COUNT(*) FROM observations").fetchone()[0]
        return con.execute("SELECT COUNT(*) FROM observations WHERE datastream_id = ?", (datastream_id,)).fetchone()[0]

    # -- alerts
    def alert_state(self) -> AlertState:
        return ev.load_state(self._reader())

    def events(self, f: EventFilter) -> tuple[list[Event], int]:
        return ev.query(self._reader(), f)

    def event(self, event_id: int) -> Event:
        return ev.get(self._reader(), event_id)

    def set_event_state(self, event_id: int, state: str, who: str, when: str) -> Event:
        with self._write() as cur:
            ev.set_state(cur, event_id, state, who, when)
        return self.event(event_id)
