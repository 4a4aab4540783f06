"""The twin's catalogue, filtered to what the caller may see."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.auth import Principal, authorize
from api.deps import get_store
from twin.catalogue import catalogue
from twin.store.base import TwinStore


def router() -> APIRouter:
    r = APIRouter(tags=["catalogue"])

    @r.get("/api/catalogue", summary="Layers, rasters and sources of the twin the caller may read")
    def get_catalogue(store: TwinStore = Depends(get_store), who: Principal = Depends(authorize())) -> dict:
        cat = catalogue(store)
        cat["layers"] = [l for l in cat["layers"] if who.can_read(l["classification"])]
        cat["rasters"] = [r for r in cat["rasters"] if who.can_read(r["classification"])]
        visible = {l["name"] for l in cat["layers"]}
        cat["sources"] = [s for s in cat["sources"] if s["layer"] in visible]
        return cat

    return r
