"""Jobs persisted in the twin folder.

    DIR/jobs/
      jobs.sqlite        one row per job (WAL mode: web workers read while job workers write)
      <id>/
        work/            the process's work folder (its rasters and files stay here)
        summary.json     the summary output
        results.gpkg     result layers, one GeoPackage layer each
        worker.log       stdout/stderr of the worker process

Every method opens its own short connection, so one `JobStore` is safe to share
between threads and many processes may use the same database. State changes are
conditional updates (`... WHERE status = 'running'`): a worker that finishes
after its job was dismissed changes nothing.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from datetime import datetime
from pathlib import Path

from simulate.jobs.model import Job, JobNotFound, JobStatus, ResultIndex, utcnow

DB = "jobs.sqlite"
SCHEMA = """
create table if not exists jobs (
    id text primary key, process text not null, target text not null, status text not null,
    mode text not null, created text not null, started text, finished text, updated text not null,
    progress real not null default 0, message text not null default '', sim_time_s real,
    inputs text not null, owner text not null, classification text not null, error text,
    pid integer, heartbeat text, rerun_of text, interrupted integer not null default 0, results text
);
create index if not exists jobs_status on jobs (status);
create index if not exists jobs_process on jobs (process);
create index if not exists jobs_created on jobs (created);
"""
_TIMES = ("created", "started", "finished", "updated", "heartbeat")
COLUMNS = ("id", "process", "target", "status", "mode", "created", "started", "finished", "updated", "progress",
           "message", "sim_time_s", "inputs", "owner", "classification", "error", "pid", "heartbeat", "rerun_of",
           "interrupted", "results")


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


class JobStore:
    def __init__(self, jobs_dir: str | Path):
        self.root = Path(jobs_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / DB
        with closing(self._connect()) as con:
            con.execute("pragma journal_mode=WAL")
            con.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=15.0, isolation_level=None)
        con.execute("pragma busy_timeout=15000")
        con.execute("pragma synchronous=NORMAL")
        con.row_factory = sqlite3.Row
        return con

    def _write(self, sql: str, args: Iterable) -> int:
        with closing(self._connect()) as con:
            return con.execute(sql, tuple(args)).rowcount

    # -- folders
    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    def work_dir(self, job_id: str) -> Path:
        return self.root / job_id / "work"

    def remove_files(self, job_id: str) -> None:
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    # -- rows
    def insert(self, job: Job) -> None:
        row = self._row(job)
        marks = ", ".join("?" for _ in COLUMNS)
        self._write(f"insert into jobs ({', '.join(COLUMNS)}) values ({marks})", (row[c] for c in COLUMNS))

    def get(self, job_id: str) -> Job:
        with closing(self._connect()) as con:
            row = con.execute("select * from jobs where id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(f"no job '{job_id}'", source=job_id)
        return self._job(row)

    def list(self, *, status: Iterable[JobStatus] | None = None, process: Iterable[str] | None = None,
             readers: tuple[str, Iterable[str]] | None = None, limit: int = 100, offset: int = 0
             ) -> tuple[list[Job], int]:
        """Jobs newest first and how many match. `readers=(owner, classifications)` keeps the jobs
        that owner may read: its own, and those of the classifications given."""
        where, args = [], []
        if status is not None:
            values = [JobStatus(s).value for s in status]
            where.append(f"status in ({', '.join('?' for _ in values)})")
            args += values
        if process is not None:
            values = list(process)
            where.append(f"process in ({', '.join('?' for _ in values)})")
            args += values
        if readers is not None:
            owner, classes = readers[0], list(readers[1])
            where.append(f"(owner = ? or classification in ({', '.join('?' for _ in classes) or 'null'}))")
            args += [owner, *classes]
        clause = f"where {' and '.join(where)}" if where else ""
        with closing(self._connect()) as con:
            total = con.execute(f"select count(*) from jobs {clause}", args).fetchone()[0]
            rows = con.execute(f"select * from jobs {clause} order by created desc, id limit ? offset ?",
                               [*args, limit, offset]).fetchall()
        return [self._job(r) for r in rows], total

    def active(self) -> list[Job]:
        return self.list(status=[JobStatus.accepted, JobStatus.running], limit=1_000_000)[0]

    def successful_with_layers(self) -> list[Job]:
        with closing(self._connect()) as con:
            rows = con.execute("select * from jobs where status = 'successful' and results is not null "
                               "order by created").fetchall()
        return [j for j in map(self._job, rows) if j.results and j.results.layers]

    # -- transitions (each returns whether it applied)
    def set_pid(self, job_id: str, pid: int) -> bool:
        return self._write("update jobs set pid = ?, updated = ? where id = ? and status = 'accepted'",
                           (pid, _iso(utcnow()), job_id)) == 1

    def claim(self, job_id: str, pid: int) -> bool:
        now = _iso(utcnow())
        return self._write("update jobs set status = 'running', pid = ?, started = ?, heartbeat = ?, updated = ?, "
                           "message = 'started' where id = ? and status = 'accepted'",
                           (pid, now, now, now, job_id)) == 1

    def progress(self, job_id: str, percent: float, message: str, sim_time_s: float | None) -> bool:
        now = _iso(utcnow())
        return self._write("update jobs set progress = ?, message = ?, sim_time_s = coalesce(?, sim_time_s), "
                           "heartbeat = ?, updated = ? where id = ? and status = 'running'",
                           (percent, message, sim_time_s, now, now, job_id)) == 1

    def heartbeat(self, job_id: str) -> bool:
        return self._write("update jobs set heartbeat = ? where id = ? and status = 'running'",
                           (_iso(utcnow()), job_id)) == 1

    def succeed(self, job_id: str, results: ResultIndex, message: str) -> bool:
        now = _iso(utcnow())
        return self._write("update jobs set status = 'successful', progress = 100, message = ?, results = ?, "
                           "finished = ?, updated = ? where id = ? and status = 'running'",
                           (message, results.model_dump_json(by_alias=True), now, now, job_id)) == 1

    def fail(self, job_id: str, error: str, *, interrupted: bool = False,
             expect: Iterable[JobStatus] = (JobStatus.accepted, JobStatus.running), pid: int | None = None) -> bool:
        """Mark failed if the job is still in one of `expect` (and, when given, still run by `pid`)."""
        now = _iso(utcnow())
        values = [JobStatus(s).value for s in expect]
        sql = (f"update jobs set status = 'failed', error = ?, message = ?, interrupted = ?, finished = ?, "
               f"updated = ? where id = ? and status in ({', '.join('?' for _ in values)})")
        args = [error, error, int(interrupted), now, now, job_id, *values]
        if pid is not None:
            sql += " and pid = ?"
            args.append(pid)
        return self._write(sql, args) == 1

    def dismiss(self, job_id: str) -> bool:
        now = _iso(utcnow())
        return self._write("update jobs set status = 'dismissed', message = 'dismissed', results = null, "
                           "finished = coalesce(finished, ?), updated = ? where id = ? and status != 'dismissed'",
                           (now, now, job_id)) == 1

    # -- mapping
    @staticmethod
    def _row(job: Job) -> dict:
        row = job.model_dump(mode="python")
        row["status"] = job.status.value
        row["inputs"] = json.dumps(job.inputs)
        row["results"] = job.results.model_dump_json(by_alias=True) if job.results else None
        row["interrupted"] = int(job.interrupted)
        for key in _TIMES:
            row[key] = _iso(row[key])
        return row

    @staticmethod
    def _job(row: sqlite3.Row) -> Job:
        data = dict(row)
        data["inputs"] = json.loads(data["inputs"])
        data["results"] = ResultIndex.model_validate_json(data["results"]) if data["results"] else None
        data["interrupted"] = bool(data["interrupted"])
        return Job.model_validate(data)
