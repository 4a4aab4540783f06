"""Server-side HTML views of the OGC API documents: plain tables and a small inline SVG map
(no scripts, no CDN), built from the same JSON documents the API returns."""

from __future__ import annotations

from html import escape
from typing import Any, Iterable

STYLE = ("body{font-family:system-ui,sans-serif;margin:1.5rem;max-width:70rem}table{border-collapse:collapse;"
         "font-size:.85rem}td,th{border:1px solid #ccc;padding:.2rem .4rem;text-align:left;vertical-align:top}"
         "th{background:#f3f3f3}svg{border:1px solid #ccc;background:#fafafa}nav a{margin-right:1rem}")


def page(title: str, body: str, links: Iterable[dict] = ()) -> str:
    nav = "".join(f'<a href="{escape(l["href"])}">{escape(l.get("title") or l["rel"])}</a>'
                  for l in links if l.get("type") in ("application/json", "application/geo+json"))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><nav>{nav}</nav><h1>{escape(title)}</h1>{body}</body></html>")


def _cell(value: Any) -> str:
    if isinstance(value, dict) and "href" in value:
        return f'<a href="{escape(value["href"])}">{escape(str(value.get("title") or value["href"]))}</a>'
    text = "" if value is None else str(value)
    return escape(text if len(text) <= 160 else text[:157] + "...")


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p>Nothing to show.</p>"
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def links_list(links: list[dict]) -> str:
    return table([{"rel": l["rel"], "type": l.get("type"), "link": {"href": l["href"], "title": l.get("title")}}
                  for l in links])


def _rings(geometry: dict | None) -> list[list]:
    if not geometry:
        return []
    t, c = geometry.get("type"), geometry.get("coordinates")
    if t == "Point":
        return [[c]]
    if t in ("LineString", "MultiPoint"):
        return [c]
    if t in ("Polygon", "MultiLineString"):
        return list(c)
    if t == "MultiPolygon":
        return [ring for poly in c for ring in poly]
    if t == "GeometryCollection":
        return [r for g in geometry.get("geometries", []) for r in _rings(g)]
    return []


def svg_map(features: list[dict], width: int = 640, height: int = 400, lat_first: bool = False) -> str:
    """Outline of the features (CRS84 unless `lat_first`), scaled to fit."""
    rings = [[(p[1], p[0]) if lat_first else (p[0], p[1]) for p in ring]
             for f in features for ring in _rings(f.get("geometry")) if ring]
    pts = [p for r in rings for p in r]
    if not pts:
        return ""
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    scale = min((width - 20) / ((x1 - x0) or 1e-9), (height - 20) / ((y1 - y0) or 1e-9))

    def xy(p):
        return f"{10 + (p[0] - x0) * scale:.1f},{height - 10 - (p[1] - y0) * scale:.1f}"

    shapes = []
    for r in rings:
        if len(r) == 1:
            shapes.append(f'<circle cx="{xy(r[0]).split(",")[0]}" cy="{xy(r[0]).split(",")[1]}" r="3"/>')
        else:
            shapes.append(f'<polyline points="{" ".join(xy(p) for p in r)}"/>')
    return (f'<svg width="{width}" height="{height}" fill="none" stroke="#2563eb" stroke-width="1">'
            + "".join(shapes) + "</svg>")


def feature_collection(title: str, fc: dict, lat_first: bool) -> str:
    feats = fc.get("features", [])
    rows = [{"id": {"href": f"items/{f['id']}", "title": f["id"]}, **(f.get("properties") or {})} for f in feats]
    counts = f"<p>{fc.get('numberReturned')} of {fc.get('numberMatched', '?')} features</p>"
    pager = " ".join(f'<a href="{escape(l["href"])}">{escape(l["rel"])}</a>'
                     for l in fc.get("links", []) if l["rel"] in ("prev", "next") and l.get("type") == "text/html")
    return page(title, counts + svg_map(feats, lat_first=lat_first) + f"<p>{pager}</p>" + table(rows),
                fc.get("links", []))


def feature(title: str, feat: dict, lat_first: bool) -> str:
    props = [{"property": k, "value": v} for k, v in (feat.get("properties") or {}).items()]
    return page(title, svg_map([feat], lat_first=lat_first) + table(props), feat.get("links", []))
