"""JobManager on a copy of the Tianhe twin with a small real process: a toy time loop that
buffers buildings, reports progress and simulated time, and writes a layer, a raster and a file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, Field

from simulate.jobs import INTERRUPTED, JobManager, JobStatus, NoResults, result_layers
from simulate.jobs.manager import WORKER_LOST, pid_alive
from simulate.process import OutputSpec, Process, ProcessError, ProcessResult, ProgressReport, UnknownProcess


class RainInputs(BaseModel):
    steps: int = Field(5, ge=1, le=10_000, description="time steps")
    dt_s: float = Field(60.0, gt=0, description="step length", json_schema_extra={"units": "s"})
    buffer_m: float = Field(5.0, gt=0, le=100, description="wet zone around each building")
    delay_s: float = Field(0.0, ge=0, le=5, description="wall time per step (to make runs slow)")
    fail_at: int | None = Field(None, description="raise ProcessError at this step")


class RainProcess(Process):
    id = "rain"
    title = "Toy rain"
    description = "Buffers buildings step by step"
    inputs = RainInputs
    outputs = {"summary": OutputSpec("summary", "summary"),
               "wet_buildings": OutputSpec("buildings in the wet zone", "layer"),
               "depth": OutputSpec("water depth", "raster", units="m"),
               "series": OutputSpec("depth series", "file", media_type="text/csv")}
    sync_limit_s = 2.0

    def estimate_seconds(self, store, inputs: RainInputs) -> float:
        return inputs.steps * inputs.delay_s

    def execute(self, store, inputs: RainInputs, workdir: Path, progress, results=None) -> ProcessResult:
        import rasterio
        from rasterio.transform import Affine

        buildings = store.read_layer("buildings").head(40)
        rows = []
        for step in range(1, inputs.steps + 1):
            if inputs.fail_at == step:
                raise ProcessError(f"the rain stopped at step {step}", field="fail_at")
            time.sleep(inputs.delay_s)
            rows.append(f"{step * inputs.dt_s},{step * 0.01:.3f}")
            progress(ProgressReport(100.0 * step / inputs.steps, f"step {step}", sim_time_s=step * inputs.dt_s))
        wet = buildings[["id", "geometry"]].copy()
        wet["geometry"] = wet.buffer(inputs.buffer_m)
        wet["depth_m"] = np.linspace(0.1, 0.5, len(wet))
        x0, y0, x1, y1 = wet.total_bounds
        depth = workdir / "depth.tif"
        with rasterio.open(depth, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32",
                           crs=str(wet.crs), transform=Affine((x1 - x0) / 4, 0, x0, 0, -(y1 - y0) / 4, y1)) as ds:
            ds.write(np.full((1, 4, 4), 0.25, dtype="float32"))
        series = workdir / "series.csv"
        series.write_text("t_s,depth_m\n" + "\n".join(rows) + "\n")
        return ProcessResult(summary={"steps": inputs.steps, "wet": np.int64(len(wet))},
                             layers={"wet_buildings": wet}, rasters={"depth": depth}, files={"series": series})


REGISTRY = {"rain": f"{__name__}:RainProcess", "broken": "no_such_module:Nothing"}


@pytest.fixture()
def twin(tianhe_twin, tmp_path) -> Path:
    root = tmp_path / "twin"
    shutil.copytree(tianhe_twin.store.root, root, ignore=shutil.ignore_patterns("jobs", "tiles"))
    return root


@pytest.fixture()
def manager(twin) -> JobManager:
    return JobManager(twin, REGISTRY)


def wait_for(manager: JobManager, job_id: str, statuses, timeout: float = 30.0, seen: list | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = manager.get(job_id)
        if seen is not None:
            seen.append(job.progress)
        if job.status in statuses:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {manager.get(job_id).status} after {timeout}s")


def test_sync_run_persists_results_in_the_twin(manager, twin):
    job = manager.submit("rain", {"steps": 3}, owner="ops")
    assert job.status is JobStatus.successful and job.mode == "sync" and job.progress == 100
    assert job.sim_time_s == 180.0 and job.inputs["buffer_m"] == 5.0 and job.pid == os.getpid()
    folder = twin / "jobs" / job.id
    assert json.loads((folder / "summary.json").read_text()) == {"steps": 3, "wet": 40}
    assert (folder / "results.gpkg").is_file() and (folder / job.results.rasters["depth"]).is_file()
    assert job.results.files == {"series": "work/series.csv"} and job.results.media_types["series"] == "text/csv"
    record = job.results.layers["wet_buildings"]
    assert record.count == 40 and record.geometry_type == "Polygon" and record.classification == "internal"
    assert 113.0 < record.bbox_wgs84[0] < 114.0
    # a second manager (another web worker, a restart) reads the same row from jobs.sqlite
    again = JobManager(twin, REGISTRY).get(job.id)
    assert again.status is JobStatus.successful and again.results == job.results
    with sqlite3.connect(twin / "jobs" / "jobs.sqlite") as con:
        assert con.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_result_layers_are_catalogued_for_the_features_api(manager, twin):
    job = manager.submit("rain", {"steps": 1}, owner="ops")
    layers = result_layers(twin)
    name = f"job-{job.id}-wet_buildings"
    assert list(layers) == [name]
    layer = layers[name]
    assert layer.classification == "internal" and layer.record.count == 40
    frame = layer.load()
    assert len(frame) == 40 and frame.crs.to_epsg() == 4547 and "depth_m" in frame
    manager.dismiss(job.id)
    assert result_layers(twin) == {}


def test_inputs_are_validated_naming_the_field(manager, twin):
    with pytest.raises(ProcessError) as err:
        manager.submit("rain", {"steps": 0}, owner="ops")
    assert err.value.field == "steps" and "steps" in err.value.message
    with pytest.raises(ProcessError) as err:
        manager.submit("rain", {"buffer_m": "wide"}, owner="ops")
    assert err.value.field == "buffer_m"
    with pytest.raises(UnknownProcess):
        manager.submit("hail", {}, owner="ops")
    with pytest.raises(UnknownProcess, match="not installed"):
        manager.process("broken")
    assert [p.id for p in manager.processes()] == ["rain"]
    assert manager.list()[1] == 0           # nothing was recorded for rejected submissions


def test_a_failing_run_is_recorded_and_raised(manager):
    with pytest.raises(ProcessError, match="stopped at step 2"):
        manager.submit("rain", {"steps": 4, "fail_at": 2}, owner="ops")
    (job,), total = manager.list()
    assert total == 1 and job.status is JobStatus.failed and job.error == "the rain stopped at step 2"
    with pytest.raises(NoResults, match="failed"):
        manager.results(job.id)


def test_async_run_in_a_worker_process(manager, twin):
    job = manager.submit("rain", {"steps": 12, "delay_s": 0.1}, owner="ops")   # estimate 1.2 s < 2 s
    assert job.mode == "sync"
    job = manager.submit("rain", {"steps": 30, "delay_s": 0.1}, owner="ops")   # estimate 3 s: a worker
    assert job.mode == "async" and job.status in (JobStatus.accepted, JobStatus.running)
    assert job.pid and job.pid != os.getpid() and pid_alive(job.pid)
    seen: list[float] = []
    done = wait_for(manager, job.id, {JobStatus.successful, JobStatus.failed}, seen=seen)
    assert done.status is JobStatus.successful, done.error
    assert seen == sorted(seen) and len(set(seen)) >= 3          # progress rose in steps
    assert done.sim_time_s == 1800.0 and done.started >= done.created and done.finished >= done.started
    assert "finished" in (twin / "jobs" / job.id / "worker.log").read_text()
    jobs, total = manager.list(status=[JobStatus.successful], process=["rain"])
    assert total == 2 and jobs[0].id == job.id               # newest first


def test_dismiss_cancels_the_worker_and_removes_files(manager, twin):
    job = manager.submit("rain", {"steps": 200, "delay_s": 0.05}, owner="ops", mode="async")
    running = wait_for(manager, job.id, {JobStatus.running})
    deadline = time.monotonic() + 10
    while manager.get(job.id).progress < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (twin / "jobs" / job.id).is_dir()
    gone = manager.dismiss(job.id)
    assert gone.status is JobStatus.dismissed and not pid_alive(running.pid)
    assert not (twin / "jobs" / job.id).exists()
    assert manager.dismiss(job.id).status is JobStatus.dismissed      # idempotent
    assert manager.list()[1] == 0 and manager.list(status=[JobStatus.dismissed])[1] == 1
    with pytest.raises(NoResults, match="dismissed"):
        manager.results(job.id)


def test_killed_worker_is_marked_interrupted_by_recover(manager, twin):
    job = manager.submit("rain", {"steps": 400, "delay_s": 0.05}, owner="ops", mode="async")
    running = wait_for(manager, job.id, {JobStatus.running})
    os.kill(running.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid_alive(running.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    restarted = JobManager(twin, REGISTRY)            # as a server starting up would
    assert restarted.recover() == [job.id]
    failed = restarted.jobs.get(job.id)
    assert failed.status is JobStatus.failed and failed.message == INTERRUPTED and failed.interrupted
    assert any(link["rel"] == "rerun" for link in failed.links("http://x/ogc"))
    assert restarted.recover() == []                   # idempotent
    again = restarted.rerun(job.id, owner="chief")
    assert again.mode == "async" and again.rerun_of == job.id and again.owner == "chief"
    assert again.inputs == failed.inputs and again.status.active
    assert restarted.dismiss(again.id).status is JobStatus.dismissed


def test_a_stale_heartbeat_counts_as_a_lost_worker(manager, twin):
    job = manager.submit("rain", {"steps": 400, "delay_s": 0.05}, owner="ops", mode="async")
    running = wait_for(manager, job.id, {JobStatus.running})
    impatient = JobManager(twin, REGISTRY, stale_after_s=1.0)
    assert impatient.get(job.id).status is JobStatus.running       # beating
    os.kill(running.pid, signal.SIGSTOP)                # alive, but its heartbeat stops
    try:
        time.sleep(2.0)
        lost = impatient.get(job.id)
        assert lost.status is JobStatus.failed and lost.message == WORKER_LOST
    finally:
        os.kill(running.pid, signal.SIGKILL)
        os.kill(running.pid, signal.SIGCONT)
