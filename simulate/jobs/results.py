"""Writing a run's results into its job folder, and the catalogue of result layers.

`result_layers(twin_dir)` (or a `ResultCatalog`) is what the Features API consults
to serve each successful job's layers as collections named `job-<id>-<layer>`;
it reads only `jobs.sqlite` until a layer is actually loaded.
"""

from __future__ import annotations

import json
import mimetypes
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from simulate.jobs.model import COG, JobNotFound, JobStatus, ResultIndex
from simulate.jobs.store import JobStore
from simulate.process import OutputSpec, ProcessError, ProcessResult
from twin.errors import LayerNotFound
from twin.manifest import LayerRecord

if TYPE_CHECKING:
    import geopandas as gpd

SUMMARY = "summary.json"
GPKG = "results.gpkg"
PREFIX = "job-"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _finite(obj):
    """JSON has no NaN or infinity: they become null."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _check_name(kind: str, name: str) -> None:
    if not _NAME.match(name):
        raise ProcessError(f"{kind} output name '{name}' is not a plain identifier")


def _layer_record(frame: gpd.GeoDataFrame, title: str, classification: str) -> LayerRecord:
    from pyproj import Transformer

    count = len(frame)
    bbox = wgs84 = None
    if count and not frame.geometry.is_empty.all():
        minx, miny, maxx, maxy = (float(v) for v in frame.total_bounds)
        bbox = (minx, miny, maxx, maxy)
        if frame.crs is not None:
            to = Transformer.from_crs(frame.crs, "EPSG:4326", always_xy=True)
            wgs84 = tuple(float(v) for v in to.transform_bounds(minx, miny, maxx, maxy))
    types = sorted(set(frame.geom_type.dropna()))
    schema = {c: str(frame[c].dtype) for c in frame.columns if c != frame.geometry.name}
    return LayerRecord(kind="scenario-result", title=title, classification=classification, count=count,
                       geometry_type=types[0] if len(types) == 1 else ("Geometry" if types else None),
                       bbox=bbox, bbox_wgs84=wgs84, schema=schema)


def _adopt(job_dir: Path, kind: str, name: str, path: Path) -> str:
    """The path of an output (a file, or a folder of files) relative to the job folder;
    outputs written elsewhere are copied in."""
    path = Path(path).resolve()
    if not (path.is_file() or (kind == "file" and path.is_dir())):
        raise ProcessError(f"{kind} output '{name}' was not written ({path.name} is missing)")
    root = job_dir.resolve()
    if root not in path.parents:
        target = root / "outputs" / f"{name}{path.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, target)
        else:
            shutil.copy2(path, target)
        path = target
    return path.relative_to(root).as_posix()


def write_results(job_dir: Path, result: ProcessResult, outputs: Mapping[str, OutputSpec], *,
                  job_id: str, classification: str) -> ResultIndex:
    """Persist `result` under `job_dir` and return the index kept in the job's row."""
    import pyogrio

    summary_output = next((k for k, spec in outputs.items() if spec.kind == "summary"), "summary")
    summary = json.loads(json.dumps(result.summary, default=_json_default))
    (job_dir / SUMMARY).write_text(json.dumps(_finite(summary), indent=1, allow_nan=False), encoding="utf-8")
    layers: dict[str, LayerRecord] = {}
    for name, frame in result.layers.items():
        _check_name("layer", name)
        frame = frame.copy()
        for col in frame.columns:
            if col != frame.geometry.name and frame[col].dtype == object:
                frame[col] = frame[col].astype("string")
        pyogrio.write_dataframe(frame, job_dir / GPKG, layer=name, driver="GPKG", promote_to_multi=False,
                                SPATIAL_INDEX="YES")
        spec = outputs.get(name)
        title = f"{spec.title if spec else name} (job {job_id})"
        layers[name] = _layer_record(frame, title, classification)
    rasters = {}
    for name, path in result.rasters.items():
        _check_name("raster", name)
        rasters[name] = _adopt(job_dir, "raster", name, path)
    files, media, folders = {}, {}, []
    for name, path in result.files.items():
        _check_name("file", name)
        files[name] = _adopt(job_dir, "file", name, path)
        if (job_dir / files[name]).is_dir():
            folders.append(name)
        spec = outputs.get(name)
        media[name] = (spec.media_type if spec and spec.kind == "file" else None) \
            or mimetypes.guess_type(files[name])[0] or "application/octet-stream"
    return ResultIndex(summary_output=summary_output, layers=layers, rasters=rasters, files=files,
                       media_types=media, folders=folders)


def read_summary(job_dir: Path) -> dict:
    return json.loads((job_dir / SUMMARY).read_text(encoding="utf-8"))


def read_layer(job_dir: Path, name: str) -> gpd.GeoDataFrame:
    import pyogrio

    return pyogrio.read_dataframe(job_dir / GPKG, layer=name, fid_as_index=False)


def media_type(index: ResultIndex, name: str) -> str:
    if name in index.rasters:
        return COG
    if name in index.folders:
        return "application/json"    # a listing of the folder's files
    return index.media_types.get(name, "application/octet-stream")


def output_path(job_dir: Path, index: ResultIndex, name: str, member: str | None = None) -> Path | None:
    """The file of raster or file output `name` (or of `member` of a folder output), or None."""
    rel = index.rasters.get(name) or index.files.get(name)
    if rel is None:
        return None
    path = (job_dir / rel).resolve()
    if member is None:
        return path
    if name not in index.folders:
        return None
    target = (path / member).resolve()
    return target if path in target.parents and target.is_file() else None


def folder_listing(job_dir: Path, index: ResultIndex, name: str, href: str) -> dict:
    """The files of folder output `name`, each with its `href` (`{href}/{member}`)."""
    folder = job_dir / index.files[name]
    kind = index.media_types.get(name, "application/octet-stream")
    return {"output": name, "files": [{"href": f"{href}/{p.relative_to(folder).as_posix()}", "type": kind}
                                      for p in sorted(folder.rglob("*")) if p.is_file()]}


# -- the catalogue the Features API consults ------------------------------------------------------
@dataclass(frozen=True)
class ResultLayer:
    """One result layer of a successful job, served as collection `name`."""

    name: str              # job-<id>-<layer>
    job_id: str
    layer: str
    record: LayerRecord    # classification, count, bbox (project CRS and WGS84), schema, title
    path: Path             # the job's results.gpkg

    @property
    def classification(self) -> str:
        return self.record.classification

    def load(self) -> gpd.GeoDataFrame:
        return read_layer(self.path.parent, self.layer)


def collection_id(job_id: str, layer: str) -> str:
    return f"{PREFIX}{job_id}-{layer}"


class ResultCatalog:
    """Result layers of the successful jobs in a twin, read fresh from `DIR/jobs/jobs.sqlite` on each call."""

    def __init__(self, twin_dir: str | Path):
        self.jobs = JobStore(Path(twin_dir) / "jobs")

    def layers(self) -> dict[str, ResultLayer]:
        out = {}
        for job in self.jobs.successful_with_layers():
            for layer, record in job.results.layers.items():
                name = collection_id(job.id, layer)
                out[name] = ResultLayer(name, job.id, layer, record, self.jobs.job_dir(job.id) / GPKG)
        return out

    def names(self) -> list[str]:
        return list(self.layers())

    def get(self, name: str) -> ResultLayer:
        """The layer of collection `name` (`job-<id>-<layer>`); LayerNotFound if there is none."""
        job_id, _, layer = name[len(PREFIX):].partition("-") if name.startswith(PREFIX) else ("", "", "")
        if job_id and layer:
            try:
                job = self.jobs.get(job_id)
            except JobNotFound:
                job = None
            if job is not None and job.status is JobStatus.successful and job.results \
                    and layer in job.results.layers:
                return ResultLayer(name, job.id, layer, job.results.layers[layer], self.jobs.job_dir(job.id) / GPKG)
        raise LayerNotFound(f"no collection '{name}'", source=name)


    def record(self, name: str) -> LayerRecord:
        return self.get(name).record

    def load(self, name: str) -> gpd.GeoDataFrame:
        return self.get(name).load()


class JobResults:
    """`PriorResults` over a job store: what a chained process reads from an earlier job."""

    def __init__(self, jobs: JobStore):
        self.jobs = jobs

    def _job(self, job_id: str):
        try:
            job = self.jobs.get(job_id)
        except JobNotFound:
            raise ProcessError(f"no job '{job_id}'", field="hazard") from None
        if job.status is not JobStatus.successful or job.results is None:
            raise ProcessError(f"job '{job_id}' has no results (status {job.status.value})", field="hazard")
        return job

    def process_of(self, job_id: str) -> str:
        return self._job(job_id).process

    def summary(self, job_id: str) -> dict:
        self._job(job_id)
        return read_summary(self.jobs.job_dir(job_id))

    def layer(self, job_id: str, name: str) -> gpd.GeoDataFrame:
        job = self._job(job_id)
        if name not in job.results.layers:
            raise ProcessError(f"job '{job_id}' has no result layer '{name}'", field="hazard")
        return read_layer(self.jobs.job_dir(job_id), name)

    def raster_path(self, job_id: str, name: str) -> Path:
        job = self._job(job_id)
        path = output_path(self.jobs.job_dir(job_id), job.results, name)
        if path is None or name not in job.results.rasters:
            raise ProcessError(f"job '{job_id}' has no result raster '{name}'", field="hazard")
        return path


def result_layers(twin_dir: str | Path) -> dict[str, ResultLayer]:
    """Collection id -> result layer (`.load()` gives the GeoDataFrame, `.classification` who may read it)."""
    return ResultCatalog(twin_dir).layers()


def results_document(job_id: str, index: ResultIndex, job_dir: Path, root: str) -> dict:
    """The OGC API - Processes results document: the summary inline, every other output by reference."""
    me = f"{root}/jobs/{job_id}/results"
    doc: dict = {index.summary_output: read_summary(job_dir)}
    for name, record in index.layers.items():
        doc[name] = {"href": f"{me}/{name}", "type": "application/geo+json", "title": record.title,
                     "collection": collection_id(job_id, name)}
    for name in index.rasters:
        doc[name] = {"href": f"{me}/{name}", "type": COG}
    for name in index.files:
        doc[name] = {"href": f"{me}/{name}", "type": media_type(index, name)}
    return doc
