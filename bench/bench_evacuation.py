"""Evacuation queue model speed on a synthetic city, against a routing floor and a no-queue bound.

    python bench/bench_evacuation.py [--buildings 100000] [--links 50000] [--agents 100000]
                                     [--hours 3] [--threads 2] [--skip-scaling]

The city comes from `twin.synth.synthesize` (written to a temporary folder). Its ways are cut
at their lattice nodes and subdivided evenly so that the walk network has about --links links
(OSM-like density: a junction every ~20 m); every piece gets snapped end nodes. Evacuees start
at the node nearest their building, drawn with weight footprint area x levels, and leave with a
Rayleigh departure curve (mode 10 min); they head for the edge of the city: the outermost node
of each of 12 sectors, 8 of them exits (capacity inf) and 4 shelters of 5,000 places.

For each run: wall time (and the process CPU time: the model runs on one core, so a gap between
the two means other load on the machine), steps, agent-link traversals per second (per wall and per
CPU second), and side by side in the same process two peers:
* routing floor: one scipy multi-source Dijkstra to all destinations on the same graph (the model
  runs one every reroute_s, and at least that work per refresh);
* no-queue bound: every agent walked along its free-flow route in NumPy, one vectorised hop per
  iteration (the same traversals with no interaction at all).
Then scaling tables: time vs evacuees and vs links. Prints markdown; writes nothing in the repo.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from scipy.spatial import cKDTree

from simulate.evacuation.model import Agents, Closures, Shelters, SimParams
from simulate.evacuation.network import build_network
from simulate.evacuation.queue import simulate
from simulate.evacuation.routing import Router, link_costs
from twin.synth import synthesize


def city(buildings: int, seed: int, folder: Path):
    toml = synthesize(folder, buildings, seed=seed)
    roads = gpd.read_file(toml.parent / "roads.gpkg", engine="pyogrio")
    houses = gpd.read_file(toml.parent / "buildings.gpkg", engine="pyogrio")
    return roads, houses


def densify(roads: gpd.GeoDataFrame, target_links: int) -> gpd.GeoDataFrame:
    """Every way cut into two-point pieces of about equal length, ~target_links / 2 pieces in all."""
    lines = roads.geometry.values
    piece = shapely.length(lines).sum() / (target_links / 2)
    dense = shapely.segmentize(lines, piece)
    xy, owner = shapely.get_coordinates(dense, return_index=True)
    same = owner[1:] == owner[:-1]
    start = np.flatnonzero(same)
    segments = shapely.linestrings(np.stack([xy[start], xy[start + 1]], axis=1))
    row = owner[start]
    frame = roads.iloc[row][["id", "highway", "oneway", "lanes"]].reset_index(drop=True)
    frame["id"] = frame["id"] + "." + (start - np.searchsorted(owner, row)).astype(str)
    return gpd.GeoDataFrame(frame, geometry=segments, crs=roads.crs)


def destinations(net, shelter_capacity: float = 5000.0, sectors: int = 12) -> Shelters:
    """The outermost node of each of 12 sectors around the centre: every third one a shelter of
    `shelter_capacity` persons, the others exits (capacity inf)."""
    xy = net.node_xy
    centre = xy.mean(axis=0)
    angle = np.arctan2(xy[:, 1] - centre[1], xy[:, 0] - centre[0])
    radius = np.hypot(*(xy - centre).T)
    sector = ((angle + np.pi) / (2 * np.pi) * sectors).astype(int) % sectors
    node = np.array([np.flatnonzero(sector == s)[np.argmax(radius[sector == s])] for s in range(sectors)], np.int32)
    is_shelter = np.arange(sectors) % 3 == 0
    capacity = np.where(is_shelter, shelter_capacity, np.inf)
    kind = np.where(is_shelter, "shelter", "exit").astype(object)
    return Shelters(node, capacity, xy[node], np.array([f"d{i}" for i in range(sectors)], object),
                    np.array([""] * sectors, object), kind)


def evacuees(net, houses: gpd.GeoDataFrame, n: int, seed: int) -> Agents:
    rng = np.random.default_rng(seed)
    weight = shapely.area(houses.geometry.values) * houses["levels"].fillna(1).to_numpy(float)
    pick = rng.choice(len(houses), size=n, p=weight / weight.sum())
    _, node = cKDTree(net.node_xy).query(shapely.get_coordinates(shapely.centroid(houses.geometry.values[pick])))
    depart = rng.rayleigh(600.0, n)
    return Agents(node.astype(np.int32), depart, np.ones(n), pick.astype(np.int32))


def routing_floor(net, shelters: Shelters, repeat: int = 5) -> float:
    router = Router(net)
    costs = link_costs(net)
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        router.table(shelters.node, costs, predecessors=False)
        best = min(best, time.perf_counter() - t0)
    return best


def no_queue_bound(net, shelters: Shelters, agents: Agents) -> tuple[float, int]:
    """Free-flow routes walked hop by hop for all agents at once; returns (seconds, traversals)."""
    table = Router(net).table(shelters.node, link_costs(net))
    t0 = time.perf_counter()
    node = agents.origin_node.astype(np.int64)
    clock = agents.depart_s.copy()
    alive = np.flatnonzero(table.next_link[node] >= 0)
    hops = 0
    while len(alive):
        link = table.next_link[node[alive]]
        clock[alive] += net.free_time_s[link]
        node[alive] = net.link_to[link]
        hops += len(alive)
        alive = alive[table.next_link[node[alive]] >= 0]
    return time.perf_counter() - t0, hops


def run(net, shelters: Shelters, agents: Agents, hours: float) -> dict:
    params = SimParams(horizon_s=hours * 3600.0, record_routes=False)
    cpu = time.process_time()
    result = simulate(net, agents, shelters, Closures.none(), params)
    cpu = time.process_time() - cpu
    traversals = float(result.link_entries.sum())
    return {"wall_s": result.wall_s, "cpu_s": cpu, "steps": result.steps, "traversals": traversals,
            "rate": traversals / result.wall_s, "rate_cpu": traversals / max(cpu, 1e-9),
            "evacuated": float(result.evacuated[-1]),
            "trapped": float(result.trapped[-1]), "en_route": float(result.en_route[-1]),
            "clear90": result.clearance_s(0.9)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--buildings", type=int, default=100_000)
    ap.add_argument("--links", type=int, default=50_000, help="walk links wanted (drive has fewer: oneways)")
    ap.add_argument("--agents", type=int, default=100_000)
    ap.add_argument("--hours", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-scaling", action="store_true")
    args = ap.parse_args(argv)
    import numba

    numba.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="evac-bench-") as tmp:
        t0 = time.perf_counter()
        roads, houses = city(args.buildings, args.seed, Path(tmp) / "city")
        t_city = time.perf_counter() - t0
    # compile (or load the cache) outside the timings
    small = build_network(densify(roads, 2000), "walk")
    simulate(small, evacuees(small, houses, 100, 1), destinations(small), Closures.none(),
             SimParams(horizon_s=600.0))

    print(f"city: {args.buildings:,} buildings, {len(roads):,} ways, synthesized in {t_city:.1f} s\n")
    print("| mode | nodes | links | agents | build s | sim s (CPU s) | steps | traversals | traversals/s (per CPU s) "
          "| evacuated / trapped / en route | 90 % clear s | Dijkstra s | sim / Dijkstra "
          "| no-queue NumPy s | sim / no-queue |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    dense = densify(roads, args.links)
    for mode in ("walk", "drive"):
        t0 = time.perf_counter()
        net = build_network(dense, mode)
        t_net = time.perf_counter() - t0
        shelters = destinations(net)
        agents = evacuees(net, houses, args.agents, args.seed)
        r = run(net, shelters, agents, args.hours)
        floor = routing_floor(net, shelters)
        bound, _ = no_queue_bound(net, shelters, agents)
        clear = f"{r['clear90']:.0f}" if r["clear90"] is not None else "-"
        print(f"| {mode} | {net.n_nodes:,} | {net.n_links:,} | {args.agents:,} | {t_net:.2f} "
              f"| {r['wall_s']:.2f} ({r['cpu_s']:.2f}) "
              f"| {r['steps']:,} | {r['traversals']:,.0f} | {r['rate']:,.0f} ({r['rate_cpu']:,.0f}) "
              f"| {r['evacuated']:,.0f} / "
              f"{r['trapped']:,.0f} / {r['en_route']:,.0f} | {clear} | {floor:.4f} | {r['wall_s'] / floor:,.0f} "
              f"| {bound:.3f} | {r['wall_s'] / bound:,.0f} |")
    if args.skip_scaling:
        return
    print("\n| scaling | mode | links | agents | sim s (CPU s) | traversals/s (per CPU s) |")
    print("|---|---|---:|---:|---:|---:|")
    walk = build_network(dense, "walk")
    for n in (10_000, 30_000, 100_000):
        r = run(walk, destinations(walk), evacuees(walk, houses, n, args.seed), args.hours)
        print(f"| evacuees | walk | {walk.n_links:,} | {n:,} | {r['wall_s']:.2f} ({r['cpu_s']:.2f}) "
              f"| {r['rate']:,.0f} ({r['rate_cpu']:,.0f}) |")
    for target in (12_000, 25_000, 50_000):
        net = build_network(densify(roads, target), "walk")
        r = run(net, destinations(net), evacuees(net, houses, args.agents, args.seed), args.hours)
        print(f"| links | walk | {net.n_links:,} | {args.agents:,} | {r['wall_s']:.2f} ({r['cpu_s']:.2f}) "
              f"| {r['rate']:,.0f} ({r['rate_cpu']:,.0f}) |")


if __name__ == "__main__":
    sys.exit(main())
