"""The manifest: what a twin holds and where every part came from."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SourceRecord(BaseModel):
    layer: str
    name: str
    path: str
    format: str
    sha256: str
    bytes: int
    licence: str
    attribution: str
    features_read: int | None = None
    features_kept: int | None = None
    provenance: dict = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


class LayerRecord(BaseModel):
    kind: str
    title: str | None = None
    title_zh: str | None = None
    classification: str
    count: int
    geometry_type: str | None = None
    bbox: tuple[float, float, float, float] | None = None          # project CRS
    bbox_wgs84: tuple[float, float, float, float] | None = None
    schema_: dict[str, str] = Field(default_factory=dict, alias="schema")
    licences: list[str] = Field(default_factory=list)
    attributions: list[str] = Field(default_factory=list)
    repairs: int = 0
    stats: dict = Field(default_factory=dict)   # e.g. heights per rule, underground count
    has_mesh: bool = False

    model_config = {"populate_by_name": True}


class RasterRecord(BaseModel):
    kind: str
    classification: str
    path: str
    shape: tuple[int, int]
    resolution: tuple[float, float]
    bounds: tuple[float, float, float, float]
    method: str                                 # how it was made (reprojected, derived, gridded...)
    min: float | None = None
    max: float | None = None
    licences: list[str] = Field(default_factory=list)
    attributions: list[str] = Field(default_factory=list)


class Manifest(BaseModel):
    format_version: int = 1
    tool: str = "city-twin"
    tool_version: str
    city: str
    city_zh: str | None = None
    crs: str                                     # e.g. "EPSG:4547"
    crs_wkt: str
    vertical_datum: str
    extent: tuple[float, float, float, float]    # project CRS
    extent_wgs84: tuple[float, float, float, float]
    built_at: str                                # ISO 8601 UTC
    build_seconds: float
    config_sha256: str
    rules: dict = Field(default_factory=dict)    # height rules etc. as used
    sources: list[SourceRecord] = Field(default_factory=list)
    layers: dict[str, LayerRecord] = Field(default_factory=dict)
    rasters: dict[str, RasterRecord] = Field(default_factory=dict)
    assets: dict[str, str] = Field(default_factory=dict)  # name -> relative path

    def classification_of(self, name: str) -> str:
        if name in self.layers:
            return self.layers[name].classification
        if name in self.rasters:
            return self.rasters[name].classification
        return "restricted"
