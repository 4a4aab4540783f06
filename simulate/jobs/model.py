"""The job record, its result index and the job errors (no HTTP here).

`Job.status_info(root)` renders the OGC API - Processes `statusInfo` document;
`root` is the URL of the OGC API landing page the caller reached (for example
`http://host/ogc`), so the core never guesses how it is mounted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum

from pydantic import BaseModel, Field

from twin.errors import TwinError
from twin.manifest import LayerRecord

REL_RESULTS = "http://www.opengis.net/def/rel/ogc/1.0/results"
REL_EXECUTE = "http://www.opengis.net/def/rel/ogc/1.0/execute"
REL_RERUN = "rerun"   # POST {root}/jobs/{id}/rerun: a new job with the same process and inputs
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
GEOJSON = "application/geo+json"


class JobNotFound(TwinError):
    """No job of that id (maps to 404)."""


class NoResults(TwinError):
    """The job has no results: still running, failed or dismissed (maps to 404)."""


class JobFailed(TwinError):
    """A synchronous run failed for a reason that is not the caller's (maps to 500)."""


class JobDismissed(TwinError):
    """The job was dismissed while it ran (maps to 409)."""


class JobStatus(str, Enum):
    accepted = "accepted"
    running = "running"
    successful = "successful"
    failed = "failed"
    dismissed = "dismissed"

    @property
    def active(self) -> bool:
        return self in (JobStatus.accepted, JobStatus.running)


def utcnow() -> datetime:
    return datetime.now(UTC)


class ResultIndex(BaseModel):
    """Where a successful job's outputs are, relative to its folder `DIR/jobs/<id>/`."""

    summary_output: str = "summary"                             # output id of the summary (summary.json)
    layers: dict[str, LayerRecord] = Field(default_factory=dict)  # layer name -> record (in results.gpkg)
    rasters: dict[str, str] = Field(default_factory=dict)         # name -> relative path of a COG
    files: dict[str, str] = Field(default_factory=dict)           # name -> relative path
    media_types: dict[str, str] = Field(default_factory=dict)     # file name -> media type (of its members)
    folders: list[str] = Field(default_factory=list)              # file outputs that are folders (e.g. frames)


class Job(BaseModel):
    id: str
    process: str
    target: str                      # "module:Class" the worker imports (the registry entry at submit time)
    status: JobStatus = JobStatus.accepted
    mode: str = "async"              # "sync": ran in the caller's thread; "async": in a worker process
    created: datetime = Field(default_factory=utcnow)
    started: datetime | None = None
    finished: datetime | None = None
    updated: datetime = Field(default_factory=utcnow)
    progress: float = 0.0            # percent, 0..100
    message: str = ""
    sim_time_s: float | None = None  # simulated time reached by a time-stepping model
    inputs: dict = Field(default_factory=dict)   # validated inputs, defaults filled in
    owner: str
    classification: str = "internal"  # who may read the job and its result layers besides the owner
    error: str | None = None          # client-safe reason of a failure
    pid: int | None = None            # the process running it (the worker, or the server for sync runs)
    heartbeat: datetime | None = None
    rerun_of: str | None = None
    interrupted: bool = False         # failed because its worker vanished (restart, kill); re-runnable
    results: ResultIndex | None = None

    def links(self, root: str) -> list[dict]:
        me = f"{root}/jobs/{self.id}"
        links = [{"href": me, "rel": "self", "type": "application/json", "title": "this job"},
                 {"href": f"{root}/processes/{self.process}", "rel": "up", "type": "application/json",
                  "title": f"process '{self.process}'"}]
        if self.status is JobStatus.successful and self.results is not None:
            links.append({"href": f"{me}/results", "rel": REL_RESULTS, "type": "application/json",
                          "title": "results"})
            links += [{"href": f"{me}/results/{name}", "rel": "enclosure", "type": GEOJSON,
                       "title": f"layer '{name}' (collection job-{self.id}-{name})"} for name in self.results.layers]
            links += [{"href": f"{me}/results/{name}", "rel": "enclosure", "type": COG, "title": f"raster '{name}'"}
                      for name in self.results.rasters]
            links += [{"href": f"{me}/results/{name}", "rel": "enclosure",
                       "type": self.results.media_types.get(name, "application/octet-stream"),
                       "title": f"file '{name}'"} for name in self.results.files]
        if self.interrupted:
            links.append({"href": f"{me}/rerun", "rel": REL_RERUN, "type": "application/json",
                          "title": "re-run with the same inputs (POST; needs scope scenario:run)"})
        if self.rerun_of:
            links.append({"href": f"{root}/jobs/{self.rerun_of}", "rel": "related", "type": "application/json",
                          "title": "the job this one re-runs"})
        return links

    def status_info(self, root: str) -> dict:
        """The OGC API - Processes statusInfo document, plus `sim_time_s`, `owner` and `inputs`."""

        def iso(t: datetime | None) -> str | None:
            return t.isoformat().replace("+00:00", "Z") if t else None

        return {"jobID": self.id, "processID": self.process, "type": "process", "status": self.status.value,
                "message": self.message, "created": iso(self.created), "started": iso(self.started),
                "finished": iso(self.finished), "updated": iso(self.updated),
                "progress": round(self.progress), "sim_time_s": self.sim_time_s, "owner": self.owner,
                "inputs": self.inputs, "links": self.links(root)}
