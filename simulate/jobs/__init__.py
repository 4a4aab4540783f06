"""Scenario jobs: every simulation runs as a job the `JobManager` owns.

Processes (`simulate.process`) stay pure; the manager gives each run an id, a
work folder and a row in `DIR/jobs/jobs.sqlite`, runs it in the caller's thread
(small runs) or in a separate worker process (`python -m simulate.jobs.worker`),
and keeps status, progress and results in the twin folder so they outlive the
web server.
"""

from simulate.jobs.manager import INTERRUPTED, JobManager
from simulate.jobs.model import Job, JobDismissed, JobFailed, JobNotFound, JobStatus, NoResults
from simulate.jobs.results import ResultCatalog, ResultLayer, result_layers

__all__ = ["INTERRUPTED", "Job", "JobDismissed", "JobFailed", "JobManager", "JobNotFound", "JobStatus",
           "NoResults", "ResultCatalog", "ResultLayer", "result_layers"]
