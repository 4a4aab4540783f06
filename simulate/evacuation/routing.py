"""Next-hop tables: for every node, the cost to the nearest open destination and the link to take.

    link_costs(network, load=None, closed=None) -> (n_links,) seconds
    router = Router(network); router.table(destination_nodes, costs) -> RouteTable
    route_table(network, destination_nodes, costs=None) -> RouteTable   (one-off)

One multi-source `scipy.sparse.csgraph.dijkstra(..., min_only=True)` on the reversed graph
answers every node at once. Parallel links between the same two nodes collapse to the
cheapest one (csgraph would add duplicates up), and the predecessor the search returns is
mapped back to that link. Closed links cost inf and are left out of the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from simulate.evacuation.model import RoadNetwork


@dataclass(frozen=True)
class RouteTable:
    cost_s: np.ndarray       # (n_nodes,) float64 time to the nearest destination, inf if none is reachable
    destination: np.ndarray  # (n_nodes,) int32 node index of that destination, -1 if none
    next_link: np.ndarray    # (n_nodes,) int32 first link of the way there, -1 at a destination or if none


def link_costs(network: RoadNetwork, load: np.ndarray | None = None, closed: np.ndarray | None = None) -> np.ndarray:
    """Free-flow time plus the time the link needs to discharge its current load; inf where closed."""
    cost = network.free_time_s.astype(np.float64, copy=True)
    if load is not None:
        cost += np.asarray(load, np.float64) / network.capacity_per_s
    if closed is not None:
        cost[np.asarray(closed, bool)] = np.inf
    return cost


class Router:
    """The reversed graph's layout, computed once; `table` recomputes the tables for new costs."""

    def __init__(self, network: RoadNetwork):
        n = network.n_nodes
        self.n_nodes = n
        # reversed graph: row = head node, column = tail node; one entry per (head, tail) pair
        key = network.link_to.astype(np.int64) * n + network.link_from
        self._order = np.argsort(key, kind="stable")
        sorted_key = key[self._order]
        first = np.r_[True, sorted_key[1:] != sorted_key[:-1]]
        self._starts = np.flatnonzero(first)
        self._group = np.cumsum(first) - 1                 # pair index of each sorted link
        self._pair_key = sorted_key[self._starts]
        self._pair_row = (self._pair_key // n).astype(np.int32)
        self._pair_col = (self._pair_key % n).astype(np.int32)

    def table(self, destination_nodes: np.ndarray, costs: np.ndarray, predecessors: bool = True) -> RouteTable:
        n = self.n_nodes
        dest = np.unique(np.asarray(destination_nodes, np.int64))
        if len(dest) == 0 or len(self._order) == 0:
            cost = np.full(n, np.inf)
            cost[dest] = 0.0
            destination = np.full(n, -1, np.int32)
            destination[dest] = dest
            return RouteTable(cost, destination, np.full(n, -1, np.int32))
        c = np.asarray(costs, np.float64)[self._order]
        best = np.minimum.reduceat(c, self._starts)
        keep = np.isfinite(best)
        rows = self._pair_row[keep]
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
        graph = csr_matrix((best[keep], self._pair_col[keep], indptr), shape=(n, n))
        if not predecessors:
            dist = dijkstra(graph, directed=True, indices=dest, min_only=True)
            return RouteTable(dist, np.full(n, -1, np.int32), np.full(n, -1, np.int32))
        dist, pred, source = dijkstra(graph, directed=True, indices=dest, min_only=True, return_predecessors=True)
        return RouteTable(dist, np.where(source >= 0, source, -1).astype(np.int32),
                          self._next_links(c, best, keep, pred))

    def _next_links(self, c: np.ndarray, best: np.ndarray, keep: np.ndarray, pred: np.ndarray) -> np.ndarray:
        """The cheapest link node -> pred[node] (pred is the next node on the way out)."""
        n = self.n_nodes
        hit = np.flatnonzero(c == best[self._group])
        first = hit[np.r_[True, self._group[hit[1:]] != self._group[hit[:-1]]]]
        best_link = np.full(len(self._starts), -1, np.int64)
        best_link[self._group[first]] = self._order[first]
        nodes = np.flatnonzero(pred >= 0)
        want = pred[nodes].astype(np.int64) * n + nodes
        pair = np.searchsorted(self._pair_key, want)
        out = np.full(n, -1, np.int32)
        out[nodes] = np.where(keep[pair], best_link[pair], -1)
        return out


def route_table(network: RoadNetwork, destination_nodes: np.ndarray, costs: np.ndarray | None = None) -> RouteTable:
    """Tables towards `destination_nodes` under `costs` (free-flow times if None)."""
    return Router(network).table(destination_nodes, link_costs(network) if costs is None else costs)
