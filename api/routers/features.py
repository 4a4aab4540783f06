"""OGC API - Features Parts 1 (core, GeoJSON, HTML, OpenAPI 3.0), 2 (CRS by reference) and
3 (filtering with CQL2 text and JSON, queryables), mounted under `/ogc`.

The handlers only parse, authorise and frame: queries run in `twin.query` over the
`LayerIndex` that lives on `app.state`.

`/items` is the hot path: an `async def` handler without FastAPI dependencies or
per-parameter validation (the query string is checked by hand: unknown or repeated
parameters and malformed values are still 400s, and the parameters are documented in
OpenAPI through `openapi_extra`). When the layer and its serialised GeoJSON are already
in memory (the common case once warmed) the answer is a sub-millisecond CPU job and is
built on the event loop; anything that may block or run long (the first load of a
layer, a new output CRS, CQL2 filters, property selection, HTML) goes to the threadpool.
"""

from __future__ import annotations

import threading
from typing import Iterable, Mapping
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from api import html
from api.auth import Principal, authorize
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
_INDEX_LOCK = threading.Lock()


def layer_index(request: Request) -> LayerIndex:
    """The app's LayerIndex, made on first use and kept on app.state."""
    index = getattr(request.app.state, "layer_index", None)
    if index is None:
        with _INDEX_LOCK:        # concurrent first requests must not each load every layer
            index = getattr(request.app.state, "layer_index", None)
            if index is None:
                index = LayerIndex(request.app.state.store)
                request.app.state.layer_index = index
    return index


def query_args(request: Request, allowed: frozenset[str]) -> dict[str, str]:
    """The query string as a dict; QueryError (400) for a parameter not in `allowed` or given twice."""
    args: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key not in allowed:
            raise QueryError(f"unknown query parameter '{key}'; allowed: {', '.join(sorted(allowed)) or 'none'}",
                             field=key)
        if key in args:
            raise QueryError(f"query parameter '{key}' given more than once", field=key)
        args[key] = value
    return args


def only(*allowed: str):
    """Dependency refusing any query parameter not in `allowed` (and repeated ones) with a 400."""
    names = frozenset(allowed)

    def dependency(request: Request) -> None:
        query_args(request, names)

    return Depends(dependency)


def wants_html(request: Request, f: str | None) -> bool:
    """`f=json|html`, or `Accept: text/html` (before any JSON type) when `f` is absent."""
    if f is not None and f not in ("json", "html"):
        raise QueryError(f"unknown format '{f}' (use json or html)", field="f")
    accept = request.headers.get("accept", "")
    at_html, at_json = accept.find("text/html"), accept.find("json")
    return f == "html" or (f is None and at_html >= 0 and (at_json < 0 or at_html < at_json))


class Format:
    """`f=json|html`, or `Accept: text/html` when `f` is absent."""

    def __init__(self, request: Request,
                 f: str | None = Query(None, description="Response format", json_schema_extra={"enum": ["json", "html"]})):
        self.html = wants_html(request, f)


def _param(name: str, description: str, **schema) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": "string", **schema}}


# The /items query parameters: documented here, parsed by `ItemsParams` (no FastAPI validation
# on the hot path).
ITEMS_PARAMS = [
    _param("f", "Response format", enum=["json", "html"]),
    _param("limit", "Page size (1.. capped at the server maximum)", type="integer", minimum=1, examples=[100]),
    _param("offset", "Features to skip (>= 0)", type="integer", minimum=0),
    _param("bbox", "minx,miny,maxx,maxy (6 numbers for 3D) in bbox-crs"),
    _param("bbox-crs", "CRS URI of bbox; default CRS84"),
    _param("datetime", "RFC 3339 instant or interval (a/b, '..' open)"),
    _param("filter", "CQL2 filter"),
    _param("filter-lang", "Language of filter", enum=["cql2-text", "cql2-json"]),
    _param("filter-crs", "CRS URI of filter geometries; default CRS84"),
    _param("crs", "CRS URI of the response geometries; default CRS84"),
    _param("properties", "Comma-separated properties to return"),
]
ITEMS_ALLOWED = frozenset(p["name"] for p in ITEMS_PARAMS)


class ItemsParams:
    """Query parameters of /items (raw strings, keyed as in the URL), parsed into a core
    `ItemsQuery` once the layer is known."""

    def __init__(self, args: Mapping[str, str]):
        self.raw = args

    def query(self, index: LayerIndex, name: str, settings) -> ItemsQuery:
        r, project = self.raw, index.store.manifest().crs
        layer = index.layer(name)
        text, lang = r.get("filter"), r.get("filter-lang")
        expr = parse_filter(text, lang) if text is not None else None
        if text is None and lang is not None:
            parse_filter("TRUE", lang)        # still reject an unknown language
        return ItemsQuery(
            limit=parse_limit(r.get("limit"), default=settings.default_page_size, maximum=settings.max_page_size),
            offset=parse_int(r.get("offset"), "offset", default=0, minimum=0),
            bbox=parse_bbox(r.get("bbox")), bbox_crs=crsmod.resolve(r.get("bbox-crs"), project, field="bbox-crs"),
            datetime=parse_datetime(r.get("datetime")), filter=expr,
            filter_crs=crsmod.resolve(r.get("filter-crs"), project, field="filter-crs"),
            crs=crsmod.resolve(r.get("crs"), project, field="crs"),
            properties=parse_properties(r.get("properties"), layer))


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
    return [n for n in index.names() if who.can_read(index.record(n).classification)]


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
        doc = {"title": f"City twin: {m.city}", "description": "OGC API - Features over the twin's layers and scenario results; "
                                          "OGC API - Processes for scenarios",
               "links": _self_links(request, "") + [
                   {"href": base + request.app.openapi_url, "rel": "service-desc",
                    "type": "application/vnd.oai.openapi+json;version=3.0", "title": "OpenAPI definition"},
                   {"href": base + (request.app.docs_url or "/docs"), "rel": "service-doc", "type": "text/html",
                    "title": "API documentation"},
                   {"href": _url(request, "/conformance"), "rel": "conformance", "type": "application/json",
                    "title": "conformance classes"},
                   {"href": _url(request, "/collections"), "rel": "data", "type": "application/json",
                    "title": "collections"}] + ([
                   {"href": _url(request, "/processes"), "rel": "http://www.opengis.net/def/rel/ogc/1.0/processes",
                    "type": "application/json", "title": "processes"},
                   {"href": _url(request, "/jobs"), "rel": "http://www.opengis.net/def/rel/ogc/1.0/job-list",
                    "type": "application/json", "title": "jobs"}] if hasattr(request.app.state, "jobs") else [])}
        return _render(request, fmt, doc, doc["title"])

    r.add_api_route("/", landing, methods=["GET"], include_in_schema=False, dependencies=[only("f")])

    @r.get("/conformance", summary="Conformance classes", responses=_content(
        {"type": "object", "properties": {"conformsTo": {"type": "array", "items": {"type": "string"}}}}),
        response_class=Response, dependencies=[only("f")])
    def conformance(request: Request, fmt: Format = Depends()) -> Response:
        classes = CONFORMANCE + list(getattr(request.app.state, "extra_conformance", []))
        doc = {"conformsTo": classes, "links": _self_links(request, "/conformance")}
        return _render(request, fmt, doc, "Conformance",
                       html.page("Conformance", html.table([{"class": c} for c in classes])))

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

    @r.get("/collections/{collection_id}/items", summary="Features of a collection",
           responses=_content(_FC_SCHEMA, GEOJSON), response_class=Response,
           openapi_extra={"parameters": ITEMS_PARAMS})
    async def items(request: Request, collection_id: str = Path(...)) -> Response:
        args = query_args(request, ITEMS_ALLOWED)
        as_html = wants_html(request, args.get("f"))
        who = request.app.state.keyring.principal(request)
        index = getattr(request.app.state, "layer_index", None)
        if not as_html and index is not None and _in_memory(index, collection_id, args):
            return _items(request, index, collection_id, args, who, False)
        return await run_in_threadpool(_items, request, layer_index(request), collection_id, args, who, as_html)

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


def _in_memory(index: LayerIndex, name: str, args: Mapping[str, str]) -> bool:
    """Whether /items can be answered from memory in well under a millisecond: layer loaded, its
    GeoJSON serialised for the output CRS, no CQL2 filter or property selection, bbox in CRS84
    (whose transformer `LayerIndex.warm` builds; a first transformer reads PROJ's database)."""
    if "filter" in args or "properties" in args or args.get("bbox-crs", crsmod.CRS84) != crsmod.CRS84:
        return False
    layer = index.loaded(name)
    if layer is None:
        return False
    try:
        out = crsmod.resolve(args.get("crs"), index.store.manifest().crs, field="crs")
    except QueryError:
        return False          # reported by the full path, after the access checks
    return layer.serialised(out.uri)


def _items(request: Request, index: LayerIndex, name: str, args: Mapping[str, str], who: Principal,
           as_html: bool) -> Response:
    _authorised(index, who, name)
    q = ItemsParams(args).query(index, name, request.app.state.settings)
    result = query_items(index, name, q)
    links = _page_links(request, name, q, result.matched)
    headers = {"Content-Crs": f"<{q.crs.uri}>"}
    body = collection_json(result.features, matched=result.matched, links=links, timestamp=timestamp())
    if as_html:
        return HTMLResponse(html.feature_collection(name, orjson.loads(body), q.crs.swap), headers=headers)
    return Response(body, media_type=GEOJSON, headers=headers)


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
