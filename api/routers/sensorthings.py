"""OGC SensorThings API v1.1 at /sta/v1.1 over the core `SensorService` (app.state.sensors).

Reads are open to every caller the app lets in; creating, changing and deleting needs the scope
`sensors:write`. The resource path (`Things(1)/Datastreams`, `Datastreams(2)/Thing/name`, ...) is
resolved here; everything else (validation, queries, storage) is the core's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.auth import Principal, authorize
from api.errors import ApiError
from simulate.sensors import render
from simulate.sensors.errors import EntityNotFound, InvalidEntity
from simulate.sensors.model import API_VERSION, ENTITIES
from simulate.sensors.odata import Query
from simulate.sensors.service import SensorService
from simulate.sensors.store import Parent

PREFIX = f"/sta/{API_VERSION}"
WRITE_SCOPE = "sensors:write"
_SEGMENT = re.compile(r"^([A-Za-z$]+)(?:\((\d+)\))?$")
CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/create-update-delete",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array/data-array",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/create-observations-via-mqtt/observations-creation",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/receive-updates-via-mqtt/receive-updates",
]


def get_sensors(request: Request) -> SensorService:
    service = getattr(request.app.state, "sensors", None)
    if service is None:
        raise ApiError(503, "the sensor service is not running")
    return service


@dataclass
class Target:
    """What a resource path names: a collection or one entity (or one of its properties)."""

    set_name: str
    id: int | None
    parent: Parent | None
    single: bool
    prop: str | None = None
    raw_value: bool = False


def resolve(service: SensorService, path: str) -> Target:
    segs = [s for s in path.strip("/").split("/") if s]
    if not segs:
        raise EntityNotFound("empty resource path")
    m = _SEGMENT.match(segs[0])
    if m is None or m.group(1) not in ENTITIES:
        raise EntityNotFound(f"no entity set '{segs[0]}'")
    t = Target(m.group(1), None if m.group(2) is None else int(m.group(2)), None, m.group(2) is not None)
    for i, seg in enumerate(segs[1:], start=1):
        m = _SEGMENT.match(seg)
        if m is None:
            raise EntityNotFound(f"bad path segment '{seg}'")
        name, sid = m.group(1), m.group(2)
        if t.prop is not None:
            if name == "$value" and i == len(segs) - 1:
                t.raw_value = True
                continue
            raise EntityNotFound(f"nothing under the property {t.prop}")
        if not t.single:
            raise EntityNotFound(f"'{segs[i - 1]}' is a collection: name one entity before '{seg}'")
        if t.id is None:            # a to-one navigation: find the entity it leads to
            t.id = service.get(t.set_name, 0, Query(), parent=t.parent)["id"]
        et = ENTITIES[t.set_name]
        nav = et.nav(name)
        if nav is not None:
            if sid is not None and not nav.many:
                raise EntityNotFound(f"{et.singular}/{name} is a single entity; it takes no id")
            t = Target(nav.target, None if sid is None else int(sid), Parent(t.set_name, t.id, name),
                       single=sid is not None or not nav.many)
        elif et.prop(name) is not None and sid is None:
            t.prop = name
        else:
            raise EntityNotFound(f"{et.singular} has no property or navigation '{name}'")
    return t


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


def _params(request: Request) -> dict[str, str]:
    return dict(request.query_params)


def _created(service: SensorService, request: Request, set_name: str, new_id: int, created: bool) -> JSONResponse:
    row = service.get(set_name, new_id, Query())
    body = render.entity(ENTITIES[set_name], row, _base(request), Query())
    return JSONResponse(body, status_code=201 if created else 200, headers={"Location": body["@iot.selfLink"]})


async def _body(request: Request) -> bytes:
    raw = await request.body()
    if not raw.strip():
        raise InvalidEntity("the request body is empty; send a JSON entity")
    return raw


def router() -> APIRouter:
    r = APIRouter(prefix=PREFIX, tags=["sensorthings"])
    writer = authorize(WRITE_SCOPE)

    @r.get("", summary="SensorThings service root: entity sets and server settings")
    def root(request: Request, service: SensorService = Depends(get_sensors), who: Principal = Depends(authorize())):
        base = _base(request)
        return {"value": [{"name": name, "url": f"{base}/{name}"} for name in ENTITIES],
                "serverSettings": {"conformance": CONFORMANCE,
                                   "http://www.opengis.net/spec/iot_sensing/1.1/req/create-observations-via-mqtt/"
                                   "observations-creation": {"mqttTopics": [f"{API_VERSION}/Datastreams(<id>)/"
                                                                            "Observations"]}}}

    @r.get("/{path:path}", summary="An entity, a collection, or a property of an entity")
    def read(path: str, request: Request, service: SensorService = Depends(get_sensors),
             who: Principal = Depends(authorize())) -> Any:
        q = service.parse_query(_params(request))
        t = resolve(service, path)
        et = ENTITIES[t.set_name]
        if not t.single:
            page = service.query(t.set_name, q, parent=t.parent)
            return render.collection(et, page, _base(request), "/" + path.strip("/"), q)
        row = service.get(t.set_name, t.id or 0, q, parent=t.parent)
        if t.prop is None:
            return render.entity(et, row, _base(request), q)
        value = render.value_of(et.prop(t.prop), row)
        if t.raw_value:
            return Response("" if value is None else str(value), media_type="text/plain")
        return {t.prop: value}

    @r.post("/CreateObservations", status_code=201, summary="dataArray: many Observations in one request")
    async def create_observations(request: Request, service: SensorService = Depends(get_sensors),
                                  who: Principal = Depends(writer)) -> Any:
        raw = await _body(request)

        def work() -> list[str]:
            res = service.ingest(service.observations_from_data_array(raw))
            return [f"{_base(request)}/Observations({i})" for i in res.ids]

        return JSONResponse(await run_in_threadpool(work), status_code=201)

    @r.post("/{path:path}", status_code=201, summary="Create an entity (deep insert) in a collection")
    async def create(path: str, request: Request, service: SensorService = Depends(get_sensors),
                     who: Principal = Depends(writer)) -> Any:
        raw = await _body(request)

        def work() -> JSONResponse:
            t = resolve(service, path)
            if t.single or t.prop:
                raise InvalidEntity("POST to a collection, for example /Things or /Datastreams(1)/Observations")
            new_id, created = service.create(t.set_name, raw, parent=t.parent)
            return _created(service, request, t.set_name, new_id, created)

        return await run_in_threadpool(work)

    @r.patch("/{path:path}", summary="Change some properties of an entity")
    async def update(path: str, request: Request, service: SensorService = Depends(get_sensors),
                     who: Principal = Depends(writer)) -> Any:
        raw = await _body(request)

        def work() -> Any:
            t = _one(service, path)
            service.update(t.set_name, t.id, raw)
            return render.entity(ENTITIES[t.set_name], service.get(t.set_name, t.id, Query()), _base(request), Query())

        return await run_in_threadpool(work)

    @r.delete("/{path:path}", summary="Delete an entity (and what depends on it)")
    def delete(path: str, service: SensorService = Depends(get_sensors), who: Principal = Depends(writer)) -> Response:
        t = _one(service, path)
        service.delete(t.set_name, t.id)
        return Response(status_code=200)

    return r


def _one(service: SensorService, path: str) -> Target:
    t = resolve(service, path)
    if not t.single or t.prop:
        raise InvalidEntity("name one entity, for example /Things(1)")
    if t.id is None:
        t.id = service.get(t.set_name, 0, Query(), parent=t.parent)["id"]
    return t
