"""Forecast warnings: a finished nowcast job -> forecast events in the sensor event store.

Each waterlogging point's predicted depth is judged by its depth Datastream's thresholds (with the
same dead band as readings): reaching the warning or alarm depth opens a "forecast-warning" or
"forecast-alarm" event; the next runs update it (message, peak, `forecast` details: job, issue time,
horizon, predicted depth, expected time) or close it (closed_by "nowcast") once they no longer
predict it. Events are announced on the sensor hub, so /live clients get them like threshold events.
A job is applied once; a job issued before the latest one applied changes nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from simulate.jobs.model import JobStatus
from simulate.jobs.results import read_summary
from simulate.jobs.store import JobStore
from simulate.sensors.alerts import Event, ForecastRun, PointForecast
from simulate.sensors.service import SensorService

log = logging.getLogger("twin.nowcast")

PROCESS_ID = "flood-nowcast"


def forecast_run(job_id: str, summary: dict) -> ForecastRun:
    """The forecast of a nowcast job's summary."""
    points = tuple(PointForecast(f["datastream_id"], float("nan") if f["predicted"] is None else float(f["predicted"]),
                                 f.get("peak_at"), dict(f.get("reaches") or {}))
                   for f in summary.get("forecast", []))
    return ForecastRun(job_id, summary["issued_at"], float(summary["horizon_s"]), points)


def apply_job(service: SensorService, jobs: JobStore, job_id: str) -> list[Event]:
    """Forecast events from one successful nowcast job (nothing for another process or status)."""
    job = jobs.get(job_id)
    if job.process != PROCESS_ID or job.status is not JobStatus.successful:
        return []
    return service.apply_forecast(forecast_run(job_id, read_summary(jobs.job_dir(job_id))))


def apply_finished(service: SensorService, jobs: JobStore, done: set[str], *, recent: int = 10) -> list[Event]:
    """Apply the latest successful nowcast jobs not in `done` (oldest first), adding them to `done`:
    jobs run through the Processes API or a worker raise their warnings too."""
    found, _ = jobs.list(status=[JobStatus.successful], process=[PROCESS_ID], limit=recent)
    events: list[Event] = []
    for job in reversed(found):
        if job.id in done:
            continue
        try:
            events += service.apply_forecast(forecast_run(job.id, read_summary(jobs.job_dir(job.id))))
        except (OSError, KeyError, ValueError) as exc:      # a summary gone or not a nowcast's: skip it
            log.warning("nowcast job %s: no forecast to apply (%r)", job.id, exc)
        done.add(job.id)
    return events


def job_store(twin_dir: str | Path) -> JobStore:
    return JobStore(Path(twin_dir) / "jobs")
