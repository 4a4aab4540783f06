"""The job manager: ids, execution mode, worker processes, dismissal and recovery.

    manager = JobManager(twin_dir)                    # registry=PROCESSES by default
    manager.recover()                                  # once at start-up
    job = manager.submit("flood", {...}, owner="ops")  # sync if small, else a worker process
    manager.get(job.id).status_info(root)

Restart policy: a job whose worker is gone (its pid no longer runs, or its
heartbeat is older than `stale_after_s`) is never resumed behind the caller's
back. Processes keep no checkpoints, so a "resume" would be a silent re-run from
zero, and a worker that died because of its job (out of memory, a crash in
native code) would die again on every start-up. `recover()` marks such jobs
failed with the message INTERRUPTED and the job gets a `rerun` link; `rerun(id)`
submits a new job with the same process and inputs that records what it re-runs.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path

from simulate.jobs.model import Job, JobFailed, JobStatus, NoResults, utcnow
from simulate.jobs.runner import run_job, validate_inputs
from simulate.jobs.store import JobStore
from simulate.process import PROCESSES, Process, UnknownProcess, get_process

log = logging.getLogger("twin.jobs")

INTERRUPTED = "interrupted by a restart; re-run"
WORKER_LOST = "the worker stopped unexpectedly; re-run"


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


class JobManager:
    """Jobs of the twin in `twin_dir`, persisted in `twin_dir/jobs`.

    registry: process id -> "module:Class" (the worker imports the entry recorded with the job).
    classification: who besides the owner may read new jobs and their result layers.
    stale_after_s: a running job whose heartbeat is older than this has lost its worker.
    """

    def __init__(self, twin_dir: str | Path, registry: Mapping[str, str] = PROCESSES, *,
                 classification: str = "internal", stale_after_s: float = 60.0, stop_timeout_s: float = 5.0):
        self.twin_dir = Path(twin_dir)
        self.registry = registry
        self.classification = classification
        self.stale_after_s = stale_after_s
        self.stop_timeout_s = stop_timeout_s
        self.jobs = JobStore(self.twin_dir / "jobs")

    # -- processes
    def process(self, process_id: str) -> Process:
        try:
            return get_process(process_id, self.registry)
        except (ImportError, AttributeError) as exc:
            log.warning("process %s (%s) cannot be loaded: %r", process_id, self.registry.get(process_id), exc)
            raise UnknownProcess(f"process '{process_id}' is not installed", detail=repr(exc)) from None

    def processes(self) -> list[Process]:
        """The processes that load; those that do not are logged and left out."""
        out = []
        for pid in sorted(self.registry):
            try:
                out.append(self.process(pid))
            except UnknownProcess:
                continue
        return out

    # -- submitting
    def submit(self, process_id: str, inputs: dict, owner: str, *, mode: str = "auto",
               rerun_of: str | None = None) -> Job:
        """Validate and run. `mode`: "sync" runs in this thread and returns the finished job
        (a failure is raised: ProcessError, or JobFailed); "async" starts a worker and returns
        the accepted job; "auto" is sync unless the process estimates more than its sync_limit_s."""
        from twin.store.folder import FolderStore

        process = self.process(process_id)
        params = validate_inputs(process, inputs)
        if mode == "auto":
            estimate = process.estimate_seconds(FolderStore(self.twin_dir), params)
            mode = "async" if estimate is not None and estimate > process.sync_limit_s else "sync"
        if mode not in ("sync", "async"):
            raise ValueError(f"mode must be auto, sync or async, not {mode!r}")
        job = Job(id=uuid.uuid4().hex[:16], process=process_id, target=self.registry[process_id], mode=mode,
                  inputs=params.model_dump(mode="json"), owner=owner, classification=self.classification,
                  rerun_of=rerun_of)
        self.jobs.insert(job)
        log.info("job %s (%s) accepted for %s, %s", job.id, process_id, owner, mode)
        if mode == "sync":
            run_job(self.twin_dir, self.jobs, job.id, raise_errors=True)
        else:
            self._spawn(job)
        return self.jobs.get(job.id)

    def rerun(self, job_id: str, owner: str, *, mode: str = "async") -> Job:
        old = self.jobs.get(job_id)
        return self.submit(old.process, old.inputs, owner, mode=mode, rerun_of=old.id)

    def _spawn(self, job: Job) -> None:
        job_dir = self.jobs.job_dir(job.id)
        job_dir.mkdir(parents=True, exist_ok=True)
        # The worker imports processes the way this server does (plugins, test modules).
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(os.path.abspath(p or os.curdir) for p in sys.path)}
        try:
            with open(job_dir / "worker.log", "ab") as out:
                proc = subprocess.Popen([sys.executable, "-m", "simulate.jobs.worker", str(self.twin_dir), job.id],
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True, close_fds=True)
        except OSError as exc:
            self.jobs.fail(job.id, "could not start a worker process")
            raise JobFailed(f"could not start a worker for job '{job.id}'", detail=repr(exc)) from None
        # Reap it when it ends, so it never lingers as a zombie of this server.
        threading.Thread(target=proc.wait, name=f"reap-{job.id}", daemon=True).start()
        self.jobs.set_pid(job.id, proc.pid)

    # -- reading
    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job.status.active and not self._alive(job):
            self._interrupt(job, WORKER_LOST)
            job = self.jobs.get(job_id)
        return job

    def list(self, *, status: Iterable[JobStatus] | None = None, process: Iterable[str] | None = None,
             readers: tuple[str, Iterable[str]] | None = None, limit: int = 100, offset: int = 0
             ) -> tuple[list[Job], int]:
        """Newest first; dismissed jobs only when `status` asks for them."""
        if status is None:
            status = [s for s in JobStatus if s is not JobStatus.dismissed]
        jobs, total = self.jobs.list(status=status, process=process, readers=readers, limit=limit, offset=offset)
        if any(j.status.active and not self._alive(j) for j in jobs):
            for job in jobs:
                if job.status.active and not self._alive(job):
                    self._interrupt(job, WORKER_LOST)
            jobs, total = self.jobs.list(status=status, process=process, readers=readers, limit=limit,
                                         offset=offset)
        return jobs, total

    def results(self, job_id: str) -> tuple[Job, Path]:
        """The successful job and its folder; NoResults otherwise."""
        job = self.get(job_id)
        if job.status is not JobStatus.successful or job.results is None:
            why = {JobStatus.failed: f"it failed: {job.error}", JobStatus.dismissed: "it was dismissed"}
            raise NoResults(f"job '{job_id}' has no results: "
                            f"{why.get(job.status, f'it is {job.status.value} ({job.progress:.0f}%)')}",
                            source=job_id)
        return job, self.jobs.job_dir(job_id)

    # -- dismissing
    def dismiss(self, job_id: str) -> Job:
        """Cancel (signal the worker's process group) if it runs, mark dismissed, remove its files."""
        job = self.jobs.get(job_id)
        if job.status is JobStatus.dismissed:
            return job
        self.jobs.dismiss(job_id)
        if job.status.active and job.mode == "async" and job.pid and self._alive(job):
            self._stop(job.pid)
        # A synchronous run stops at its next progress report (see worker.Reporter).
        self.jobs.remove_files(job_id)
        log.info("job %s dismissed", job_id)
        return self.jobs.get(job_id)

    def _stop(self, pid: int) -> None:
        for sig, wait in ((signal.SIGTERM, self.stop_timeout_s), (signal.SIGKILL, self.stop_timeout_s)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                return
            except PermissionError:
                log.warning("not allowed to signal worker %s", pid)
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not pid_alive(pid):
                    return
                time.sleep(0.05)
        log.warning("worker %s did not stop", pid)

    # -- recovery
    def _alive(self, job: Job) -> bool:
        stale = utcnow() - timedelta(seconds=self.stale_after_s)
        last = job.heartbeat or job.updated
        if job.pid is None:              # accepted, its worker not started yet (or never)
            return last > stale
        return pid_alive(job.pid) and last > stale

    def _interrupt(self, job: Job, message: str) -> bool:
        done = self.jobs.fail(job.id, message, interrupted=True, expect=[job.status], pid=job.pid)
        if done:
            log.warning("job %s (%s): %s", job.id, job.process, message)
        return done

    def recover(self) -> list[str]:
        """At start-up: mark failed (INTERRUPTED, with a re-run link) every accepted or running job
        whose worker is gone. Safe to call from every web worker at once. Returns their ids."""
        return [job.id for job in self.jobs.active() if not self._alive(job) and self._interrupt(job, INTERRUPTED)]
