"""The "evacuation" process: a hazard (a flood job or a polygon) emptied over the road network."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel

from simulate.evacuation.inputs import EvacuationInputs
from simulate.process import OutputSpec, PriorResults, Process, ProcessResult, Progress, ProgressReport
from twin.errors import TwinError

_CSV, _JSON, _PNG = "text/csv", "application/json", "image/png"


class EvacuationProcess(Process):
    id: ClassVar[str] = "evacuation"
    title: ClassVar[str] = "Evacuation (mesoscopic queue model on the road network)"
    description: ClassVar[str] = (
        "People in the hazard zone (a flood job's flooded buildings, or a drawn polygon) leave for the nearest "
        "shelter with room, on foot or by car, over roads with capacity and storage (spillback), rerouting as "
        "the flood closes roads and shelters fill. Evacuation curve, clearance times, bottlenecks, shelter "
        "occupancy, routes, and who is trapped.")
    version: ClassVar[str] = "1.0.0"
    inputs: ClassVar[type[BaseModel]] = EvacuationInputs
    outputs: ClassVar[dict[str, OutputSpec]] = {
        "summary": OutputSpec("Run summary: people, clearance times, trapped, bottlenecks", "summary"),
        "hazard": OutputSpec("Hazard zone", "layer", "application/geo+json"),
        "links": OutputSpec("Road links: people, peak flow and queue, closures", "layer", "application/geo+json"),
        "routes": OutputSpec("Routes taken, per origin and shelter", "layer", "application/geo+json"),
        "shelters": OutputSpec("Shelters and their occupancy", "layer", "application/geo+json", "persons"),
        "trapped": OutputSpec("People with no passable route", "layer", "application/geo+json", "persons"),
        "curve": OutputSpec("Evacuation curve (persons by state over time)", "file", _CSV, "persons"),
        "curve_png": OutputSpec("Evacuation curve (plot)", "file", _PNG),
        "shelter_occupancy": OutputSpec("Shelter occupancy over time", "file", _CSV, "persons"),
        "link_loads": OutputSpec("People on each link over time (for animation)", "file", _JSON),
    }
    sync_limit_s: ClassVar[float] = 20.0

    def execute(self, store, inputs: BaseModel, workdir: Path, progress: Progress,
                results: PriorResults | None = None) -> ProcessResult:
        from simulate.evacuation.scenario import run_evacuation, write_tables

        inp = inputs if isinstance(inputs, EvacuationInputs) else EvacuationInputs.model_validate(inputs)
        run = run_evacuation(store, inp, results=results,
                             progress=lambda pct, msg, sim_s=None: progress(ProgressReport(pct, msg, sim_s)))
        files = write_tables(run, Path(workdir))
        progress(ProgressReport(100.0, "done", inp.horizon_s))
        return ProcessResult(summary=run.summary, layers=run.layers, files=files)

    def estimate_seconds(self, store, inputs: BaseModel) -> float | None:
        try:
            buildings = store.manifest().layers.get("buildings")
        except TwinError:
            return None
        count = buildings.count if buildings is not None else 0
        return 2.0 + count / 2000.0
