"""Alert events in the SQLite store: recording transitions, queries and the lifecycle."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from simulate.sensors.alerts import AlertState, Event, EventFilter, Transition
from simulate.sensors.errors import EventNotFound, InvalidTransition
from simulate.sensors.model import TWIN_FEATURE, TWIN_LAYER

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


def _open(cur: sqlite3.Cursor, t: Transition) -> int:
    ds = cur.execute("SELECT d.name, d.unit, d.thing_id, th.properties FROM datastreams d "
                     "JOIN things th ON th.id = d.thing_id WHERE d.id = ?", (t.datastream_id,)).fetchone()
    name, unit, thing_id, props = ds
    props = orjson.loads(props) if props else {}
    symbol = (orjson.loads(unit) or {}).get("symbol", "")
    loc = cur.execute("SELECT (l.minx + l.maxx) / 2, (l.miny + l.maxy) / 2 FROM locations l "
                      "JOIN thing_locations tl ON tl.location_id = l.id WHERE tl.thing_id = ? "
                      "ORDER BY l.id DESC LIMIT 1", (thing_id,)).fetchone() or (None, None)
    sign = ">=" if t.direction == "above" else "<="
    message = f"{name}: {t.kind} {t.value:g} {symbol} {sign} {t.threshold:g} {symbol}".replace("  ", " ")
    feature = props.get(TWIN_FEATURE)
    return cur.execute(
        "INSERT INTO events(kind, state, datastream_id, thing_id, opened_at, threshold, value, peak, peak_at, "
        "lon, lat, twin_layer, twin_feature, message) VALUES (?, 'open', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "RETURNING id",
        (t.kind, t.datastream_id, thing_id, t.time, t.threshold, t.value, t.value, t.time, loc[0], loc[1],
         props.get(TWIN_LAYER), None if feature is None else str(feature), message)).fetchone()[0]


def _event(row: tuple[Any, ...]) -> Event:
    return Event(*row)


def get(con: sqlite3.Connection, event_id: int) -> Event:
    row = con.execute(f"SELECT {_COLS} FROM events WHERE id = ?", (event_id,)).fetchone()
    if row is None:
        raise EventNotFound(f"no event {event_id}")
    return _event(row)


def get_many(con: sqlite3.Connection, ids: list[int]) -> list[Event]:
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    return [_event(r) for r in con.execute(f"SELECT {_COLS} FROM events WHERE id IN ({marks}) ORDER BY id", ids)]


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
    return [_event(r) for r in rows], total


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
