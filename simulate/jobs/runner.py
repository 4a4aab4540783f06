"""Running one job, in the caller's thread (synchronous runs) or in a worker process
(`simulate.jobs.worker`): claim it (accepted -> running), import the process named in
the job's row, run it on the twin with a progress reporter and a heartbeat thread
writing to `DIR/jobs/jobs.sqlite`, and write its results into `DIR/jobs/<id>/`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from pydantic import ValidationError

from simulate.jobs.model import JobDismissed, JobFailed, JobStatus
from simulate.jobs.results import JobResults, write_results
from simulate.jobs.store import JobStore
from simulate.process import Process, ProcessError, ProgressReport, get_process

log = logging.getLogger("twin.jobs")

HEARTBEAT_S = 1.0       # the heartbeat thread's period
PROGRESS_EVERY_S = 0.2  # progress reports are written at most this often (the last one always)


class Reporter:
    """The `progress` callback a process gets, plus the heartbeat thread.

    Writes are throttled; a write that finds the job no longer running (dismissed)
    raises JobDismissed inside the process, which is how synchronous runs stop."""

    def __init__(self, jobs: JobStore, job_id: str, heartbeat_s: float = HEARTBEAT_S):
        self.jobs, self.job_id, self.heartbeat_s = jobs, job_id, heartbeat_s
        self._last = 0.0
        self._stop = threading.Event()
        self._dismissed = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Reporter:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                if not self.jobs.heartbeat(self.job_id):
                    self._dismissed.set()
                    return
            except Exception:  # a locked or vanished database: the next beat tries again
                log.warning("heartbeat of job %s failed", self.job_id, exc_info=True)

    def __call__(self, report: ProgressReport) -> None:
        if self._dismissed.is_set():
            raise JobDismissed(f"job '{self.job_id}' was dismissed")
        now = time.monotonic()
        if now - self._last < PROGRESS_EVERY_S and report.percent < 100:
            return
        self._last = now
        percent = min(100.0, max(0.0, float(report.percent)))
        if not self.jobs.progress(self.job_id, percent, report.message, report.sim_time_s):
            self._dismissed.set()
            raise JobDismissed(f"job '{self.job_id}' was dismissed")


def _field(exc: ValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else {}
    return ".".join(str(p) for p in first.get("loc", ())) or "inputs"


def validate_inputs(process: Process, inputs: dict):
    """The process's inputs model from a JSON object; ProcessError names the first field at fault."""
    if not isinstance(inputs, dict):
        raise ProcessError("inputs must be a JSON object", field="inputs")
    try:
        return process.inputs.model_validate(inputs)
    except ValidationError as exc:
        field = _field(exc)
        msg = exc.errors()[0].get("msg", "invalid") if exc.errors() else "invalid"
        raise ProcessError(f"invalid input '{field}': {msg}", field=field) from None


def run_job(twin_dir: Path, jobs: JobStore, job_id: str, *, raise_errors: bool = False) -> None:
    """Run an accepted job to its end. With `raise_errors` (synchronous runs) a failure is raised
    after it is recorded: ProcessError as is, anything else as JobFailed."""
    from twin.store.folder import FolderStore

    if not jobs.claim(job_id, os.getpid()):
        log.info("job %s is no longer waiting to run; nothing to do", job_id)
        return
    job = jobs.get(job_id)
    workdir = jobs.work_dir(job_id)
    try:
        process = get_process(job.process, {job.process: job.target})
        params = validate_inputs(process, job.inputs)
        store = FolderStore(twin_dir)
        workdir.mkdir(parents=True, exist_ok=True)
        with Reporter(jobs, job_id) as report:
            result = process.execute(store, params, workdir, report, JobResults(jobs))
        index = write_results(jobs.job_dir(job_id), result, process.outputs, job_id=job_id,
                              classification=job.classification)
        if not jobs.succeed(job_id, index, "finished"):
            raise JobDismissed(f"job '{job_id}' was dismissed")
        log.info("job %s (%s) finished", job_id, job.process)
    except JobDismissed:
        if jobs.get(job_id).status is JobStatus.dismissed:
            jobs.remove_files(job_id)
        log.info("job %s was dismissed (or given up) while running", job_id)
        if raise_errors:
            raise
    except ProcessError as exc:
        jobs.fail(job_id, exc.message)
        log.info("job %s failed: %s", job_id, exc)
        if raise_errors:
            raise
    except Exception as exc:
        message = f"internal error in process '{job.process}'; see the server log (job {job_id})"
        jobs.fail(job_id, message)
        log.exception("job %s (%s) crashed", job_id, job.process)
        if raise_errors:
            raise JobFailed(message, detail=repr(exc)) from exc
