"""Compiled steps of the queue model (see `queue.py` for the rules they implement).

State lives in arrays grouped in tuples (`net`, `links`, `agents`, `rec`) plus two scalar
arrays: `iv` (int64 counters, indices below) and `pv` (persons per state). FIFOs are
linked lists threaded through `next_in` (one slot per agent: an agent is in at most one
queue or waiting list), so memory is O(agents + links). A step touches only the links
in the active list (agents on them or waiting to enter).

Speed: `run_steps` and `close_links` are compiled without numba's reference counting
(_nrt=False: they allocate nothing) and unpack the tuples once per call; the helpers take the
arrays themselves. With reference counting on, every array a helper was handed (and every
array taken out of a tuple) in the step loop cost an atomic NRT_incref/NRT_decref pair, which
was over a quarter of the run time. The active list keeps `active_pos` only as a membership
mark in the step loop (>= 0: listed); `close_links` recomputes the positions it needs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from simulate.evacuation.model import (CAUGHT_ON_CLOSED_LINK, EN_ROUTE, EVACUATED, NO_ROUTE, NO_SHELTER_SPACE,
                                       TRAPPED)

# iv: int64 counters
DEP_PTR, N_ACTIVE, N_LIMBO, NEXT_SAMPLE, LOG_USED, REROUTE, N_MOVING, STEPS = range(8)
N_IV = 8
# pv: persons per state
P_NOT_DEPARTED, P_EN_ROUTE, P_EVACUATED, P_TRAPPED = range(4)
# what `run_steps` stopped for
DONE, NEED_REROUTE, GROW_LOG = 0, 1, 2
EPS = 1e-9


@njit(cache=True, inline="always")
def _rand_below(rng, n):  # pragma: no cover - compiled
    """Uniform integer in [0, n) from a xorshift64* generator whose state is rng[0]."""
    x = rng[0]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    rng[0] = x
    r = (x * np.uint64(2685821657736338717)) >> np.uint64(32)
    return np.int64((r * np.uint64(n)) >> np.uint64(32))


def rng_state(seed: int) -> np.ndarray:
    """A non-zero xorshift state from any seed (splitmix64 of it)."""
    z = (int(seed) + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return np.array([(z ^ (z >> 31)) or 1], np.uint64)


@njit(cache=True, inline="always")
def _activate(link, active, active_pos, iv):  # pragma: no cover - compiled
    if active_pos[link] < 0:
        n = iv[N_ACTIVE]
        active[n] = link
        active_pos[link] = n
        iv[N_ACTIVE] = n + 1


@njit(cache=True, inline="always")
def _shelter_at(node, p, sh_ptr, sh_idx, sh_cap, shelter_occ, shelter_open, iv):  # pragma: no cover - compiled
    """An open shelter at `node` with room for `p` persons; one without room is closed (reroute)."""
    for j in range(sh_ptr[node], sh_ptr[node + 1]):
        s = sh_idx[j]
        if shelter_open[s] == 0:
            continue
        if shelter_occ[s] + p <= sh_cap[s] + EPS:
            return s
        shelter_open[s] = 0
        iv[REROUTE] = 1
    return -1


@njit(cache=True, inline="always")
def _choose_link(node, te, link_to, t0, inv_cap, close_at, out_ptr, out_link, dist, count,
                 wait_count):  # pragma: no cover - compiled
    """Among the open links that lead downhill in the cost table, the one whose live queue
    plus the table's cost beyond it is least; -1 if none."""
    here = dist[node]
    best = -1
    best_cost = np.inf
    for j in range(out_ptr[node], out_ptr[node + 1]):
        link = out_link[j]
        if close_at[link] <= te:
            continue
        beyond = dist[link_to[link]]
        if not beyond < here:
            continue
        cost = max(t0[link], (count[link] + wait_count[link] + 1) * inv_cap[link]) + beyond
        if cost < best_cost:
            best_cost = cost
            best = link
    return best


@njit(cache=True, inline="always")
def _evacuate(a, s, node, e, persons, status, a_link, a_node, arrival, shelter, sh_cap, shelter_occ, shelter_open,
              iv, pv):  # pragma: no cover - compiled
    status[a] = EVACUATED
    arrival[a] = e
    shelter[a] = s
    a_node[a] = node
    a_link[a] = -1
    shelter_occ[s] += persons[a]
    if shelter_occ[s] >= sh_cap[s] - EPS:
        shelter_open[s] = 0
        iv[REROUTE] = 1
    pv[P_EN_ROUTE] -= persons[a]
    pv[P_EVACUATED] += persons[a]
    iv[N_MOVING] -= 1


@njit(cache=True, inline="always")
def _trap(a, node, link, why, persons, status, a_link, a_node, reason, iv, pv):  # pragma: no cover - compiled
    status[a] = TRAPPED
    reason[a] = why
    a_node[a] = node
    a_link[a] = link
    pv[P_EN_ROUTE] -= persons[a]
    pv[P_TRAPPED] += persons[a]
    iv[N_MOVING] -= 1


@njit(cache=True, inline="always")
def _no_route_reason(node, reach_any):  # pragma: no cover - compiled
    return NO_SHELTER_SPACE if reach_any[node] else NO_ROUTE


@njit(cache=True, inline="always")
def _enter(a, link, e, k, te, link_from, t0, count, head, tail, next_exit, active, active_pos, entries, peak_load,
           last_entry, wake, persons, a_link, a_node, t_ready, next_in, enter_k, log_agent, log_link,
           iv):  # pragma: no cover - compiled
    next_in[a] = -1
    t_ready[a] = e + t0[link]
    if tail[link] >= 0:
        next_in[tail[link]] = a
    else:
        head[link] = a
        wake[link] = max(t_ready[a], next_exit[link], te)   # it can leave from the next step on
    tail[link] = a
    count[link] += 1
    enter_k[a] = k
    a_link[a] = link
    a_node[a] = link_from[link]
    entries[link] += persons[a]
    if count[link] > peak_load[link]:
        peak_load[link] = count[link]
    if e > last_entry[link]:
        last_entry[link] = e
    _activate(link, active, active_pos, iv)
    if len(log_agent) > 0:
        u = iv[LOG_USED]
        log_agent[u] = a
        log_link[u] = link
        iv[LOG_USED] = u + 1


@njit(cache=True)
def _dispatch(a, node, tn, link_to, t0, inv_cap, close_at, out_ptr, out_link, sh_ptr, sh_idx, sh_cap, dist,
              reach_any, count, wait_head, wait_tail, wait_count, active, active_pos, persons, status, a_link, a_node,
              t_ready, next_in, arrival, shelter, reason, limbo, shelter_occ, shelter_open, iv,
              pv):  # pragma: no cover - compiled
    """An agent standing at `node` at time `tn`: shelter here, a link's waiting list, limbo
    (the table is stale: wait for the reroute), or trapped."""
    s = _shelter_at(node, persons[a], sh_ptr, sh_idx, sh_cap, shelter_occ, shelter_open, iv)
    if s >= 0:
        _evacuate(a, s, node, tn, persons, status, a_link, a_node, arrival, shelter, sh_cap, shelter_occ,
                  shelter_open, iv, pv)
        return
    link = _choose_link(node, tn, link_to, t0, inv_cap, close_at, out_ptr, out_link, dist, count, wait_count)
    a_node[a] = node
    a_link[a] = -1
    t_ready[a] = tn                                  # while waiting: the time it reached the node
    if link < 0:
        if dist[node] < np.inf:
            limbo[iv[N_LIMBO]] = a
            iv[N_LIMBO] += 1
        else:
            _trap(a, node, -1, _no_route_reason(node, reach_any), persons, status, a_link, a_node, reason, iv, pv)
        return
    next_in[a] = -1
    if wait_tail[link] >= 0:
        next_in[wait_tail[link]] = a
    else:
        wait_head[link] = a
    wait_tail[link] = a
    wait_count[link] += 1
    _activate(link, active, active_pos, iv)


@njit(cache=True)
def _record_sample(count, flow_iv, peak_flow, series, occ_series, load_series, flow_scale, shelter_occ, iv,
                   pv):  # pragma: no cover - compiled
    j = iv[NEXT_SAMPLE]
    for c in range(4):
        series[j, c] = pv[c]
    for c in range(len(shelter_occ)):
        occ_series[j, c] = shelter_occ[c]
    if load_series.shape[0] > 0:
        for link in range(len(count)):
            load_series[j, link] = count[link]
    scale = flow_scale[j]
    for link in range(len(count)):
        f = flow_iv[link]
        if f > 0:
            if f * scale > peak_flow[link]:
                peak_flow[link] = f * scale
            flow_iv[link] = 0.0
    iv[NEXT_SAMPLE] = j + 1


@njit(cache=True, _nrt=False)
def run_steps(k, k_end, dt, net, links, agents, rec, limbo, shelter_occ, shelter_open, log_agent, log_link,
              iv, pv, rng):  # pragma: no cover - compiled
    """Advance from step k until step k_end, a reroute is due (after the step that caused
    it) or the route log needs room. Returns (step reached, DONE | NEED_REROUTE | GROW_LOG)."""
    (link_from, link_to, t0, inv_cap, storage, close_at, out_ptr, out_link, sh_ptr, sh_idx, sh_cap, dist,
     reach_any) = net
    (count, head, tail, wait_head, wait_tail, wait_count, next_exit, n_ready, ready_tail, active, active_pos,
     entries, flow_iv, peak_flow, peak_queue, peak_load, last_entry, wake, held_on, movers) = links
    (origin, depart, persons, _group, status, a_link, a_node, t_ready, next_in, arrival, shelter, reason, enter_k,
     dep_order) = agents
    sample_steps, series, occ_series, load_series, flow_scale = rec
    n_agents = len(persons)
    n_samples = len(sample_steps)
    use_log = len(log_agent) > 0
    while True:
        if iv[NEXT_SAMPLE] < n_samples and sample_steps[iv[NEXT_SAMPLE]] == k:
            _record_sample(count, flow_iv, peak_flow, series, occ_series, load_series, flow_scale, shelter_occ,
                           iv, pv)
        if k >= k_end:
            return k, DONE
        if use_log and iv[LOG_USED] + n_agents > len(log_agent):
            return k, GROW_LOG
        t = k * dt
        te = t + dt
        iv[STEPS] += 1

        # agents that stood at a node while the table was stale try again
        n_limbo = iv[N_LIMBO]
        if n_limbo > 0:
            for i in range(n_limbo):                  # upper half of limbo: a copy to go through
                limbo[n_agents + i] = limbo[i]
            iv[N_LIMBO] = 0
            for i in range(n_agents, n_agents + n_limbo):
                a = limbo[i]
                _dispatch(a, a_node[a], max(t_ready[a], t), link_to, t0, inv_cap, close_at, out_ptr, out_link,
                          sh_ptr, sh_idx, sh_cap, dist, reach_any, count, wait_head, wait_tail, wait_count, active,
                          active_pos, persons, status, a_link, a_node, t_ready, next_in, arrival, shelter, reason,
                          limbo, shelter_occ, shelter_open, iv, pv)
        # departures in [t, te)
        while iv[DEP_PTR] < n_agents and depart[dep_order[iv[DEP_PTR]]] < te:
            a = dep_order[iv[DEP_PTR]]
            iv[DEP_PTR] += 1
            status[a] = EN_ROUTE
            pv[P_NOT_DEPARTED] -= persons[a]
            pv[P_EN_ROUTE] += persons[a]
            iv[N_MOVING] += 1
            _dispatch(a, origin[a], max(depart[a], t), link_to, t0, inv_cap, close_at, out_ptr, out_link,
                      sh_ptr, sh_idx, sh_cap, dist, reach_any, count, wait_head, wait_tail, wait_count, active,
                      active_pos, persons, status, a_link, a_node, t_ready, next_in, arrival, shelter, reason,
                      limbo, shelter_occ, shelter_open, iv, pv)

        # the links that can change this step; the others wait for a time (wake) or for room on
        # the link their head is held by. Drops links nobody is on or waiting for.
        n = 0
        n_move = 0
        next_event = np.inf
        for i in range(iv[N_ACTIVE]):
            link = active[i]
            c = count[link]
            wc = wait_count[link]
            if c == 0 and wc == 0:
                active_pos[link] = -1
                continue
            active[n] = link                          # active_pos: membership (positions may be stale)
            n += 1
            if wc == 0 or c >= storage[link]:
                w = wake[link]
                if w >= te:
                    if w < next_event:
                        next_event = w
                    continue
                h = held_on[link]
                if h >= 0 and count[h] >= storage[h]:
                    continue
            movers[n_move] = link
            n_move += 1
        iv[N_ACTIVE] = n
        # served in a random order, so that no approach to a node is always first
        for i in range(n_move - 1, 0, -1):
            j = _rand_below(rng, i + 1)
            x = movers[i]
            movers[i] = movers[j]
            movers[j] = x
        for i in range(n_move):
            link = movers[i]
            held_on[link] = -1
            # extend the prefix of agents that reached the link end and may leave
            r = ready_tail[link]
            a = head[link] if r < 0 else next_in[r]
            while a >= 0 and t_ready[a] < te and enter_k[a] < k:
                n_ready[link] += 1
                ready_tail[link] = a
                a = next_in[a]
            node = link_to[link]
            while n_ready[link] > 0:
                a = head[link]
                e = max(t_ready[a], next_exit[link], t)
                if e >= te or e >= close_at[link]:
                    break
                s = _shelter_at(node, persons[a], sh_ptr, sh_idx, sh_cap, shelter_occ, shelter_open, iv)
                nxt = -1
                if s < 0:
                    nxt = _choose_link(node, e, link_to, t0, inv_cap, close_at, out_ptr, out_link, dist, count,
                                       wait_count)
                    if nxt < 0 and dist[node] < np.inf:
                        break                         # the table is stale: hold until the reroute
                    if nxt >= 0 and count[nxt] >= storage[nxt]:
                        held_on[link] = nxt           # spillback
                        break
                # leave the link
                head[link] = next_in[a]
                if head[link] < 0:
                    tail[link] = -1
                count[link] -= 1
                n_ready[link] -= 1
                if n_ready[link] == 0:
                    ready_tail[link] = -1
                next_exit[link] = e + inv_cap[link]
                flow_iv[link] += persons[a]
                if s >= 0:
                    _evacuate(a, s, node, e, persons, status, a_link, a_node, arrival, shelter, sh_cap, shelter_occ,
                              shelter_open, iv, pv)
                elif nxt >= 0:
                    _enter(a, nxt, e, k, te, link_from, t0, count, head, tail, next_exit, active, active_pos, entries,
                           peak_load, last_entry, wake, persons, a_link, a_node, t_ready, next_in, enter_k,
                           log_agent, log_link, iv)
                else:
                    _trap(a, node, -1, _no_route_reason(node, reach_any), persons, status, a_link, a_node, reason,
                          iv, pv)
            if n_ready[link] > peak_queue[link]:
                peak_queue[link] = n_ready[link]
            while wait_head[link] >= 0 and count[link] < storage[link]:
                a = wait_head[link]
                e = max(t_ready[a], t)
                if e >= close_at[link]:
                    break
                wait_head[link] = next_in[a]
                if wait_head[link] < 0:
                    wait_tail[link] = -1
                wait_count[link] -= 1
                _enter(a, link, e, k, te, link_from, t0, count, head, tail, next_exit, active, active_pos, entries,
                       peak_load, last_entry, wake, persons, a_link, a_node, t_ready, next_in, enter_k,
                       log_agent, log_link, iv)
            h = head[link]
            if h >= 0:
                w = max(t_ready[h], next_exit[link])
                wake[link] = max(w, te) if enter_k[h] >= k else w
            else:
                wake[link] = np.inf
        k += 1
        if iv[REROUTE]:
            return k, NEED_REROUTE
        # nothing could move: jump to the step of the next event (not past a sample or k_end)
        if n_move == 0 and iv[N_LIMBO] == 0:
            if iv[DEP_PTR] < n_agents:
                next_event = min(next_event, depart[dep_order[iv[DEP_PTR]]])
            target = k_end if next_event == np.inf else int(np.floor(next_event / dt))
            if iv[NEXT_SAMPLE] < n_samples:
                target = min(target, sample_steps[iv[NEXT_SAMPLE]])
            target = min(target, k_end)
            if target > k:
                k = target


@njit(cache=True, _nrt=False)
def close_links(closing, t, net, links, agents, limbo, iv, pv):  # pragma: no cover - compiled
    """From now on nobody enters or leaves these links: agents on them are trapped at the
    link's start node; those waiting to enter go back to their node to choose again."""
    link_from = net[0]
    count, head, tail, wait_head, wait_tail, wait_count = links[0], links[1], links[2], links[3], links[4], links[5]
    n_ready, ready_tail, active, active_pos = links[7], links[8], links[9], links[10]
    persons, status, a_link, a_node, t_ready, next_in, reason = (agents[2], agents[4], agents[5], agents[6], agents[7],
                                                                 agents[8], agents[11])
    for i in range(iv[N_ACTIVE]):                    # run_steps keeps only the membership up to date
        active_pos[active[i]] = i
    for link in closing:
        a = head[link]
        while a >= 0:
            nxt = next_in[a]
            _trap(a, link_from[link], link, CAUGHT_ON_CLOSED_LINK, persons, status, a_link, a_node, reason, iv, pv)
            a = nxt
        head[link] = -1
        tail[link] = -1
        count[link] = 0
        n_ready[link] = 0
        ready_tail[link] = -1
        a = wait_head[link]
        while a >= 0:
            nxt = next_in[a]
            t_ready[a] = max(t_ready[a], t)
            limbo[iv[N_LIMBO]] = a
            iv[N_LIMBO] += 1
            a = nxt
        wait_head[link] = -1
        wait_tail[link] = -1
        wait_count[link] = 0
        p = active_pos[link]
        if p >= 0:
            last = active[iv[N_ACTIVE] - 1]
            active[p] = last
            active_pos[last] = p
            active_pos[link] = -1
            iv[N_ACTIVE] -= 1
