"""IFC (BIM) models: one row per element with its footprint, and one triangle mesh.

Geometry comes from the IfcOpenShell iterator in the model's world coordinates
(metres); `layers.ifc_georef` then puts the model into the project CRS.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import ifcopenshell
import ifcopenshell.geom
import ifcopenshell.util.element
import ifcopenshell.util.placement
import ifcopenshell.util.shape
import ifcopenshell.util.unit
import numpy as np
import shapely
from shapely.errors import GEOSException

from layers.base import Driver, Ingested, IngestContext, MeshData
from layers.errors import EmptyLayerError, SourceCorrupt, SourceNotFound
from layers.ifc_georef import resolve_georeference

if TYPE_CHECKING:
    from twin.config import SourceConfig

EXCLUDED_CLASSES = ("IfcOpeningElement", "IfcAnnotation", "IfcGrid")
# Footprints of elements with no plan area (a vertical plate, a line) are widened to this (m).
MIN_FOOTPRINT_WIDTH = 0.01
# Holes smaller than this (m^2) are seams between triangles, not courtyards or shafts.
_MIN_HOLE_AREA = 1e-4
# Triangles whose plan area is below this (m^2) are walls seen edge-on and add nothing to a footprint.
_MIN_TRIANGLE_AREA = 1e-9
# The hybrid kernel gives the same triangles as OpenCASCADE but runs its booleans 2-3x faster.
_GEOMETRY_LIBRARY = "hybrid-cgal-simple-opencascade"
_STEP_MAGIC = b"ISO-10303-21;"
_STEP_END = b"END-ISO-10303-21;"


class IfcDriver(Driver):
    formats = ("ifc",)
    kinds = ("bim",)

    def read(self, path: Path, source: "SourceConfig", kind: str, ctx: IngestContext) -> Ingested:
        model = open_model(path)
        elements = geometric_elements(model)
        if not elements:
            raise EmptyLayerError("the model has no element with a geometric representation", source=str(path))
        meshes = triangulate(model, elements)
        kept = [e for e in elements if e.id() in meshes]
        notes = [f"{path.name}: no geometry for {e.is_a()} {e.GlobalId}; skipped"
                 for e in elements if e.id() not in meshes]
        if not kept:
            raise EmptyLayerError("IfcOpenShell produced no geometry for any element", source=str(path))

        local = _concatenate([meshes[e.id()] for e in kept])
        georef = resolve_georeference(model, path, source.placement, ctx, base_z=base_height(model, kept, local))
        vertices = georef.to_project(local.vertices)
        mesh = MeshData(vertices=vertices, faces=local.faces, face_feature=local.face_feature, crs=ctx.crs)

        frame = element_frame(kept, source.source_name)
        frame["z_min"], frame["z_max"] = _z_range(vertices, local.vertex_feature, len(kept))
        frame = gpd.GeoDataFrame(frame, geometry=footprints(mesh, len(kept)), crs=ctx.crs)
        origin = georef.to_project(np.zeros((1, 3)))[0]
        return Ingested(
            frame=frame,
            mesh=mesh,
            notes=notes + georef.notes,
            provenance={
                "georeference": georef.method,
                "schema": model.schema,
                "elements": len(kept),
                "origin_project": [float(v) for v in origin],
                "rotation_deg": float(georef.rotation_deg),
                **georef.details,
            },
        )


# --- reading --------------------------------------------------------------------------


def open_model(path: Path) -> ifcopenshell.file:
    """Open an IFC-SPF file; a missing, foreign or truncated file is an error naming `path`."""
    if not path.is_file():
        raise SourceNotFound("IFC file not found", source=str(path))
    with path.open("rb") as fh:
        head = fh.read(64)
        fh.seek(max(0, path.stat().st_size - 256))
        tail = fh.read()
    if not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(_STEP_MAGIC):
        raise SourceCorrupt("not an IFC STEP file (no 'ISO-10303-21;' header)", source=str(path))
    # IfcOpenShell parses a truncated file without complaint and silently drops what is missing.
    if not tail.rstrip().endswith(_STEP_END):
        raise SourceCorrupt("IFC file is truncated (no 'END-ISO-10303-21;' at the end)", source=str(path))
    try:
        model = ifcopenshell.open(str(path))
    except (ifcopenshell.Error, OSError, RuntimeError) as exc:
        raise SourceCorrupt(f"IFC file cannot be parsed: {exc}", source=str(path)) from None
    if not model.by_type("IfcProject"):
        raise SourceCorrupt("IFC file has no IfcProject", source=str(path))
    return model


def geometric_elements(model: ifcopenshell.file) -> list[ifcopenshell.entity_instance]:
    """Every IfcProduct with a representation except openings, annotations and grids, in file order."""
    products = (p for p in model.by_type("IfcProduct") if p.Representation is not None)
    return sorted((p for p in products if not any(p.is_a(c) for c in EXCLUDED_CLASSES)), key=lambda p: p.id())


def triangulate(model: ifcopenshell.file,
                elements: list[ifcopenshell.entity_instance]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Step id -> (vertices (N, 3) metres in world coordinates, faces (M, 3))."""
    settings = ifcopenshell.geom.settings()
    settings.set("use-world-coords", True)
    settings.set("weld-vertices", True)
    threads = max(1, min(os.cpu_count() or 1, 8))
    iterator = ifcopenshell.geom.iterator(settings, model, threads, include=elements,
                                          geometry_library=_GEOMETRY_LIBRARY)
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if not iterator.initialize():
        return out
    while True:
        shape = iterator.get()
        verts = ifcopenshell.util.shape.get_vertices(shape.geometry).copy()
        faces = ifcopenshell.util.shape.get_faces(shape.geometry).astype(np.int64)
        if len(faces):
            out[shape.id] = (verts, faces)
        if not iterator.next():
            return out


@dataclass
class _LocalMesh:
    vertices: np.ndarray        # (N, 3) model metres
    faces: np.ndarray           # (M, 3) into vertices
    face_feature: np.ndarray    # (M,) row
    vertex_feature: np.ndarray  # (N,) row


def _concatenate(parts: list[tuple[np.ndarray, np.ndarray]]) -> _LocalMesh:
    n_verts = np.array([len(v) for v, _ in parts])
    n_faces = np.array([len(f) for _, f in parts])
    offsets = np.concatenate([[0], np.cumsum(n_verts)[:-1]])
    rows = np.arange(len(parts))
    return _LocalMesh(
        vertices=np.concatenate([v for v, _ in parts]),
        faces=np.concatenate([f for _, f in parts]) + np.repeat(offsets, n_faces)[:, None],
        face_feature=np.repeat(rows, n_faces),
        vertex_feature=np.repeat(rows, n_verts),
    )


def base_height(model: ifcopenshell.file, elements: list[ifcopenshell.entity_instance],
                local: _LocalMesh) -> float:
    """The model height (m) that stands on the ground: 0 if a storey is at elevation 0
    (the usual ±0.00 of a ground floor), else the lowest point of anything but the site."""
    unit = ifcopenshell.util.unit.calculate_unit_scale(model)
    for storey in model.by_type("IfcBuildingStorey"):
        if storey.Elevation is not None:
            z = float(storey.Elevation) * unit
        elif storey.ObjectPlacement is not None:
            z = float(ifcopenshell.util.placement.get_local_placement(storey.ObjectPlacement)[2, 3]) * unit
        else:
            continue
        if abs(z) < 1e-6:
            return 0.0
    # A site body is terrain around the building, often well below its floor.
    building = np.array([not e.is_a("IfcSite") for e in elements])
    mask = building[local.vertex_feature] if building.any() else slice(None)
    return float(local.vertices[mask, 2].min())


# --- attributes -----------------------------------------------------------------------


def element_frame(elements: list[ifcopenshell.entity_instance], model_name: str) -> dict:
    global_ids = [e.GlobalId for e in elements]
    return {
        "source_id": global_ids,
        "global_id": global_ids,
        "ifc_class": [e.is_a() for e in elements],
        "name": [e.Name for e in elements],
        "storey": [_storey_name(e) for e in elements],
        "model": [model_name] * len(elements),
        "psets": [json.dumps(_json_safe(_psets(e)), ensure_ascii=False, sort_keys=True) for e in elements],
    }


def _storey_name(element: ifcopenshell.entity_instance) -> str | None:
    """Name of the IfcBuildingStorey holding the element, through containment and aggregation."""
    current = element
    for _ in range(32):  # guards against cyclic relations in a broken file
        if current.is_a("IfcBuildingStorey"):
            return current.Name
        parent = (ifcopenshell.util.element.get_container(current)
                  or ifcopenshell.util.element.get_aggregate(current))
        if parent is None:
            return None
        current = parent
    return None


def _psets(element: ifcopenshell.entity_instance) -> dict:
    psets = ifcopenshell.util.element.get_psets(element)
    # "id" is the step id of the property set entity: meaningless outside this file.
    return {name: {k: v for k, v in props.items() if k != "id"} for name, props in psets.items()}


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, ifcopenshell.entity_instance):
        return f"#{value.id()}={value.is_a()}" if value.id() else str(value)
    return str(value)


# --- geometry ------------------------------------------------------------------------


def _z_range(vertices: np.ndarray, vertex_feature: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    starts = np.searchsorted(vertex_feature, np.arange(n))
    z = vertices[:, 2]
    return np.minimum.reduceat(z, starts), np.maximum.reduceat(z, starts)


def footprints(mesh: MeshData, n: int) -> np.ndarray:
    """Plan footprint of each feature: the union of its triangles seen from above.

    Falls back to the convex hull when the union fails or is degenerate, and
    widens footprints without area (vertical thin elements) to MIN_FOOTPRINT_WIDTH.
    """
    xy = mesh.vertices[:, :2]
    tri = xy[mesh.faces]                                        # (M, 3, 2)
    d1, d2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    plan_area = 0.5 * np.abs(d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0])
    flat = plan_area > _MIN_TRIANGLE_AREA
    triangles = shapely.polygons(np.concatenate([tri[flat], tri[flat][:, :1]], axis=1))
    tri_feature = mesh.face_feature[flat]
    tri_bounds = np.searchsorted(tri_feature, np.arange(n + 1))

    vertex_feature = np.full(len(xy), -1)
    vertex_feature[mesh.faces.reshape(-1)] = np.repeat(mesh.face_feature, 3)
    order = np.argsort(vertex_feature, kind="stable")
    vert_bounds = np.searchsorted(vertex_feature[order], np.arange(n + 1))

    out = np.empty(n, dtype=object)
    for i in range(n):
        points = xy[order[vert_bounds[i]:vert_bounds[i + 1]]]
        out[i] = _footprint(triangles[tri_bounds[i]:tri_bounds[i + 1]], points)
    return out


def _footprint(triangles: np.ndarray, points: np.ndarray):
    shape = None
    if len(triangles):
        try:
            shape = _polygonal(_clean(shapely.union_all(triangles)))
        except GEOSException:
            shape = None
    if shape is None or shape.area <= MIN_FOOTPRINT_WIDTH ** 2 * 1e-2:
        shape = shapely.convex_hull(shapely.multipoints(points))
    if shape.geom_type not in ("Polygon", "MultiPolygon") or shape.area < MIN_FOOTPRINT_WIDTH ** 2:
        shape = _polygonal(shape.buffer(MIN_FOOTPRINT_WIDTH / 2, quad_segs=2))
    return shape


def _clean(shape):
    """Drop seam holes and the repeated and collinear vertices the triangle union leaves."""
    polygons = shapely.get_parts(shape)
    cleaned = []
    for polygon in polygons:
        if polygon.geom_type != "Polygon":
            cleaned.append(polygon)
            continue
        holes = [r for r in polygon.interiors if shapely.Polygon(r).area >= _MIN_HOLE_AREA]
        cleaned.append(shapely.Polygon(polygon.exterior, holes))
    if not cleaned:
        return shape
    merged = shapely.union_all(cleaned) if len(cleaned) > 1 else cleaned[0]
    return shapely.simplify(merged, 1e-4, preserve_topology=True)


def _polygonal(shape):
    """The polygonal part of a geometry, made valid; None when there is none."""
    if not shape.is_valid:
        shape = shapely.make_valid(shape)
    if shape.geom_type in ("Polygon", "MultiPolygon"):
        return None if shape.is_empty else shape
    parts = [g for g in shapely.get_parts(shape) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return None
    merged = shapely.union_all(parts)
    return None if merged.is_empty else merged
