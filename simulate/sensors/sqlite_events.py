"""Alert events in the SQLite store: recording transitions, queries and the lifecycle.

Forecast events share the `events` table (kinds "forecast-warning", "forecast-alarm"); what only they
have lives beside it, in tables made on the first forecast (an older database needs no migration):

    forecast_runs     the runs applied (a run is applied once; one older than the latest changes nothing)
    forecast_active   (datastream, kind) -> the forecast event the latest runs keep up
    forecast_events   per forecast event, the latest run's details (JSON), shown as Event.forecast
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson

from simulate.sensors.alerts import (FORECAST_KINDS, AlertState, Event, EventFilter, ForecastRun,
                                     ForecastTransition, Transition)
from simulate.sensors.errors import EventNotFound, InvalidTransition
from simulate.sensors.model import TWIN_FEATURE, TWIN_LAYER, parse_time

if TYPE_CHECKING:
    from simulate.sensors.sqlite import SqliteSensorStore
    from simulate.sensors.store import EvaluateForecast

_COLS = ("id, kind, state, datastream_id, thing_id, opened_at, threshold, value, peak, peak_at, closed_at, "
         "closed_by, acknowledged_at, acknowledged_by, lon, lat, twin_layer, twin_feature, message")

# state -> states an operator may move it to
LIFECYCLE = {"open": ("acknowledged", "closed"), "acknowledged": ("closed",), "closed": ()}


def load_state(con: sqlite3.Connection) -> AlertState:
    active = {(ds, kind) for ds, kind in con.execute("SELECT datastream_id, kind FROM alert_active")}
    last = dict(con.execute("SELECT datastream_id, time FROM alert_last").fetchall())
    return AlertState(active, last)


def apply(cur: sqlite3.Cursor, transitions: list[Transition], state: AlertState, touched: set[int]) -> list[int]:
    """Record transitions (inside the caller's transaction); the ids of events changed."""
    changed: list[int] = []
    for t in transitions:
        if t.action == "open":
            event_id = _open(cur, t)
            cur.execute("INSERT OR REPLACE INTO alert_active(datastream_id, kind, event_id) VALUES (?, ?, ?)",
                        (t.datastream_id, t.kind, event_id))
            changed.append(event_id)
            continue
        row = cur.execute("SELECT event_id FROM alert_active WHERE datastream_id = ? AND kind = ?",
                          (t.datastream_id, t.kind)).fetchone()
        if row is None:
            continue
        if t.action == "close":
            cur.execute("DELETE FROM alert_active WHERE datastream_id = ? AND kind = ?", (t.datastream_id, t.kind))
            n = cur.execute("UPDATE events SET state = 'closed', closed_at = ?, closed_by = 'system' "
                            "WHERE id = ? AND state != 'closed'", (t.time, row[0])).rowcount
        else:
            cmp = ">" if t.direction == "above" else "<"
            n = cur.execute(f"UPDATE events SET peak = ?, peak_at = ? WHERE id = ? AND ? {cmp} peak",
                            (t.value, t.time, row[0], t.value)).rowcount
        if n:
            changed.append(row[0])
    for ds in touched:
        if ds in state.last_time:
            cur.execute("INSERT INTO alert_last(datastream_id, time) VALUES (?, ?) ON CONFLICT(datastream_id) "
                        "DO UPDATE SET time = excluded.time WHERE excluded.time > alert_last.time",
                        (ds, state.last_time[ds]))
    return list(dict.fromkeys(changed))


def _open(cur: sqlite3.Cursor, t: Transition, message: str | None = None) -> int:
    ds = cur.execute("SELECT d.name, d.unit, d.thing_id, th.properties FROM datastreams d "
                     "JOIN things th ON th.id = d.thing_id WHERE d.id = ?", (t.datastream_id,)).fetchone()
    name, unit, thing_id, props = ds
    props = orjson.loads(props) if props else {}
    symbol = (orjson.loads(unit) or {}).get("symbol", "")
    loc = cur.execute("SELECT (l.minx + l.maxx) / 2, (l.miny + l.maxy) / 2 FROM locations l "
                      "JOIN thing_locations tl ON tl.location_id = l.id WHERE tl.thing_id = ? "
                      "ORDER BY l.id DESC LIMIT 1", (thing_id,)).fetchone() or (None, None)
    sign = ">=" if t.direction == "above" else "<="
    message = message or f"{name}: {t.kind} {t.value:g} {symbol} {sign} {t.threshold:g} {symbol}".replace("  ", " ")
    feature = props.get(TWIN_FEATURE)
    return cur.execute(
        "INSERT INTO events(kind, state, datastream_id, thing_id, opened_at, threshold, value, peak, peak_at, "
        "lon, lat, twin_layer, twin_feature, message) VALUES (?, 'open', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "RETURNING id",
        (t.kind, t.datastream_id, thing_id, t.time, t.threshold, t.value, t.value, t.time, loc[0], loc[1],
         props.get(TWIN_LAYER), None if feature is None else str(feature), message)).fetchone()[0]


def _event(row: tuple[Any, ...]) -> Event:
    return Event(*row)


def _events(con: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> list[Event]:
    """Events of rows, forecast events with their details (whose table exists once one was made)."""
    events = [_event(r) for r in rows]
    ids = [e.id for e in events if e.kind in FORECAST_KINDS]
    if not ids:
        return events
    marks = ",".join("?" * len(ids))
    details = {i: orjson.loads(d) for i, d in
               con.execute(f"SELECT event_id, details FROM forecast_events WHERE event_id IN ({marks})", ids)}
    return [replace(e, forecast=details.get(e.id)) if e.kind in FORECAST_KINDS else e for e in events]


def get(con: sqlite3.Connection, event_id: int) -> Event:
    row = con.execute(f"SELECT {_COLS} FROM events WHERE id = ?", (event_id,)).fetchone()
    if row is None:
        raise EventNotFound(f"no event {event_id}")
    return _events(con, [row])[0]


def get_many(con: sqlite3.Connection, ids: list[int]) -> list[Event]:
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    return _events(con, con.execute(f"SELECT {_COLS} FROM events WHERE id IN ({marks}) ORDER BY id", ids).fetchall())


def query(con: sqlite3.Connection, f: EventFilter) -> tuple[list[Event], int]:
    where, params = [], []
    if f.state:
        where.append(f"state IN ({','.join('?' * len(f.state))})")
        params += f.state
    if f.kind:
        where.append(f"kind IN ({','.join('?' * len(f.kind))})")
        params += f.kind
    if f.datastream_id is not None:
        where.append("datastream_id = ?")
        params.append(f.datastream_id)
    if f.thing_id is not None:
        where.append("thing_id = ?")
        params.append(f.thing_id)
    if f.bbox is not None:
        where.append("lon BETWEEN ? AND ? AND lat BETWEEN ? AND ?")
        params += [f.bbox[0], f.bbox[2], f.bbox[1], f.bbox[3]]
    if f.since is not None:
        where.append("(closed_at IS NULL OR closed_at >= ?)")
        params.append(f.since)
    if f.until is not None:
        where.append("opened_at <= ?")
        params.append(f.until)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    total = con.execute(f"SELECT COUNT(*) FROM events {clause}", params).fetchone()[0]
    rows = con.execute(f"SELECT {_COLS} FROM events {clause} ORDER BY opened_at DESC, id DESC LIMIT ? OFFSET ?",
                       [*params, f.limit, f.offset]).fetchall()
    return _events(con, rows), total


def set_state(cur: sqlite3.Cursor, event_id: int, state: str, who: str, when: str) -> None:
    row = cur.execute("SELECT state FROM events WHERE id = ?", (event_id,)).fetchone()
    if row is None:
        raise EventNotFound(f"no event {event_id}")
    if state not in LIFECYCLE[row[0]]:
        raise InvalidTransition(f"event {event_id} is {row[0]}; it cannot become {state}")
    if state == "acknowledged":
        cur.execute("UPDATE events SET state = ?, acknowledged_at = ?, acknowledged_by = ? WHERE id = ?",
                    (state, when, who, event_id))
    else:
        cur.execute("UPDATE events SET state = ?, closed_at = ?, closed_by = ? WHERE id = ?",
                    (state, when, who, event_id))


# -- forecast events ---------------------------------------------------------------------------------
FORECAST_DDL = """
CREATE TABLE IF NOT EXISTS forecast_runs(
  run_id TEXT PRIMARY KEY, issued_at TEXT NOT NULL, horizon_s REAL NOT NULL, applied_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS forecast_active(
  datastream_id INTEGER NOT NULL REFERENCES datastreams(id) ON DELETE CASCADE, kind TEXT NOT NULL,
  event_id INTEGER NOT NULL, PRIMARY KEY(datastream_id, kind));
CREATE TABLE IF NOT EXISTS forecast_events(
  event_id INTEGER PRIMARY KEY REFERENCES events(id) ON DELETE CASCADE, details TEXT NOT NULL);
"""

def apply_forecast_in(store: "SqliteSensorStore", run: ForecastRun, evaluate: EvaluateForecast,
                      now: str) -> list[Event]:
    """Record a run's forecast events in one write transaction of the SQLite store; the events
    opened, updated or closed. A run already applied, or issued before the latest one, changes nothing."""
    with store._write() as cur:      # the store's single writer (this module is its events half)
        ids = apply_forecast(cur, run, evaluate, now)
        return get_many(cur.connection, ids)


def apply_forecast(cur: sqlite3.Cursor, run: ForecastRun, evaluate: EvaluateForecast, now: str) -> list[int]:
    for statement in FORECAST_DDL.strip().split(";"):
        if statement.strip():
            cur.execute(statement)
    if cur.execute("SELECT 1 FROM forecast_runs WHERE run_id = ?", (run.run_id,)).fetchone():
        return []
    latest = cur.execute("SELECT MAX(issued_at) FROM forecast_runs").fetchone()[0]
    cur.execute("INSERT INTO forecast_runs(run_id, issued_at, horizon_s, applied_at) VALUES (?, ?, ?, ?)",
                (run.run_id, run.issued_at, run.horizon_s, now))
    if latest is not None and run.issued_at < latest:
        return []
    active = {(ds, kind): ev
              for ds, kind, ev in cur.execute("SELECT datastream_id, kind, event_id FROM forecast_active")}
    changed: list[int] = []
    for t in evaluate(set(active)):
        details = _details(run, t)
        if t.action == "open":
            symbol, name = _unit_and_name(cur, t.datastream_id)
            opening = Transition(t.datastream_id, t.kind, "open", run.issued_at, t.point.predicted, t.threshold, 0,
                                 t.direction)
            event_id = _open(cur, opening, _forecast_message(name, symbol, t, run))
            cur.execute("UPDATE events SET peak_at = ? WHERE id = ?", (t.point.peak_at or run.issued_at, event_id))
            cur.execute("INSERT OR REPLACE INTO forecast_active(datastream_id, kind, event_id) VALUES (?, ?, ?)",
                        (t.datastream_id, t.kind, event_id))
            cur.execute("INSERT INTO forecast_events(event_id, details) VALUES (?, ?)",
                        (event_id, orjson.dumps({**details, "runs": 1}).decode()))
            changed.append(event_id)
            continue
        event_id = active[(t.datastream_id, t.kind)]
        if t.action == "close":
            cur.execute("DELETE FROM forecast_active WHERE datastream_id = ? AND kind = ?", (t.datastream_id, t.kind))
            n = cur.execute("UPDATE events SET state = 'closed', closed_at = ?, closed_by = 'nowcast' "
                            "WHERE id = ? AND state != 'closed'", (run.issued_at, event_id)).rowcount
        else:
            # an event an operator closed stays closed (and quiet) while the runs keep predicting it
            symbol, name = _unit_and_name(cur, t.datastream_id)
            cmp = ">" if t.direction == "above" else "<"
            n = cur.execute("UPDATE events SET message = ? WHERE id = ? AND state != 'closed'",
                            (_forecast_message(name, symbol, t, run), event_id)).rowcount
            cur.execute(f"UPDATE events SET peak = ?, peak_at = ? WHERE id = ? AND ? {cmp} peak",
                        (t.point.predicted, t.point.peak_at or run.issued_at, event_id, t.point.predicted))
        row = cur.execute("SELECT details FROM forecast_events WHERE event_id = ?", (event_id,)).fetchone()
        runs = (orjson.loads(row[0]).get("runs", 0) if row else 0) + 1
        cur.execute("INSERT OR REPLACE INTO forecast_events(event_id, details) VALUES (?, ?)",
                    (event_id, orjson.dumps({**details, "runs": runs}).decode()))
        if n:
            changed.append(event_id)
    return list(dict.fromkeys(changed))


def _details(run: ForecastRun, t: ForecastTransition) -> dict[str, Any]:
    level = t.kind.removeprefix("forecast-")
    return {"job": run.run_id, "issued_at": run.issued_at, "horizon_s": run.horizon_s,
            "predicted": t.point.predicted, "expected_at": t.point.reaches.get(level),
            "peak_at": t.point.peak_at}


def _unit_and_name(cur: sqlite3.Cursor, datastream_id: int) -> tuple[str, str]:
    name, unit = cur.execute("SELECT name, unit FROM datastreams WHERE id = ?", (datastream_id,)).fetchone()
    return (orjson.loads(unit) or {}).get("symbol", ""), name


def _forecast_message(name: str, symbol: str, t: ForecastTransition, run: ForecastRun) -> str:
    level = t.kind.removeprefix("forecast-")
    sign = ">=" if t.direction == "above" else "<="
    when = t.point.reaches.get(level)
    by = f" by {parse_time(when, 'expected_at').strftime('%H:%M')}Z" if when else ""
    hours = f"{run.horizon_s / 3600:g} h"
    return (f"{name}: forecast {level}, {t.point.predicted:.2f} {symbol} expected{by} "
            f"({sign} {t.threshold:g} {symbol}; nowcast {hours} ahead)").replace("  ", " ")
