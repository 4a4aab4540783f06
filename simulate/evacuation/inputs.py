"""Inputs of an evacuation scenario (the `evacuation` process and `twin evacuate`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from simulate.evacuation.demand import ResponseTime
from simulate.flood.process import parse_duration


class HazardInput(BaseModel):
    """Who must leave: the result of a flood job, or a drawn polygon."""

    model_config = ConfigDict(extra="forbid")
    flood_job: str | None = Field(None, description="id of a successful flood job: its flooded buildings leave, "
                                                    "its impassable roads close when the water gets there")
    polygon: dict[str, Any] | None = Field(None, description="GeoJSON Polygon/MultiPolygon/Feature(Collection)")
    polygon_crs: str = Field("EPSG:4326", description="CRS of the polygon's coordinates")
    close_roads_inside: bool = Field(False, description="polygon hazard: roads inside it are closed from the start")
    lead_time_min: float = Field(0.0, ge=0, le=24 * 60, description="flood hazard: the warning comes this long "
                                                                   "before the flood starts, so roads close later")

    @model_validator(mode="after")
    def _one_source(self) -> HazardInput:
        if (self.flood_job is None) == (self.polygon is None):
            raise ValueError("give either flood_job or polygon")
        return self


class EvacuationInputs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hazard: HazardInput
    mode: Literal["walk", "drive"] = Field("walk", description="on foot or by car")
    time_of_day: Literal["day", "night", "design"] = Field(
        "day", description="who is where: day or night presence by building use; design = full occupancy")
    response: ResponseTime = Field(default_factory=ResponseTime, description="when people set off")
    destinations: Literal["shelters", "shelters_and_exits"] = Field(
        "shelters", description="shelters only, or also any way out of the hazard zone")
    horizon: str | float = Field("3h", description="simulated time: seconds, ISO 8601 (PT3H) or 3h / 90min")
    reroute_min: float = Field(1.0, gt=0, le=60, description="routes refreshed this often (and at every closure)")
    vehicle_occupancy: float | None = Field(None, ge=1, le=8, description="persons per car (default: the city's)")
    max_access_m: float = Field(400.0, gt=0, le=5000, description="buildings farther from any road have no access")
    seed: int = Field(0, ge=0)

    @field_validator("horizon")
    @classmethod
    def _horizon(cls, value: str | float) -> str | float:
        seconds = parse_duration(value)
        if seconds > 24 * 3600:
            raise ValueError("the horizon is at most 24 h")
        return value

    @property
    def horizon_s(self) -> float:
        return parse_duration(self.horizon)
