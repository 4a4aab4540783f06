"""The queue model against expectations worked out by hand: one-link clearance, a bottleneck in
series with spillback, parallel exits (RiMEA test 9 / IMO MSC.1/Circ.1533 test 9 idea), shelter
capacity, flood closures, and conservation in a random scenario."""

from __future__ import annotations

import numpy as np
import pytest

from simulate.evacuation.model import (CAUGHT_ON_CLOSED_LINK, EVACUATED, NO_ROUTE, TRAPPED, Agents, Closures,
                                       RoadNetwork, Shelters, SimParams)
from simulate.evacuation.queue import simulate
from simulate.process import ProcessError


def network(links: list[tuple[int, int, float, float, float]], speed: float = 1.0) -> RoadNetwork:
    """links: (from, to, length m, capacity agents/s, storage agents); free speed `speed` m/s."""
    a = np.array(links, float)
    n_nodes = int(a[:, :2].max()) + 1
    k = len(a)
    return RoadNetwork("walk", np.c_[np.arange(n_nodes, dtype=float), np.zeros(n_nodes)], a[:, 0].astype(np.int32),
                       a[:, 1].astype(np.int32), a[:, 2], np.full(k, speed), a[:, 3], a[:, 4],
                       np.full(k, -1, np.int32))


def shelters(nodes: list[int], capacity: list[float]) -> Shelters:
    n = len(nodes)
    return Shelters(np.array(nodes, np.int32), np.array(capacity, float), np.zeros((n, 2)),
                    np.array([f"s{i}" for i in range(n)], object), np.array([""] * n, object),
                    np.array(["exit" if np.isinf(c) else "shelter" for c in capacity], object))


def crowd(node: int | np.ndarray, n: int, depart: float | np.ndarray = 0.0,
          persons: float | np.ndarray = 1.0) -> Agents:
    return Agents(np.broadcast_to(np.asarray(node, np.int32), (n,)).copy(),
                  np.broadcast_to(np.asarray(depart, float), (n,)).copy(),
                  np.broadcast_to(np.asarray(persons, float), (n,)).copy(), np.full(n, -1, np.int32))


def closures(links: list[int], at: list[float]) -> Closures:
    return Closures(np.array(links, np.int32), np.array(at, float))


def params(horizon: float = 600.0, **kw) -> SimParams:
    return SimParams(horizon_s=horizon, sample_s=kw.pop("sample_s", 10.0), **kw)


def assert_conserved(r):
    total = r.not_departed + r.en_route + r.evacuated + r.trapped
    assert np.allclose(total, r.agent_persons.sum(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("n", [1, 7, 40])
@pytest.mark.parametrize("capacity", [0.5, 1.0, 3.0, 0.3, 2.5])
def test_one_link_clears_in_free_time_plus_n_minus_one_over_capacity(n, capacity):
    t0 = 20.0
    net = network([(0, 1, t0, capacity, 1000.0)])
    r = simulate(net, crowd(0, n), shelters([1], [np.inf]), Closures.none(), params())
    expected = t0 + np.arange(n) / capacity              # the j-th leaves 1/C after the one before it
    assert np.allclose(np.sort(r.agent_arrival_s), expected, rtol=0, atol=1e-9)
    assert r.clearance_s(1.0) == pytest.approx(t0 + (n - 1) / capacity, abs=1e-9)
    assert (r.agent_status == EVACUATED).all()
    assert_conserved(r)


def test_bottleneck_in_series_limits_throughput_and_spills_back():
    wide, narrow, n = 4.0, 0.5, 60
    # 0 -> 1 wide, 1 -> 2 narrow; exit at 2. Storage keeps each link fed (S >= C (T0 + 1 step),
    # else S / T0 and not C would bound the flow) but the wide link fills up behind the narrow one.
    net = network([(0, 1, 30.0, wide, 20.0), (1, 2, 10.0, narrow, 10.0)])
    r = simulate(net, crowd(0, n), shelters([2], [np.inf]), Closures.none(), params(sample_s=10.0))
    arrivals = np.sort(r.agent_arrival_s)
    assert np.diff(arrivals).min() >= 1 / narrow - 1e-9          # never faster than the narrow link
    clear = r.clearance_s(1.0)
    ideal = 30.0 + 10.0 + (n - 1) / narrow
    assert ideal - 1e-9 <= clear <= ideal + 1.0
    assert r.link_peak_flow_per_h[1] == pytest.approx(narrow * 3600)   # 5 exits in every 10 s sample
    # spillback: loads never above storage, the wide link holds agents that are ready to leave
    assert (r.link_load_series[:, 0] <= 20.0).all() and (r.link_load_series[:, 1] <= 10.0).all()
    assert r.link_peak_load[0] == 20.0 and r.link_peak_queue[0] > 0
    assert r.link_peak_queue[1] > 0
    assert_conserved(r)


def parallel_exits(k: int, closed: int = 0):
    t0, capacity, n = 5.0, 1.0, 200
    net = network([(0, 1 + i, t0, capacity, 1000.0) for i in range(k)])
    out = simulate(net, crowd(0, n), shelters(list(range(1, k + 1)), [np.inf] * k),
                   closures(list(range(closed)), [0.0] * closed), params(horizon=900.0))
    return out.clearance_s(1.0), t0, capacity, n


def test_parallel_exits_divide_the_clearance_time():
    one, t0, c, n = parallel_exits(1)
    four, *_ = parallel_exits(4)
    assert one == pytest.approx(t0 + (n - 1) / c)
    assert abs(four - (t0 + (n / 4 - 1) / c)) <= 2.0           # equal queues; rounding of n / k
    assert (one - t0) / (four - t0) == pytest.approx(4.0, rel=0.05)
    two_of_four, *_ = parallel_exits(4, closed=2)                # closing 2 of 4 exits at t = 0
    assert (two_of_four - t0) / (four - t0) == pytest.approx(2.0, rel=0.05)


def test_a_full_shelter_sends_the_rest_on():
    near_capacity, n = 30, 100
    net = network([(0, 1, 50.0, 2.0, 500.0), (1, 2, 50.0, 2.0, 500.0)])
    r = simulate(net, crowd(0, n), shelters([1, 2], [near_capacity, np.inf]), Closures.none(), params(sample_s=1.0))
    assert (r.agent_status == EVACUATED).all()
    assert (r.agent_shelter == 0).sum() == near_capacity
    assert (r.agent_shelter == 1).sum() == n - near_capacity
    assert (r.shelter_occupancy[:, 0] <= near_capacity).all()
    assert r.shelter_occupancy[-1].tolist() == [near_capacity, n - near_capacity]
    assert_conserved(r)


def test_a_flooded_link_cuts_people_off_who_are_then_trapped_not_lost():
    # 0 -> 1 -> 2 (exit), 20 s each; the second link floods at t = 32; departures every 5 s
    net = network([(0, 1, 20.0, 10.0, 100.0), (1, 2, 20.0, 10.0, 100.0)])
    depart = np.arange(20) * 5.0
    r = simulate(net, crowd(0, 20, depart), shelters([2], [np.inf]), closures([1], [32.0]),
                 params(record_routes=True))
    assert r.link_last_entry_s[1] <= 32.0
    # on the link at 32: those who left at 0, 5, 10 (entered it at 20, 25, 30; out at 40, 45, 50)
    caught = r.agent_trapped_reason == CAUGHT_ON_CLOSED_LINK
    assert np.flatnonzero(caught).tolist() == [0, 1, 2]
    assert (r.agent_node[caught] == 1).all() and (r.agent_link[caught] == 1).all()
    # on the first link at 32 (left at 15 .. 30): stopped at node 1; not yet left: stopped at home
    no_route = r.agent_trapped_reason == NO_ROUTE
    assert np.flatnonzero(no_route & (r.agent_node == 1)).tolist() == [3, 4, 5, 6]
    assert np.flatnonzero(no_route & (r.agent_node == 0)).tolist() == list(range(7, 20))
    assert (r.agent_status == TRAPPED).all() and r.trapped[-1] == 20
    assert_conserved(r)


def test_a_closure_with_a_way_round_reroutes_and_costs_time():
    # two-way square: 0 -> 1 -> 3 is short (2 x 50 m), 0 -> 2 -> 3 long (2 x 150 m); exit at 3
    links = []
    for a, b, length in ((0, 1, 50.0), (1, 3, 50.0), (0, 2, 150.0), (2, 3, 150.0)):
        links += [(a, b, length, 5.0, 500.0), (b, a, length, 5.0, 500.0)]
    net = network(links)
    short = 2                                                     # link 1 -> 3
    depart = np.arange(40) * 5.0
    base = simulate(net, crowd(0, 40, depart), shelters([3], [np.inf]), Closures.none(), params(horizon=1200.0))
    cut = simulate(net, crowd(0, 40, depart), shelters([3], [np.inf]), closures([short], [60.0]),
                   params(horizon=1200.0))
    assert cut.link_last_entry_s[short] <= 60.0
    assert_conserved(cut)
    assert np.isnan(base.link_last_entry_s[[4, 6]]).all()       # nobody took the long way before
    late = depart > 60.0
    assert (cut.agent_status[late] == EVACUATED).all()
    assert (cut.agent_arrival_s[late] > base.agent_arrival_s[late] + 200.0 - 1e-6).all()
    for i in np.flatnonzero(late):                                # no route uses the closed link after 60 s
        assert short not in cut.route_links[cut.route_ptr[i]:cut.route_ptr[i + 1]]
    # those on the first link at 60 s (left at 10 .. 55) turn back at node 1 and go round
    turned = (depart >= 10.0) & (depart <= 55.0)
    for i in np.flatnonzero(turned):
        assert cut.route_links[cut.route_ptr[i]:cut.route_ptr[i + 1]].tolist() == [0, 1, 4, 6]


def test_conservation_in_a_random_scenario():
    rng = np.random.default_rng(7)
    side = 12                                                     # 12 x 12 grid, 100 m blocks, two-way
    node = np.arange(side * side).reshape(side, side)
    pairs = np.concatenate([np.c_[node[:, :-1].ravel(), node[:, 1:].ravel()],
                            np.c_[node[:-1].ravel(), node[1:].ravel()]])
    pairs = np.concatenate([pairs, pairs[:, ::-1]])
    k = len(pairs)
    net = network([(a, b, 100.0, c, s) for (a, b), c, s in zip(pairs, rng.uniform(0.3, 3.0, k), rng.uniform(2, 30, k))],
                  speed=1.3)
    m = 3000
    agents = crowd(rng.integers(0, side * side, m), m, rng.uniform(0, 900, m), rng.choice([1.0, 1.5, 2.5], m))
    shelter = shelters([node[0, 0], node[0, -1], node[-1, 0], node[-1, -1], node[6, 6]], [400, 600, np.inf, 300, 250])
    cut = closures(list(rng.choice(k, 40, replace=False)), list(rng.uniform(0, 1500, 40)))
    r = simulate(net, agents, shelter, cut, SimParams(horizon_s=3600.0, sample_s=30.0, seed=3))
    assert_conserved(r)
    assert np.all(r.shelter_occupancy <= shelter.capacity + 1e-9)
    assert np.all(r.link_load_series <= net.storage[None, :])
    for status, series in ((EVACUATED, r.evacuated), (TRAPPED, r.trapped)):
        assert r.agent_persons[r.agent_status == status].sum() == pytest.approx(series[-1])
    assert (r.agent_trapped_reason[r.agent_status == TRAPPED] > 0).all()
    assert (r.agent_trapped_reason[r.agent_status != TRAPPED] == 0).all()
    # routes are connected walks from each agent's origin
    assert r.route_ptr[-1] == len(r.route_links)
    assert np.bincount(r.route_links, weights=r.agent_persons[np.repeat(np.arange(m), np.diff(r.route_ptr))],
                       minlength=net.n_links) == pytest.approx(r.link_entries)
    starts = r.route_links[r.route_ptr[:-1][np.diff(r.route_ptr) > 0]]
    assert (net.link_from[starts] == agents.origin_node[np.diff(r.route_ptr) > 0]).all()
    is_start = np.zeros(len(r.route_links), bool)
    is_start[r.route_ptr[:-1][np.diff(r.route_ptr) > 0]] = True
    follow = np.flatnonzero(~is_start[1:])                        # i and i + 1 belong to one agent
    assert (net.link_to[r.route_links[follow]] == net.link_from[r.route_links[follow + 1]]).all()
    # no one enters a link after it closed
    close_at = np.full(net.n_links, np.inf)
    np.minimum.at(close_at, cut.link, cut.at_s)
    entered = np.isfinite(r.link_last_entry_s)
    assert (r.link_last_entry_s[entered] < close_at[entered]).all()
    # the same seed gives the same run
    again = simulate(net, agents, shelter, cut, SimParams(horizon_s=3600.0, sample_s=30.0, seed=3))
    assert np.array_equal(again.agent_arrival_s, r.agent_arrival_s, equal_nan=True)


def test_bad_inputs_raise_process_errors():
    net = network([(0, 1, 10.0, 1.0, 10.0)])
    with pytest.raises(ProcessError) as err:
        simulate(net, crowd(5, 1), shelters([1], [np.inf]), Closures.none(), params())
    assert err.value.field == "origin_node"
    with pytest.raises(ProcessError):
        simulate(net, crowd(0, 1), shelters([1], [np.inf]), closures([3], [0.0]), params())
    with pytest.raises(ProcessError):
        simulate(net, crowd(0, 1), shelters([1], [np.inf]), Closures.none(), SimParams(sample_s=1.5))


def test_progress_is_reported_up_to_the_end():
    net = network([(0, 1, 10.0, 1.0, 10.0)])
    seen = []
    simulate(net, crowd(0, 3), shelters([1], [np.inf]), Closures.none(), params(),
             progress=lambda f, t: seen.append((f, t)))
    assert seen[-1] == (1.0, 600.0)
