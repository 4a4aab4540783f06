"""Stored rows as SensorThings JSON: @iot.id, @iot.selfLink, navigation links, $select, $expand, paging."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson

from simulate.sensors.entities import decode_result
from simulate.sensors.model import ENTITIES, EntityType, Prop, render_interval, self_link
from simulate.sensors.odata import Query
from simulate.sensors.store import Page


def value_of(prop: Prop, row: dict[str, Any]) -> Any:
    kind = prop.kind
    if kind == "interval":
        return render_interval(row.get(f"{prop.column}_start"), row.get(f"{prop.column}_end"))
    if kind == "result":
        return decode_result(row["result"], row["result_kind"])
    raw = row.get(prop.column)
    if kind in ("json", "geo") and raw is not None:
        return orjson.loads(raw)
    return raw


def entity(et: EntityType, row: dict[str, Any], base: str, q: Query) -> dict[str, Any]:
    sel = set(q.select) if q.select else None
    link = self_link(base, et.set_name, row["id"])
    out: dict[str, Any] = {}
    if sel is None or "id" in sel or "@iot.id" in sel:
        out["@iot.id"] = row["id"]
    if sel is None or "@iot.selfLink" in sel:
        out["@iot.selfLink"] = link
    for p in et.props:
        if sel is None or p.name in sel:
            out[p.name] = value_of(p, row)
    expanded = row.get("@expand", {})
    sub = {e.nav: e.query for e in q.expand}
    for n in et.navs:
        if n.name in expanded:
            value = expanded[n.name]
            target = ENTITIES[n.target]
            if isinstance(value, Page):
                out[n.name] = [entity(target, r, base, sub[n.name]) for r in value.rows]
                if value.count is not None:
                    out[f"{n.name}@iot.count"] = value.count
                if value.next_skip is not None:
                    out[f"{n.name}@iot.nextLink"] = next_link(f"{link}/{n.name}", sub[n.name], value)
            else:
                out[n.name] = None if value is None else entity(target, value, base, sub[n.name])
        elif sel is None or n.name in sel:
            out[f"{n.name}@iot.navigationLink"] = f"{link}/{n.name}"
    return out


def next_link(url: str, q: Query, page: Page) -> str:
    options = {k: v for k, v in q.raw.items() if k not in ("$skip", "$top")}
    options["$top"] = str(page.next_skip - q.skip)
    options["$skip"] = str(page.next_skip)
    return url + "?" + urlencode(options, safe="$(),;=/:'")


def collection(et: EntityType, page: Page, base: str, path: str, q: Query) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if page.count is not None:
        out["@iot.count"] = page.count
    out["value"] = [entity(et, r, base, q) for r in page.rows]
    if page.next_skip is not None:
        out["@iot.nextLink"] = next_link(f"{base}{path}", q, page)
    return out
