"""Build every 3D Tiles tileset of a twin, incrementally.

`build_tiles(store, out_dir)` writes `out_dir/<layer>/tileset.json` and its
tile contents for the buildings (above and under ground), each mesh layer
(BIM, LoD2), and, when their modules are installed, terrain, quantized-mesh
terrain and point clouds. `out_dir/tiles_manifest.json` records the sha256
of every tile; a rebuild encodes each tile in memory, compares its hash with
the manifest and writes only tiles that changed (through a temporary name and
an atomic rename), so unchanged files keep their bytes and mtime. Each
tileset.json is replaced atomically after its tiles are in place, and tiles
no longer referenced are removed last.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal

import numpy as np

from tiles.buildings import UNDERGROUND_COLOR, TilePlan, plan_buildings, plan_mesh_layer
from tiles.hierarchy import TileNode, TreeLimits
from tiles.tileset import tileset_bytes
from twin.errors import TwinError

if TYPE_CHECKING:
    from twin.store.base import TwinStore

MANIFEST_NAME = "tiles_manifest.json"
MANIFEST_VERSION = 1
Progress = Callable[[str, int, int], None]
PARALLEL_MIN_TILES = 32   # smaller layers are encoded in this process (forking costs ~0.1 s)
MAX_WORKERS = 8


class TilesError(TwinError):
    """Tiles could not be built from the twin."""


@dataclass
class LayerTilesReport:
    layer: str
    tileset: str            # relative to out_dir
    features: int
    skipped_features: int   # rows without drawable geometry
    tiles: int
    bytes: int
    written: int            # tiles whose content changed (or were new)
    unchanged: int
    removed: int
    seconds: float


@dataclass
class TilesReport:
    out_dir: Path
    mode: str
    layers: dict[str, LayerTilesReport] = field(default_factory=dict)
    external: dict[str, dict | None] = field(default_factory=dict)   # terrain, terrain-qm, pointcloud
    not_built: dict[str, str] = field(default_factory=dict)           # name -> reason
    seconds: float = 0.0


def build_tiles(store: "TwinStore", out_dir: Path, *, mode: Literal["1.1", "1.0"] = "1.1",
                max_features_per_tile: int = 2000, max_bytes_per_tile: int = 2_000_000,
                terrain_max_error_m: float = 2.0, progress: Progress | None = None,
                workers: int | None = None) -> TilesReport:
    """Write all tilesets of `store` under `out_dir` (see the module docstring).

    `workers`: processes that encode tiles (forked; default all usable cores, 1 = this process only)."""
    if mode not in ("1.1", "1.0"):
        raise TilesError(f"unknown 3D Tiles mode '{mode}' (use '1.1' or '1.0')", field="mode")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    limits = TreeLimits(max_features=max_features_per_tile, max_bytes=max_bytes_per_tile)
    report = TilesReport(out_dir=out_dir, mode=mode)
    old = _read_manifest(out_dir)
    manifest: dict = {"format_version": MANIFEST_VERSION, "mode": mode, "layers": {}, "external": {}}

    for plan in _plans(store, mode, limits, report):
        layer_report, entry = write_plan(plan, out_dir, old.get("layers", {}).get(plan.layer, {}), progress,
                                         workers=workers)
        report.layers[plan.layer] = layer_report
        manifest["layers"][plan.layer] = entry
    for stale_layer in set(old.get("layers", {})) - set(manifest["layers"]):
        shutil.rmtree(out_dir / stale_layer, ignore_errors=True)
    _write_atomic(out_dir / MANIFEST_NAME, _json_bytes(manifest))

    for name, module, function, args, kwargs in _external_writers(store, out_dir, terrain_max_error_m):
        try:
            writer = getattr(importlib.import_module(module), function)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            report.not_built[name] = f"{module} is not installed"
            continue
        if progress:
            progress(name, 0, 1)
        result = writer(*args, **kwargs)
        report.external[name] = result
        manifest["external"][name] = result
        if progress:
            progress(name, 1, 1)
    _write_atomic(out_dir / MANIFEST_NAME, _json_bytes(manifest))
    report.seconds = time.perf_counter() - started
    return report


def _plans(store: "TwinStore", mode, limits: TreeLimits, report: TilesReport):
    """Tile plans, one at a time (each holds its layer's meshes in memory)."""
    layer_names = store.layer_names()
    if "buildings" in layer_names:
        frame = store.read_layer("buildings")
        frame = frame[~frame.geometry.isna() & ~frame.geometry.is_empty]
        under = (frame["underground"].fillna(False).astype(bool).to_numpy()
                 if "underground" in frame.columns else np.zeros(len(frame), bool))
        if (~under).any():
            yield plan_buildings(frame[~under], layer="buildings", mode=mode, limits=limits)
        else:
            report.not_built["buildings"] = "no buildings above ground"
        if under.any():
            yield plan_buildings(frame[under], layer="buildings-underground", mode=mode, limits=limits,
                                 floor=True, color=UNDERGROUND_COLOR)
    else:
        report.not_built["buildings"] = "the twin has no buildings layer"
    for name in store.mesh_names():
        frame = store.read_layer(name)
        out_name = "buildings-lod2" if name == "buildings" else name
        yield plan_mesh_layer(store.read_mesh(name), frame, layer=out_name, mode=mode, limits=limits)


def write_plan(plan: TilePlan, out_dir: Path, old_entry: dict, progress: Progress | None = None, *,
               workers: int | None = None) -> tuple[LayerTilesReport, dict]:
    """Write one layer's changed tiles, then its tileset.json, then drop stale tiles."""
    started = time.perf_counter()
    layer_dir = out_dir / plan.layer
    (layer_dir / "t").mkdir(parents=True, exist_ok=True)
    old_tiles: dict = old_entry.get("tiles", {})
    tiles: dict[str, dict] = {}
    written = unchanged = total_bytes = 0
    nodes = plan.nodes_with_content()
    for done, (rel, digest, size, was_written) in enumerate(_write_tiles(plan, nodes, layer_dir, old_tiles, workers), 1):
        written += was_written
        unchanged += not was_written
        tiles[rel] = {"sha256": digest, "bytes": size, "features": int(len(nodes[done - 1].features))}
        total_bytes += size
        if progress:
            progress(plan.layer, done, len(nodes))
    tileset = tileset_bytes(plan.tileset)
    _write_atomic(layer_dir / "tileset.json", tileset)
    removed = 0
    for rel in set(old_tiles) - set(tiles):
        (layer_dir / rel).unlink(missing_ok=True)
        removed += 1
    entry = {"tileset": f"{plan.layer}/tileset.json", "tileset_sha256": hashlib.sha256(tileset).hexdigest(),
             "features": plan.feature_count, "tiles": tiles}
    report = LayerTilesReport(layer=plan.layer, tileset=entry["tileset"], features=plan.feature_count,
                              skipped_features=plan.skipped_features, tiles=len(tiles), bytes=total_bytes,
                              written=written, unchanged=unchanged, removed=removed,
                              seconds=time.perf_counter() - started)
    return report, entry


def _write_tile(plan: TilePlan, node: TileNode, layer_dir: Path, old_tiles: dict) -> tuple[str, str, int, bool]:
    """Encode one tile and write it if its content changed: (path, sha256, bytes, written)."""
    rel = plan.content_path(node)
    data = plan.encode(node)
    digest = hashlib.sha256(data).hexdigest()
    path = layer_dir / rel
    if _same_content(path, old_tiles.get(rel), digest, len(data)):
        return rel, digest, len(data), False
    _write_atomic(path, data)
    return rel, digest, len(data), True


_FORK_JOB: tuple | None = None   # (plan, nodes, layer_dir, old_tiles), inherited by forked workers


def _write_chunk(span: tuple[int, int]) -> list[tuple[str, str, int, bool]]:
    plan, nodes, layer_dir, old_tiles = _FORK_JOB
    return [_write_tile(plan, node, layer_dir, old_tiles) for node in nodes[span[0]:span[1]]]


def _write_tiles(plan: TilePlan, nodes: list[TileNode], layer_dir: Path, old_tiles: dict,
                 workers: int | None = None):
    """(path, sha256, bytes, written) of each node, in order; on all cores for large layers.

    Workers are forked, so they share the plan's arrays copy-on-write and send
    back only digests; each tile is written by the worker that encoded it."""
    global _FORK_JOB
    if workers is None:
        workers = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
                      MAX_WORKERS)
    if workers < 2 or len(nodes) < PARALLEL_MIN_TILES or "fork" not in mp.get_all_start_methods():
        for node in nodes:
            yield _write_tile(plan, node, layer_dir, old_tiles)
        return
    step = max(1, len(nodes) // (workers * 8))
    spans = [(i, min(i + step, len(nodes))) for i in range(0, len(nodes), step)]
    _FORK_JOB = (plan, nodes, layer_dir, old_tiles)
    try:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
            for results in pool.map(_write_chunk, spans):
                yield from results
    finally:
        _FORK_JOB = None


def _same_content(path: Path, old: dict | None, digest: str, size: int) -> bool:
    if not path.exists() or path.stat().st_size != size:
        return False
    if old is not None:
        return old.get("sha256") == digest
    return hashlib.sha256(path.read_bytes()).hexdigest() == digest  # no manifest entry: check the file


def _external_writers(store: "TwinStore", out_dir: Path, terrain_max_error_m: float):
    """(name, module, function, args, kwargs) of writers owned by other modules, called when importable."""
    if store.raster_names():
        yield ("terrain", "tiles.terrain", "write_terrain_tileset", (store, out_dir / "terrain"),
               {"max_error_m": terrain_max_error_m})
        yield "terrain-qm", "tiles.quantized_mesh", "write_quantized_mesh", (store, out_dir / "terrain-qm"), {}
    yield "pointcloud", "tiles.pointcloud", "write_pointcloud_tileset", (store, out_dir / "pointcloud"), {}


def _read_manifest(out_dir: Path) -> dict:
    path = out_dir / MANIFEST_NAME
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}  # a damaged manifest only costs a full rewrite
    return manifest if manifest.get("format_version") == MANIFEST_VERSION else {}


def _json_bytes(obj: dict) -> bytes:
    return json.dumps(obj, indent=1, ensure_ascii=False, default=_json_default).encode("utf-8")


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to the tiles manifest")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
