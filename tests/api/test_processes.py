"""OGC API - Processes over a copy of the Tianhe twin: descriptions, synchronous and asynchronous
execution with the real worker process, job list, results, dismissal, access and restarts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from enum import Enum
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from api.app import create_app
from api.routers import processes
from api.settings import ApiKey, Settings
from simulate.jobs import INTERRUPTED
from simulate.jobs.manager import pid_alive
from simulate.process import OutputSpec, Process, ProcessError, ProcessResult, ProgressReport

OPS = {"X-API-Key": "k-ops"}          # internal clearance, may run
GUEST = {"X-API-Key": "k-guest"}      # public clearance, may run
ANALYST = {"X-API-Key": "k-analyst"}  # internal clearance, may not run
CHIEF = {"X-API-Key": "k-chief"}      # restricted clearance, may run
KEYS = [ApiKey(key="k-ops", name="ops", clearance="internal", scopes=["scenario:run"]),
        ApiKey(key="k-guest", name="guest", clearance="public", scopes=["scenario:run"]),
        ApiKey(key="k-analyst", name="analyst", clearance="internal"),
        ApiKey(key="k-chief", name="chief", clearance="restricted", scopes=["scenario:run"])]
ASYNC = {"Prefer": "respond-async"}


class Layer(str, Enum):
    buildings = "buildings"
    roads = "roads"


class Window(BaseModel):
    first: int = Field(0, ge=0, description="first feature")
    count: int = Field(50, ge=1, le=500, description="features to buffer")


class BufferInputs(BaseModel):
    layer: Layer = Field(Layer.buildings, description="twin layer to buffer")
    distance_m: float = Field(..., gt=0, le=500, description="buffer distance", json_schema_extra={"units": "m"})
    window: Window = Field(default_factory=Window, description="which features")
    steps: int = Field(4, ge=1, le=1000, description="progress steps")
    delay_s: float = Field(0.0, ge=0, le=2, description="wall time per step")


class BufferProcess(Process):
    id = "buffer"
    title = "Buffer a layer"
    description = "Buffers features of a twin layer, in steps"
    inputs = BufferInputs
    outputs = {"summary": OutputSpec("figures", "summary"),
               "buffered": OutputSpec("buffered features", "layer", units="m"),
               "frames": OutputSpec("one text file per step", "file", media_type="text/plain")}
    sync_limit_s = 5.0

    def estimate_seconds(self, store, inputs: BufferInputs) -> float:
        return inputs.steps * inputs.delay_s

    def execute(self, store, inputs: BufferInputs, workdir: Path, progress, results=None) -> ProcessResult:
        frame = store.read_layer(inputs.layer.value)
        frame = frame.iloc[inputs.window.first:inputs.window.first + inputs.window.count]
        if frame.empty:
            raise ProcessError("the window holds no features", field="window.first")
        (workdir / "frames").mkdir()
        for step in range(1, inputs.steps + 1):
            time.sleep(inputs.delay_s)
            (workdir / "frames" / f"step_{step:03d}.txt").write_text(f"step {step}\n")
            progress(ProgressReport(100.0 * step / inputs.steps, f"step {step}/{inputs.steps}",
                                    sim_time_s=10.0 * step))
        out = frame[["id", "geometry"]].copy()
        out["geometry"] = out.buffer(inputs.distance_m)
        return ProcessResult(summary={"features": len(out), "area_m2": round(float(out.area.sum()), 1)},
                             layers={"buffered": out}, files={"frames": workdir / "frames"})


REGISTRY = {"buffer": f"{__name__}:BufferProcess"}


def make_client(twin_dir: Path) -> TestClient:
    app = create_app(Settings(twin_dir=twin_dir, api_keys=KEYS, default_page_size=10, max_page_size=50))
    processes.install(app, registry=REGISTRY)
    app.include_router(processes.router())
    return TestClient(app)


@pytest.fixture()
def twin(tianhe_twin, tmp_path) -> Path:
    root = tmp_path / "twin"
    shutil.copytree(tianhe_twin.store.root, root, ignore=shutil.ignore_patterns("jobs", "tiles"))
    return root


@pytest.fixture()
def client(twin):
    with make_client(twin) as c:
        yield c


def poll(client: TestClient, url: str, until=("successful", "failed"), timeout: float = 30.0) -> list[dict]:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(url, headers=OPS)
        assert r.status_code == 200, r.text
        seen.append(r.json())
        if seen[-1]["status"] in until:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"{url} still {seen[-1]['status']} after {timeout}s")


def test_process_list_and_self_contained_description(client):
    listing = client.get("/ogc/processes").json()
    assert [p["id"] for p in listing["processes"]] == ["buffer"]
    assert listing["processes"][0]["jobControlOptions"] == ["sync-execute", "async-execute", "dismiss"]
    doc = client.get("/ogc/processes/buffer").json()
    assert "$ref" not in json.dumps(doc) and "$defs" not in json.dumps(doc)
    assert doc["inputs"]["layer"]["schema"]["enum"] == ["buildings", "roads"]
    assert doc["inputs"]["window"]["schema"]["properties"]["count"]["maximum"] == 500
    assert doc["inputs"]["distance_m"]["minOccurs"] == 1 and doc["inputs"]["steps"]["minOccurs"] == 0
    assert doc["inputs"]["distance_m"]["schema"]["units"] == "m"
    assert doc["outputs"]["buffered"]["schema"]["contentMediaType"] == "application/geo+json"
    execute = next(l for l in doc["links"] if l["rel"].endswith("/execute"))
    assert execute["href"].endswith("/ogc/processes/buffer/execution")


def test_unknown_process_is_404(client):
    r = client.get("/ogc/processes/nope")
    assert r.status_code == 404 and r.json()["type"].endswith("no-such-process")
    assert client.post("/ogc/processes/nope/execution", json={"inputs": {}}, headers=OPS).status_code == 404
    r = client.get("/ogc/jobs/0123456789abcdef", headers=OPS)
    assert r.status_code == 404 and r.json()["type"].endswith("no-such-job")


def test_validation_errors_name_the_field(client):
    r = client.post("/ogc/processes/buffer/execution", json={"inputs": {"distance_m": -3}}, headers=OPS)
    assert r.status_code == 400 and r.json()["field"] == "distance_m" and "distance_m" in r.json()["description"]
    r = client.post("/ogc/processes/buffer/execution", json={"inputs": {"distance_m": 3, "window": {"count": 0}}},
                    headers=OPS)
    assert r.status_code == 400 and r.json()["field"] == "window.count"
    r = client.post("/ogc/processes/buffer/execution", json={"inputs": {}}, headers=OPS)
    assert r.status_code == 400 and r.json()["field"] == "distance_m"
    r = client.post("/ogc/processes/buffer/execution", json={"inputs": {"distance_m": 3, "window": {"first": 9999}}},
                    headers=OPS)    # raised by the process while it runs
    assert r.status_code == 400 and r.json()["field"] == "window.first"
    r = client.post("/ogc/processes/buffer/execution", json={"inputs": [1]}, headers=OPS)
    assert r.status_code == 400 and r.json()["field"] == "inputs"


def test_running_needs_the_scope_and_reading_needs_a_key(client):
    body = {"inputs": {"distance_m": 2}}
    assert client.post("/ogc/processes/buffer/execution", json=body).status_code == 401
    assert client.post("/ogc/processes/buffer/execution", json=body, headers=ANALYST).status_code == 403
    r = client.post("/ogc/processes/buffer/execution", json=body, headers=OPS)
    assert r.status_code == 200
    job_id = r.headers["link"].split("/jobs/")[1].split(">")[0]
    assert client.get("/ogc/jobs").status_code == 401
    assert client.get(f"/ogc/jobs/{job_id}").status_code == 401
    assert client.get(f"/ogc/jobs/{job_id}", headers=GUEST).status_code == 403         # not owner, public clearance
    assert client.get("/ogc/jobs", headers=GUEST).json()["numberMatched"] == 0
    assert client.get(f"/ogc/jobs/{job_id}", headers=ANALYST).status_code == 200      # internal clearance
    assert client.delete(f"/ogc/jobs/{job_id}", headers=ANALYST).status_code == 403   # no scenario:run
    assert client.delete(f"/ogc/jobs/{job_id}", headers=GUEST).status_code == 403     # not owner
    assert client.delete(f"/ogc/jobs/{job_id}", headers=CHIEF).json()["status"] == "dismissed"


def test_sync_execution_returns_results(client, twin):
    r = client.post("/ogc/processes/buffer/execution", json={"inputs": {"distance_m": 10, "window": {"count": 7}}},
                    headers=OPS)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["summary"]["features"] == 7 and doc["summary"]["area_m2"] > 7 * 300
    job_id = r.headers["link"].split("/jobs/")[1].split(">")[0]
    assert doc["buffered"]["collection"] == f"job-{job_id}-buffered"
    layer = client.get(doc["buffered"]["href"], headers=OPS)
    assert layer.headers["content-type"] == "application/geo+json"
    features = layer.json()["features"]
    assert len(features) == 7 and features[0]["geometry"]["type"] == "Polygon"
    assert 113 < features[0]["geometry"]["coordinates"][0][0][0] < 114                # WGS84
    assert client.get(f"/ogc/jobs/{job_id}/results/summary", headers=OPS).json() == doc["summary"]
    assert client.get(f"/ogc/jobs/{job_id}/results/nothing", headers=OPS).status_code == 404
    listing = client.get(doc["frames"]["href"], headers=OPS).json()           # a folder output
    assert doc["frames"]["type"] == "application/json" and len(listing["files"]) == 4
    frame = client.get(listing["files"][-1]["href"], headers=OPS)
    assert frame.text == "step 4\n" and frame.headers["content-type"].startswith("text/plain")
    assert client.get(f"{doc['frames']['href']}/../summary.json", headers=OPS).status_code == 404
    status = client.get(f"/ogc/jobs/{job_id}", headers=OPS).json()
    assert status["status"] == "successful" and status["progress"] == 100 and status["sim_time_s"] == 40.0
    assert (twin / "jobs" / job_id / "results.gpkg").is_file()


def test_async_lifecycle_with_the_worker_process(client, twin):
    r = client.post("/ogc/processes/buffer/execution", headers={**OPS, **ASYNC},
                    json={"inputs": {"distance_m": 4, "steps": 25, "delay_s": 0.06}})
    assert r.status_code == 201, r.text
    assert r.headers["preference-applied"] == "respond-async"
    location = r.headers["location"]
    job_id = r.json()["jobID"]
    assert location.endswith(f"/ogc/jobs/{job_id}") and r.json()["status"] in ("accepted", "running")
    seen = poll(client, location)
    assert seen[-1]["status"] == "successful", seen[-1]
    progress = [s["progress"] for s in seen]
    assert progress == sorted(progress) and len(set(progress)) >= 3
    assert seen[-1]["sim_time_s"] == 250.0 and any(0 < p < 100 for p in progress)
    links = {l["rel"]: l["href"] for l in seen[-1]["links"]}
    results = client.get(links["http://www.opengis.net/def/rel/ogc/1.0/results"], headers=OPS).json()
    assert results["summary"]["features"] == 50
    assert len(client.get(results["buffered"]["href"], headers=OPS).json()["features"]) == 50

    # a second, synchronous job; then the list: filters and paging
    assert client.post("/ogc/processes/buffer/execution", json={"inputs": {"distance_m": 1}},
                       headers=OPS).status_code == 200
    page = client.get("/ogc/jobs", params={"limit": 1}, headers=OPS).json()
    assert page["numberMatched"] == 2 and page["numberReturned"] == 1
    nxt = next(l["href"] for l in page["links"] if l["rel"] == "next")
    assert client.get(nxt, headers=OPS).json()["jobs"][0]["jobID"] == job_id          # oldest last
    assert client.get("/ogc/jobs", params={"processID": "other"}, headers=OPS).json()["numberMatched"] == 0
    assert client.get("/ogc/jobs", params={"status": "running"}, headers=OPS).json()["numberMatched"] == 0
    assert client.get("/ogc/jobs", params={"status": "sideways"}, headers=OPS).status_code == 400

    # dismiss: the record says so, results and files are gone
    gone = client.delete(location, headers=OPS)
    assert gone.status_code == 200 and gone.json()["status"] == "dismissed"
    assert not (twin / "jobs" / job_id).exists()
    r = client.get(f"{location}/results", headers=OPS)
    assert r.status_code == 404 and r.json()["type"].endswith("result-not-ready")
    assert client.get("/ogc/jobs", headers=OPS).json()["numberMatched"] == 1
    assert client.get("/ogc/jobs", params={"status": "dismissed"}, headers=OPS).json()["numberMatched"] == 1


def test_dismissing_a_running_job_stops_its_worker(client, twin):
    r = client.post("/ogc/processes/buffer/execution", headers={**OPS, **ASYNC},
                    json={"inputs": {"distance_m": 4, "steps": 200, "delay_s": 0.05}})
    seen = poll(client, r.headers["location"], until=("running",))
    pid = client.app.state.jobs.jobs.get(seen[-1]["jobID"]).pid
    assert pid_alive(pid)
    assert client.delete(r.headers["location"], headers=OPS).json()["status"] == "dismissed"
    assert not pid_alive(pid) and not (twin / "jobs" / seen[-1]["jobID"]).exists()


def test_a_job_survives_a_server_restart(twin):
    with make_client(twin) as first:
        r = first.post("/ogc/processes/buffer/execution", headers={**OPS, **ASYNC},
                       json={"inputs": {"distance_m": 3, "steps": 20, "delay_s": 0.08}})
        assert r.status_code == 201
        job_id = r.json()["jobID"]
    del first                                             # the server goes away; its worker does not
    with make_client(twin) as second:                    # a new server on the same twin folder
        seen = poll(second, f"/ogc/jobs/{job_id}")
        assert seen[-1]["status"] == "successful", seen[-1]
        listed = second.get("/ogc/jobs", headers=OPS).json()
        assert [j["jobID"] for j in listed["jobs"]] == [job_id]


def test_a_killed_worker_is_failed_on_restart_and_can_be_rerun(twin):
    with make_client(twin) as first:
        r = first.post("/ogc/processes/buffer/execution", headers={**OPS, **ASYNC},
                       json={"inputs": {"distance_m": 3, "steps": 400, "delay_s": 0.05}})
        job_id = r.json()["jobID"]
        poll(first, r.headers["location"], until=("running",))
        pid = first.app.state.jobs.jobs.get(job_id).pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    with make_client(twin) as second:                    # install() runs recover()
        status = second.get(f"/ogc/jobs/{job_id}", headers=OPS).json()
        assert status["status"] == "failed" and status["message"] == INTERRUPTED
        rerun = next(l["href"] for l in status["links"] if l["rel"] == "rerun")
        assert second.post(rerun, headers=ANALYST).status_code == 403
        again = second.post(rerun, headers=OPS)
        assert again.status_code == 201 and again.headers["location"].endswith(f"/jobs/{again.json()['jobID']}")
        assert second.get(again.headers["location"], headers=OPS).json()["inputs"] == status["inputs"]
        assert second.delete(again.headers["location"], headers=OPS).json()["status"] == "dismissed"


def test_conformance_classes_for_the_landing_page():
    assert "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/job-list" in processes.conformance()
    assert len(processes.conformance()) == 5


def test_landing_and_conformance_advertise_processes(twin):
    from api.app import create_app
    from api.settings import Settings

    c = TestClient(create_app(Settings(twin_dir=twin)))
    rels = {l["rel"] for l in c.get("/ogc").json()["links"]}
    assert "http://www.opengis.net/def/rel/ogc/1.0/processes" in rels
    classes = c.get("/ogc/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core" in classes
    assert any("ogcapi-features-1" in k for k in classes)
