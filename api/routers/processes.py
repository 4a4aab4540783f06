"""OGC API - Processes Part 1 (core, JSON, job list, dismiss, OGC process description)
under `/ogc`, next to OGC API - Features, over the `JobManager` on `app.state.jobs`.

Access: process descriptions are public; executing (and re-running) needs scope
`scenario:run`; reading jobs needs an API key: the owner reads its own jobs, other
keys those whose classification their clearance covers (jobs are `internal` by
default); dismissing needs `scenario:run` and being the owner or holding
`restricted` clearance.

Compose with `processes.install(app)` (the manager, start-up recovery, OGC error
types) and `app.include_router(processes.router())`.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Body, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from api.auth import ANONYMOUS, Principal, authorize
from api.errors import Forbidden, Unauthorized
from simulate.jobs.describe import process_description, process_summary
from simulate.jobs.manager import JobManager
from simulate.jobs.model import Job, JobDismissed, JobFailed, JobNotFound, JobStatus, NoResults
from simulate.jobs.results import (folder_listing, media_type, output_path, read_layer, read_summary,
                                   results_document)
from simulate.process import PROCESSES, ProcessError, UnknownProcess

PREFIX = "/ogc"
_CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
_EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
# Core exception -> (status, OGC exception type). The statuses belong in api/errors.py STATUS.
ERRORS: list[tuple[type[Exception], int, str | None]] = [
    (UnknownProcess, 404, _EXC + "no-such-process"),
    (JobNotFound, 404, _EXC + "no-such-job"),
    (NoResults, 404, _EXC + "result-not-ready"),
    (ProcessError, 400, None),
    (JobDismissed, 409, None),
    (JobFailed, 500, None),
]


def conformance() -> list[str]:
    """Conformance classes of this router, for the landing page's /conformance to merge."""
    return [_CONF + c for c in ("core", "json", "job-list", "dismiss", "ogc-process-description")]


def install(app: FastAPI, *, registry: Mapping[str, str] = PROCESSES, **manager_options) -> JobManager:
    """Put a JobManager on `app.state.jobs`, recover jobs a restart interrupted, and register
    the OGC exception types of the process errors. Call before the app serves."""
    manager = JobManager(app.state.settings.twin_dir, registry, **manager_options)
    manager.recover()
    app.state.jobs = manager
    for cls, status, kind in ERRORS:
        app.add_exception_handler(cls, _handler(status, kind))
    return manager


def _handler(status: int, kind: str | None):
    def handle(request: Request, exc) -> JSONResponse:
        body = {"code": status, "description": exc.message}
        if exc.field:
            body["field"] = exc.field
        if kind:
            body["type"] = kind
        return JSONResponse(body, status_code=status)

    return handle


# -- dependencies ------------------------------------------------------------------------------------
def job_manager(request: Request) -> JobManager:
    """The app's manager; created (with start-up recovery) on first use when install() was not called."""
    manager = getattr(request.app.state, "jobs", None)
    if manager is None:
        manager = JobManager(request.app.state.settings.twin_dir)
        manager.recover()
        request.app.state.jobs = manager
    return manager


def key_holder(who: Principal = Depends(authorize())) -> Principal:
    if who is ANONYMOUS:
        raise Unauthorized("reading jobs needs an API key")
    return who


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


def _readable(who: Principal, job: Job) -> Job:
    if job.owner != who.name and not who.can_read(job.classification):
        raise Forbidden(f"job '{job.id}' belongs to another user and is {job.classification}; "
                        f"your clearance is {who.clearance}")
    return job


def _respond_async(prefer: str | None) -> bool:
    return any(p.split("=")[0].strip().lower() == "respond-async" for p in (prefer or "").split(","))


def _accepted(request: Request, job: Job, asked: bool) -> JSONResponse:
    root = _root(request)
    headers = {"Location": f"{root}/jobs/{job.id}"}
    if asked:
        headers["Preference-Applied"] = "respond-async"
    return JSONResponse(job.status_info(root), status_code=201, headers=headers)


class JobsQuery:
    """Filters and paging of GET /jobs."""

    def __init__(self, request: Request,
                 status: list[JobStatus] | None = Query(None, description="keep jobs of these statuses "
                                                        "(dismissed jobs are listed only when asked for)"),
                 processID: list[str] | None = Query(None, description="keep jobs of these processes"),
                 limit: int | None = Query(None, ge=1, description="page size"),
                 offset: int = Query(0, ge=0, description="jobs to skip")):
        settings = request.app.state.settings
        self.status = status
        self.process = processID
        self.limit = min(limit or settings.default_page_size, settings.max_page_size)
        self.offset = offset

    def url(self, request: Request, offset: int) -> str:
        return str(request.url.include_query_params(offset=offset, limit=self.limit))


# -- routes ------------------------------------------------------------------------------------------
def router() -> APIRouter:
    r = APIRouter(prefix=PREFIX, tags=["processes (OGC API)"])
    runner = Depends(authorize("scenario:run"))

    @r.get("/processes", summary="Processes this twin can run")
    def list_processes(request: Request, manager: JobManager = Depends(job_manager),
                       who: Principal = Depends(authorize())) -> dict:
        root = _root(request)
        return {"processes": [process_summary(p, root) for p in manager.processes()],
                "links": [{"href": f"{root}/processes", "rel": "self", "type": "application/json"}]}

    @r.get("/processes/{process_id}", summary="A process: its inputs and outputs as JSON schemas")
    def describe(request: Request, process_id: str = Path(...), manager: JobManager = Depends(job_manager),
                 who: Principal = Depends(authorize())) -> dict:
        return process_description(manager.process(process_id), _root(request))

    @r.post("/processes/{process_id}/execution", summary="Run a process",
            description="Synchronous (200 with the results document) unless the header `Prefer: respond-async` "
                        "is sent or the process estimates a run longer than its sync limit; then 201 with "
                        "`Location: .../jobs/{id}`.")
    def execute(request: Request, process_id: str = Path(...),
                body: dict = Body(default_factory=dict, examples=[{"inputs": {}}]),
                prefer: str | None = Header(None), manager: JobManager = Depends(job_manager),
                who: Principal = runner) -> Response:
        inputs = body.get("inputs", {})
        if not isinstance(inputs, dict):
            raise ProcessError("'inputs' must be a JSON object", field="inputs")
        asked = _respond_async(prefer)
        job = manager.submit(process_id, inputs, who.name, mode="async" if asked else "auto")
        if job.mode == "async":
            return _accepted(request, job, asked)
        job, folder = manager.results(job.id)
        root = _root(request)
        return JSONResponse(results_document(job.id, job.results, folder, root),
                            headers={"Link": f'<{root}/jobs/{job.id}>; rel="monitor"'})

    @r.get("/jobs", summary="Jobs the caller may read, newest first")
    def list_jobs(request: Request, q: JobsQuery = Depends(), manager: JobManager = Depends(job_manager),
                  who: Principal = Depends(key_holder)) -> dict:
        from twin.config import CLASSIFICATION_RANK

        classes = [c for c in CLASSIFICATION_RANK if who.can_read(c)]
        jobs, total = manager.list(status=q.status, process=q.process, readers=(who.name, classes),
                                   limit=q.limit, offset=q.offset)
        root = _root(request)
        links = [{"href": str(request.url), "rel": "self", "type": "application/json"}]
        if q.offset + len(jobs) < total:
            links.append({"href": q.url(request, q.offset + q.limit), "rel": "next", "type": "application/json"})
        if q.offset > 0:
            links.append({"href": q.url(request, max(0, q.offset - q.limit)), "rel": "prev",
                          "type": "application/json"})
        return {"jobs": [j.status_info(root) for j in jobs], "numberMatched": total,
                "numberReturned": len(jobs), "links": links}

    @r.get("/jobs/{job_id}", summary="A job's status, progress and simulated time")
    def get_job(request: Request, job_id: str = Path(...), manager: JobManager = Depends(job_manager),
                who: Principal = Depends(key_holder)) -> dict:
        return _readable(who, manager.get(job_id)).status_info(_root(request))

    @r.get("/jobs/{job_id}/results", summary="A successful job's results document")
    def get_results(request: Request, job_id: str = Path(...), manager: JobManager = Depends(job_manager),
                    who: Principal = Depends(key_holder)) -> dict:
        _readable(who, manager.get(job_id))
        job, folder = manager.results(job_id)
        return results_document(job.id, job.results, folder, _root(request))

    @r.get("/jobs/{job_id}/results/{output}", summary="One output: summary JSON, layer GeoJSON (WGS84), file")
    def get_output(request: Request, job_id: str = Path(...), output: str = Path(...),
                   manager: JobManager = Depends(job_manager), who: Principal = Depends(key_holder)) -> Response:
        _readable(who, manager.get(job_id))
        job, folder = manager.results(job_id)
        index = job.results
        if output == index.summary_output:
            return JSONResponse(read_summary(folder))
        if output in index.layers:
            frame = read_layer(folder, output)
            frame = frame.to_crs(4326) if frame.crs is not None else frame
            return Response(frame.to_json(drop_id=True), media_type="application/geo+json")
        path = output_path(folder, index, output)
        if path is None:
            raise NoResults(f"job '{job_id}' has no output '{output}'", source=job_id)
        if output in index.folders:
            return JSONResponse(folder_listing(folder, index, output, str(request.url).split("?")[0]))
        return FileResponse(path, media_type=media_type(index, output), filename=f"{job_id}-{path.name}")

    @r.get("/jobs/{job_id}/results/{output}/{member:path}", summary="One file of a folder output (e.g. a frame)")
    def get_member(job_id: str = Path(...), output: str = Path(...), member: str = Path(...),
                   manager: JobManager = Depends(job_manager), who: Principal = Depends(key_holder)) -> Response:
        _readable(who, manager.get(job_id))
        job, folder = manager.results(job_id)
        path = output_path(folder, job.results, output, member)
        if path is None:
            raise NoResults(f"job '{job_id}' has no file '{member}' in output '{output}'", source=job_id)
        return FileResponse(path, media_type=job.results.media_types.get(output, "application/octet-stream"),
                            filename=f"{job_id}-{path.name}")

    @r.delete("/jobs/{job_id}", summary="Dismiss a job: cancel it if it runs and remove its results")
    def dismiss(request: Request, job_id: str = Path(...), manager: JobManager = Depends(job_manager),
                who: Principal = runner) -> dict:
        job = manager.get(job_id)
        if job.owner != who.name and who.clearance != "restricted":
            raise Forbidden(f"job '{job_id}' belongs to another user; dismissing it needs restricted clearance")
        return manager.dismiss(job_id).status_info(_root(request))

    @r.post("/jobs/{job_id}/rerun", summary="Run a job's process again with the same inputs (async)",
            status_code=201)
    def rerun(request: Request, job_id: str = Path(...), manager: JobManager = Depends(job_manager),
              who: Principal = runner) -> Response:
        _readable(who, manager.get(job_id))
        return _accepted(request, manager.rerun(job_id, who.name), asked=False)

    return r
