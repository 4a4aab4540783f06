"""Search features by name or id across the layers the caller may read."""

from __future__ import annotations

import threading
from dataclasses import asdict

from fastapi import APIRouter, Depends, Query

from api.auth import Principal, authorize
from api.deps import get_store
from api.errors import BadRequest
from twin.search import MAX_LIMIT, SearchError, SearchIndex
from twin.store.base import TwinStore


def router() -> APIRouter:
    r = APIRouter(tags=["search"])
    lock = threading.Lock()
    cache: dict[tuple[int, str], SearchIndex] = {}   # (store, built_at) -> index; a rebuilt twin is re-read

    def index_of(store: TwinStore) -> SearchIndex:
        key = (id(store), store.manifest().built_at)
        with lock:
            if key not in cache:
                cache.clear()
                cache[key] = SearchIndex.from_store(store)
            return cache[key]

    @r.get("/api/search", summary="Features whose name, English name or id matches q, best first")
    def search(q: str = Query(..., min_length=1, max_length=200, description="name or id (part of it)"),
               limit: int = Query(20, ge=1, le=MAX_LIMIT),
               layer: list[str] | None = Query(None, description="only these layers (repeatable)"),
               store: TwinStore = Depends(get_store), who: Principal = Depends(authorize())) -> dict:
        m = store.manifest()
        readable = {name for name in store.layer_names() if who.can_read(m.classification_of(name))}
        if layer:
            readable &= set(layer)
        try:
            hits = index_of(store).search(q, layers=readable, limit=limit)
        except SearchError as exc:
            raise BadRequest(exc.message, field=exc.field) from None
        return {"query": q, "count": len(hits), "results": [asdict(h) for h in hits]}

    return r
