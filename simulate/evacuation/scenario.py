"""One evacuation scenario on a twin: hazard -> people -> network -> queue simulation -> results.

`run_evacuation` is what the `evacuation` process and `twin evacuate` call; it reads the twin,
never writes it, and returns the layers, tables and summary of the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import geopandas as gpd
import numpy as np
import pandas as pd

from simulate.evacuation import outputs
from simulate.evacuation.demand import make_agents, snap_buildings
from simulate.evacuation.hazard import Hazard, flood_hazard, link_closures, polygon_hazard
from simulate.evacuation.inputs import EvacuationInputs
from simulate.evacuation.model import Closures, RoadNetwork, Shelters, SimParams, SimResult
from simulate.evacuation.network import build_network, largest_strong_component
from simulate.evacuation.queue import simulate
from simulate.evacuation.shelters import exits, find_shelters
from simulate.population import people_by_building
from simulate.process import PriorResults, ProcessError
from twin.config import EvacuationDefaults

Progress = Callable[[float, str, float | None], None]   # (percent, message, simulated seconds)


@dataclass
class EvacuationRun:
    summary: dict
    layers: dict[str, gpd.GeoDataFrame]
    curve: pd.DataFrame
    shelter_occupancy: pd.DataFrame
    result: SimResult
    network: RoadNetwork
    shelters: Shelters
    closures: Closures
    extras: dict = field(default_factory=dict)


def city_defaults(store) -> EvacuationDefaults:
    rules = (store.manifest().rules.get("scenarios") or {}).get("evacuation")
    return EvacuationDefaults.model_validate(rules) if rules else EvacuationDefaults()


def _layer(store, name: str) -> gpd.GeoDataFrame:
    if name not in store.layer_names():
        raise ProcessError(f"the twin has no '{name}' layer, which an evacuation needs", field="hazard")
    return store.read_layer(name)


def _hazard(inp: EvacuationInputs, store, buildings, roads, results: PriorResults | None) -> Hazard:
    crs = store.manifest().crs
    if inp.hazard.flood_job is not None:
        if results is None:
            raise ProcessError("a flood hazard needs the job store (run the scenario as a job)", field="hazard")
        return flood_hazard(results, inp.hazard.flood_job, buildings, roads)
    return polygon_hazard(inp.hazard.polygon, buildings, roads, crs, geojson_crs=inp.hazard.polygon_crs,
                          close_roads_inside=inp.hazard.close_roads_inside)


def run_evacuation(store, inp: EvacuationInputs, *, results: PriorResults | None = None,
                   progress: Progress | None = None) -> EvacuationRun:
    report = progress or (lambda percent, message, sim_s=None: None)
    started = time.perf_counter()
    crs = store.manifest().crs
    defaults = city_defaults(store)
    report(1.0, "reading the twin", None)
    buildings, roads = _layer(store, "buildings"), _layer(store, "roads")
    pois = store.read_layer("pois") if "pois" in store.layer_names() else None

    report(3.0, "hazard", None)
    hazard = _hazard(inp, store, buildings, roads, results)
    report(5.0, "road network", None)
    network, dropped_nodes = largest_strong_component(build_network(roads, inp.mode))
    closures = link_closures(hazard, network)
    if inp.hazard.lead_time_min and len(closures.link):
        closures = Closures(closures.link, closures.at_s + inp.hazard.lead_time_min * 60.0)

    leaving = buildings.iloc[np.flatnonzero(hazard.evacuate)]
    people, _source = people_by_building(
        leaving, time_of_day=None if inp.time_of_day == "design" else inp.time_of_day,
        floor_m2_per_person=defaults.floor_m2_per_person or None, day_factor=defaults.day_factor or None,
        night_factor=defaults.night_factor or None)
    node, access_m = snap_buildings(leaving, network, max_access_m=inp.max_access_m)
    reachable = (node >= 0) & (people > 0)
    agents = make_agents(node[reachable], people[reachable], network, mode=inp.mode,
                         vehicle_occupancy=inp.vehicle_occupancy or defaults.vehicle_occupancy,
                         response=inp.response, seed=inp.seed, access_m=access_m[reachable],
                         group=np.flatnonzero(reachable))

    report(8.0, "shelters", None)
    shelters = find_shelters(pois, buildings, network, defaults, exclude=hazard.zone, crs=crs,
                             flooded=hazard.evacuate)
    if inp.destinations == "shelters_and_exits":
        shelters = _concat_shelters(shelters, exits(network, hazard.zone))
    if len(shelters) == 0:
        raise ProcessError("no shelter or exit outside the hazard zone: configure [scenarios.evacuation] "
                           "shelters in city.toml or use destinations = shelters_and_exits", field="destinations")

    params = SimParams(horizon_s=inp.horizon_s, reroute_s=inp.reroute_min * 60.0, seed=inp.seed)

    def on_step(fraction: float, sim_s: float) -> None:
        report(10.0 + 80.0 * fraction, f"t = {sim_s / 60:.0f} min", sim_s)

    result = simulate(network, agents, shelters, closures, params, on_step)
    report(92.0, "results", inp.horizon_s)

    # Buildings beyond max_access_m of every road in the data: the road data does not cover them (a data
    # limit, not people trapped by the hazard), so they are reported apart and left out of the curve.
    no_access = ~(node >= 0) & (people > 0)
    layers = {
        "hazard": outputs.hazard_layer(hazard.zone, hazard.source, crs),
        "links": outputs.links_layer(network, result, closures, roads, crs,
                                     persons_per_agent=float(agents.persons.mean()) if len(agents) else 1.0),
        "routes": outputs.routes_layer(network, agents, result, shelters, crs),
        "shelters": outputs.shelters_layer(shelters, result, crs,
                                           largest_agent=float(agents.persons.max()) if len(agents) else 1.0),
        "trapped": outputs.trapped_layer(network, agents, result, crs),
    }
    summary = _summary(inp, hazard, network, agents, shelters, result, layers, people, no_access,
                       time.perf_counter() - started)
    summary["network"]["dropped_fragment_nodes"] = dropped_nodes
    return EvacuationRun(summary, layers, outputs.curve_frame(result),
                         outputs.shelter_occupancy_frame(result, shelters), result, network, shelters, closures)


def _concat_shelters(a: Shelters, b: Shelters) -> Shelters:
    return Shelters(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in
                      ("node", "capacity", "xy", "name", "feature_id", "kind")))


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def _summary(inp, hazard, network, agents, shelters, result: SimResult, layers, people, no_access,
             wall_s: float) -> dict:
    outside = float(people[no_access].sum())
    shelter_layer = layers["shelters"]
    real = shelter_layer[shelter_layer["kind"] != "exit"]
    return {
        "mode": inp.mode, "time_of_day": inp.time_of_day, "hazard": {**hazard.source, "buildings": int(np.count_nonzero(hazard.evacuate))},
        "population": round(result.population, 1),
        "evacuated": round(float(result.evacuated[-1]), 1),
        "trapped": round(float(result.trapped[-1]), 1),
        "outside_road_data": {"buildings": int(no_access.sum()), "people": round(outside, 1),
                              "max_access_m": inp.max_access_m},
        "en_route_at_end": round(float(result.en_route[-1]), 1),
        "not_departed_at_end": round(float(result.not_departed[-1]), 1),
        "clearance_s": {"50": _seconds(result.clearance_s(0.5)), "90": _seconds(result.clearance_s(0.9)),
                        "100": _seconds(result.clearance_s(1.0))},
        "shelters": {"count": int(len(real)), "used": int((real["occupancy"] > 0).sum()),
                     "full": int(real["full_at_s"].notna().sum()),
                     "capacity": round(float(real["capacity"].sum()), 1),
                     "exits": int((shelter_layer["kind"] == "exit").sum())},
        "network": {"nodes": network.n_nodes, "links": network.n_links,
                    "closed_links": int(len(layers["links"]["closed_at_s"].dropna()))},
        "bottlenecks": outputs.bottlenecks(layers["links"], top=10),
        "agents": int(len(agents)), "steps": int(result.steps), "simulated_s": float(inp.horizon_s),
        "wall_s": round(wall_s, 2),
        "notes": list(result.notes) + list(getattr(hazard, "notes", [])) + (
            [f"{int(no_access.sum())} buildings ({outside:,.0f} people) are farther than {inp.max_access_m:.0f} m "
             "from any road in the data and were not simulated"] if no_access.any() else []),
    }


def write_tables(run: EvacuationRun, workdir: Path) -> dict[str, Path]:
    """The CSV/JSON/PNG files of a run, under `workdir`."""
    from simulate.plots import line_plot

    workdir.mkdir(parents=True, exist_ok=True)
    files = {"curve": workdir / "curve.csv", "shelter_occupancy": workdir / "shelter_occupancy.csv"}
    run.curve.to_csv(files["curve"], index=False)
    run.shelter_occupancy.to_csv(files["shelter_occupancy"], index=False)
    files["link_loads"] = outputs.write_link_loads(workdir / "link_loads.json", run.layers["links"], run.result)
    total = max(run.summary["population"], 1e-9)
    minutes = run.curve["t_s"].to_numpy() / 60.0
    files["curve_png"] = line_plot(
        workdir / "curve.png", minutes,
        {"evacuated": 100 * run.curve["evacuated"].to_numpy() / total,
         "en route": 100 * run.curve["en_route"].to_numpy() / total,
         "not yet departed": 100 * run.curve["not_departed"].to_numpy() / total,
         "trapped": 100 * run.curve["trapped"].to_numpy() / total},
        xlabel="time since warning (min)", ylabel="share of people (%)", title="Evacuation curve",
        hlines={"90 %": 90.0})
    return files
