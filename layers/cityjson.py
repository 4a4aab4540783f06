"""CityJSON 1.0 / 1.1 / 2.0 buildings: triangle meshes, 2D footprints and heights.

Per city object the geometry of the highest LoD up to 2.2 is taken. Faces are
triangulated with earcut on their best-fit plane; triangles keep the winding of
their face (CityJSON orients outer rings counter-clockwise seen from outside).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import mapbox_earcut
import numpy as np
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError as ProjCRSError

from layers.base import (SURFACE_GROUND, SURFACE_ROOF, SURFACE_UNKNOWN, SURFACE_WALL, Driver,
                         Ingested, IngestContext, MeshData)
from layers.errors import CRSError, EmptyLayerError, SourceCorrupt, SourceNotFound

if TYPE_CHECKING:
    from twin.config import SourceConfig

MAX_LOD = 2.2
BUILDING_TYPES = ("Building", "BuildingPart")
SEMANTIC_CODES = {"GroundSurface": SURFACE_GROUND, "WallSurface": SURFACE_WALL, "RoofSurface": SURFACE_ROOF}
# Nesting depth of `boundaries` above the surface level, per geometry type.
SURFACE_DEPTH = {"MultiSurface": 1, "CompositeSurface": 1, "Solid": 2, "MultiSolid": 3, "CompositeSolid": 3}
KNOWN_VERSIONS = ("1.0", "1.1", "2.0")
# Attributes that become columns, so they are not repeated in `attrs`.
_NAME_KEYS = ("name",)
_USE_KEYS = ("function", "usage", "class")
_LEVEL_KEYS = ("storeysAboveGround",)
# |normal z| below this counts as a vertical face (no footprint area).
_VERTICAL = 1e-3


class CityJsonDriver(Driver):
    """Buildings of a CityJSON file. A `type` entry in the source filter's tags
    picks other CityObject types (a name, a list, or "*" for all)."""

    formats = ("cityjson",)
    kinds = ("buildings",)

    def read(self, path: Path, source: "SourceConfig", kind: str, ctx: IngestContext) -> Ingested:
        doc = load_cityjson(path)
        crs, notes, provenance = document_crs(doc, path, source.crs)
        vertices = document_vertices(doc, path)
        types = _wanted_types(source)
        fields = source.fields

        collector = _Collector(vertices)
        rows: list[dict[str, Any]] = []
        skipped: list[str] = []
        for oid, obj in doc["CityObjects"].items():
            if not isinstance(obj, dict) or (types is not None and obj.get("type") not in types):
                continue
            geometry = choose_geometry(obj.get("geometry") or [])
            if geometry is None:
                skipped.append(oid)
                continue
            surfaces = flatten_surfaces(geometry, path, oid)
            stats = collector.add(surfaces, len(rows), path, oid)
            if stats is None:
                skipped.append(oid)
                continue
            rows.append(_row(oid, obj, geometry, stats, fields))

        if not rows:
            wanted = "any type" if types is None else "/".join(types)
            raise EmptyLayerError(f"no CityObject of {wanted} with a usable geometry (LoD <= {MAX_LOD})",
                                  source=str(path))
        if skipped:
            notes.append(f"{path.name}: {len(skipped)} objects without a usable geometry skipped "
                         f"(first: {skipped[0]})")
        frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)
        mesh = collector.mesh(crs)
        provenance.update({"cityjson_version": doc.get("version"), "objects": len(rows),
                           "lods": sorted(set(frame["lod"]))})
        return Ingested(frame=frame, mesh=mesh, notes=notes, provenance=provenance)


# --- document ------------------------------------------------------------------------------

def load_cityjson(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SourceNotFound("CityJSON file not found", source=str(path))
    try:
        with path.open("rb") as fh:
            doc = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceCorrupt(f"not valid JSON: {exc}", source=str(path)) from None
    if not isinstance(doc, dict) or doc.get("type") != "CityJSON":
        raise SourceCorrupt("not a CityJSON document (top-level \"type\" is not \"CityJSON\")", source=str(path))
    if not isinstance(doc.get("CityObjects"), dict):
        raise SourceCorrupt("CityJSON without a \"CityObjects\" object", source=str(path), field="CityObjects")
    if not isinstance(doc.get("vertices"), list):
        raise SourceCorrupt("CityJSON without a \"vertices\" array", source=str(path), field="vertices")
    return doc


def document_vertices(doc: dict, path: Path) -> np.ndarray:
    """(N, 3) float64 vertices with the optional "transform" applied."""
    try:
        vertices = np.asarray(doc["vertices"], dtype=np.float64).reshape(-1, 3)
    except (ValueError, TypeError):
        raise SourceCorrupt("\"vertices\" is not a list of [x, y, z] numbers", source=str(path),
                            field="vertices") from None
    transform = doc.get("transform")
    if transform is not None:
        try:
            scale = np.asarray(transform["scale"], dtype=np.float64).reshape(3)
            translate = np.asarray(transform["translate"], dtype=np.float64).reshape(3)
        except (KeyError, ValueError, TypeError):
            raise SourceCorrupt("\"transform\" needs \"scale\" and \"translate\" of 3 numbers each",
                                source=str(path), field="transform") from None
        vertices = vertices * scale + translate
    return vertices


_EPSG = re.compile(r"EPSG(?:/0/|:[^:/]*:|:)(\d+)", re.IGNORECASE)


def document_crs(doc: dict, path: Path, fallback: str | None) -> tuple[CRS, list[str], dict]:
    """Horizontal CRS of the document; a compound CRS is split and its vertical part noted."""
    declared = (doc.get("metadata") or {}).get("referenceSystem")
    notes: list[str] = []
    provenance: dict[str, Any] = {}
    if declared:
        crs = _parse_crs(str(declared), path)
        provenance["declared_crs"] = str(declared)
    elif fallback:
        crs = _parse_crs(fallback, path)
        notes.append(f"{path.name}: no metadata.referenceSystem; using the configured {fallback}")
    else:
        raise CRSError("no metadata.referenceSystem in the file and no 'crs' in the source config",
                       source=str(path), field="crs")
    if crs.is_compound:
        horizontal, vertical = crs.sub_crs_list[0], crs.sub_crs_list[1]
        provenance["vertical_crs"] = vertical.to_string()
        notes.append(f"{path.name}: heights are {vertical.name}")
        crs = horizontal
    return crs, notes, provenance


def _parse_crs(text: str, path: Path) -> CRS:
    try:
        return CRS.from_user_input(text)
    except ProjCRSError:
        match = _EPSG.search(text)
        if match:
            try:
                return CRS.from_epsg(int(match.group(1)))
            except ProjCRSError:
                pass
    raise CRSError(f"unknown reference system '{text}'", source=str(path), field="metadata.referenceSystem")


def _wanted_types(source: "SourceConfig") -> tuple[str, ...] | None:
    wanted = source.filter.tags.get("type")
    if wanted is None:
        return BUILDING_TYPES
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    return None if "*" in wanted else tuple(wanted)


# --- geometry ------------------------------------------------------------------------------

def lod_value(geometry: dict) -> float:
    try:
        return float(str(geometry.get("lod")))
    except ValueError:
        return float("nan")


def choose_geometry(geometries: list[dict], max_lod: float = MAX_LOD) -> dict | None:
    """The geometry of the highest LoD <= `max_lod` among the supported types (first on ties)."""
    best, best_lod = None, -1.0
    for g in geometries:
        lod = lod_value(g)
        if g.get("type") in SURFACE_DEPTH and lod <= max_lod + 1e-9 and lod > best_lod:
            best, best_lod = g, lod
    return best


@dataclass
class Surface:
    rings: list[np.ndarray]  # vertex indices; the first ring is the exterior
    code: int                # SURFACE_* semantic code


def flatten_surfaces(geometry: dict, path: Path, oid: str) -> list[Surface]:
    """All surfaces of a geometry, whatever its nesting, with their semantic codes."""
    depth = SURFACE_DEPTH[geometry["type"]]
    semantics = geometry.get("semantics") or {}
    kinds = [SEMANTIC_CODES.get((s or {}).get("type"), SURFACE_UNKNOWN) for s in semantics.get("surfaces", [])]
    out: list[Surface] = []

    def walk(boundaries: Any, values: Any, level: int) -> None:
        if not isinstance(boundaries, list):
            raise SourceCorrupt(f"malformed {geometry['type']} boundaries", source=f"{path}#{oid}")
        for i, item in enumerate(boundaries):
            value = values[i] if isinstance(values, list) and i < len(values) else None
            if level == depth:
                rings = [_clean_ring(r, path, oid) for r in item] if isinstance(item, list) else []
                if not rings or len(rings[0]) < 3:
                    continue  # a degenerate face has no area to triangulate
                rings = [rings[0]] + [r for r in rings[1:] if len(r) >= 3]
                code = kinds[value] if isinstance(value, int) and 0 <= value < len(kinds) else SURFACE_UNKNOWN
                out.append(Surface(rings, code))
            else:
                walk(item, value, level + 1)

    walk(geometry.get("boundaries", []), semantics.get("values"), 1)
    return out


def _clean_ring(ring: Any, path: Path, oid: str) -> np.ndarray:
    try:
        idx = np.asarray(ring, dtype=np.int64).reshape(-1)
    except (ValueError, TypeError):
        raise SourceCorrupt("a ring is not a list of vertex indices", source=f"{path}#{oid}") from None
    if len(idx) > 1:
        keep = np.r_[True, idx[1:] != idx[:-1]]  # repeated consecutive vertices
        idx = idx[keep]
        if len(idx) > 1 and idx[0] == idx[-1]:  # an explicitly closed ring
            idx = idx[:-1]
    return idx


def newell_normal(points: np.ndarray) -> np.ndarray:
    """Area-weighted normal of a (possibly non-planar) ring, length = 2 x area."""
    nxt = np.roll(points, -1, axis=0)
    return np.array([
        np.sum((points[:, 1] - nxt[:, 1]) * (points[:, 2] + nxt[:, 2])),
        np.sum((points[:, 2] - nxt[:, 2]) * (points[:, 0] + nxt[:, 0])),
        np.sum((points[:, 0] - nxt[:, 0]) * (points[:, 1] + nxt[:, 1])),
    ])


def triangulate_surface(vertices: np.ndarray, rings: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Triangles (k, 3) of global vertex indices of one face, wound like its exterior
    ring, and the face's unit normal. Empty for a face without area."""
    normal = newell_normal(vertices[rings[0]])
    length = np.linalg.norm(normal)
    if length == 0 or not np.isfinite(length):
        return np.empty((0, 3), np.int64), np.zeros(3)
    normal = normal / length
    if len(rings) == 1 and len(rings[0]) == 3:
        return rings[0].reshape(1, 3), normal
    # project on the best-fit plane: an orthonormal (u, v) basis perpendicular to the normal
    axis = np.eye(3)[np.argmin(np.abs(normal))]
    u = np.cross(normal, axis)
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    idx = np.concatenate(rings)
    local = vertices[idx] - vertices[idx].mean(axis=0)
    uv = np.column_stack([local @ u, local @ v])
    ends = np.cumsum([len(r) for r in rings]).astype(np.uint32)
    tri = np.asarray(mapbox_earcut.triangulate_float64(uv, ends), dtype=np.int64).reshape(-1, 3)
    return idx[tri], normal


def surface_polygon(vertices: np.ndarray, rings: list[np.ndarray]) -> shapely.Polygon:
    """A face projected on the xy plane."""
    return shapely.make_valid(shapely.Polygon(vertices[rings[0], :2], [vertices[r, :2] for r in rings[1:]]))


@dataclass
class _ObjectStats:
    ground: float
    roof: float
    footprint: shapely.Geometry


@dataclass
class _Collector:
    """Accumulates the triangles of all objects, then builds one MeshData."""

    vertices: np.ndarray
    faces: list[np.ndarray] = field(default_factory=list)
    feature: list[np.ndarray] = field(default_factory=list)
    surface: list[np.ndarray] = field(default_factory=list)

    def add(self, surfaces: list[Surface], row: int, path: Path, oid: str) -> _ObjectStats | None:
        n_vertices = len(self.vertices)
        for s in surfaces:
            for r in s.rings:
                if r.min() < 0 or r.max() >= n_vertices:
                    raise SourceCorrupt(f"vertex index {int(r.max())} out of range (file has {n_vertices})",
                                        source=f"{path}#{oid}")
        tris, codes, normals = [], [], []
        for s in surfaces:
            t, n = triangulate_surface(self.vertices, s.rings)
            if len(t):
                tris.append(t)
                codes.append(np.full(len(t), s.code, np.uint8))
                normals.append(np.broadcast_to(n, (len(t), 3)))
        if not tris:
            return None
        footprint = self._footprint(surfaces)
        if footprint is None:
            return None
        faces = np.vstack(tris)
        face_normals = np.vstack(normals)
        corners = self.vertices[faces]
        # earcut does not promise a winding: turn triangles to agree with their face
        own = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        flip = np.einsum("ij,ij->i", own, face_normals) < 0
        faces[flip] = faces[flip][:, ::-1]
        self.faces.append(faces)
        self.feature.append(np.full(len(faces), row, np.int64))
        self.surface.append(np.concatenate(codes))
        z = corners[:, :, 2]
        return _ObjectStats(float(z.min()), float(z.max()), footprint)

    def _footprint(self, surfaces: list[Surface]) -> shapely.Geometry | None:
        ground = [s for s in surfaces if s.code == SURFACE_GROUND]
        if not ground:
            # no semantics: faces looking down (the bottom of a solid); else any non-vertical face
            normals = [newell_normal(self.vertices[s.rings[0]]) for s in surfaces]
            unit_z = np.array([n[2] / (np.linalg.norm(n) or 1.0) for n in normals])
            ground = [s for s, nz in zip(surfaces, unit_z) if nz < -_VERTICAL]
            if not ground:
                ground = [s for s, nz in zip(surfaces, unit_z) if abs(nz) > _VERTICAL]
        if not ground:
            return None
        merged = shapely.union_all([surface_polygon(self.vertices, s.rings) for s in ground])
        polygons = [g for g in shapely.get_parts(merged) if g.geom_type == "Polygon" and g.area > 0]
        if not polygons:
            return None
        return polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)

    def mesh(self, crs: CRS) -> MeshData:
        faces = np.vstack(self.faces)
        used, inverse = np.unique(faces, return_inverse=True)
        return MeshData(vertices=self.vertices[used], faces=inverse.reshape(-1, 3),
                        face_feature=np.concatenate(self.feature), crs=crs,
                        face_surface=np.concatenate(self.surface))


# --- attributes ----------------------------------------------------------------------------

def _row(oid: str, obj: dict, geometry: dict, stats: _ObjectStats, fields) -> dict[str, Any]:
    attributes = dict(obj.get("attributes") or {})
    consumed: set[str] = set()

    def pick(configured: str | None, defaults: tuple[str, ...]) -> Any:
        for key in ((configured,) if configured else defaults):
            if key in attributes and attributes[key] not in (None, ""):
                consumed.add(key)
                value = attributes[key]
                return value if isinstance(value, (int, float, str)) else json.dumps(value)
        return None

    name = pick(fields.name, _NAME_KEYS)
    use = pick(fields.use, _USE_KEYS)
    levels = pick(fields.levels, _LEVEL_KEYS)
    # only an attribute named in the config counts as an explicit height
    height = pick(fields.height, ()) if fields.height else None
    parents = obj.get("parents") or []
    return {
        "source_id": (pick(fields.id, ()) if fields.id else None) or oid,
        "name": name,
        "type": obj.get("type"),
        "parent_id": parents[0] if parents else None,
        "lod": str(geometry.get("lod")),
        "use": use,
        "levels": _number(levels),
        "height": _number(height),
        "solid_height": stats.roof - stats.ground,
        "ground": stats.ground,
        "roof": stats.roof,
        "attrs": json.dumps({k: v for k, v in attributes.items() if k not in consumed},
                            ensure_ascii=False, sort_keys=True, default=str),
        "geometry": stats.footprint,
    }


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
