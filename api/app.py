"""The application factory: settings in, a FastAPI app with its routers composed out."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware

import twin
from api import errors
from api.auth import KeyRing
from api.routers import (catalogue, features, imagery, live, processes, scenario_imagery, search, sensorthings, spatial,
                         tiles, viewer)
from api.settings import Settings
from simulate.sensors.mqtt import BridgeConfig, MqttBridge
from simulate.sensors.service import SensorService
from simulate.jobs.results import ResultCatalog
from twin.query import LayerIndex
from twin.store.folder import FolderStore


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Start the MQTT ingest bridge (when a broker is configured) and the flood nowcast trigger (when a
    schedule or alarms enable it); stop them and close the sensor store."""
    s = app.state.settings
    bridge = None
    if s.mqtt_host:
        bridge = MqttBridge(app.state.sensors, BridgeConfig(host=s.mqtt_host, port=s.mqtt_port,
                                                            client_id=s.mqtt_client_id))
        await asyncio.to_thread(bridge.start)
    app.state.mqtt_bridge = bridge
    nowcast = None
    if s.nowcast_every_s or s.nowcast_on_alarm:
        from simulate.nowcast.trigger import NowcastTrigger

        nowcast = NowcastTrigger(app.state.jobs, app.state.sensors, every_s=s.nowcast_every_s,
                                 on_alarm=s.nowcast_on_alarm, min_interval_s=s.nowcast_min_interval_s,
                                 inputs=s.nowcast_inputs)
        nowcast.start()
    app.state.nowcast = nowcast
    yield
    if nowcast is not None:
        await asyncio.to_thread(nowcast.stop)
    if bridge is not None:
        await asyncio.to_thread(bridge.stop)
    app.state.sensors.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    store = FolderStore(settings.twin_dir)
    app = FastAPI(title=f"City twin: {store.manifest().city}", version=twin.__version__,
                  description="3D city twin: OGC 3D Tiles, OGC API Features and Processes, SensorThings, viewer.",
                  lifespan=lifespan)
    app.state.settings = settings
    app.state.store = store
    app.state.keyring = KeyRing(settings)
    app.state.layer_index = LayerIndex(store, extra=ResultCatalog(settings.twin_dir))  # twin + scenario layers
    app.state.sensors = SensorService.for_twin(settings.twin_dir, base_url=f"{settings.public_url}/sta/v1.1")
    errors.install(app)
    processes.install(app)  # the job manager on app.state.jobs; interrupted jobs recovered
    app.state.extra_conformance = processes.conformance()
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST", "PATCH", "DELETE"],
                       allow_headers=["*"], expose_headers=["ETag", "Location"])
    for make in (catalogue.router, tiles.router, features.router, processes.router, spatial.router, search.router,
                 sensorthings.router, live.router, imagery.router, scenario_imagery.router, viewer.router):
        app.include_router(make())
    logging.getLogger("twin.api").info("serving %s from %s", store.manifest().city, settings.twin_dir)
    return app


def app_from_env() -> FastAPI:
    """The app of one worker process, for `uvicorn --factory api.app:app_from_env` (`twin serve
    --workers N`): settings from the TWIN_* environment. `TWIN_WARM` (layer names, comma-separated,
    or `all`) loads those layers and serialises their GeoJSON before the worker takes requests, so
    no client waits on a first load and every worker is equally warm.

    Everything built so far (modules, app, warmed layers) is then moved out of the garbage
    collector's view (`gc.freeze`): a full collection over those ~10^5 long-lived objects
    otherwise stalls a worker for 50-250 ms now and then, which is the p99."""
    app = create_app(Settings())
    warm = os.environ.get("TWIN_WARM", "").strip()
    if warm:
        names = None if warm in ("all", "*") else [n.strip() for n in warm.split(",") if n.strip()]
        app.state.layer_index.warm(names or app.state.store.layer_names())
    gc.collect()
    gc.freeze()
    return app
