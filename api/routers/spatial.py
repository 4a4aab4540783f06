"""Spatial questions: what is here, what lies within a radius or polygon, the nearest
facilities by straight line and by road, and building detail. Thin over `twin.query.spatial`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Path, Query, Response
from pydantic import BaseModel, Field

from api.auth import Principal, authorize
from api.routers.features import GEOJSON, layer_index, only
from twin.query import LayerIndex, QueryError
from twin.query import crs as crsmod
from twin.query import spatial as sq
from twin.query.features import collection_json, geometry_in, timestamp
from twin.query.errors import FeatureNotFound

POINT_PARAMS = ("lon", "lat", "x", "y")


class PointParams:
    """A point as lon/lat (WGS 84) or x/y (easting/northing in the project CRS)."""

    def __init__(self, lon: float | None = Query(None, ge=-180, le=180), lat: float | None = Query(None, ge=-90, le=90),
                 x: float | None = Query(None, description="easting, project CRS"),
                 y: float | None = Query(None, description="northing, project CRS")):
        self.lon, self.lat, self.x, self.y = lon, lat, x, y

    def point(self, index: LayerIndex):
        return sq.point_from(index, lon=self.lon, lat=self.lat, x=self.x, y=self.y)


class WithinBody(BaseModel):
    layer: str = Field(..., description="collection to search")
    geometry: dict[str, Any] | str = Field(..., description="GeoJSON geometry object or WKT, in `crs`")
    crs: str | None = Field(None, description="CRS URI of the geometry (axis order of that CRS); default CRS84")
    radius: float | None = Field(None, gt=0, le=sq.MAX_RADIUS_M, description="also take features this many metres away")
    limit: int = Field(1000, ge=1, le=10000)


def _readable_of_kind(index: LayerIndex, who: Principal, kind: str) -> list[str]:
    m = index.store.manifest()
    return [n for n, rec in m.layers.items() if rec.kind == kind and who.can_read(rec.classification)]


def _check(index: LayerIndex, who: Principal, name: str) -> None:
    who.require_clearance(index.record(name).classification, f"collection '{name}'")


def _features(index: LayerIndex, name: str, rows, limit: int) -> Response:
    layer = index.layer(name)
    page = rows[:limit]
    feats = layer.features_json(page, crsmod.crs_info(crsmod.CRS84), index.project)
    body = collection_json(feats, matched=len(rows), links=[], timestamp=timestamp())
    return Response(body, media_type=GEOJSON)


def router() -> APIRouter:
    r = APIRouter(tags=["spatial questions"])
    reader = Depends(authorize())

    @r.get("/api/spatial/here", summary="What is at a point, across every layer the caller may read",
           dependencies=[only(*POINT_PARAMS, "radius")])
    def here(pt: PointParams = Depends(), radius: float = Query(50.0, gt=0, le=sq.MAX_RADIUS_M,
                                                                  description="metres, for point layers"),
             who: Principal = reader, index: LayerIndex = Depends(layer_index)) -> dict:
        point = pt.point(index)
        m = index.store.manifest()
        layers = [n for n in index.names() if who.can_read(m.layers[n].classification)]
        lon, lat = sq.lonlat_of(index, point)
        return {"point": {"lon": float(lon), "lat": float(lat), "x": round(point.x, 3), "y": round(point.y, 3)},
                "layers": sq.what_is_here(index, point, layers, radius)}

    @r.get("/api/spatial/within", summary="Features of a layer within a radius of a point",
           response_class=Response, responses={200: {"content": {GEOJSON: {"schema": {"type": "object"}}}}},
           dependencies=[only(*POINT_PARAMS, "radius", "layer", "limit")])
    def within_radius(pt: PointParams = Depends(), layer: str = Query(..., description="collection to search"),
                      radius: float = Query(..., gt=0, le=sq.MAX_RADIUS_M, description="metres"),
                      limit: int = Query(1000, ge=1, le=10000), who: Principal = reader,
                      index: LayerIndex = Depends(layer_index)) -> Response:
        _check(index, who, layer)
        return _features(index, layer, sq.within(index, layer, pt.point(index), radius), limit)

    @r.post("/api/spatial/within", summary="Features of a layer within a polygon (GeoJSON or WKT)",
            response_class=Response, responses={200: {"content": {GEOJSON: {"schema": {"type": "object"}}}}},
            dependencies=[only()])
    def within_polygon(body: WithinBody = Body(...), who: Principal = reader,
                       index: LayerIndex = Depends(layer_index)) -> Response:
        _check(index, who, body.layer)
        src = crsmod.resolve(body.crs, index.store.manifest().crs, field="crs")
        area = geometry_in(body.geometry, src, index, field="geometry")
        return _features(index, body.layer, sq.within(index, body.layer, area, body.radius), body.limit)

    @r.get("/api/spatial/nearest", summary="Nearest facilities of a kind, by straight line and by road",
           dependencies=[only(*POINT_PARAMS, "kind", "n", "by", "layer", "roads")])
    def nearest(pt: PointParams = Depends(), kind: str | None = Query(None, description="e.g. school, government"),
                n: int = Query(5, ge=1, le=100), by: str = Query("line", pattern="^(line|road)$"),
                layer: str | None = Query(None, description="facility layer; default the first pois layer"),
                roads: str | None = Query(None, description="road layer; default the first roads layer"),
                who: Principal = reader, index: LayerIndex = Depends(layer_index)) -> dict:
        facilities = layer or _default(index, who, "pois", "layer")
        _check(index, who, facilities)
        if roads is not None:
            _check(index, who, roads)
        else:
            readable = _readable_of_kind(index, who, "roads")
            roads = readable[0] if readable else None
        return sq.nearest(index, pt.point(index), facilities, kind=kind, n=n, roads=roads, by=by)

    @r.get("/api/buildings/{building_id}", summary="A building with ground and roof heights",
           dependencies=[only()])
    def building(building_id: str = Path(...), who: Principal = reader,
                 index: LayerIndex = Depends(layer_index)) -> dict:
        for name in _readable_of_kind(index, who, "buildings"):
            try:
                return sq.building_detail(index, name, building_id)
            except FeatureNotFound:
                continue
        raise FeatureNotFound(f"no building '{building_id}'")

    return r


def _default(index: LayerIndex, who: Principal, kind: str, field: str) -> str:
    m = index.store.manifest()
    names = [n for n, rec in m.layers.items() if rec.kind == kind]
    if not names:
        raise QueryError(f"the twin has no {kind} layer; name one", field=field)
    readable = [n for n in names if who.can_read(m.layers[n].classification)]
    if not readable:
        who.require_clearance(m.layers[names[0]].classification, f"collection '{names[0]}'")
    return readable[0]
