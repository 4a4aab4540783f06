"""JobStore (SQLite in the twin folder), the progress reporter and the self-contained process descriptions."""

from __future__ import annotations

import json
from datetime import timedelta
from enum import Enum

import pytest
from pydantic import BaseModel, Field

from simulate.jobs.describe import inline_refs, process_description
from simulate.jobs.model import Job, JobDismissed, JobNotFound, JobStatus, ResultIndex, utcnow
from simulate.jobs.runner import Reporter
from simulate.jobs.store import JobStore
from simulate.process import OutputSpec, Process, ProgressReport


def job(job_id: str, owner: str = "ops", **kw) -> Job:
    return Job(id=job_id, process=kw.pop("process", "rain"), target="m:C", owner=owner, **kw)


def test_rows_round_trip_and_survive_a_new_store(tmp_path):
    store = JobStore(tmp_path / "jobs")
    store.insert(job("a", inputs={"steps": 3, "area": [1.5, 2.5]}, mode="sync"))
    again = JobStore(tmp_path / "jobs").get("a")
    assert again.inputs == {"steps": 3, "area": [1.5, 2.5]} and again.mode == "sync"
    assert again.status is JobStatus.accepted and again.created.tzinfo is not None
    with pytest.raises(JobNotFound):
        store.get("b")


def test_transitions_are_conditional(tmp_path):
    store = JobStore(tmp_path / "jobs")
    store.insert(job("a"))
    assert not store.progress("a", 10, "too early", None)          # not running yet
    assert store.claim("a", 1234) and not store.claim("a", 99)     # only once
    assert store.progress("a", 40, "step 4", 240.0)
    assert store.progress("a", 50, "step 5", None)                 # keeps the last simulated time
    running = store.get("a")
    assert (running.status, running.pid, running.progress, running.sim_time_s) == (JobStatus.running, 1234, 50, 240.0)
    assert store.dismiss("a") and not store.dismiss("a")
    # a worker finishing after its dismissal changes nothing
    assert not store.succeed("a", ResultIndex(), "finished")
    assert not store.fail("a", "late")
    assert store.get("a").status is JobStatus.dismissed and store.get("a").results is None


def test_fail_only_the_job_of_that_worker(tmp_path):
    store = JobStore(tmp_path / "jobs")
    store.insert(job("a"))
    store.claim("a", 1234)
    assert not store.fail("a", "lost", interrupted=True, pid=999)
    assert store.fail("a", "lost", interrupted=True, pid=1234)
    failed = store.get("a")
    assert failed.status is JobStatus.failed and failed.interrupted and failed.error == failed.message == "lost"


def test_list_filters_visibility_and_paging(tmp_path):
    store = JobStore(tmp_path / "jobs")
    start = utcnow()
    for i, (owner, cls, process) in enumerate([("ops", "internal", "rain"), ("guest", "internal", "rain"),
                                               ("guest", "restricted", "flood"), ("ops", "restricted", "flood")]):
        store.insert(job(f"j{i}", owner, classification=cls, process=process, created=start + timedelta(seconds=i)))
    jobs, total = store.list(limit=2)
    assert total == 4 and [j.id for j in jobs] == ["j3", "j2"]
    assert [j.id for j in store.list(limit=2, offset=2)[0]] == ["j1", "j0"]
    assert [j.id for j in store.list(process=["rain"])[0]] == ["j1", "j0"]
    assert [j.id for j in store.list(readers=("guest", ["public"]))[0]] == ["j2", "j1"]
    assert [j.id for j in store.list(readers=("ops", ["public", "internal"]))[0]] == ["j3", "j1", "j0"]
    store.claim("j1", 1)
    assert [j.id for j in store.list(status=[JobStatus.running])[0]] == ["j1"]
    assert {j.id for j in store.active()} == {"j0", "j1", "j2", "j3"}


def test_reporter_throttles_and_stops_a_dismissed_run(tmp_path):
    store = JobStore(tmp_path / "jobs")
    store.insert(job("a"))
    store.claim("a", 1)
    with Reporter(store, "a", heartbeat_s=0.05) as report:
        report(ProgressReport(10, "first", 60.0))
        report(ProgressReport(20, "throttled", 120.0))              # within 0.2 s of the first: not written
        assert store.get("a").message == "first"
        report(ProgressReport(100, "done", 600.0))                  # the last one always is
        assert (store.get("a").progress, store.get("a").sim_time_s) == (100, 600.0)
        store.dismiss("a")
        with pytest.raises(JobDismissed):
            report(ProgressReport(100, "after", None))


class Colour(str, Enum):
    red = "red"
    blue = "blue"


class Inner(BaseModel):
    colour: Colour = Colour.red
    weight: float = Field(1.0, gt=0)


class Outer(BaseModel):
    inner: Inner = Field(default_factory=Inner, description="nested settings")
    many: list[Inner] = Field(default_factory=list)
    name: str = Field(..., description="a name")


class Shape(Process):
    id = "shape"
    title = "Shape"
    inputs = Outer
    outputs = {"summary": OutputSpec("figures", "summary"), "depth": OutputSpec("depth", "raster", units="m")}

    def execute(self, store, inputs, workdir, progress, results=None):
        raise NotImplementedError


def test_inline_refs_makes_schemas_self_contained():
    schema = inline_refs(Outer.model_json_schema())
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text
    assert schema["properties"]["many"]["items"]["properties"]["colour"]["enum"] == ["red", "blue"]
    assert schema["properties"]["inner"]["description"] == "nested settings"


def test_process_description_from_the_inputs_model():
    doc = process_description(Shape(), "http://h/ogc")
    assert doc["id"] == "shape" and doc["links"][0]["href"] == "http://h/ogc/processes/shape"
    assert doc["inputs"]["name"]["minOccurs"] == 1 and doc["inputs"]["inner"]["minOccurs"] == 0
    assert doc["inputs"]["inner"]["schema"]["properties"]["weight"]["exclusiveMinimum"] == 0
    assert doc["outputs"]["depth"]["schema"]["x-units"] == "m"
    assert "$ref" not in json.dumps(doc)


def test_summaries_with_nan_and_infinity_are_written_as_strict_json(tmp_path):
    from simulate.jobs.results import write_results
    from simulate.process import ProcessResult
    import numpy as np

    result = ProcessResult(summary={"a": float("nan"), "b": [1.0, np.float64("inf")], "c": {"d": np.nan, "e": 2}})
    write_results(tmp_path, result, {}, job_id="j", classification="public")
    text = (tmp_path / "summary.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}")) == \
        {"a": None, "b": [1.0, None], "c": {"d": None, "e": 2}}
