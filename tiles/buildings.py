"""Feature layers -> tile plans: LOD1 buildings, underground structures, BIM and LoD2 meshes.

A `TilePlan` holds the tileset.json of one layer and encodes each tile's
content on demand, so the build can hash, compare and write tiles one at a
time. Each building (or IFC element, or LoD2 solid) is one feature with one
row in its tile's property table (1.1) or batch table (1.0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import shapely

from layers.schema import USES
from tiles.b3dm import write_b3dm
from tiles.extrude import EnuProjector, FeatureMesh, extrude_footprints, mesh_from_triangles
from tiles.prism import PrismMesh
from tiles.geodesy import LocalFrame
from tiles.gltf import FeatureProperties, PropertyDef, TileMesh, prepare_properties, write_glb
from tiles.hierarchy import TileNode, TreeLimits, build_tree, finish_tree
from tiles.tileset import build_tileset

if TYPE_CHECKING:
    import geopandas as gpd

    from layers.base import MeshData

Mode = Literal["1.1", "1.0"]

NO_DATA_FLOAT = -9999.0
NO_DATA_INT16 = -32768
BUILDING_COLOR = (0.86, 0.85, 0.82, 1.0)
UNDERGROUND_COLOR = (0.62, 0.52, 0.42, 1.0)
BIM_COLOR = (0.75, 0.80, 0.86, 1.0)
VERTEX_BYTES = 20   # float32 position + int8 normal (padded) + float32 feature id
INDEX_BYTES = 6     # one triangle of uint16 indices


@dataclass
class TilePlan:
    """One layer's tree and tileset.json; tile contents are encoded on demand.

    `mesh` and `properties` hold the drawable features in tile order: feature k
    is row `rows[k]` of the source frame, and each tile's features are the
    contiguous run `spans[address]`, so a tile is encoded from slices (no gather)."""

    layer: str
    mode: Mode
    root: TileNode
    tileset: dict
    feature_count: int
    skipped_features: int
    mesh: FeatureMesh | PrismMesh
    properties: FeatureProperties
    frame: LocalFrame
    color: tuple[float, float, float, float]
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)
    content_min: dict[str, np.ndarray] = field(default_factory=dict)   # ENU bounds of each tile's content
    content_max: dict[str, np.ndarray] = field(default_factory=dict)
    _schema_cache: dict = field(default_factory=dict, repr=False)

    @property
    def extension(self) -> str:
        return "glb" if self.mode == "1.1" else "b3dm"

    def content_path(self, node: TileNode) -> str:
        return f"t/{node.address}.{self.extension}"

    def nodes_with_content(self) -> list[TileNode]:
        return [n for n in self.root.walk() if len(n.features)]

    def tile_mesh(self, node: TileNode) -> TileMesh:
        """Tile triangles in glTF Y-up axes around a whole-metre local origin."""
        start, stop = self.spans[node.address]
        positions, normals, indices, feature_of_vertex = self.mesh.slice(start, stop)
        lo, hi = self.content_min[node.address], self.content_max[node.address]
        origin = np.round((lo + hi) / 2.0)
        yup = np.empty((len(positions), 3), np.float32)
        np.subtract(positions[:, 0], origin[0], out=yup[:, 0], casting="same_kind")
        np.subtract(positions[:, 2], origin[2], out=yup[:, 1], casting="same_kind")
        np.subtract(origin[1], positions[:, 1], out=yup[:, 2], casting="same_kind")
        # float32 rounding is monotonic, so the accessor bounds follow from the content bounds
        low = np.array([lo[0] - origin[0], lo[2] - origin[2], origin[1] - hi[1]], np.float64).astype(np.float32)
        high = np.array([hi[0] - origin[0], hi[2] - origin[2], origin[1] - lo[1]], np.float64).astype(np.float32)
        nrm = np.empty((len(normals), 3), np.int8)
        nrm[:, 0], nrm[:, 1] = normals[:, 0], normals[:, 2]
        np.negative(normals[:, 1], out=nrm[:, 2])
        return TileMesh(positions=yup, normals=nrm, feature_ids=feature_of_vertex, indices=indices,
                        translation=(float(origin[0]), float(origin[2]), float(-origin[1])), color=self.color,
                        bounds=(low, high))

    def encode(self, node: TileNode) -> bytes:
        mesh = self.tile_mesh(node)
        props = self.properties.slice(*self.spans[node.address])
        if self.mode == "1.1":
            return write_glb(mesh, props, schema_id=f"city_twin_{self.properties.class_name}", name=node.address,
                             schema_cache=self._schema_cache)
        glb = write_glb(mesh, batch_id=True, name=node.address)
        return write_b3dm(glb, props.to_batch_table(), len(props))


def enu_to_yup(enu: np.ndarray) -> np.ndarray:
    """ENU (x east, y north, z up) -> glTF (x east, y up, z south)."""
    enu = np.asarray(enu)
    return np.column_stack([enu[:, 0], enu[:, 2], -enu[:, 1]])


def yup_to_enu(yup: np.ndarray) -> np.ndarray:
    yup = np.asarray(yup)
    return np.column_stack([yup[:, 0], -yup[:, 2], yup[:, 1]])


def _enum_of(frame, column: str, fixed: list[str] | None = None) -> tuple[str, ...]:
    if fixed is not None:
        return tuple(fixed)
    values = frame[column].dropna().astype(str).unique().tolist() if column in frame.columns else []
    return tuple(sorted(set(values) | {"unknown"}))


def building_properties(frame) -> list[PropertyDef]:
    """Schema of the `building` class (canonical `buildings` columns)."""
    f32 = dict(kind="FLOAT32", no_data=NO_DATA_FLOAT)
    return [
        PropertyDef("id", "STRING"),
        PropertyDef("source", "ENUM", _enum_of(frame, "source")),
        PropertyDef("source_id", "STRING"),
        PropertyDef("name", "STRING"),
        PropertyDef("use", "ENUM", _enum_of(frame, "use", USES)),
        PropertyDef("use_raw", "STRING"),
        PropertyDef("height", description="metres, ground to roof", **f32),
        PropertyDef("height_rule", "ENUM", _enum_of(frame, "height_rule")),
        PropertyDef("levels", "INT16", no_data=NO_DATA_INT16),
        PropertyDef("ground", description="metres above the vertical datum", **f32),
        PropertyDef("roof", description="metres above the vertical datum", **f32),
        PropertyDef("underground", "BOOLEAN"),
        PropertyDef("area", description="footprint area, square metres", **f32),
        PropertyDef("population", **f32),
        PropertyDef("capacity", **f32),
    ]


def bim_properties(frame) -> list[PropertyDef]:
    """Schema of the `bim_element` class (one IFC element per feature)."""
    return [
        PropertyDef("id", "STRING"),
        PropertyDef("global_id", "STRING"),
        PropertyDef("ifc_class", "STRING"),
        PropertyDef("name", "STRING"),
        PropertyDef("storey", "STRING"),
        PropertyDef("model", "STRING"),
        PropertyDef("source_id", "STRING"),
        PropertyDef("z_min", "FLOAT32", no_data=NO_DATA_FLOAT),
        PropertyDef("z_max", "FLOAT32", no_data=NO_DATA_FLOAT),
    ]


def generic_properties(frame) -> list[PropertyDef]:
    return [PropertyDef(c, "STRING") for c in ("id", "source_id", "name") if c in frame.columns] or \
        [PropertyDef("id", "STRING")]


def layer_frame_origin(crs, bounds: tuple[float, float, float, float]) -> LocalFrame:
    """Tileset origin: the centre of the layer's extent at height 0 (stable across edits)."""
    x0, y0, x1, y1 = bounds
    return LocalFrame(crs, round((x0 + x1) / 2.0), round((y0 + y1) / 2.0), 0.0)


def plan_buildings(frame: "gpd.GeoDataFrame", *, layer: str = "buildings", mode: Mode = "1.1",
                   limits: TreeLimits = TreeLimits(), floor: bool = False,
                   color: tuple[float, float, float, float] = BUILDING_COLOR,
                   local_frame: LocalFrame | None = None) -> TilePlan:
    """LOD1 tiles of a `buildings` frame (footprints in a metric project CRS).

    The tree is built first, from per-footprint figures that need no mesh
    (centre, vertex count, area x height); the footprints are then extruded in
    tile order, so that each tile is a contiguous run of the mesh. Boxes and
    geometric errors come from the extruded mesh."""
    if len(frame) == 0:
        raise ValueError(f"layer '{layer}' has no features")
    geoms = frame.geometry.to_numpy()
    ground = _column(frame, "ground", 0.0)
    height = _column(frame, "height", np.nan)
    roof = _column(frame, "roof", np.nan)
    roof = np.where(np.isfinite(roof), roof, ground + np.nan_to_num(height))
    local_frame = local_frame or layer_frame_origin(frame.crs, tuple(frame.total_bounds))
    projector = EnuProjector(local_frame)
    props = prepare_properties(frame, building_properties(frame), "building")
    area = shapely.area(geoms)
    prominence = np.nan_to_num(area * np.maximum(roof - ground, 0.1))

    candidates = np.flatnonzero(np.isfinite(area) & (area > 0) & np.isfinite(ground) & np.isfinite(roof))
    bounds = shapely.bounds(geoms[candidates])
    centre = np.full((len(frame), 3), np.nan)
    centre[candidates], _ = projector.base_and_up((bounds[:, 0] + bounds[:, 2]) / 2.0,
                                                  (bounds[:, 1] + bounds[:, 3]) / 2.0)
    ring_vertices = np.maximum(shapely.get_num_coordinates(geoms) - 1, 3)   # closing vertices apart
    per_vertex = (5 + floor) * VERTEX_BYTES + (3 + floor) * INDEX_BYTES     # walls, roof (and floor)
    feature_bytes = ring_vertices * per_vertex + props.byte_sizes()
    for _ in range(2):   # a second pass only when a footprint vanishes in cleaning (rings under 1 mm)
        if len(candidates) == 0:
            raise ValueError(f"layer '{layer}' has no drawable features")
        root = build_tree(centre[candidates, :2], np.zeros((len(candidates), 3)), np.zeros((len(candidates), 3)),
                          prominence[candidates], feature_bytes[candidates], limits, finish=False)
        for node in root.walk():
            node.features = candidates[node.features]
        order, spans = tile_order(root)
        mesh = extrude_footprints(geoms, ground, roof, projector, floor=floor, order=order)
        lo, hi = mesh.feature_bounds()
        drawable = (mesh.triangle_counts() > 0) & np.isfinite(lo).all(axis=1)
        if drawable.all():
            break
        candidates = np.sort(order[drawable])
    else:
        raise ValueError(f"layer '{layer}': footprints changed between two extrusions")
    finish_tree(root, _in_order(lo, order), _in_order(hi, order))
    return _make_plan(layer, mode, root, mesh, props.take(order), local_frame, color, order, spans, lo, hi,
                      total=len(frame))


def plan_mesh_layer(mesh_data: "MeshData", frame: "gpd.GeoDataFrame", *, layer: str, mode: Mode = "1.1",
                    limits: TreeLimits = TreeLimits(), local_frame: LocalFrame | None = None) -> TilePlan:
    """Tiles of a layer with 3D solids (IFC elements, CityJSON LoD2): one feature per frame row."""
    if len(frame) == 0 or len(mesh_data.faces) == 0:
        raise ValueError(f"mesh layer '{layer}' has no features")
    if "global_id" in frame.columns:
        defs, class_name, color = bim_properties(frame), "bim_element", BIM_COLOR
    elif "height" in frame.columns:
        defs, class_name, color = building_properties(frame), "building", BUILDING_COLOR
    else:
        defs, class_name, color = generic_properties(frame), "feature", BUILDING_COLOR
    v = mesh_data.vertices
    local_frame = local_frame or layer_frame_origin(mesh_data.crs, (v[:, 0].min(), v[:, 1].min(),
                                                                    v[:, 0].max(), v[:, 1].max()))
    mesh = mesh_from_triangles(v, mesh_data.faces, mesh_data.face_feature, len(frame), EnuProjector(local_frame))
    props = prepare_properties(frame, defs, class_name)
    lo, hi = mesh.feature_bounds()
    prominence = np.nan_to_num(np.prod(hi - lo, axis=1))
    return _plan(layer, mode, mesh, props, local_frame, prominence, limits, color,
                 rows=np.arange(len(frame)), total=len(frame))


def tile_order(root: TileNode) -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    """Features of all tiles, tile after tile (parents first), and each tile's run in that order."""
    runs, spans, start = [], {}, 0
    for node in root.walk():
        runs.append(node.features)
        spans[node.address] = (start, start + len(node.features))
        start += len(node.features)
    return np.concatenate(runs).astype(np.int64), spans


def _in_order(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Per-feature values given in tile order, scattered back to source rows (others NaN)."""
    out = np.full((int(order.max()) + 1,) + values.shape[1:], np.nan)
    out[order] = values
    return out


def _column(frame, name: str, default: float) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), default)
    return frame[name].to_numpy(dtype=np.float64, na_value=np.nan)


def _plan(layer: str, mode: Mode, mesh: FeatureMesh, props: FeatureProperties, local_frame: LocalFrame,
          prominence: np.ndarray, limits: TreeLimits, color, *, rows: np.ndarray, total: int) -> TilePlan:
    """Tree from the mesh's own figures; then the mesh is put in tile order once."""
    lo, hi = mesh.feature_bounds()
    drawable = np.flatnonzero((mesh.triangle_counts() > 0) & np.isfinite(lo).all(axis=1))
    if len(drawable) == 0:
        raise ValueError(f"layer '{layer}' has no drawable features")
    feature_bytes = (mesh.vertex_counts() * VERTEX_BYTES + mesh.triangle_counts() * INDEX_BYTES
                     + props.byte_sizes())[drawable]
    centroids = ((lo + hi) / 2.0)[drawable, :2]
    root = build_tree(centroids, lo[drawable], hi[drawable], np.nan_to_num(prominence)[drawable],
                      feature_bytes, limits)
    for node in root.walk():
        node.features = drawable[node.features]
    order, spans = tile_order(root)
    mesh = mesh.permuted(order)
    for node in root.walk():
        node.features = rows[node.features]
    return _make_plan(layer, mode, root, mesh, props.take(order), local_frame, color, rows[order], spans,
                      lo[order], hi[order], total=total)


def _make_plan(layer: str, mode: Mode, root: TileNode, mesh: FeatureMesh | PrismMesh, props: FeatureProperties,
               local_frame: LocalFrame, color, rows: np.ndarray, spans: dict[str, tuple[int, int]],
               lo: np.ndarray, hi: np.ndarray, *, total: int) -> TilePlan:
    """`mesh`, `props`, `rows`, `lo`, `hi` are in tile order (see `tile_order`)."""
    plan = TilePlan(layer=layer, mode=mode, root=root, tileset={}, feature_count=len(rows),
                    skipped_features=total - len(rows), mesh=mesh, properties=props, frame=local_frame,
                    color=color, rows=rows, spans=spans)
    with_content = [(a, b) for a, b in spans.values() if b > a]
    starts = np.array([a for a, _ in with_content], np.int64)
    if len(starts):
        mins, maxs = np.minimum.reduceat(lo, starts, axis=0), np.maximum.reduceat(hi, starts, axis=0)
        for k, address in enumerate(a for a, (s0, s1) in spans.items() if s1 > s0):
            plan.content_min[address], plan.content_max[address] = mins[k], maxs[k]
    plan.tileset = build_tileset(root, transform=local_frame.matrix, content_uri=plan.content_path,
                                 mode=mode, layer=layer)
    return plan
