"""The inputs of the flood nowcast."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from simulate.flood.process import parse_duration

HORIZON_S = (600.0, 12 * 3600.0)       # 10 min .. 12 h
LOOKBACK_S = (60.0, 24 * 3600.0)       # 1 min .. 1 day


class NowcastInputs(BaseModel):
    """What a nowcast run assumes. Rain ahead:

    persist  each gauge's latest intensity holds for the whole horizon (the cautious default);
    decay    each gauge's latest intensity falls linearly to zero at the end of the horizon
             (half the rain of "persist"), in 5-minute steps.
    """

    model_config = ConfigDict(extra="forbid")
    horizon: str | float = Field("2h", description="how far ahead to run: seconds, ISO 8601 (PT2H) or 2h / 90min; "
                                                   "10 min to 12 h")
    resolution_m: float = Field(20.0, ge=2, le=50, description="grid cell size (m); coarser than a flood "
                                "study by default, so that a nowcast keeps up with the rain")
    lookback: str | float = Field("30min", description="readings older than this (before `at`) are ignored")
    rain_ahead: Literal["persist", "decay"] = Field("persist", description="the rain assumed over the horizon")
    drainage_mm_h: float | None = Field(None, ge=0, description="sewer capacity (mm/h); default the city's "
                                                                "scenarios.flood.drainage_mm_h")
    at: str | None = Field(None, description="the time the forecast starts from (ISO 8601); readings up to it "
                                             "count. Default: now")
    frame_interval_min: float = Field(15.0, ge=0, description="depth frames every N minutes (0: none)")
    backend: Literal["auto", "numpy", "numba", "gpu"] = "auto"

    @field_validator("horizon")
    @classmethod
    def _horizon(cls, value: str | float) -> str | float:
        return _within(value, *HORIZON_S)

    @field_validator("lookback")
    @classmethod
    def _lookback(cls, value: str | float) -> str | float:
        return _within(value, *LOOKBACK_S)

    @field_validator("at")
    @classmethod
    def _at(cls, value: str | None) -> str | None:
        if value is not None:
            from simulate.sensors.errors import InvalidEntity
            from simulate.sensors.model import canonical_time

            try:
                return canonical_time(value, "at")
            except InvalidEntity as exc:
                raise ValueError(exc.message) from None
        return value

    @property
    def horizon_s(self) -> float:
        return parse_duration(self.horizon)

    @property
    def lookback_s(self) -> float:
        return parse_duration(self.lookback)

    def start(self) -> datetime:
        """The forecast's time zero (UTC)."""
        if self.at is None:
            return datetime.now(timezone.utc).replace(microsecond=0)
        from simulate.sensors.model import parse_time

        return parse_time(self.at, "at")


def _within(value: str | float, lo: float, hi: float) -> str | float:
    seconds = parse_duration(value)
    if not lo <= seconds <= hi:
        raise ValueError(f"must be between {lo / 60:g} min and {hi / 3600:g} h")
    return value
