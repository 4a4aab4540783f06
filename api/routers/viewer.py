"""The web viewer: its page and assets, and CesiumJS served locally (no CDN, no ion)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from api.deps import get_settings, get_store
from api.errors import ApiError
from api.routers.tiles import serve_file

VIEWER_DIR = Path(__file__).resolve().parents[1] / "viewer"
REPO_ROOT = Path(__file__).resolve().parents[2]


def cesium_dir(settings) -> Path:
    return Path(settings.viewer_assets) if settings.viewer_assets else REPO_ROOT / "node_modules" / "cesium" / "Build" / "Cesium"


def _safe(base: Path, path: str) -> Path:
    target = (base / path).resolve()
    if base.resolve() not in target.parents or not target.is_file():
        raise ApiError(404, f"not found: {path}")
    return target


def router() -> APIRouter:
    r = APIRouter(tags=["viewer"], include_in_schema=False)

    @r.get("/")
    def index() -> FileResponse:
        return FileResponse(VIEWER_DIR / "index.html", media_type="text/html",
                            headers={"Cache-Control": "no-cache"})

    @r.get("/viewer/{path:path}")
    def viewer_asset(path: str, request: Request, settings=Depends(get_settings)) -> Response:
        return serve_file(request, _safe(VIEWER_DIR, path), cache_seconds=60, public=True)

    @r.get("/cesium/{path:path}")
    def cesium_asset(path: str, request: Request, settings=Depends(get_settings)) -> Response:
        base = cesium_dir(settings)
        if not base.is_dir():
            raise ApiError(503, "CesiumJS is not installed (run 'npm ci')")
        return serve_file(request, _safe(base, path), cache_seconds=86400, public=True)

    @r.get("/viewer-config.json")
    def viewer_config(store=Depends(get_store)) -> JSONResponse:
        from simulate.flood.process import city_flood_defaults

        m = store.manifest()
        # the city's scenario defaults, for the panels' starting values (the flood process applies the same)
        flood = city_flood_defaults(store).model_dump(mode="json")
        return JSONResponse({"city": m.city, "city_zh": m.city_zh, "extent_wgs84": list(m.extent_wgs84),
                             "crs": m.crs, "scenarios": {"flood": flood}})

    return r
