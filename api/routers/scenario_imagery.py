"""Flood results a browser can draw: depth rasters as WGS84 PNGs, and depth over time at a point.

Under `/ogc/jobs/{id}`, next to the job's OGC results, with the same access rule as the
processes router (the owner, or a key whose clearance covers the job's classification):

  GET .../imagery                     index: rectangle, legend, max_depth and every frame's URLs
  GET .../imagery/{raster}.png        max_depth or frames/depth_NNNNNmin as a transparent PNG
  GET .../imagery/{raster}.json       its lon/lat rectangle, size and legend
  GET .../hydrograph?lon=&lat=        depth (m) at that point in every frame

Renderings are cached in the job's folder (`imagery/`), so each is drawn once.
Compose with `app.include_router(scenario_imagery.router())`.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from api.auth import Principal
from api.errors import BadRequest
from api.routers.processes import PREFIX, _readable, job_manager, key_holder
from api.routers.tiles import serve_file
from simulate.jobs.manager import JobManager
from simulate.jobs.model import Job, NoResults
from simulate.jobs.results import output_path
from tiles.depth_imagery import (
    DRY_DEPTH_M,
    PointOutside,
    cached_depth_png,
    depth_legend,
    depth_series,
    list_frames,
)

CACHE_FOLDER = "imagery"
MAX_DEPTH = "max_depth"
FRAMES = "frames"
_FRAME = re.compile(r"^frames/depth_\d{1,6}min$")


class JobFolder:
    """Dependency: a successful job the caller may read, and its folder."""

    def __init__(self, job_id: str = PathParam(..., description="job id"),
                 manager: JobManager = Depends(job_manager), who: Principal = Depends(key_holder)):
        _readable(who, manager.get(job_id))
        self.job, self.folder = manager.results(job_id)

    @property
    def frames_dir(self) -> Path | None:
        path = output_path(self.folder, self.job.results, FRAMES)
        return path if path is not None and FRAMES in self.job.results.folders else None

    def source(self, raster: str) -> Path:
        """The GeoTIFF of `max_depth` or `frames/depth_NNNNNmin`; NoResults for anything else."""
        path = None
        if raster == MAX_DEPTH:
            path = output_path(self.folder, self.job.results, MAX_DEPTH)
        elif _FRAME.match(raster):
            path = output_path(self.folder, self.job.results, FRAMES, raster.split("/", 1)[1] + ".tif")
        if path is None or not path.is_file():
            raise NoResults(f"job '{self.job.id}' has no depth raster '{raster}'", source=self.job.id)
        return path

    def rendered(self, raster: str) -> tuple[Path, dict]:
        return cached_depth_png(self.source(raster), self.folder / CACHE_FOLDER / f"{raster}.png")


def _base(request: Request, job: Job) -> str:
    return str(request.base_url).rstrip("/") + f"{PREFIX}/jobs/{job.id}"


def _meta(meta: dict, png: str) -> dict:
    return {k: meta[k] for k in ("rectangle", "width", "height", "max_depth_m", "wet_fraction", "dry_depth_m",
                                 "legend")} | {"url": png}


def router() -> APIRouter:
    r = APIRouter(prefix=PREFIX, tags=["processes (OGC API)"])

    @r.get("/jobs/{job_id}/imagery", summary="A flood job's depth imagery: rectangle, legend and URLs")
    def imagery_index(request: Request, jf: JobFolder = Depends()) -> JSONResponse:
        base = f"{_base(request, jf.job)}/imagery"
        _, meta = jf.rendered(MAX_DEPTH)     # all depth rasters of a run share its grid, so its rectangle
        frames = [{"minutes": minutes, "name": f"{FRAMES}/{path.stem}", "png": f"{base}/{FRAMES}/{path.stem}.png",
                   "json": f"{base}/{FRAMES}/{path.stem}.json"}
                  for minutes, path in (list_frames(jf.frames_dir) if jf.frames_dir else [])]
        body = {"job": jf.job.id, "rectangle": meta["rectangle"], "dry_depth_m": DRY_DEPTH_M,
                "legend": depth_legend(), "units": "m",
                "max_depth": {"png": f"{base}/{MAX_DEPTH}.png", "json": f"{base}/{MAX_DEPTH}.json",
                              "max_depth_m": meta["max_depth_m"]},
                "frames": frames}
        return JSONResponse(body)

    @r.get("/jobs/{job_id}/imagery/{raster:path}.png", summary="A depth raster as a transparent WGS84 PNG",
           response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def imagery_png(request: Request, raster: str, jf: JobFolder = Depends()) -> Response:
        png, _ = jf.rendered(raster)
        return serve_file(request, png, cache_seconds=request.app.state.settings.static_cache_seconds,
                          public=False)

    @r.get("/jobs/{job_id}/imagery/{raster:path}.json", summary="A depth PNG's lon/lat rectangle and legend")
    def imagery_json(request: Request, raster: str, jf: JobFolder = Depends()) -> JSONResponse:
        _, meta = jf.rendered(raster)
        return JSONResponse(_meta(meta, f"{_base(request, jf.job)}/imagery/{raster}.png"))

    @r.get("/jobs/{job_id}/hydrograph", summary="Depth over time at a point, from the job's depth frames")
    def hydrograph(lon: float = Query(..., ge=-180, le=180, description="longitude (WGS84 degrees)"),
                   lat: float = Query(..., ge=-90, le=90, description="latitude (WGS84 degrees)"),
                   jf: JobFolder = Depends()) -> dict:
        if jf.frames_dir is None:
            raise NoResults(f"job '{jf.job.id}' wrote no depth frames", source=jf.job.id)
        try:
            series = depth_series(jf.frames_dir, lon, lat)
        except PointOutside as exc:
            raise BadRequest(exc.message, field=exc.field) from None
        return {"job": jf.job.id, "lon": lon, "lat": lat, "units": {"t": "min", "depth": "m"},
                "max_depth_m": max((d for _, d in series), default=0.0),
                "series": [{"t_min": m, "depth_m": round(d, 4)} for m, d in series]}

    return r
