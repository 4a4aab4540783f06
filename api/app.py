"""The application factory: settings in, a FastAPI app with its routers composed out."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware

import twin
from api import errors
from api.auth import KeyRing
from api.routers import catalogue, features, imagery, search, spatial, tiles, viewer
from api.settings import Settings
from twin.store.folder import FolderStore


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    store = FolderStore(settings.twin_dir)
    app = FastAPI(title=f"City twin: {store.manifest().city}", version=twin.__version__,
                  description="3D city twin: OGC 3D Tiles, catalogue and viewer.")
    app.state.settings = settings
    app.state.store = store
    app.state.keyring = KeyRing(settings)
    errors.install(app)
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST", "DELETE"],
                       allow_headers=["*"], expose_headers=["ETag", "Location"])
    for make in (catalogue.router, tiles.router, features.router, spatial.router, search.router,
                 imagery.router, viewer.router):
        app.include_router(make())
    logging.getLogger("twin.api").info("serving %s from %s", store.manifest().city, settings.twin_dir)
    return app
