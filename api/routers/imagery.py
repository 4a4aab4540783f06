"""The twin's base imagery for the viewer: one PNG over a lon/lat rectangle, rendered once and cached."""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from api.deps import get_settings, get_store
from api.routers.tiles import serve_file, tiles_root
from tiles.imagery import cached_base_imagery
from twin.store.base import TwinStore

CACHE_FOLDER = "imagery"


def router() -> APIRouter:
    r = APIRouter(tags=["imagery"])
    lock = threading.Lock()   # one render at a time; later callers find it cached

    def cached(store: TwinStore) -> tuple[Path, dict]:
        with lock:
            return cached_base_imagery(store, tiles_root(store) / CACHE_FOLDER)

    @r.get("/imagery/base.png", summary="Base imagery: hillshaded ground with roads, water and footprints",
           response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def base_png(request: Request, store: TwinStore = Depends(get_store), settings=Depends(get_settings)) -> Response:
        png, _ = cached(store)
        return serve_file(request, png, cache_seconds=settings.static_cache_seconds, public=True)

    @r.get("/imagery/base.json", summary="Rectangle (WGS84 degrees), size and attributions of the base imagery")
    def base_json(store: TwinStore = Depends(get_store), settings=Depends(get_settings)) -> JSONResponse:
        _, meta = cached(store)
        body = {k: meta[k] for k in ("rectangle", "width", "height", "attributions")}
        body["url"] = "/imagery/base.png"
        return JSONResponse(body, headers={"Cache-Control": "no-cache"})

    return r
