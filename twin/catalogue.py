"""The twin's catalogue as plain data (for `twin info --json` and the APIs)."""

from __future__ import annotations

from twin.store.base import TwinStore


def catalogue(store: TwinStore) -> dict:
    m = store.manifest()
    return {
        "city": m.city, "city_zh": m.city_zh, "crs": m.crs, "vertical_datum": m.vertical_datum,
        "extent": list(m.extent), "extent_wgs84": list(m.extent_wgs84),
        "built_at": m.built_at, "tool_version": m.tool_version,
        "layers": [
            {"name": name, "kind": l.kind, "title": l.title, "title_zh": l.title_zh, "count": l.count,
             "crs": m.crs, "geometry_type": l.geometry_type, "bbox": l.bbox, "bbox_wgs84": l.bbox_wgs84,
             "schema": l.schema_, "licences": l.licences, "attributions": l.attributions,
             "classification": l.classification, "repairs": l.repairs, "stats": l.stats, "has_mesh": l.has_mesh}
            for name, l in m.layers.items()
        ],
        "rasters": [
            {"name": name, "kind": r.kind, "crs": m.crs, "shape": r.shape, "resolution": r.resolution,
             "bbox": r.bounds, "method": r.method, "min": r.min, "max": r.max, "licences": r.licences,
             "attributions": r.attributions, "classification": r.classification}
            for name, r in m.rasters.items()
        ],
        "sources": [s.model_dump() for s in m.sources],
    }
