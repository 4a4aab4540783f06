"""Scenario processes: pure simulations behind one typed interface.

A process declares its inputs (a pydantic model, which gives OGC API - Processes
its input description) and its outputs, validates in `inputs.model_validate`,
and runs in `execute`. It knows nothing of jobs, HTTP or persistence: the job
manager (`simulate.jobs`) owns ids, status, progress, storage and results.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Callable, ClassVar, Mapping, Protocol

from pydantic import BaseModel

from twin.errors import TwinError

if TYPE_CHECKING:
    import geopandas as gpd

    from twin.store.base import TwinStore


class ProcessError(TwinError):
    """A process cannot run with these inputs on this twin (maps to 400/422)."""


class UnknownProcess(TwinError):
    """No process of that id (maps to 404)."""


@dataclass
class ProgressReport:
    percent: float                  # 0..100
    message: str = ""
    sim_time_s: float | None = None  # simulated time reached, for time-stepping models


Progress = Callable[[ProgressReport], None]


@dataclass
class ProcessResult:
    """What a run produced. Paths are inside the work folder the manager gave."""

    summary: dict                                                   # JSON-safe figures
    layers: dict[str, "gpd.GeoDataFrame"] = field(default_factory=dict)  # served as Features collections
    rasters: dict[str, Path] = field(default_factory=dict)          # COG GeoTIFFs
    files: dict[str, Path] = field(default_factory=dict)            # time series, frames, plots...


class PriorResults(Protocol):
    """Read access to the results of earlier successful jobs, for processes that chain
    (an evacuation fed by a flood). Each method raises ProcessError naming the job when
    it is unknown, not successful, or lacks the output."""

    def process_of(self, job_id: str) -> str: ...
    def summary(self, job_id: str) -> dict: ...
    def layer(self, job_id: str, name: str) -> "gpd.GeoDataFrame": ...
    def raster_path(self, job_id: str, name: str) -> Path: ...


@dataclass(frozen=True)
class OutputSpec:
    title: str
    kind: str          # "summary" | "layer" | "raster" | "file"
    media_type: str = "application/json"
    units: str | None = None


class Process(ABC):
    id: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1.0.0"
    inputs: ClassVar[type[BaseModel]]
    outputs: ClassVar[dict[str, OutputSpec]]
    # Runs small enough to answer synchronously (the manager may still queue them).
    sync_limit_s: ClassVar[float] = 30.0

    @abstractmethod
    def execute(self, store: "TwinStore", inputs: BaseModel, workdir: Path, progress: Progress,
                results: PriorResults | None = None) -> ProcessResult:
        """Run on `store`; write files under `workdir`; report progress often (at least every few seconds).
        `results` reads earlier jobs' outputs (None where the caller has no job store).
        Raise ProcessError with a client-safe message naming the input at fault."""

    def estimate_seconds(self, store: "TwinStore", inputs: BaseModel) -> float | None:
        """A rough wall-time estimate, used to refuse synchronous execution of long runs."""
        return None


# Process id -> "module:Class", imported only when used. Callers that need other
# processes (plugins, tests) pass their own mapping to the job manager.
PROCESSES: Mapping[str, str] = MappingProxyType({
    "flood": "simulate.flood.process:FloodProcess",
    "evacuation": "simulate.evacuation.process:EvacuationProcess",
    "flood-nowcast": "simulate.nowcast.process:NowcastProcess",
})


def get_process(process_id: str, registry: Mapping[str, str] = PROCESSES) -> Process:
    target = registry.get(process_id)
    if target is None:
        raise UnknownProcess(f"no process '{process_id}'; known: {', '.join(sorted(registry))}")
    module, cls = target.split(":")
    return getattr(import_module(module), cls)()
