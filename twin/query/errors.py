"""Errors of the query core (no HTTP here; api/errors.py maps them).

QueryError       -> 400: a parameter or filter the client sent is malformed or unsupported.
FeatureNotFound  -> 404: no feature with that id in the layer.
"""

from __future__ import annotations

from twin.errors import TwinError


class QueryError(TwinError):
    """A query parameter, filter or body is malformed; `field` names the parameter."""


class FeatureNotFound(TwinError):
    """The layer has no feature with the requested id."""
