"""Canonical columns of each vector layer kind in the twin.

Drivers may return these names directly (OSM, CityJSON, IFC) or raw attributes
that `FieldMap` maps onto them (plain vector files). Everything else a source
carries is kept, as JSON, in `attrs`.
"""

from __future__ import annotations

COMMON = ["id", "source", "source_id", "name", "attrs"]

COLUMNS: dict[str, list[str]] = {
    "buildings": COMMON + [
        "use", "use_raw", "height", "height_rule", "levels", "ground", "roof",
        "underground", "layer", "area", "population", "capacity",
    ],
    "roads": COMMON + ["highway", "oneway", "lanes", "layer", "bridge", "tunnel", "length", "u", "v", "nodes"],
    "pois": COMMON + ["kind", "capacity"],
    "water": COMMON + ["kind"],
    "landuse": COMMON + ["kind"],
    "bim": COMMON + ["model", "global_id", "ifc_class", "storey", "psets", "z_min", "z_max"],
}

# Allowed geometry types per kind (after multi-part normalisation).
GEOMETRY_TYPES: dict[str, set[str]] = {
    "buildings": {"Polygon", "MultiPolygon"},
    "roads": {"LineString", "MultiLineString"},
    "pois": {"Point", "MultiPoint", "Polygon", "MultiPolygon"},  # polygons become points (centroid)
    "water": {"Polygon", "MultiPolygon", "LineString", "MultiLineString"},
    "landuse": {"Polygon", "MultiPolygon"},
    "bim": {"Polygon", "MultiPolygon"},
}

# OSM `building=*` values (and similar) -> normalised use classes.
USE_CLASSES: dict[str, str] = {
    "apartments": "residential", "residential": "residential", "house": "residential",
    "detached": "residential", "dormitory": "residential", "terrace": "residential",
    "semidetached_house": "residential",
    "commercial": "commercial", "retail": "commercial", "hotel": "commercial", "supermarket": "commercial",
    "kiosk": "commercial", "mall": "commercial",
    "office": "office",
    "industrial": "industrial", "warehouse": "industrial", "factory": "industrial",
    "school": "school", "university": "school", "college": "school", "kindergarten": "school",
    "hospital": "health", "clinic": "health",
    "public": "public", "government": "public", "civic": "public", "library": "public",
    "community_centre": "public", "fire_station": "public", "townhall": "public",
    "train_station": "transport", "transportation": "transport", "parking": "transport", "trn": "transport",
    "roof": "structure", "construction": "structure",
    "church": "religious", "temple": "religious", "mosque": "religious",
}
USES = sorted(set(USE_CLASSES.values()) | {"other"})


def normalise_use(raw: object) -> str:
    if raw is None or (isinstance(raw, float) and raw != raw):
        return "other"
    return USE_CLASSES.get(str(raw).strip().lower(), "other")
