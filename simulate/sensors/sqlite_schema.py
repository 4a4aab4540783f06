"""Schema and SQL functions of the embedded SQLite sensor store."""

from __future__ import annotations

import sqlite3
from functools import lru_cache

import orjson
import shapely
import shapely.geometry
import shapely.wkt
from shapely.geometry.base import BaseGeometry

SCHEMA_VERSION = 1

DDL = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS things(
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL, properties TEXT);
CREATE TABLE IF NOT EXISTS locations(
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL, encoding_type TEXT NOT NULL,
  location TEXT NOT NULL, minx REAL, miny REAL, maxx REAL, maxy REAL, properties TEXT);
CREATE TABLE IF NOT EXISTS thing_locations(
  thing_id INTEGER NOT NULL REFERENCES things(id) ON DELETE CASCADE,
  location_id INTEGER NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
  PRIMARY KEY(thing_id, location_id));
CREATE INDEX IF NOT EXISTS thing_locations_loc ON thing_locations(location_id);
CREATE TABLE IF NOT EXISTS historical_locations(
  id INTEGER PRIMARY KEY, time TEXT NOT NULL, thing_id INTEGER NOT NULL REFERENCES things(id) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS hist_thing ON historical_locations(thing_id);
CREATE TABLE IF NOT EXISTS hist_locations(
  hist_id INTEGER NOT NULL REFERENCES historical_locations(id) ON DELETE CASCADE,
  location_id INTEGER NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
  PRIMARY KEY(hist_id, location_id));
CREATE TABLE IF NOT EXISTS sensors(
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL, encoding_type TEXT NOT NULL,
  metadata TEXT, properties TEXT);
CREATE TABLE IF NOT EXISTS observed_properties(
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, definition TEXT NOT NULL, description TEXT NOT NULL, properties TEXT);
CREATE TABLE IF NOT EXISTS datastreams(
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL, observation_type TEXT NOT NULL,
  unit TEXT NOT NULL, properties TEXT,
  thing_id INTEGER NOT NULL REFERENCES things(id) ON DELETE CASCADE,
  sensor_id INTEGER NOT NULL REFERENCES sensors(id) ON DELETE CASCADE,
  observed_property_id INTEGER NOT NULL REFERENCES observed_properties(id) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS ds_thing ON datastreams(thing_id);
CREATE INDEX IF NOT EXISTS ds_sensor ON datastreams(sensor_id);
CREATE INDEX IF NOT EXISTS ds_op ON datastreams(observed_property_id);
CREATE TABLE IF NOT EXISTS features(
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL, encoding_type TEXT NOT NULL,
  feature TEXT NOT NULL, minx REAL, miny REAL, maxx REAL, maxy REAL, properties TEXT,
  location_id INTEGER REFERENCES locations(id) ON DELETE SET NULL);
CREATE INDEX IF NOT EXISTS foi_location ON features(location_id);
CREATE TABLE IF NOT EXISTS observations(
  id INTEGER PRIMARY KEY, phenomenon_start TEXT NOT NULL, phenomenon_end TEXT, result, result_kind TEXT NOT NULL,
  result_time TEXT, result_quality TEXT, valid_start TEXT, valid_end TEXT, parameters TEXT,
  datastream_id INTEGER NOT NULL REFERENCES datastreams(id) ON DELETE CASCADE,
  foi_id INTEGER NOT NULL REFERENCES features(id) ON DELETE CASCADE,
  UNIQUE(datastream_id, phenomenon_start));
CREATE INDEX IF NOT EXISTS obs_foi ON observations(foi_id);
CREATE TABLE IF NOT EXISTS events(
  id INTEGER PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL,
  datastream_id INTEGER NOT NULL REFERENCES datastreams(id) ON DELETE CASCADE, thing_id INTEGER,
  opened_at TEXT NOT NULL, threshold REAL NOT NULL, value REAL NOT NULL, peak REAL NOT NULL, peak_at TEXT NOT NULL,
  closed_at TEXT, closed_by TEXT, acknowledged_at TEXT, acknowledged_by TEXT,
  lon REAL, lat REAL, twin_layer TEXT, twin_feature TEXT, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_state ON events(state, opened_at);
CREATE TABLE IF NOT EXISTS alert_active(
  datastream_id INTEGER NOT NULL REFERENCES datastreams(id) ON DELETE CASCADE, kind TEXT NOT NULL,
  event_id INTEGER NOT NULL, PRIMARY KEY(datastream_id, kind));
CREATE TABLE IF NOT EXISTS alert_last(
  datastream_id INTEGER PRIMARY KEY REFERENCES datastreams(id) ON DELETE CASCADE, time TEXT NOT NULL);
"""


def _geometry_parser():
    @lru_cache(maxsize=4096)
    def parse(text: str) -> BaseGeometry:
        text = text.strip()
        if text.startswith("{"):
            obj = orjson.loads(text)
            if obj.get("type") == "Feature":
                obj = obj["geometry"]
            return shapely.geometry.shape(obj)
        if text.upper().startswith("SRID="):
            text = text.split(";", 1)[1]
        return shapely.wkt.loads(text)

    return parse


def register_functions(con: sqlite3.Connection) -> None:
    """The SQL functions the OData compiler emits (geometry predicates and rounding)."""
    parse = _geometry_parser()

    def geo(op: str, a: str | None, b: str | None) -> int | None:
        if a is None or b is None:
            return None
        try:
            ga, gb = parse(a), parse(b)
        except Exception:
            return None
        return int(bool(getattr(ga, op)(gb)))

    def distance(a: str | None, b: str | None) -> float | None:
        return None if a is None or b is None else float(parse(a).distance(parse(b)))

    def length(a: str | None) -> float | None:
        return None if a is None else float(parse(a).length)

    def relate(a: str | None, b: str | None, pattern: str) -> int | None:
        return None if a is None or b is None else int(parse(a).relate_pattern(parse(b), pattern))

    import math

    con.create_function("sta_geo", 3, geo, deterministic=True)
    con.create_function("sta_geo_distance", 2, distance, deterministic=True)
    con.create_function("sta_geo_length", 1, length, deterministic=True)
    con.create_function("sta_geo_relate", 3, relate, deterministic=True)
    con.create_function("sta_startswith", 2, lambda a, b: None if a is None or b is None else int(str(a).startswith(str(b))),
                        deterministic=True)
    con.create_function("sta_endswith", 2, lambda a, b: None if a is None or b is None else int(str(a).endswith(str(b))),
                        deterministic=True)
    con.create_function("sta_fraction", 1, lambda s: None if s is None else float(s) % 1.0, deterministic=True)
    con.create_function("sta_round", 1, lambda x: None if x is None else math.floor(x + 0.5), deterministic=True)
    con.create_function("sta_floor", 1, lambda x: None if x is None else math.floor(x), deterministic=True)
    con.create_function("sta_ceiling", 1, lambda x: None if x is None else math.ceil(x), deterministic=True)


def connect(path: str, *, synchronous: str = "FULL") -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
    con.execute("PRAGMA foreign_keys=ON")
    con.execute("PRAGMA busy_timeout=30000")
    register_functions(con)
    return con


def create_schema(con: sqlite3.Connection) -> None:
    con.executescript(DDL)
    con.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
