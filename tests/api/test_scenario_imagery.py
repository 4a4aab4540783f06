"""Depth imagery and point hydrographs of a flood job, on a throwaway app over a copy of the Tianhe twin
with a job whose depth rasters are synthetic (known values), so expected pixels and series are known."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from pyproj import Transformer
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from api.app import create_app
from api.routers import scenario_imagery
from api.settings import ApiKey, Settings
from simulate.jobs.model import Job, JobStatus, ResultIndex
from simulate.jobs.store import JobStore
from tiles.depth_imagery import DEPTH_CLASSES, DRY_DEPTH_M

OWNER = {"X-API-Key": "k-ops"}        # owns the job
GUEST = {"X-API-Key": "k-guest"}      # public clearance: may not read another's internal job
CHIEF = {"X-API-Key": "k-chief"}      # restricted clearance: reads every job
KEYS = [ApiKey(key="k-ops", name="ops", clearance="internal", scopes=["scenario:run"]),
        ApiKey(key="k-guest", name="guest", clearance="public", scopes=["scenario:run"]),
        ApiKey(key="k-chief", name="chief", clearance="restricted", scopes=["scenario:run"])]
CRS = "EPSG:4547"
X0, Y0, CELL, BLOCK = 430_000.0, 2_558_000.0, 20.0, 5
MAX = np.array([[0.0, 0.1, 0.4], [0.8, 1.6, np.nan]], np.float32)       # per 5 x 5 cell block
FRAME_DEPTHS = {0: 0.0, 10: 0.2, 20: 0.7, 30: np.nan}                   # block (1, 0) over time
TO_WGS84 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)


def _write(path, blocks) -> None:
    data = np.kron(blocks, np.ones((BLOCK, BLOCK), np.float32))
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype="float32", nodata=np.nan, crs=CRS, transform=from_origin(X0, Y0, CELL, CELL)) as dst:
        dst.write(data, 1)


def _centre(i: int, j: int) -> tuple[float, float]:
    return TO_WGS84.transform(X0 + (j + 0.5) * BLOCK * CELL, Y0 - (i + 0.5) * BLOCK * CELL)


def _rgba(depth: float) -> tuple[int, ...]:
    if not math.isfinite(depth) or depth < DRY_DEPTH_M:
        return (0, 0, 0, 0)
    return next(c.rgba for c in DEPTH_CLASSES if c.lower <= depth < c.upper)


@pytest.fixture(scope="module")
def twin(tianhe_twin, tmp_path_factory):
    root = tmp_path_factory.mktemp("scenario-imagery") / "twin"
    shutil.copytree(tianhe_twin.store.root, root, ignore=shutil.ignore_patterns("jobs", "tiles"))
    store = JobStore(root / "jobs")
    done = Job(id="flooddone0000001", process="flood", target="simulate.flood.process:FloodProcess",
               status=JobStatus.running, owner="ops")
    store.insert(done)
    work = store.job_dir(done.id) / "work"
    _write(work / "max_depth.tif", MAX)
    for minutes, depth in FRAME_DEPTHS.items():
        blocks = np.zeros_like(MAX)
        blocks[1, 0] = depth
        _write(work / "frames" / f"depth_{minutes:05d}min.tif", blocks)
    assert store.succeed(done.id, ResultIndex(rasters={"max_depth": "work/max_depth.tif"},
                                              files={"frames": "work/frames"}, folders=["frames"],
                                              media_types={"frames": "image/tiff"}), "done")
    store.insert(Job(id="floodrunning0001", process="flood", target="simulate.flood.process:FloodProcess",
                     status=JobStatus.accepted, owner="ops"))
    return root


@pytest.fixture(scope="module")
def client(twin):
    app = create_app(Settings(twin_dir=twin, api_keys=KEYS))
    app.include_router(scenario_imagery.router())
    with TestClient(app) as c:
        yield c


def _png(data: bytes) -> np.ndarray:
    with MemoryFile(data) as mem, mem.open() as src:
        return np.moveaxis(src.read(), 0, 2)


def _pixel(image, rect, lon, lat):
    h, w = image.shape[:2]
    col = int((lon - rect["west"]) / (rect["east"] - rect["west"]) * w)
    row = int((rect["north"] - lat) / (rect["north"] - rect["south"]) * h)
    return tuple(int(v) for v in image[row, col])


def test_index_lists_max_depth_and_frames(client):
    r = client.get("/ogc/jobs/flooddone0000001/imagery", headers=OWNER)
    assert r.status_code == 200
    body = r.json()
    assert [f["minutes"] for f in body["frames"]] == sorted(FRAME_DEPTHS)
    assert body["frames"][1]["name"] == "frames/depth_00010min"
    assert body["frames"][1]["png"].endswith("/ogc/jobs/flooddone0000001/imagery/frames/depth_00010min.png")
    assert body["max_depth"]["max_depth_m"] == pytest.approx(1.6)
    assert body["legend"][0]["min_m"] == DRY_DEPTH_M
    lon0, lat0 = TO_WGS84.transform(X0, Y0)
    rect = body["rectangle"]
    assert rect["west"] <= lon0 + 1e-9 and rect["north"] >= lat0 - 1e-9


def test_max_depth_png_pixels_and_cache(client, twin):
    meta = client.get("/ogc/jobs/flooddone0000001/imagery/max_depth.json", headers=OWNER).json()
    r = client.get("/ogc/jobs/flooddone0000001/imagery/max_depth.png", headers=OWNER)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["cache-control"].startswith("private")
    image = _png(r.content)
    assert image.shape == (meta["height"], meta["width"], 4)
    for (i, j), depth in np.ndenumerate(MAX):
        lon, lat = _centre(i, j)
        assert _pixel(image, meta["rectangle"], lon, lat) == _rgba(float(depth)), (i, j)
    assert (twin / "jobs" / "flooddone0000001" / "imagery" / "max_depth.png").is_file()
    again = client.get("/ogc/jobs/flooddone0000001/imagery/max_depth.png",
                       headers={**OWNER, "If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


def test_frame_png(client):
    meta = client.get("/ogc/jobs/flooddone0000001/imagery/frames/depth_00020min.json", headers=OWNER).json()
    assert meta["url"].endswith("/imagery/frames/depth_00020min.png")
    image = _png(client.get(meta["url"], headers=OWNER).content)
    assert _pixel(image, meta["rectangle"], *_centre(1, 0)) == _rgba(0.7)
    assert _pixel(image, meta["rectangle"], *_centre(0, 2)) == (0, 0, 0, 0)


def test_hydrograph_at_a_point(client):
    lon, lat = _centre(1, 0)
    r = client.get("/ogc/jobs/flooddone0000001/hydrograph", params={"lon": lon, "lat": lat}, headers=OWNER)
    assert r.status_code == 200
    body = r.json()
    assert [p["t_min"] for p in body["series"]] == sorted(FRAME_DEPTHS)
    want = [0.0 if math.isnan(v) else v for v in FRAME_DEPTHS.values()]
    assert [p["depth_m"] for p in body["series"]] == pytest.approx(want, abs=1e-4)
    assert body["max_depth_m"] == pytest.approx(0.7, abs=1e-4)
    outside = client.get("/ogc/jobs/flooddone0000001/hydrograph", params={"lon": 100.0, "lat": 20.0}, headers=OWNER)
    assert outside.status_code == 400
    assert client.get("/ogc/jobs/flooddone0000001/hydrograph", params={"lon": 500, "lat": 0},
                      headers=OWNER).status_code == 400


@pytest.mark.parametrize("path", ["/imagery", "/imagery/max_depth.png", "/imagery/frames/depth_00010min.json",
                                  "/hydrograph?lon=113.3&lat=23.1"])
def test_access_follows_the_jobs_rule(client, path):
    url = "/ogc/jobs/flooddone0000001" + path
    assert client.get(url).status_code == 401                       # no key
    assert client.get(url, headers=GUEST).status_code == 403        # not the owner, clearance too low
    assert client.get(url, headers=CHIEF).status_code in (200, 400)  # restricted reads every job


def test_unknown_rasters_and_unfinished_jobs(client):
    for raster in ("max_speed", "frames/depth_00015min", "frames/depth_00010min.tif", "work/max_depth", "summary"):
        r = client.get(f"/ogc/jobs/flooddone0000001/imagery/{raster}.png", headers=OWNER)
        assert r.status_code == 404, raster
    assert client.get("/ogc/jobs/nosuchjob/imagery", headers=OWNER).status_code == 404
    r = client.get("/ogc/jobs/floodrunning0001/imagery/max_depth.png", headers=OWNER)
    assert r.status_code == 404 and "no results" in r.json()["description"]
