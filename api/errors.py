"""The one table from core exceptions to HTTP status codes."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from layers.errors import SourceError
from twin.errors import BuildError, ConfigError, LayerNotFound, StoreError, TwinError, TwinNotFound
from twin.query.errors import FeatureNotFound, QueryError
from twin.search import SearchError
from simulate.jobs.model import JobDismissed, JobFailed, JobNotFound, NoResults
from simulate.process import ProcessError, UnknownProcess
from simulate.sensors.errors import (BrokerError, EntityNotFound, EventNotFound, InvalidEntity, InvalidQuery,
                                     InvalidTransition)

log = logging.getLogger("twin.api")


class ApiError(TwinError):
    """Raised by the web layer itself with an explicit status."""

    def __init__(self, status: int, message: str, **kw):
        self.status = status
        super().__init__(message, **kw)


class Unauthorized(ApiError):
    def __init__(self, message: str = "authentication required"):
        super().__init__(401, message)


class Forbidden(ApiError):
    def __init__(self, message: str):
        super().__init__(403, message)


class BadRequest(ApiError):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(400, message, field=field)


STATUS: list[tuple[type[Exception], int]] = [
    (QueryError, 400),
    (UnknownProcess, 404),
    (JobNotFound, 404),
    (NoResults, 404),
    (ProcessError, 400),
    (JobDismissed, 409),
    (JobFailed, 500),
    (InvalidEntity, 400),
    (InvalidQuery, 400),
    (EntityNotFound, 404),
    (EventNotFound, 404),
    (InvalidTransition, 409),
    (BrokerError, 503),
    (SearchError, 400),
    (FeatureNotFound, 404),
    (LayerNotFound, 404),
    (TwinNotFound, 404),
    (ConfigError, 400),
    (SourceError, 422),
    (BuildError, 422),
    (StoreError, 500),
    (TwinError, 500),
]


def status_for(exc: Exception) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def _body(status: int, exc: TwinError) -> dict:
    body = {"code": status, "description": exc.message}
    if exc.field:
        body["field"] = exc.field
    return body


def install(app: FastAPI) -> None:
    @app.exception_handler(TwinError)
    def _twin_error(request: Request, exc: TwinError):
        status = status_for(exc)
        if status >= 500:
            log.error("%s %s failed: %r (%s)", request.method, request.url.path, exc, exc.detail)
        return JSONResponse(_body(status, exc), status_code=status,
                            headers={"WWW-Authenticate": "ApiKey"} if status == 401 else None)

    @app.exception_handler(RequestValidationError)
    def _validation(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return JSONResponse({"code": 400, "description": f"invalid parameter {field}: {first.get('msg', '')}",
                             "field": field}, status_code=400)
