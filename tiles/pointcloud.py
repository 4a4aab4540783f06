"""The twin's kept LiDAR files -> a 3D Tiles point-cloud tileset (pnts), through py3dtiles.

py3dtiles builds an octree: a REPLACE root holding a preview subsample and
ADD children that hold every input point exactly once, with positions in
EPSG:4978 (ECEF) through per-tile transforms. Files whose header names no CRS
are read in the twin's project CRS (`manifest().crs_wkt`). Colour is kept
when the files have RGB; the ASPRS classification always goes into the batch
table when py3dtiles can read it (LAS point formats 6-10; for formats 0-5
py3dtiles 12 looks the field up under a name laspy packs into a bit field,
so it would write zeros, and the field is left out).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pyproj import CRS

if TYPE_CHECKING:
    from twin.store.base import TwinStore

__all__ = ["PointCloudError", "write_pointcloud_tileset", "build_pointcloud_tileset", "POINTCLOUD_PREFIX"]

POINTCLOUD_PREFIX = "pointcloud/"
_SUFFIXES = (".las", ".laz")


from twin.errors import TwinError


class PointCloudError(TwinError):
    """The point-cloud assets cannot be converted to 3D Tiles."""


def write_pointcloud_tileset(store: "TwinStore", out_dir: Path) -> dict | None:
    """Convert every `pointcloud/...` asset; None when the twin keeps no point clouds.

    `out_dir` belongs to the point-cloud tileset: anything in it is replaced.
    """
    manifest = store.manifest()
    names = sorted(n for n in manifest.assets if n.startswith(POINTCLOUD_PREFIX))
    paths = [Path(store.asset_path(n)) for n in names]
    paths = [p for p in paths if p.suffix.lower() in _SUFFIXES]
    if not paths:
        return None
    crs = CRS.from_wkt(manifest.crs_wkt) if manifest.crs_wkt else CRS.from_user_input(manifest.crs)
    return build_pointcloud_tileset(paths, Path(out_dir), crs)


def build_pointcloud_tileset(paths: list[Path], out_dir: Path, crs_in: CRS, jobs: int | None = None) -> dict:
    """Convert LAS/LAZ `paths` (read in `crs_in` when their header has no CRS) into `out_dir`."""
    import laspy

    if not paths:
        raise PointCloudError("no point-cloud files to convert")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise PointCloudError(f"point-cloud files not found: {', '.join(missing)}")
    n_points, rgb, classes = 0, True, True
    for p in paths:
        with laspy.open(p) as reader:
            n_points += reader.header.point_count
            rgb &= "red" in reader.header.point_format.dimension_names
            classes &= "classification" in (reader.header.point_format.dtype().fields or {})
    extra = ["classification"] if classes else []

    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    started = time.perf_counter()
    _convert_isolated({
        "files": [str(p) for p in paths], "out": str(out_dir),
        "jobs": jobs or max(1, min(len(os.sched_getaffinity(0)), 8)),
        "crs_wkt": crs_in.to_wkt(), "rgb": rgb, "extra": extra,
    })
    seconds = time.perf_counter() - started

    tileset = json.loads((out_dir / "tileset.json").read_text())
    contents = [t["content"]["uri"] for t in _walk(tileset["root"]) if "content" in t]
    files = [f for f in out_dir.rglob("*") if f.is_file()]
    return {
        "tileset": str(out_dir / "tileset.json"),
        "source_files": len(paths),
        "source_points": int(n_points),
        "tiles": len(contents),
        "bytes": sum(f.stat().st_size for f in files),
        "rgb": rgb,
        "batch_properties": extra,
        "seconds": round(seconds, 2),
        "crs_in": crs_in.to_string(),
    }


def _walk(tile: dict):
    yield tile
    for child in tile.get("children", []):
        yield from _walk(child)


def _convert_isolated(args: dict) -> None:
    """Run py3dtiles' converter in a fresh interpreter.

    It forks zmq worker processes; forked from a process that already runs
    threads (a test runner, a web or job worker) the workers can hang before
    they register. A clean process has no such threads.
    """
    proc = subprocess.run([sys.executable, "-m", "tiles.pointcloud", json.dumps(args)],
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
        raise PointCloudError(f"py3dtiles could not convert the point clouds: {lines[-1] if lines else proc.returncode}",
                              detail=proc.stderr[-4000:])


def _convert_main(raw: str) -> int:
    from py3dtiles.convert import convert
    from py3dtiles.exceptions import Py3dtilesException

    args = json.loads(raw)
    try:
        convert(args["files"], outfolder=Path(args["out"]), overwrite=True, jobs=args["jobs"],
                crs_in=CRS.from_wkt(args["crs_wkt"]), crs_out=CRS.from_epsg(4978), force_crs_in=False,
                pyproj_always_xy=True, rgb=args["rgb"], extra_fields=args["extra"])
    except Py3dtilesException as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_convert_main(sys.argv[1]))
