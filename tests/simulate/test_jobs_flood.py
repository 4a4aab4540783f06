"""Integration: the real flood process ("flood" in simulate.process.PROCESSES) run as a job in a
worker process on the Tianhe twin, its result layers catalogued for the Features API."""

from __future__ import annotations

import shutil
import time

import pytest

flood = pytest.importorskip("simulate.flood.process", reason="the flood process is not written yet")

from simulate.jobs import JobManager, JobStatus, result_layers


def small_inputs() -> dict:
    """A short storm on a coarse grid: seconds of compute, every kind of output."""
    return {"rain_mm": 80, "duration": "30min", "horizon": "45min", "resolution_m": 20, "frame_interval_min": 15}


@pytest.mark.slow
def test_flood_runs_as_a_job_on_the_tianhe_twin(tianhe_twin, tmp_path):
    twin = tmp_path / "twin"
    shutil.copytree(tianhe_twin.store.root, twin, ignore=shutil.ignore_patterns("jobs", "tiles"))
    manager = JobManager(twin)                         # the production registry
    assert "flood" in [p.id for p in manager.processes()]
    job = manager.submit("flood", small_inputs(), owner="ops", mode="async")
    seen = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        job = manager.get(job.id)
        seen.append((job.progress, job.sim_time_s))
        if not job.status.active:
            break
        time.sleep(0.2)
    assert job.status is JobStatus.successful, (job.error, (twin / "jobs" / job.id / "worker.log").read_text())
    progress = [p for p, _ in seen]
    assert progress == sorted(progress) and job.progress == 100
    assert job.sim_time_s and job.sim_time_s > 0
    assert (twin / "jobs" / job.id / "summary.json").is_file()
    assert "frames" in job.results.folders and job.results.rasters
    layers = {name: layer for name, layer in result_layers(twin).items() if layer.job_id == job.id}
    assert set(layers) == {f"job-{job.id}-{name}" for name in job.results.layers}
    for layer in layers.values():
        frame = layer.load()
        assert len(frame) == layer.record.count and frame.crs is not None
