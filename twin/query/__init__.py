"""Queries over a twin: OGC API - Features semantics (paging, bbox, datetime, CRS, CQL2)
and spatial questions (what is here, within, nearest by line and by road), without HTTP."""

from twin.query.errors import FeatureNotFound, QueryError
from twin.query.layer import LayerData, LayerIndex

__all__ = ["FeatureNotFound", "LayerData", "LayerIndex", "QueryError"]
