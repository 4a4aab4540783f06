"""A mesoscopic queue model of an evacuation (in the spirit of MATSim's QSim: Gawron 1998,
Cetin et al. 2003).

    simulate(network, agents, shelters, closures, params, progress=None) -> SimResult

progress(fraction, sim_time_s) is called at most every ~0.5 s of wall time and at the end.

Rules, in steps of dt (time t = k dt, a step covers [t, t + dt)):
* A link is a FIFO queue with free-flow time T0 = length / speed, capacity C agents/s and
  storage S agents. An agent enters it only while fewer than S agents are on it (so queues
  spill back upstream) and may leave no earlier than its entry time + T0.
* Exit times are continuous: the head leaves at e = max(entry + T0, previous exit + 1/C, t)
  if e falls inside the step, so N agents on one link clear in exactly T0 + (N - 1)/C for any
  C. An agent leaves at most one link per step (as in QSim), so a link shorter than one step
  costs a step.
* At the link's end node the agent is evacuated if a shelter there has room for it (a shelter
  never exceeds its capacity; capacity inf is a plain exit); otherwise it needs a next link
  with free storage, or it waits at the head of its link and holds those behind it.
* Next links come from a next-hop cost table (`routing.Router`: one multi-source Dijkstra
  to the open shelters, link cost = T0 + agents on link / C, refreshed every reroute_s and
  on the step after a closure or a shelter filling). Among the links that lead downhill in
  that table an agent takes the one with the least live queue time + table cost beyond it:
  with empty roads this is the table's next link; it spreads a crowd over parallel exits
  and cannot loop while the table stands.
* Departures: at depart_s an agent joins the waiting list of its first link at its origin
  node and enters when the link has room.
* Closures: from at_s on nobody enters or leaves the link; agents on it are trapped there
  (CAUGHT_ON_CLOSED_LINK, at the link's start node); agents waiting to enter choose again.
* An agent at a node without any route is trapped there: NO_SHELTER_SPACE if some full
  shelter is still reachable, else NO_ROUTE. Trapped agents are counted, never dropped.
* Links are served in a fresh seeded random order every step, so no approach to a node
  is always first. Stretches where nothing can move are skipped.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np

from simulate.evacuation.model import (EVACUATED, NOT_DEPARTED, Agents, Closures, RoadNetwork, Shelters, SimParams,
                                       SimResult)
from simulate.evacuation.routing import Router
from simulate.process import ProcessError

Progress = Callable[[float, float], None]
PROGRESS_EVERY_S = 0.5
MAX_CHUNK_STEPS = 600


def simulate(network: RoadNetwork, agents: Agents, shelters: Shelters, closures: Closures, params: SimParams,
             progress: Progress | None = None) -> SimResult:
    """Run the evacuation to params.horizon_s and return curves, link figures and each agent's fate."""
    from simulate.evacuation import queue_kernel as qk

    started = time.perf_counter()
    n_steps, sample_steps = _validate(network, agents, shelters, closures, params)
    dt = float(params.dt_s)
    n_links, n_nodes, m = network.n_links, network.n_nodes, len(agents)
    persons = np.asarray(agents.persons, np.float64)

    close_at = np.full(n_links, np.inf)
    np.minimum.at(close_at, np.asarray(closures.link, np.int64), np.maximum(np.asarray(closures.at_s, float), 0.0))
    closing_links = np.flatnonzero(np.isfinite(close_at))
    closing_steps = np.ceil(close_at[closing_links] / dt - 1e-9).astype(np.int64)
    order = np.argsort(closing_steps, kind="stable")
    closing_links, closing_steps = closing_links[order].astype(np.int64), closing_steps[order]

    out_order = np.argsort(network.link_from, kind="stable").astype(np.int32)
    out_ptr = _ptr(network.link_from, n_nodes)
    shelter_order = np.argsort(shelters.node, kind="stable").astype(np.int32)
    shelter_ptr = _ptr(np.asarray(shelters.node), n_nodes)
    shelter_cap = np.asarray(shelters.capacity, np.float64)
    t0 = np.asarray(network.free_time_s, np.float64)
    inv_cap = 1.0 / np.asarray(network.capacity_per_s, np.float64)
    dist = np.full(n_nodes, np.inf)
    reach_any = np.zeros(n_nodes, np.int8)
    net = (network.link_from.astype(np.int32), network.link_to.astype(np.int32), t0, inv_cap,
           np.floor(np.asarray(network.storage, np.float64) + 1e-9),          # whole agents: load <= storage
           close_at, out_ptr, out_order, shelter_ptr, shelter_order,
           shelter_cap, dist, reach_any)

    count = np.zeros(n_links, np.int32)
    links = (count, np.full(n_links, -1, np.int32), np.full(n_links, -1, np.int32),     # on link: head, tail
             np.full(n_links, -1, np.int32), np.full(n_links, -1, np.int32),            # waiting: head, tail
             np.zeros(n_links, np.int32), np.full(n_links, -np.inf),                    # waiting count, next exit
             np.zeros(n_links, np.int32), np.full(n_links, -1, np.int32),               # ready count, last ready
             np.zeros(n_links, np.int32), np.full(n_links, -1, np.int32),               # active list, position
             np.zeros(n_links), np.zeros(n_links), np.zeros(n_links),                   # entries, flow, peak flow
             np.zeros(n_links, np.int32), np.zeros(n_links, np.int32),                  # peak queue, peak load
             np.full(n_links, -np.inf),                                                 # last entry
             np.full(n_links, np.inf), np.full(n_links, -1, np.int32),                  # wake, held on
             np.zeros(n_links, np.int32))                                               # scratch: movers
    status = np.full(m, NOT_DEPARTED, np.int8)
    arrival = np.full(m, np.nan)
    agent_arrays = (np.asarray(agents.origin_node, np.int32), np.asarray(agents.depart_s, np.float64), persons,
                    np.asarray(agents.group, np.int32), status, np.full(m, -1, np.int32),
                    np.asarray(agents.origin_node, np.int32).copy(), np.zeros(m), np.full(m, -1, np.int32),
                    arrival, np.full(m, -1, np.int32), np.zeros(m, np.int8), np.full(m, -1, np.int32),
                    np.argsort(agents.depart_s, kind="stable").astype(np.int32))

    n_samples = len(sample_steps)
    intervals = np.diff(sample_steps, prepend=0) * dt
    flow_scale = np.where(intervals > 0, 3600.0 / np.where(intervals > 0, intervals, 1.0), 0.0)
    load_series = np.zeros((n_samples if params.record_link_loads else 0, n_links), np.float32)
    rec = (sample_steps, np.zeros((n_samples, 4)), np.zeros((n_samples, len(shelters))), load_series, flow_scale)
    limbo = np.zeros(2 * max(m, 1), np.int32)            # waiting for a reroute; upper half: scratch
    shelter_occ = np.zeros(len(shelters))
    shelter_open = (shelter_cap > 0).astype(np.int8)
    log_size = 8 * m + 1024 if params.record_routes else 0
    log_agent, log_link = np.zeros(log_size, np.int32), np.zeros(log_size, np.int32)
    iv = np.zeros(qk.N_IV, np.int64)
    pv = np.zeros(4)
    pv[qk.P_NOT_DEPARTED] = persons.sum()

    rng = qk.rng_state(params.seed)
    router = Router(network)
    shelter_nodes = np.asarray(shelters.node, np.int64)
    reroute_steps = max(1, int(round(params.reroute_s / dt)))
    k, ci, next_reroute, need_route, table_loaded, n_closed = 0, 0, 0, True, True, -1
    last_report = started
    while True:
        while ci < len(closing_steps) and closing_steps[ci] <= k:
            cj = int(np.searchsorted(closing_steps, closing_steps[ci], side="right"))
            qk.close_links(closing_links[ci:cj], k * dt, net, links, agent_arrays, limbo, iv, pv)
            ci, need_route = cj, True
        if need_route or k >= next_reroute:
            loaded = bool(count.any())
            if need_route or loaded or table_loaded:
                n_closed = _refresh(router, network, count, t0, close_at, k * dt, shelter_nodes, shelter_open, dist,
                                    reach_any, n_closed)
                links[18].fill(-1)                  # heads held by spillback choose again under the new table
                table_loaded = loaded
            next_reroute, need_route = k + reroute_steps, False
        k_end = min(n_steps, next_reroute, k + MAX_CHUNK_STEPS)
        if ci < len(closing_steps):
            k_end = min(k_end, int(closing_steps[ci]))
        k, code = qk.run_steps(k, k_end, dt, net, links, agent_arrays, rec, limbo, shelter_occ, shelter_open,
                               log_agent, log_link, iv, pv, rng)
        if code == qk.GROW_LOG:
            log_agent, log_link = _grown(log_agent, iv[qk.LOG_USED]), _grown(log_link, iv[qk.LOG_USED])
        elif code == qk.NEED_REROUTE:
            iv[qk.REROUTE] = 0
            need_route = True
        now = time.perf_counter()
        if progress is not None and now - last_report >= PROGRESS_EVERY_S:
            progress(min(k / max(n_steps, 1), 1.0), k * dt)
            last_report = now
        if k >= n_steps and iv[qk.NEXT_SAMPLE] >= n_samples:
            break
    if progress is not None:
        progress(1.0, n_steps * dt)

    return _result(network, agent_arrays, links, rec, log_agent[: iv[qk.LOG_USED]], log_link[: iv[qk.LOG_USED]],
                   params, sample_steps * dt, int(iv[qk.STEPS]), time.perf_counter() - started)


def _validate(network: RoadNetwork, agents: Agents, shelters: Shelters, closures: Closures, params: SimParams):
    dt = params.dt_s
    if not (dt > 0 and math.isfinite(dt)):
        raise ProcessError(f"dt_s must be a positive number of seconds, got {dt}", field="dt_s")
    if not (params.horizon_s >= 0 and math.isfinite(params.horizon_s)):
        raise ProcessError(f"horizon_s must be finite and >= 0, got {params.horizon_s}", field="horizon_s")
    every = params.sample_s / dt
    if not (params.sample_s > 0 and abs(every - round(every)) < 1e-6):
        raise ProcessError(f"sample_s ({params.sample_s}) must be a positive multiple of dt_s ({dt})",
                           field="sample_s")
    if not params.reroute_s > 0:
        raise ProcessError(f"reroute_s must be positive, got {params.reroute_s}", field="reroute_s")
    _check_index(agents.origin_node, network.n_nodes, "origin_node", "agent")
    if not np.all(np.isfinite(agents.depart_s)):
        raise ProcessError(f"agent {int(np.flatnonzero(~np.isfinite(agents.depart_s))[0])} has no departure time",
                           field="depart_s")
    bad = ~(np.asarray(agents.persons) > 0) | ~np.isfinite(agents.persons)
    if bad.any():
        raise ProcessError(f"agent {int(np.flatnonzero(bad)[0])} carries no people (persons must be > 0)",
                           field="persons")
    _check_index(shelters.node, network.n_nodes, "node", "shelter")
    if np.any(~(np.asarray(shelters.capacity) >= 0)):
        raise ProcessError(f"shelter {int(np.flatnonzero(~(np.asarray(shelters.capacity) >= 0))[0])} has a "
                           f"negative or missing capacity", field="capacity")
    _check_index(closures.link, network.n_links, "link", "closure")
    if not np.all(np.isfinite(closures.at_s)):
        raise ProcessError("closure times must be finite", field="at_s")
    n_steps = int(round(params.horizon_s / dt))
    every = int(round(every))
    sample_steps = np.arange(0, n_steps + 1, every, dtype=np.int64)
    if sample_steps[-1] != n_steps:
        sample_steps = np.append(sample_steps, n_steps)
    return n_steps, sample_steps


def _check_index(values: np.ndarray, n: int, name: str, what: str) -> None:
    values = np.asarray(values)
    bad = (values < 0) | (values >= n)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ProcessError(f"{what} {i} refers to {name} {int(values[i])}, outside 0..{n - 1}", field=name)


def _ptr(keys: np.ndarray, n: int) -> np.ndarray:
    ptr = np.zeros(n + 1, np.int32)
    np.cumsum(np.bincount(np.asarray(keys, np.int64), minlength=n), out=ptr[1:])
    return ptr


def _refresh(router: Router, network: RoadNetwork, count: np.ndarray, free_time: np.ndarray, close_at: np.ndarray,
             t: float, shelter_nodes: np.ndarray, shelter_open: np.ndarray, dist: np.ndarray, reach_any: np.ndarray,
             n_closed: int) -> int:
    """New cost table in place: towards the open shelters under the current loads; and which
    nodes still reach some shelter, open or full (to tell NO_ROUTE from NO_SHELTER_SPACE).
    That second table depends only on which links are closed (the closed set only grows), so
    it is recomputed only when `n_closed`, the number of closed links it was made for, changes."""
    costs = free_time + count / network.capacity_per_s
    closed = close_at <= t
    costs[closed] = np.inf
    dist[:] = router.table(shelter_nodes[shelter_open > 0], costs, predecessors=False).cost_s
    now_closed = int(np.count_nonzero(closed))
    if now_closed != n_closed:
        if (shelter_open == 0).any():
            reach_any[:] = np.isfinite(router.table(shelter_nodes, costs, predecessors=False).cost_s)
        else:
            reach_any[:] = np.isfinite(dist)
    return now_closed


def _grown(log: np.ndarray, used: int) -> np.ndarray:
    bigger = np.zeros(2 * len(log), log.dtype)
    bigger[:used] = log[:used]
    return bigger


def _result(network: RoadNetwork, agent_arrays, links, rec, log_agent: np.ndarray, log_link: np.ndarray,
            params: SimParams, times: np.ndarray, steps: int, wall: float) -> SimResult:
    (_, _, persons, _, status, a_link, a_node, _, _, arrival, shelter, reason, _, _) = agent_arrays
    (count, _, _, _, _, _, _, _, _, _, _, entries, _, peak_flow, peak_queue, peak_load, last_entry) = links[:17]
    series, occ = rec[1], rec[2]
    route_ptr = route_links = None
    if params.record_routes:
        by_agent = np.argsort(log_agent, kind="stable")
        route_links = log_link[by_agent]
        route_ptr = np.zeros(len(persons) + 1, np.int64)
        np.cumsum(np.bincount(log_agent, minlength=len(persons)), out=route_ptr[1:])
    notes = []
    en_route = series[-1, 1]
    if en_route > 0:
        notes.append(f"{en_route:.0f} persons still on the way at the horizon ({params.horizon_s:.0f} s)")
    return SimResult(
        times_s=times, not_departed=series[:, 0].copy(), en_route=series[:, 1].copy(), evacuated=series[:, 2].copy(),
        trapped=series[:, 3].copy(), shelter_occupancy=occ, agent_persons=persons, agent_status=status,
        agent_arrival_s=np.where(status == EVACUATED, arrival, np.nan), agent_shelter=shelter, agent_node=a_node,
        agent_link=a_link, agent_trapped_reason=reason, link_entries=entries, link_peak_flow_per_h=peak_flow,
        link_peak_queue=peak_queue.astype(np.float64), link_peak_load=peak_load.astype(np.float64),
        link_last_entry_s=np.where(np.isfinite(last_entry), last_entry, np.nan),
        link_load_series=rec[3] if params.record_link_loads else None, route_ptr=route_ptr, route_links=route_links,
        steps=steps, wall_s=wall, notes=notes)
