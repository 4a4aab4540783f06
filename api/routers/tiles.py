"""3D Tiles and terrain files with ETag / If-None-Match, Cache-Control and per-layer access."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse

from api.auth import Principal, authorize
from api.deps import get_settings, get_store
from api.errors import ApiError
from twin.errors import LayerNotFound
from twin.store.base import TwinStore

CONTENT_TYPES = {
    ".json": "application/json", ".glb": "model/gltf-binary", ".b3dm": "application/octet-stream",
    ".pnts": "application/octet-stream", ".terrain": "application/vnd.quantized-mesh",
    ".subtree": "application/octet-stream",
}


def tileset_classification(store: TwinStore, tileset: str) -> str:
    """Classification of a tileset folder: its layer's, or the terrain's; unknown means restricted."""
    m = store.manifest()
    if tileset in m.layers:
        return m.layers[tileset].classification
    base = tileset.split("-")[0]
    if base in m.layers:
        return m.layers[base].classification
    if base == "terrain" and "ground" in m.rasters:
        return m.rasters["ground"].classification
    if base == "pointcloud" and "surface" in m.rasters:
        return m.rasters["surface"].classification
    return "restricted"


def tiles_root(store: TwinStore) -> Path:
    return Path(getattr(store, "root")) / "tiles"


def serve_file(request: Request, path: Path, *, cache_seconds: int, public: bool) -> Response:
    stat = path.stat()
    etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
    cache = f"{'public' if public else 'private'}, max-age={cache_seconds}"
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": cache})
    media = CONTENT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media, headers={"ETag": etag, "Cache-Control": cache})


def tileset_file(store: TwinStore, who: Principal, tileset: str, path: str) -> tuple[Path, str]:
    """The file to serve and the tileset's classification, after the access check."""
    root = tiles_root(store)
    base = (root / tileset).resolve()
    if not base.is_dir() or root.resolve() not in base.parents:
        raise LayerNotFound(f"no tileset '{tileset}'")
    classification = tileset_classification(store, tileset)
    who.require_clearance(classification, f"tileset '{tileset}'")
    target = (base / path).resolve()
    if base not in target.parents or not target.is_file():
        raise ApiError(404, f"no file '{path}' in tileset '{tileset}'")
    return target, classification


def has_tileset(store: TwinStore, layer: str) -> bool:
    return (tiles_root(store) / layer / "tileset.json").is_file()


def router() -> APIRouter:
    r = APIRouter(tags=["3d tiles"])

    def serve(tileset: str, path: str, request: Request, store: TwinStore, who: Principal, settings) -> Response:
        target, classification = tileset_file(store, who, tileset, path)
        return serve_file(request, target, cache_seconds=settings.static_cache_seconds,
                          public=classification == "public")

    @r.get("/tiles/{tileset}/{path:path}", summary="A file of a 3D Tiles tileset or of the terrain")
    def get_tile(tileset: str, path: str, request: Request, store: TwinStore = Depends(get_store),
                 who: Principal = Depends(authorize()), settings=Depends(get_settings)) -> Response:
        return serve(tileset, path, request, store, who, settings)

    @r.get("/ogc/collections/{collection_id}/3dtiles/{path:path}",
           summary="The collection's 3D Tiles (in the spirit of OGC API - 3D GeoVolumes)")
    def get_collection_tiles(collection_id: str, path: str, request: Request, store: TwinStore = Depends(get_store),
                             who: Principal = Depends(authorize()), settings=Depends(get_settings)) -> Response:
        if collection_id not in store.manifest().layers:
            raise LayerNotFound(f"no collection '{collection_id}'")
        return serve(collection_id, path, request, store, who, settings)

    return r
