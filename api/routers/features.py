"""OGC API - Features Parts 1 (core, GeoJSON, HTML, OpenAPI 3.0), 2 (CRS by reference) and
3 (filtering with CQL2 text and JSON, queryables), mounted under `/ogc`.

The handlers only parse, authorise and frame: queries run in `twin.query` over the
`LayerIndex` that lives on `app.state`.
"""

from __future__ import annotations

from typing import Iterable
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse

from api import html
from api.auth import Principal, authorize
from api.deps import get_settings
from api.routers.tiles import has_tileset
from twin.query import LayerIndex, QueryError
from twin.query import crs as crsmod
from twin.query.cql2 import parse as parse_filter
from twin.query.features import (ItemsQuery, collection_json, extent_of, feature_json, parse_bbox, parse_datetime,
                                 parse_int, parse_limit, parse_properties, query_items, timestamp)

PREFIX = "/ogc"
GEOJSON = "application/geo+json"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/property-property",
]
_LINK = {"type": "object", "required": ["href", "rel"],
         "properties": {"href": {"type": "string"}, "rel": {"type": "string"}, "type": {"type": "string"},
                        "title": {"type": "string"}}}
_FC_SCHEMA = {"type": "object", "required": ["type", "features"], "properties": {
    "type": {"type": "string", "enum": ["FeatureCollection"]}, "features": {"type": "array", "items": {
        "type": "object", "properties": {"type": {"type": "string"}, "id": {"type": "string"},
                                         "geometry": {"type": "object", "nullable": True},
                                         "properties": {"type": "object", "nullable": True}}}},
    "numberMatched": {"type": "integer"}, "numberReturned": {"type": "integer"},
    "timeStamp": {"type": "string", "format": "date-time"}, "links": {"type": "array", "items": _LINK}}}
_DOC = {"type": "object", "properties": {"links": {"type": "array", "items": _LINK}}}


def _content(schema: dict, media: str = "application/json") -> dict:
    return {200: {"content": {media: {"schema": schema}, "text/html": {"schema": {"type": "string"}}}}}


# -- dependencies ------------------------------------------------------------------------------
def layer_index(request: Request) -> LayerIndex:
    """The app's LayerIndex, made on first use and kept on app.state."""
    index = getattr(request.app.state, "layer_index", None)
    if index is None:
        index = LayerIndex(request.app.state.store)
        request.app.state.layer_index = index
    return index


def only(*allowed: str):
    """Dependency refusing any query parameter not in `allowed` (and repeated ones) with a 400."""
    names = frozenset(allowed)

    def dependency(request: Request) -> None:
        seen: set[str] = set()
        for key, _ in request.query_params.multi_items():
            if key not in names:
                raise QueryError(f"unknown query parameter '{key}'; allowed: {', '.join(sorted(names)) or 'none'}",
                                 field=key)
            if key in seen:
                raise QueryError(f"query parameter '{key}' given more than once", field=key)
            seen.add(key)

    return Depends(dependency)


class Format:
    """`f=json|html`, or `Accept: text/html` when `f` is absent."""

    def __init__(self, request: Request,
                 f: str | None = Query(None, description="Response format", json_schema_extra={"enum": ["json", "html"]})):
        if f is not None and f not in ("json", "html"):
            raise QueryError(f"unknown format '{f}' (use json or html)", field="f")
        accept = request.headers.get("accept", "")
        at_html, at_json = accept.find("text/html"), accept.find("json")
        self.html = f == "html" or (f is None and at_html >= 0 and (at_json < 0 or at_html < at_json))


class ItemsParams:
    """Query parameters of /items, parsed into a core `ItemsQuery` once the layer is known."""

    def __init__(self,
                 limit: str | None = Query(None, description="Page size (1.. capped at the server maximum)",
                                           examples=["100"]),
                 offset: str | None = Query(None, description="Features to skip (>= 0)"),
                 bbox: str | None = Query(None, description="minx,miny,maxx,maxy (6 numbers for 3D) in bbox-crs"),
                 bbox_crs: str | None = Query(None, alias="bbox-crs", description="CRS URI of bbox; default CRS84"),
                 datetime_: str | None = Query(None, alias="datetime",
                                               description="RFC 3339 instant or interval (a/b, '..' open)"),
                 filter_: str | None = Query(None, alias="filter", description="CQL2 filter"),
                 filter_lang: str | None = Query(None, alias="filter-lang", json_schema_extra={"enum": ["cql2-text", "cql2-json"]}),
                 filter_crs: str | None = Query(None, alias="filter-crs",
                                                description="CRS URI of filter geometries; default CRS84"),
                 crs: str | None = Query(None, description="CRS URI of the response geometries; default CRS84"),
                 properties: str | None = Query(None, description="Comma-separated properties to return")):
        self.raw = dict(limit=limit, offset=offset, bbox=bbox, bbox_crs=bbox_crs, datetime=datetime_,
                        filter=filter_, filter_lang=filter_lang, filter_crs=filter_crs, crs=crs,
                        properties=properties)

    def query(self, index: LayerIndex, name: str, settings) -> ItemsQuery:
        r, project = self.raw, index.store.manifest().crs
        layer = index.layer(name)
        expr = parse_filter(r["filter"], r["filter_lang"]) if r["filter"] is not None else None
        if r["filter"] is None and r["filter_lang"] is not None:
            parse_filter("TRUE", r["filter_lang"])        # still reject an unknown language
        return ItemsQuery(
            limit=parse_limit(r["limit"], default=settings.default_page_size, maximum=settings.max_page_size),
            offset=parse_int(r["offset"], "offset", default=0, minimum=0),
            bbox=parse_bbox(r["bbox"]), bbox_crs=crsmod.resolve(r["bbox_crs"], project, field="bbox-crs"),
            datetime=parse_datetime(r["datetime"]), filter=expr,
            filter_crs=crsmod.resolve(r["filter_crs"], project, field="filter-crs"),
            crs=crsmod.resolve(r["crs"], project, field="crs"), properties=parse_properties(r["properties"], layer))


# -- documents ---------------------------------------------------------------------------------
def _url(request: Request, path: str, **params) -> str:
    base = str(request.base_url).rstrip("/") + PREFIX + path
    params = {k: v for k, v in params.items() if v is not None}
    return base + ("?" + urlencode(params) if params else "")


def _self_links(request: Request, path: str, media: str = "application/json", **params) -> list[dict]:
    return [{"href": _url(request, path, f="json", **params), "rel": "self", "type": media,
             "title": "this document"},
            {"href": _url(request, path, f="html", **params), "rel": "alternate", "type": "text/html",
             "title": "as HTML"}]


def _render(request: Request, fmt: Format, doc: dict, title: str, body_html: str | None = None,
            media: str = "application/json", headers: dict | None = None) -> Response:
    if fmt.html:
        body = body_html if body_html is not None else html.page(title, html.links_list(doc.get("links", [])))
        return HTMLResponse(body, headers=headers)
    return Response(orjson.dumps(doc), media_type=media, headers=headers)


def _readable(index: LayerIndex, who: Principal) -> Iterable[str]:
    m = index.store.manifest()
    return [n for n in index.names() if who.can_read(m.layers[n].classification)]


def _authorised(index: LayerIndex, who: Principal, collection: str) -> None:
    record = index.record(collection)
    who.require_clearance(record.classification, f"collection '{collection}'")


def collection_doc(request: Request, index: LayerIndex, name: str) -> dict:
    rec, m = index.record(name), index.store.manifest()
    crs84 = crsmod.crs_info(crsmod.CRS84)
    bbox = extent_of(index, name, crs84)
    storage = crsmod.project_uri(m.crs)
    path = f"/collections/{name}"
    layer_has_time = index.layer(name).temporal
    return {
        "id": name, "title": rec.title or name, "description": (
            f"{rec.kind} layer, {rec.count} features, classification {rec.classification}. "
            + (f"datetime filters on '{layer_has_time}'." if layer_has_time else
               "The layer has no temporal property: a valid datetime is accepted and ignored.")),
        "itemType": "feature",
        "extent": {"spatial": {"bbox": [bbox] if bbox else [], "crs": crsmod.CRS84}},
        "crs": crsmod.supported_uris(m.crs), "storageCrs": storage,
        "links": _self_links(request, path) + [
            {"href": _url(request, f"{path}/items", f="json"), "rel": "items", "type": GEOJSON, "title": "features"},
            {"href": _url(request, f"{path}/items", f="html"), "rel": "items", "type": "text/html",
             "title": "features as HTML"},
            {"href": _url(request, f"{path}/queryables"), "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
             "type": "application/schema+json", "title": "queryables"}] + ([
            {"href": _url(request, f"{path}/3dtiles/tileset.json"), "rel": "items",
             "type": "application/json+3dtiles", "title": "3D Tiles (OGC API - 3D GeoVolumes style)"}]
            if has_tileset(index.store, name) else []),
    }


_JSON_TYPES = {"number": "number", "integer": "integer", "boolean": "boolean", "string": "string"}


def queryables_doc(request: Request, index: LayerIndex, name: str) -> dict:
    layer = index.layer(name)
    props: dict[str, dict] = {"geometry": {"title": "geometry", "format": f"geometry-{layer.geometry_family()}"
                                           .replace("geometry-line", "geometry-linestring")
                                           .replace("geometry-polygon", "geometry-any")
                                           .replace("geometry-linestring", "geometry-any")}}
    for col, kind in layer.kinds.items():
        props[col] = ({"title": col, "type": "string", "format": "date-time"} if kind == "datetime"
                      else {"title": col, "type": _JSON_TYPES[kind]})
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": _url(request, f"/collections/{name}/queryables"), "type": "object",
            "title": layer.record.title or name, "properties": props, "additionalProperties": False}


# -- router ------------------------------------------------------------------------------------
def router() -> APIRouter:
    r = APIRouter(prefix=PREFIX, tags=["features (OGC API)"])
    reader = Depends(authorize())

    @r.get("", summary="OGC API landing page", responses=_content(_DOC), response_class=Response,
           dependencies=[only("f")])
    def landing(request: Request, fmt: Format = Depends()) -> Response:
        m = request.app.state.store.manifest()
        base = str(request.base_url).rstrip("/")
        doc = {"title": f"City twin: {m.city}", "description": "OGC API - Features over the twin's vector layers",
               "links": _self_links(request, "") + [
                   {"href": base + request.app.openapi_url, "rel": "service-desc",
                    "type": "application/vnd.oai.openapi+json;version=3.0", "title": "OpenAPI definition"},
                   {"href": base + (request.app.docs_url or "/docs"), "rel": "service-doc", "type": "text/html",
                    "title": "API documentation"},
                   {"href": _url(request, "/conformance"), "rel": "conformance", "type": "application/json",
                    "title": "conformance classes"},
                   {"href": _url(request, "/collections"), "rel": "data", "type": "application/json",
                    "title": "collections"}]}
        return _render(request, fmt, doc, doc["title"])

    r.add_api_route("/", landing, methods=["GET"], include_in_schema=False, dependencies=[only("f")])

    @r.get("/conformance", summary="Conformance classes", responses=_content(
        {"type": "object", "properties": {"conformsTo": {"type": "array", "items": {"type": "string"}}}}),
        response_class=Response, dependencies=[only("f")])
    def conformance(request: Request, fmt: Format = Depends()) -> Response:
        doc = {"conformsTo": CONFORMANCE, "links": _self_links(request, "/conformance")}
        return _render(request, fmt, doc, "Conformance",
                       html.page("Conformance", html.table([{"class": c} for c in CONFORMANCE])))

    @r.get("/collections", summary="Collections the caller may read", responses=_content(_DOC),
           response_class=Response, dependencies=[only("f")])
    def collections(request: Request, fmt: Format = Depends(), who: Principal = reader,
                    index: LayerIndex = Depends(layer_index)) -> Response:
        docs = [collection_doc(request, index, n) for n in _readable(index, who)]
        doc = {"collections": docs, "crs": crsmod.supported_uris(index.store.manifest().crs),
               "links": _self_links(request, "/collections")}
        rows = [{"id": {"href": _url(request, f"/collections/{d['id']}", f="html"), "title": d["id"]},
                 "title": d["title"], "description": d["description"]} for d in docs]
        return _render(request, fmt, doc, "Collections", html.page("Collections", html.table(rows), doc["links"]))

    @r.get("/collections/{collection_id}", summary="One collection", responses=_content(_DOC),
           response_class=Response, dependencies=[only("f")])
    def collection(request: Request, collection_id: str = Path(...), fmt: Format = Depends(),
                   who: Principal = reader, index: LayerIndex = Depends(layer_index)) -> Response:
        _authorised(index, who, collection_id)
        doc = collection_doc(request, index, collection_id)
        body = html.page(doc["title"], f"<p>{html.escape(doc['description'])}</p>" + html.links_list(doc["links"]),
                         doc["links"])
        return _render(request, fmt, doc, doc["title"], body)

    @r.get("/collections/{collection_id}/queryables", summary="Queryable properties (JSON Schema)",
           responses=_content({"type": "object"}, "application/schema+json"), response_class=Response,
           dependencies=[only("f")])
    def queryables(request: Request, collection_id: str = Path(...), fmt: Format = Depends(),
                   who: Principal = reader, index: LayerIndex = Depends(layer_index)) -> Response:
        _authorised(index, who, collection_id)
        doc = queryables_doc(request, index, collection_id)
        rows = [{"name": k, **v} for k, v in doc["properties"].items()]
        return _render(request, fmt, doc, f"Queryables of {collection_id}",
                       html.page(f"Queryables of {collection_id}", html.table(rows)), "application/schema+json")

    items_params = ("f", "limit", "offset", "bbox", "bbox-crs", "datetime", "filter", "filter-lang", "filter-crs",
                    "crs", "properties")

    @r.get("/collections/{collection_id}/items", summary="Features of a collection",
           responses=_content(_FC_SCHEMA, GEOJSON), response_class=Response, dependencies=[only(*items_params)])
    def items(request: Request, collection_id: str = Path(...), fmt: Format = Depends(),
              params: ItemsParams = Depends(), who: Principal = reader, index: LayerIndex = Depends(layer_index),
              settings=Depends(get_settings)) -> Response:
        _authorised(index, who, collection_id)
        q = params.query(index, collection_id, settings)
        result = query_items(index, collection_id, q)
        links = _page_links(request, collection_id, q, result.matched)
        headers = {"Content-Crs": f"<{q.crs.uri}>"}
        body = collection_json(result.features, matched=result.matched, links=links, timestamp=timestamp())
        if fmt.html:
            return HTMLResponse(html.feature_collection(collection_id, orjson.loads(body), q.crs.swap), headers=headers)
        return Response(body, media_type=GEOJSON, headers=headers)

    @r.get("/collections/{collection_id}/items/{feature_id}", summary="One feature",
           responses=_content({"type": "object"}, GEOJSON), response_class=Response,
           dependencies=[only("f", "crs", "properties")])
    def item(request: Request, collection_id: str = Path(...), feature_id: str = Path(...), fmt: Format = Depends(),
             crs: str | None = Query(None, description="CRS URI of the response geometry; default CRS84"),
             properties: str | None = Query(None, description="Comma-separated properties to return"),
             who: Principal = reader, index: LayerIndex = Depends(layer_index)) -> Response:
        _authorised(index, who, collection_id)
        out = crsmod.resolve(crs, index.store.manifest().crs, field="crs")
        select = parse_properties(properties, index.layer(collection_id))
        feat = feature_json(index, collection_id, feature_id, out, select)
        path = f"/collections/{collection_id}/items/{feature_id}"
        links = _self_links(request, path, GEOJSON, crs=crs) + [
            {"href": _url(request, f"/collections/{collection_id}"), "rel": "collection", "type": "application/json",
             "title": collection_id}]
        body = feat[:-1].encode() + b',"links":' + orjson.dumps(links) + b"}"
        headers = {"Content-Crs": f"<{out.uri}>"}
        if fmt.html:
            return HTMLResponse(html.feature(feature_id, orjson.loads(body), out.swap), headers=headers)
        return Response(body, media_type=GEOJSON, headers=headers)

    return r


def _page_links(request: Request, name: str, q: ItemsQuery, matched: int) -> list[dict]:
    keep = {k: v for k, v in request.query_params.items() if k not in ("offset", "f")}
    path = f"/collections/{name}/items"
    links = [{"href": _url(request, path, **keep, f="json", offset=q.offset or None), "rel": "self",
              "type": GEOJSON, "title": "this page"},
             {"href": _url(request, path, **keep, f="html", offset=q.offset or None), "rel": "alternate",
              "type": "text/html", "title": "this page as HTML"},
             {"href": _url(request, f"/collections/{name}"), "rel": "collection", "type": "application/json",
              "title": name}]
    if q.offset + q.limit < matched:
        for f, media in (("json", GEOJSON), ("html", "text/html")):
            links.append({"href": _url(request, path, **keep, f=f, offset=q.offset + q.limit), "rel": "next",
                          "type": media, "title": "next page"})
    if q.offset > 0:
        for f, media in (("json", GEOJSON), ("html", "text/html")):
            links.append({"href": _url(request, path, **keep, f=f, offset=max(q.offset - q.limit, 0)),
                          "rel": "prev", "type": media, "title": "previous page"})
    return links
