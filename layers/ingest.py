"""Reading whole layers: every source of a layer through its driver, normalised and merged."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from layers import normalize as nz
from layers.base import IngestContext, Ingested, MeshData, PointSet, RasterData
from layers.errors import SourceNotFound
from layers.registry import driver_for
from twin.config import CityConfig, LayerConfig, SourceConfig
from twin.manifest import SourceRecord


@dataclass
class LayerResult:
    frame: gpd.GeoDataFrame | None = None
    mesh: MeshData | None = None
    rasters: dict[str, list[RasterData]] = field(default_factory=dict)
    points: list[PointSet] = field(default_factory=list)
    repairs: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=nz.REPAIR_COLUMNS))
    sources: list[SourceRecord] = field(default_factory=list)
    asset_paths: list[Path] = field(default_factory=list)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_sources_exist(city: CityConfig) -> None:
    for name, layer in city.layers.items():
        for src in layer.sources:
            path = city.source_path(src)
            if not path.is_file():
                raise SourceNotFound(f"file not found (layer '{name}')", source=str(path))


def read_layer(city: CityConfig, name: str, layer: LayerConfig, ctx: IngestContext) -> LayerResult:
    result = LayerResult()
    frames: list[gpd.GeoDataFrame] = []
    meshes: list[MeshData] = []
    mesh_flags: list[bool] = []
    for src in layer.sources:
        path = city.source_path(src)
        ingested = driver_for(src.resolved_format).read(path, src, layer.kind, ctx)
        record = SourceRecord(layer=name, name=src.source_name, path=str(src.path), format=src.resolved_format,
                              sha256=file_sha256(path), bytes=path.stat().st_size, licence=src.licence,
                              attribution=src.attribution, provenance=ingested.provenance,
                              notes=list(ingested.notes))
        for kind, raster in ingested.rasters.items():
            result.rasters.setdefault(kind, []).append(raster)
        if ingested.points is not None:
            result.points.append(_points_to(ingested.points, ctx.crs))
            result.asset_paths.append(path)
        if ingested.frame is not None:
            frame, mesh, repairs = normalise_source(ingested, src, name, layer.kind, ctx, path)
            record.features_read = len(ingested.frame)
            record.features_kept = len(frame)
            frames.append(frame)
            mesh_flags.append(mesh is not None)
            if mesh is not None:
                meshes.append(mesh)
            result.repairs = pd.concat([result.repairs, repairs], ignore_index=True) if len(repairs) else result.repairs
        result.sources.append(record)
    if frames:
        result.frame = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=ctx.crs)
        if meshes:
            result.mesh = concat_meshes(meshes, [len(f) for f in frames], mesh_flags)
    return result


def normalise_source(ingested: Ingested, src: SourceConfig, layer: str, kind: str, ctx: IngestContext,
                     path: Path) -> tuple[gpd.GeoDataFrame, MeshData | None, pd.DataFrame]:
    where = str(path)
    frame = ingested.frame.reset_index(drop=True)
    nz.check_not_empty(frame, source=where, what="in the file")
    frame["_row"] = np.arange(len(frame))
    if src.filter.tags or src.filter.exclude_tags:
        frame = nz.apply_tag_filter(frame, src.filter.tags, src.filter.exclude_tags, source=where)
    if src.filter.bbox is not None and src.resolved_format not in ("geojson", "gpkg", "shapefile", "flatgeobuf"):
        frame = nz.clip_to_bbox(frame, src.filter.bbox, CRS.from_user_input(src.filter.bbox_crs))
    nz.check_not_empty(frame, source=where)
    rows = frame.pop("_row").to_numpy()
    try:
        mapped = nz.map_fields(frame, src.fields, kind)
    except nz.EmptyLayerError as exc:
        exc.source = where
        raise
    mapped["_row"] = rows
    if kind == "pois":
        polys = np.isin(mapped.geom_type.to_numpy(), ["Polygon", "MultiPolygon"])
        if polys.any():
            mapped.loc[polys, "geometry"] = shapely.point_on_surface(mapped.geometry.values[polys])
    if mapped.crs != ctx.crs:
        mapped = mapped.to_crs(ctx.crs)
    repaired, repairs = nz.repair(mapped, kind, layer=layer, source=src.source_name)
    nz.check_not_empty(repaired, source=where, what="with usable geometry")
    nz.check_geometry_types(repaired, kind, source=where)
    nz.check_overlap(repaired.total_bounds, ctx.extent, source=where, crs=ctx.crs)
    repaired["source"] = src.source_name
    mesh = None
    if ingested.mesh is not None:
        keep = np.zeros(len(ingested.frame), dtype=bool)
        keep[repaired["_row"].to_numpy()] = True
        order = np.argsort(repaired["_row"].to_numpy(), kind="stable")
        repaired = repaired.iloc[order]
        mesh = _mesh_to(ingested.mesh, ctx.crs).select_features(keep)
    repaired = repaired.drop(columns="_row").reset_index(drop=True)
    return repaired, mesh, repairs


def concat_meshes(meshes: list[MeshData], frame_lengths: list[int], has_mesh: list[bool]) -> MeshData:
    verts, faces, feat, surf = [], [], [], []
    v_off = 0
    f_off = 0
    it = iter(meshes)
    for n, has in zip(frame_lengths, has_mesh):
        if has:
            m = next(it)
            verts.append(m.vertices)
            faces.append(m.faces + v_off)
            feat.append(m.face_feature + f_off)
            surf.append(m.face_surface)
            v_off += len(m.vertices)
        f_off += n
    return MeshData(vertices=np.concatenate(verts), faces=np.concatenate(faces),
                    face_feature=np.concatenate(feat), face_surface=np.concatenate(surf), crs=meshes[0].crs)


def _horizontal(crs: CRS) -> CRS:
    return crs.sub_crs_list[0] if crs.is_compound else crs


def _mesh_to(mesh: MeshData, crs: CRS) -> MeshData:
    if _horizontal(mesh.crs) == _horizontal(crs):
        return MeshData(mesh.vertices, mesh.faces, mesh.face_feature, crs, mesh.face_surface)
    t = Transformer.from_crs(_horizontal(mesh.crs), _horizontal(crs), always_xy=True)
    x, y = t.transform(mesh.vertices[:, 0], mesh.vertices[:, 1])
    v = np.column_stack([x, y, mesh.vertices[:, 2]])
    return MeshData(v, mesh.faces, mesh.face_feature, crs, mesh.face_surface)


def _points_to(points: PointSet, crs: CRS) -> PointSet:
    if _horizontal(points.crs) == _horizontal(crs):
        return points
    t = Transformer.from_crs(_horizontal(points.crs), _horizontal(crs), always_xy=True)
    x, y = t.transform(points.xyz[:, 0], points.xyz[:, 1])
    return PointSet(np.column_stack([x, y, points.xyz[:, 2]]), points.classification, crs)
