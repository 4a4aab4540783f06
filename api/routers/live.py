"""Live sensor state: a WebSocket pushing latest values and alert events, and REST for events.

WebSocket /live: first {"type": "snapshot", "latest": [...], "events": [...active events]}, then
{"type": "latest", "items": [...], "sent": <unix time>} per committed ingest batch and
{"type": "event", "event": {...}} per event opened, closed, escalated or acknowledged.
Acknowledging and closing events needs the scope `alerts:write`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, WebSocket, WebSocketDisconnect

from api.auth import Principal, authorize
from api.errors import BadRequest
from api.routers.sensorthings import get_sensors
from simulate.sensors.alerts import EventFilter
from simulate.sensors.model import canonical_time
from simulate.sensors.service import SensorService

ALERT_SCOPE = "alerts:write"
QUEUE_MAX = 10_000


@dataclass
class EventParams:
    """Filters of GET /live/events."""

    state: str | None = Query(None, description="comma-separated: open, acknowledged, closed")
    kind: str | None = Query(None, description="comma-separated: warning, alarm, forecast-warning, forecast-alarm")
    bbox: str | None = Query(None, description="minlon,minlat,maxlon,maxlat (WGS84)")
    since: str | None = Query(None, description="events still active at or after this ISO time")
    until: str | None = Query(None, description="events opened at or before this ISO time")
    datastream: int | None = Query(None)
    thing: int | None = Query(None)
    limit: int = Query(100, ge=1, le=1000)
    offset: int = Query(0, ge=0)

    def filter(self) -> EventFilter:
        bbox = None
        if self.bbox:
            try:
                parts = tuple(float(v) for v in self.bbox.split(","))
            except ValueError:
                raise BadRequest("bbox must be four numbers", field="bbox") from None
            if len(parts) != 4:
                raise BadRequest("bbox must be four numbers", field="bbox")
            bbox = parts
        split = lambda s: tuple(v.strip() for v in s.split(",") if v.strip()) if s else ()  # noqa: E731
        return EventFilter(split(self.state), split(self.kind), self.datastream, self.thing, bbox,
                           canonical_time(self.since, "since") if self.since else None,
                           canonical_time(self.until, "until") if self.until else None, self.limit, self.offset)


def router() -> APIRouter:
    r = APIRouter(tags=["live"])

    @r.get("/live/latest", summary="The latest value of every Datastream")
    def latest(service: SensorService = Depends(get_sensors), who: Principal = Depends(authorize())) -> dict:
        return {"latest": service.latest()}

    @r.get("/live/events", summary="Alert events, newest first")
    def events(params: EventParams = Depends(), service: SensorService = Depends(get_sensors),
               who: Principal = Depends(authorize())) -> dict:
        found, total = service.events(params.filter())
        return {"events": [e.to_json() for e in found], "numberMatched": total, "numberReturned": len(found)}

    @r.get("/live/events/{event_id}", summary="One alert event")
    def event(event_id: int, service: SensorService = Depends(get_sensors),
              who: Principal = Depends(authorize())) -> dict:
        return service.event(event_id).to_json()

    @r.post("/live/events/{event_id}/acknowledge", summary="Acknowledge an open event")
    def acknowledge(event_id: int, service: SensorService = Depends(get_sensors),
                    who: Principal = Depends(authorize(ALERT_SCOPE))) -> dict:
        return service.acknowledge(event_id, who.name).to_json()

    @r.post("/live/events/{event_id}/close", summary="Close an event")
    def close(event_id: int, service: SensorService = Depends(get_sensors),
              who: Principal = Depends(authorize(ALERT_SCOPE))) -> dict:
        return service.close_event(event_id, who.name).to_json()

    @r.websocket("/live")
    async def live(ws: WebSocket) -> None:
        service: SensorService | None = getattr(ws.app.state, "sensors", None)
        if service is None:
            await ws.close(code=1011, reason="the sensor service is not running")
            return
        await ws.accept()
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_MAX)

        def put(message: dict[str, Any]) -> None:
            if not inbox.full():            # a client too slow to keep up loses intermediate values
                inbox.put_nowait(message)

        def on_hub(message: dict[str, Any]) -> None:
            if message["type"] == "observations":
                out = {"type": "latest", "items": message["latest"], "sent": time.time()}
            elif message["type"] == "event":
                out = message
            else:
                return
            loop.call_soon_threadsafe(put, out)

        unsubscribe = service.hub.subscribe(on_hub)
        try:
            active, _ = await asyncio.to_thread(service.events, EventFilter(state=("open", "acknowledged"),
                                                                            limit=1000))
            snapshot = {"type": "snapshot", "latest": await asyncio.to_thread(service.latest),
                        "events": [e.to_json() for e in active]}
            await ws.send_text(orjson.dumps(snapshot).decode())
            closed = asyncio.ensure_future(_drain(ws))
            while not closed.done():
                getter = asyncio.ensure_future(inbox.get())
                done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    await ws.send_text(orjson.dumps(getter.result()).decode())
                else:
                    getter.cancel()
        except WebSocketDisconnect:
            pass
        finally:
            unsubscribe()
            with contextlib.suppress(Exception):
                await ws.close()

    return r


async def _drain(ws: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it goes away."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await ws.receive_text()
