"""`twin build`: city.toml -> a twin store, atomically.

Order matters: terrain rasters first (buildings need the ground), then vector
layers, then a derived ground if only a surface model exists, then building
heights, then BIM models (a placement "on the ground" needs the terrain).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

import twin
from layers import enrich
from layers.base import IngestContext, RasterData
from layers.crs import parse_crs, project_crs, transform_bounds
from layers.heights import HeightInputs
from layers.ingest import LayerResult, check_sources_exist, read_layer
from layers.normalize import REPAIR_COLUMNS, stable_ids
from layers.raster import mosaic, sample
from layers.terrain import derive_ground
from twin.config import RASTER_KINDS, CityConfig, load_city
from twin.manifest import LayerRecord, Manifest, RasterRecord
from twin.progress import NoProgress, Progress
from twin.store.folder import FolderStore

WGS84 = CRS.from_epsg(4326)


@dataclass
class BuildReport:
    store: FolderStore
    manifest: Manifest
    repairs: pd.DataFrame
    seconds: float
    notes: list[str] = field(default_factory=list)


def build_twin(city_toml: str | Path, out_dir: str | Path, *, progress: Progress | None = None) -> BuildReport:
    t0 = time.perf_counter()
    progress = progress or NoProgress()
    city_toml = Path(city_toml)
    city = load_city(city_toml)
    check_sources_exist(city)

    extent_crs = parse_crs(city.extent_crs, source=str(city_toml), field="extent_crs")
    extent_wgs84 = transform_bounds(city.extent, extent_crs, WGS84)
    crs = project_crs(city.crs, extent_wgs84, origin=str(city_toml))
    extent = transform_bounds(city.extent, extent_crs, crs)
    ctx = IngestContext(city=city, crs=crs, extent=extent)

    stages = len(city.layers) + 4
    progress.start(stages, f"building {city.name}")
    results: dict[str, LayerResult] = {}

    # 1. terrain sources
    for name, layer in city.layers_of(*RASTER_KINDS, "pointcloud").items():
        progress.advance(f"reading {name}")
        results[name] = read_layer(city, name, layer, ctx)
    surface, ground, terrain_notes = _resolve_terrain(city, results, crs)

    # 2. vector layers
    for name, layer in city.layers_of("buildings", "roads", "pois", "water", "landuse").items():
        progress.advance(f"reading {name}")
        results[name] = read_layer(city, name, layer, ctx)

    # 3. bare-earth ground from the surface model when no ground model exists
    progress.advance("terrain")
    ground_method = "source"
    ground_stats: dict = {}
    if ground is None and surface is not None and city.terrain.derive_ground:
        footprints = np.concatenate([r.frame.geometry.values for n, r in results.items()
                                     if city.layers[n].kind == "buildings" and r.frame is not None] or [np.array([])])
        ground, ground_stats = derive_ground(surface, footprints, window_m=city.terrain.derive_window_m)
        ground_method = "derived from surface"
    if ground is not None and surface is not None and ground.shape != surface.shape:
        ground_on_surface = _onto(ground, surface)
    else:
        ground_on_surface = ground

    # 4. buildings, roads, points
    progress.advance("heights and topology")
    points = [p for r in results.values() for p in r.points]
    inputs = HeightInputs(surface=surface, ground=ground_on_surface if ground_on_surface is not None else ground,
                          points=points)
    if ground is not None:
        ctx.ground_at = lambda x, y: sample(ground, x, y)
    frames: dict[str, gpd.GeoDataFrame] = {}
    stats: dict[str, dict] = {}
    for name, result in results.items():
        kind = city.layers[name].kind
        if result.frame is None:
            continue
        frame = result.frame
        frame["id"] = _assign_ids(name, frame)
        if kind == "buildings":
            frames[name], stats[name] = enrich.enrich_buildings(frame, city.heights, inputs)
        elif kind == "roads":
            frames[name], stats[name] = enrich.enrich_roads(frame)
            frames[name]["id"] = _assign_ids(name, frames[name])  # edges of one way share its id
        elif kind in ("pois", "water", "landuse"):
            frames[name], stats[name] = enrich.enrich_points(frame, kind)

    # 5. BIM models
    for name, layer in city.layers_of("bim").items():
        progress.advance(f"reading {name}")
        results[name] = read_layer(city, name, layer, ctx)
        r = results[name]
        r.frame["id"] = _assign_ids(name, r.frame)
        frames[name], stats[name] = enrich.enrich_generic(r.frame, "bim")
        stats[name] = {"elements": int(len(r.frame)),
                       "classes": {str(k): int(v) for k, v in r.frame["ifc_class"].value_counts().items()}}

    # 6. write
    progress.advance("writing the twin")
    repairs = pd.concat([r.repairs for r in results.values() if len(r.repairs)] or
                        [pd.DataFrame(columns=REPAIR_COLUMNS)], ignore_index=True)
    writer = FolderStore.writer(out_dir)
    with writer:
        for name, frame in frames.items():
            writer.write_layer(name, frame)
            if results[name].mesh is not None:
                writer.write_mesh(name, results[name].mesh)
        writer.write_table("repairs", repairs.astype("string"))
        raster_records = {}
        for rname, raster, method in (("surface", surface, "source"), ("ground", ground, ground_method)):
            if raster is not None:
                writer.write_raster(rname, raster)
                raster_records[rname] = _raster_record(city, rname, raster, method, results)
        for name, r in results.items():
            for path in r.asset_paths:
                writer.add_asset(f"pointcloud/{path.name}", str(path))
        manifest = Manifest(
            tool_version=twin.__version__, city=city.name, city_zh=city.name_zh,
            crs=crs.to_string(), crs_wkt=crs.to_wkt(), vertical_datum=city.vertical_datum,
            extent=extent, extent_wgs84=extent_wgs84,
            built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            build_seconds=round(time.perf_counter() - t0, 3),
            config_sha256=hashlib.sha256(city_toml.read_bytes()).hexdigest(),
            rules={"heights": city.heights.model_dump(), "terrain": {**city.terrain.model_dump(), **ground_stats},
                   "notes": terrain_notes, "scenarios": city.scenarios.model_dump(mode="json")},
            sources=[s for r in results.values() for s in r.sources],
            layers={name: _layer_record(city, name, frame, crs, stats.get(name, {}),
                                        repairs, results[name].mesh is not None)
                    for name, frame in frames.items()},
            rasters=raster_records,
        )
        store = writer.commit(manifest)
    progress.advance("done")
    return BuildReport(store=store, manifest=manifest, repairs=repairs,
                       seconds=time.perf_counter() - t0, notes=terrain_notes)


def _assign_ids(layer: str, frame: gpd.GeoDataFrame) -> np.ndarray:
    """Source name + the source's own id where it has one, else the geometry."""
    if "source_id" in frame:
        sid = frame["source_id"].astype("string")
        keys = (frame["source"].astype(str) + ":" + sid).where(sid.notna(), None)
    else:
        keys = None
    return stable_ids(layer, keys, frame.geometry)


def _resolve_terrain(city: CityConfig, results: dict[str, LayerResult], crs: CRS
                     ) -> tuple[RasterData | None, RasterData | None, list[str]]:
    """One surface and one ground raster from the terrain layers (named ones first)."""
    notes: list[str] = []
    found: dict[str, list[RasterData]] = {"surface": [], "ground": []}
    for want in ("surface", "ground"):
        named = getattr(city.terrain, want)
        order = [named] if named else []
        order += [n for n in results if n not in order]
        for name in order:
            found[want].extend(results[name].rasters.get(want, []) if name in results else [])
            if found[want]:
                break
    surface = mosaic(found["surface"]) if found["surface"] else None
    ground = mosaic(found["ground"]) if found["ground"] else None
    if surface is None and ground is None:
        notes.append("no terrain: buildings stand at elevation 0")
    return surface, ground, notes


def _onto(src: RasterData, like: RasterData) -> RasterData:
    from rasterio.warp import Resampling, reproject

    out = np.full(like.shape, np.nan, dtype=np.float32)
    reproject(src.array, out, src_transform=src.transform, src_crs=src.crs.to_wkt(),
              dst_transform=like.transform, dst_crs=like.crs.to_wkt(), resampling=Resampling.bilinear,
              src_nodata=np.nan, dst_nodata=np.nan)
    return RasterData(out, like.transform, like.crs)


def _layer_record(city: CityConfig, name: str, frame: gpd.GeoDataFrame, crs: CRS, stats: dict,
                  repairs: pd.DataFrame, has_mesh: bool) -> LayerRecord:
    cfg = city.layers[name]
    bounds = tuple(float(v) for v in frame.total_bounds) if len(frame) else None
    types = frame.geom_type.value_counts()
    return LayerRecord(
        kind=cfg.kind, title=cfg.title or name, title_zh=cfg.title_zh, classification=cfg.classification,
        count=int(len(frame)), geometry_type=str(types.index[0]) if len(types) else None,
        bbox=bounds, bbox_wgs84=transform_bounds(bounds, crs, WGS84) if bounds else None,
        schema={c: str(frame[c].dtype) for c in frame.columns if c != "geometry"},
        licences=sorted({s.licence for s in cfg.sources}), attributions=sorted({s.attribution for s in cfg.sources}),
        repairs=int((repairs["layer"] == name).sum()) if len(repairs) else 0, stats=stats, has_mesh=has_mesh)


def _raster_record(city: CityConfig, name: str, raster: RasterData, method: str,
                   results: dict[str, LayerResult]) -> RasterRecord:
    kinds = {"surface": ("surface", "pointcloud"), "ground": ("ground", "pointcloud", "surface")}[name]
    layers = [l for l in city.layers.values() if l.kind in kinds]
    classification = max((l.classification for l in layers), key=["public", "internal", "restricted"].index,
                         default="public")
    finite = raster.array[np.isfinite(raster.array)]
    return RasterRecord(
        kind=name, classification=classification, path=f"rasters/{name}.tif", shape=raster.shape,
        resolution=raster.resolution, bounds=raster.bounds, method=method,
        min=float(finite.min()) if finite.size else None, max=float(finite.max()) if finite.size else None,
        licences=sorted({s.licence for l in layers for s in l.sources}),
        attributions=sorted({s.attribution for l in layers for s in l.sources}))
