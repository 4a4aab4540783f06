"""Errors raised while reading or normalising a source. Each names the source."""

from __future__ import annotations

from twin.errors import TwinError


class SourceError(TwinError):
    """A source file cannot be used."""


class SourceNotFound(SourceError):
    """The file does not exist."""


class SourceCorrupt(SourceError):
    """The file exists but cannot be parsed (corrupt, truncated, wrong format)."""


class CRSError(SourceError):
    """The CRS is missing, unknown, or not usable (for example not metric)."""


class EmptyLayerError(SourceError):
    """After reading and filtering, nothing is left."""


class GeometryTypeError(SourceError):
    """Geometries of the wrong type for the layer's kind."""


class ExtentError(SourceError):
    """The source does not overlap the city extent."""


class GeoreferenceError(SourceError):
    """A BIM model has no georeference and no placement."""
