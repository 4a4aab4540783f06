"""Readings -> the inputs of one flood run: an IDW rain field, river stage boundaries, depth probes.

Rain: each gauge's latest intensity over the horizon, as its total over a shared hyetograph (uniform
for "persist", a linear fall to zero in 5-minute steps for "decay"); the flood model interpolates the
gauges by inverse distance (power 2). Rivers: every river of city.toml becomes a stage boundary at its
normal level, or at the level of its stage gauge when one reads; a gauge belongs to the river that
names it (`gauge`), else to the river whose edge crossing is nearest. Levels are held for the horizon.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulate.flood.process import FloodInputs, GaugeInput, ProbeInput, StageInput
from simulate.nowcast.inputs import NowcastInputs
from simulate.nowcast.readings import Gauge, Point, Readings
from twin.config import RiverStageConfig

DECAY_STEP_S = 300.0


def rain_hyetograph(horizon_s: float, mode: str) -> tuple[float, list[float] | None]:
    """(total / latest intensity in mm per mm/h, hyetograph weights) of the rain assumed ahead."""
    hours = horizon_s / 3600.0
    if mode == "persist":
        return hours, None
    n = max(1, int(round(horizon_s / DECAY_STEP_S)))
    weights = n - np.arange(n) - 0.5            # the mid-step values of a linear fall to zero
    return hours / 2.0, [float(w) for w in weights]


def edge_segment(river: RiverStageConfig, extent: Sequence[float]) -> tuple[float, float, float, float]:
    """Where a river crosses the model edge: (x0, y0, x1, y1) in the project CRS."""
    minx, miny, maxx, maxy = extent
    lo, hi = sorted(river.span)
    if river.edge in ("west", "east"):
        x = minx if river.edge == "west" else maxx
        return x, lo, x, hi
    y = maxy if river.edge == "north" else miny
    return lo, y, hi, y


def assign_rivers(stages: Sequence[Gauge], rivers: Sequence[RiverStageConfig],
                  extent: Sequence[float]) -> list[list[Gauge]]:
    """Per river crossing (in order; one river may cross two edges under one name), the stage gauges
    that read it: the crossing whose `gauge` names it, else the nearest crossing."""
    out: list[list[Gauge]] = [[] for _ in rivers]
    if not rivers:
        return out
    by_name = {r.gauge: k for k, r in enumerate(rivers) if r.gauge}
    seg = np.array([edge_segment(r, extent) for r in rivers])           # (rivers, 4)
    a, ab = seg[:, :2], seg[:, 2:] - seg[:, :2]
    length2 = np.maximum((ab ** 2).sum(axis=1), 1e-12)
    for g in stages:
        if g.name in by_name:
            out[by_name[g.name]].append(g)
            continue
        p = np.array([g.x, g.y])
        s = np.clip(((p - a) * ab).sum(axis=1) / length2, 0.0, 1.0)
        out[int(np.argmin(np.hypot(*(a + s[:, None] * ab - p).T)))].append(g)
    return out


def flood_inputs(readings: Readings, inputs: NowcastInputs, rivers: Sequence[RiverStageConfig],
                 extent: Sequence[float], probes: Sequence[tuple[float, float]] | None = None
                 ) -> tuple[FloodInputs, list[str]]:
    """The flood run of a nowcast, and notes on what was assumed. `probes`: (x, y) per waterlogging
    point where the depth is read (default the points themselves). Drainage: the input, else the
    city's (the flood process resolves it)."""
    horizon = inputs.horizon_s
    notes: list[str] = []
    per_mm_h, weights = rain_hyetograph(horizon, inputs.rain_ahead)
    gauges = [GaugeInput(x=g.x, y=g.y, rain_mm=g.value * per_mm_h) for g in readings.rain]
    if not gauges:
        notes.append("no recent rain reading: no rain ahead")
    stages = []
    for river, mapped in zip(rivers, assign_rivers(readings.stages, rivers, extent)):
        where = f"river {river.name} ({river.edge} edge)"
        if mapped:
            level = float(np.mean([g.value for g in mapped]))
            notes.append(f"{where}: {level:.2f} m from {', '.join(g.name for g in mapped)}")
        else:
            level = river.normal_level_m
            notes.append(f"{where}: no recent gauge reading, normal level {level:.2f} m")
        stages.append(StageInput(edge=river.edge, level_m=level, span=river.span))
    if readings.stages and not rivers:
        notes.append("stage readings not used: the twin has no rivers (scenarios.flood.rivers in city.toml)")
    xy = probes if probes is not None else [(p.x, p.y) for p in readings.points]
    return FloodInputs(
        rain_gauges=gauges or None, duration=horizon, hyetograph=weights if gauges else None, horizon=horizon,
        resolution_m=inputs.resolution_m, stages=stages, use_city_rivers=False,      # the stages are the rivers
        drainage_mm_h=inputs.drainage_mm_h, frame_interval_min=inputs.frame_interval_min, backend=inputs.backend,
        probes=[ProbeInput(name=probe_name(p), x=x, y=y) for p, (x, y) in zip(readings.points, xy)]), notes


def probe_name(point: Point) -> str:
    return f"ds{point.datastream_id}"
