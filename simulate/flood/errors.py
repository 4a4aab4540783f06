"""Errors of the flood model. All are `TwinError`s; input problems are `ProcessError`s
(client errors naming the input at fault)."""

from __future__ import annotations

from simulate.process import ProcessError
from twin.errors import TwinError


class FloodError(TwinError):
    """The flood model cannot run (a bug, an unstable run, a missing backend)."""


class FloodInputError(ProcessError):
    """An input of the flood process is invalid for this twin; `field` names it."""


class BackendUnavailable(FloodError):
    """The requested compute backend (numba, gpu) cannot be used on this machine."""


class FloodUnstable(FloodError):
    """The solution blew up (non-finite depths or discharges)."""
