"""SensorThings core: CRUD, deep insert, every query option, validation, alerts with hysteresis."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from sensor_fixtures import M, MM, service, stream_body, thing_body  # noqa: F401

from simulate.sensors.alerts import EventFilter
from simulate.sensors.errors import EntityNotFound, InvalidEntity, InvalidQuery, InvalidTransition
from simulate.sensors.model import ENTITIES
from simulate.sensors.render import collection, entity
from simulate.sensors.store import Parent

BASE = "http://test/sta/v1.1"
T0 = datetime(2024, 6, 1, tzinfo=timezone.utc)


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


@pytest.fixture
def data(service):
    """Three Things (two bound to twin features), five Datastreams, 60 observations of known values."""
    rng = random.Random(7)
    things = [("Rain gauge north", 113.31, 23.12, [stream_body("rain-n"), stream_body("level-n", M)],
               {"twin:layer": "buildings", "twin:feature": "b-1", "zone": "north"}),
              ("Rain gauge south", 113.33, 23.10, [stream_body("rain-s"), stream_body("level-s", M)],
               {"twin:layer": "roads", "twin:feature": "r-9", "zone": "south"}),
              ("River gauge", 113.32, 23.111, [stream_body("stage", M)], {"zone": "river"})]
    for name, lon, lat, streams, props in things:
        service.create("Things", thing_body(name, lon, lat, streams, **props))
    obs = []
    for ds in range(1, 6):
        for k in range(12):
            t = T0 + timedelta(hours=k * 3, minutes=ds)
            v = round(rng.uniform(0, 50), 2)
            service.create("Observations", {"phenomenonTime": iso(t), "result": v, "Datastream": {"@iot.id": ds}})
            obs.append({"ds": ds, "t": iso(t), "v": v, "dt": t})
    ids = {(o["ds"], o["t"]): i for i, o in enumerate(obs, start=1)}
    for o in obs:
        o["id"] = ids[(o["ds"], o["t"])]
    return obs


def _q(service, set_name, **params):
    q = service.parse_query({f"${k}": v for k, v in params.items()})
    page = service.query(set_name, q)
    return collection(ENTITIES[set_name], page, BASE, f"/{set_name}", q)


def test_filters_against_plain_python(service, data):
    ds_of = {1: "rain-n", 2: "level-n", 3: "rain-s", 4: "level-s", 5: "stage"}
    thing_of = {1: 1, 2: 1, 3: 2, 4: 2, 5: 3}
    cases = {
        "result gt 25": lambda o: o["v"] > 25,
        "result ge 10 and result le 20": lambda o: 10 <= o["v"] <= 20,
        "result lt 5 or result gt 45": lambda o: o["v"] < 5 or o["v"] > 45,
        "not (result lt 30)": lambda o: not o["v"] < 30,
        "result add 10 gt 40": lambda o: o["v"] + 10 > 40,
        "result mul 2 sub 1 lt 20": lambda o: o["v"] * 2 - 1 < 20,
        "result div 2 ge 12.5": lambda o: o["v"] / 2 >= 12.5,
        "phenomenonTime ge 2024-06-01T12:00:00Z": lambda o: o["dt"] >= T0 + timedelta(hours=12),
        "hour(phenomenonTime) eq 9": lambda o: o["dt"].hour == 9,
        "day(phenomenonTime) eq 2 and month(phenomenonTime) eq 6 and year(phenomenonTime) eq 2024":
            lambda o: o["dt"].day == 2,
        "minute(phenomenonTime) eq 3": lambda o: o["dt"].minute == 3,
        "Datastream/name eq 'stage'": lambda o: ds_of[o["ds"]] == "stage",
        "substringof('rain', Datastream/name)": lambda o: "rain" in ds_of[o["ds"]],
        "startswith(Datastream/name, 'level')": lambda o: ds_of[o["ds"]].startswith("level"),
        "endswith(Datastream/name, '-s')": lambda o: ds_of[o["ds"]].endswith("-s"),
        "contains(toupper(Datastream/name), 'AIN')": lambda o: "AIN" in ds_of[o["ds"]].upper(),
        "length(Datastream/name) eq 6": lambda o: len(ds_of[o["ds"]]) == 6,
        "Datastream/Thing/properties/zone eq 'north'": lambda o: thing_of[o["ds"]] == 1,
        "Datastream/Thing/properties/twin:layer eq 'roads'": lambda o: thing_of[o["ds"]] == 2,
        "Datastream/unitOfMeasurement/symbol eq 'm' and result gt 20":
            lambda o: o["ds"] in (2, 4, 5) and o["v"] > 20,
        "Datastream/@iot.id eq 3": lambda o: o["ds"] == 3,
        "st_within(FeatureOfInterest/feature, geography'POLYGON((113.30 23.115, 113.32 23.115, 113.32 23.13, "
        "113.30 23.13, 113.30 23.115))')": lambda o: thing_of[o["ds"]] == 1,
        "geo.intersects(FeatureOfInterest/feature, geography'POLYGON((113.325 23.09, 113.34 23.09, 113.34 23.105, "
        "113.325 23.105, 113.325 23.09))')": lambda o: thing_of[o["ds"]] == 2,
        "floor(result) eq 7 or ceiling(result) eq 30": lambda o: int(o["v"] // 1) == 7 or -int(-o["v"] // 1) == 30,
    }
    for text, pred in cases.items():
        got = _q(service, "Observations", filter=text, top="1000", count="true")
        expected = sorted(o["id"] for o in data if pred(o))
        assert sorted(v["@iot.id"] for v in got["value"]) == expected, text
        assert got["@iot.count"] == len(expected), text


def test_geo_on_locations_and_things(service, data):
    box = "geography'POLYGON((113.305 23.115, 113.315 23.115, 113.315 23.125, 113.305 23.125, 113.305 23.115))'"
    got = _q(service, "Locations", filter=f"st_within(location, {box})")
    assert [v["name"] for v in got["value"]] == ["Rain gauge north location"]
    got = _q(service, "Locations", filter="geo.distance(location, geography'POINT(113.32 23.111)') lt 0.001")
    assert [v["name"] for v in got["value"]] == ["River gauge location"]
    got = _q(service, "Things", filter="properties/twin:feature eq 'b-1'")
    assert [v["name"] for v in got["value"]] == ["Rain gauge north"]


def test_orderby_top_skip_count_nextlink(service, data):
    ordered = sorted(data, key=lambda o: (-o["v"], o["id"]))
    got = _q(service, "Observations", orderby="result desc", top="7", skip="5", count="true")
    assert [v["@iot.id"] for v in got["value"]] == [o["id"] for o in ordered[5:12]]
    assert got["@iot.count"] == 60
    assert "$skip=12" in got["@iot.nextLink"] and "$top=7" in got["@iot.nextLink"]
    assert "$orderby=result desc" in got["@iot.nextLink"].replace("+", " ").replace("%20", " ")
    last = _q(service, "Observations", orderby="result desc", top="7", skip="56")
    assert len(last["value"]) == 4 and "@iot.nextLink" not in last
    two_keys = _q(service, "Observations", orderby="Datastream/name asc,phenomenonTime desc", top="100")
    ds_name = {1: "rain-n", 2: "level-n", 3: "rain-s", 4: "level-s", 5: "stage"}
    exp = sorted(data, key=lambda o: (ds_name[o["ds"]], [-ord(c) for c in o["t"]]))
    assert [v["@iot.id"] for v in two_keys["value"]] == [o["id"] for o in exp]


def test_select_and_nested_expand(service, data):
    got = _q(service, "Things", select="id,name", orderby="name")
    assert got["value"] == [{"@iot.id": 1, "name": "Rain gauge north"}, {"@iot.id": 2, "name": "Rain gauge south"},
                            {"@iot.id": 3, "name": "River gauge"}]
    got = _q(service, "Things", expand="Datastreams($filter=unitOfMeasurement/symbol eq 'mm';"
                                       "$expand=Observations($orderby=result desc;$top=1;$count=true)),Locations",
             orderby="id")
    for thing in got["value"]:
        streams = thing["Datastreams"]
        assert all(ds["unitOfMeasurement"]["symbol"] == "mm" for ds in streams)
        assert len(thing["Locations"]) == 1
        for ds in streams:
            mine = [o for o in data if o["ds"] == ds["@iot.id"]]
            best = max(mine, key=lambda o: o["v"])
            assert [o["@iot.id"] for o in ds["Observations"]] == [best["id"]]
            assert ds["Observations@iot.count"] == len(mine) == 12
            assert "Observations@iot.nextLink" in ds
    one = service.get("Observations", 1, service.parse_query({"$expand": "Datastream/Thing", "$select": "result"}))
    rendered = entity(ENTITIES["Observations"], one, BASE, service.parse_query({"$expand": "Datastream/Thing",
                                                                                "$select": "result"}))
    assert rendered["Datastream"]["Thing"]["name"] == "Rain gauge north"
    assert set(rendered) == {"result", "Datastream"}


def test_navigation_and_links(service, data):
    page = service.query("Observations", service.parse_query({"$top": "100"}), parent=Parent("Datastreams", 5, "Observations"))
    assert sorted(r["id"] for r in page.rows) == sorted(o["id"] for o in data if o["ds"] == 5)
    thing = service.get("Things", 0, service.parse_query({}), parent=Parent("Datastreams", 3, "Thing"))
    assert thing["name"] == "Rain gauge south"
    rendered = entity(ENTITIES["Things"], thing, BASE, service.parse_query({}))
    assert rendered["@iot.selfLink"] == f"{BASE}/Things(2)"
    assert rendered["Datastreams@iot.navigationLink"] == f"{BASE}/Things(2)/Datastreams"
    hist = service.query("HistoricalLocations", service.parse_query({}), parent=Parent("Things", 1, "HistoricalLocations"))
    assert len(hist.rows) == 1
    with pytest.raises(EntityNotFound):
        service.query("Datastreams", service.parse_query({}), parent=Parent("Things", 99, "Datastreams"))


def test_deep_insert_patch_delete_cascade(service, data):
    tid, _ = service.create("Things", thing_body("New", 113.3, 23.1, [stream_body("x"), stream_body("y")]))
    ds = service.query("Datastreams", service.parse_query({}), parent=Parent("Things", tid, "Datastreams")).rows
    assert [d["name"] for d in ds] == ["x", "y"]
    service.update("Things", tid, {"name": "Renamed", "Locations": [{"@iot.id": 1}]})
    assert service.get("Things", tid, service.parse_query({}))["name"] == "Renamed"
    locs = service.query("Locations", service.parse_query({}), parent=Parent("Things", tid, "Locations")).rows
    assert [l["id"] for l in locs] == [1]
    assert len(service.query("HistoricalLocations", service.parse_query({}),
                             parent=Parent("Things", tid, "HistoricalLocations")).rows) == 2
    service.create("Observations", {"phenomenonTime": "2024-06-01T00:00:00Z", "result": 1.0,
                                    "Datastream": {"@iot.id": ds[0]["id"]}})
    before = service.store.count_observations()
    service.delete("Things", tid)
    assert service.store.count_observations() == before - 1
    with pytest.raises(EntityNotFound):
        service.get("Datastreams", ds[0]["id"], service.parse_query({}))
    with pytest.raises(EntityNotFound):
        service.delete("Things", tid)


def test_idempotent_redelivery(service, data):
    n = service.store.count_observations()
    body = {"phenomenonTime": data[0]["t"], "result": 99.0, "Datastream": {"@iot.id": 1}}
    oid, created = service.create("Observations", body)
    assert (oid, created) == (data[0]["id"], False)
    assert service.store.count_observations() == n


@pytest.mark.parametrize("body, reason", [
    ({"phenomenonTime": "2024-06-01T00:00:00Z", "result": "wet", "Datastream": {"@iot.id": 1}}, "does not fit"),
    ({"phenomenonTime": "2024-06-01T00:00:00Z", "result": 3, "parameters": {"unit": "cm"},
      "Datastream": {"@iot.id": 1}}, "unit 'cm'"),
    ({"phenomenonTime": "2024-06-01T00:00:00Z", "result": 3, "Datastream": {"@iot.id": 999}}, "no Datastream 999"),
    ({"phenomenonTime": "2999-01-01T00:00:00Z", "result": 3, "Datastream": {"@iot.id": 1}}, "in the future"),
    ({"phenomenonTime": "yesterday", "result": 3, "Datastream": {"@iot.id": 1}}, "ISO 8601"),
    ({"phenomenonTime": "2024-06-01T00:00:00Z", "Datastream": {"@iot.id": 1}}, "missing result"),
    ({"phenomenonTime": "2024-06-01T00:00:00Z", "result": 3}, "needs a Datastream"),
    ('{"result": 3, ', "malformed JSON"),
])
def test_bad_observations_store_nothing(service, data, body, reason):
    n = service.store.count_observations()
    with pytest.raises(InvalidEntity, match=reason):
        service.create("Observations", body)
    assert service.store.count_observations() == n


def test_bad_entities_and_queries(service, data):
    n_things = len(service.query("Things", service.parse_query({})).rows)
    bad = thing_body("Bad", 113.3, 23.1, [stream_body("z")])
    bad["Datastreams"][0]["unitOfMeasurement"] = {"name": "x"}
    with pytest.raises(InvalidEntity, match="unitOfMeasurement"):
        service.create("Things", bad)
    bad = thing_body("Bad", 113.3, 23.1, [stream_body("z", thresholds={"warning": "high"})])
    with pytest.raises(InvalidEntity, match="must be a number"):
        service.create("Things", bad)
    with pytest.raises(InvalidEntity, match="no property 'colour'"):
        service.create("Things", {"name": "a", "description": "b", "colour": "red"})
    assert len(service.query("Things", service.parse_query({})).rows) == n_things
    assert service.store.count_observations() == 60
    for params in ({"$filter": "result gtt 3"}, {"$filter": "nosuch eq 1"}, {"$top": "-1"}, {"$orderby": "result sideways"},
                   {"$expand": "Nope"}, {"$filter": "Datastreams/name eq 'x'"}):
        with pytest.raises(InvalidQuery):
            service.query("Observations", service.parse_query(params))


def test_thresholds_hysteresis_and_lifecycle(service):
    service.create("Things", thing_body("Point", 113.32, 23.12, [stream_body("depth", M, {"warning": 10, "alarm": 20,
                                                                                        "hysteresis": 2})],
                                        **{"twin:layer": "roads", "twin:feature": "r-1"}))
    values = [5, 10, 11, 9, 8.5, 8.1, 7.9, 9.9, 10, 21, 25, 19, 18.5, 17.9, 20, 15, 7]
    # hand-computed: warning opens at 10 (t1), holds through 8.1 (>= 10-2), closes at 7.9 (t6); opens at 10 (t8);
    # alarm opens at 21 (t9), holds at 19 and 18.5, closes at 17.9 (t13); 20 reopens it (t14), 15 closes it (t15);
    # 7 closes the warning (t16).
    expected = [("warning", 1, 6), ("warning", 8, 16), ("alarm", 9, 13), ("alarm", 14, 15)]
    t = [iso(T0 + timedelta(minutes=k)) for k in range(len(values))]
    obs = [service.observation_from({"phenomenonTime": t[k], "result": v}, 1) for k, v in enumerate(values)]
    service.ingest(obs[:5])
    service.ingest(obs[5:][::-1])               # arrival order within a batch does not matter
    events, total = service.events(EventFilter(limit=100))
    got = sorted((e.kind, t.index(e.opened_at), t.index(e.closed_at)) for e in events)
    assert got == sorted(expected) and total == 4
    peak = next(e for e in events if e.kind == "alarm" and e.opened_at == t[9])
    assert (peak.peak, peak.peak_at, peak.closed_by) == (25, t[10], "system")
    assert peak.twin_layer == "roads" and peak.twin_feature == "r-1" and peak.lon == pytest.approx(113.32)
    # lifecycle: a fresh open event is acknowledged, then closed by an operator
    service.ingest([service.observation_from({"phenomenonTime": iso(T0 + timedelta(hours=1)), "result": 12}, 1)])
    (open_event,), _ = service.events(EventFilter(state=("open",)))
    acked = service.acknowledge(open_event.id, "operator-7")
    assert acked.state == "acknowledged" and acked.acknowledged_by == "operator-7"
    with pytest.raises(InvalidTransition):
        service.acknowledge(open_event.id, "operator-7")
    closed = service.close_event(open_event.id, "operator-7")
    assert closed.state == "closed" and closed.closed_by == "operator-7"
    with pytest.raises(InvalidTransition):
        service.close_event(open_event.id, "x")
    # still above the level: no new event until it falls below 8 and rises again
    service.ingest([service.observation_from({"phenomenonTime": iso(T0 + timedelta(hours=2)), "result": 13}, 1)])
    assert service.events(EventFilter(state=("open",)))[1] == 0
    bbox_hits = service.events(EventFilter(bbox=(113.31, 23.11, 113.33, 23.13)))[1]
    assert bbox_hits == 5 and service.events(EventFilter(bbox=(0, 0, 1, 1)))[1] == 0
    assert service.events(EventFilter(kind=("alarm",)))[1] == 2
    assert service.events(EventFilter(until=t[7]))[1] == 1
