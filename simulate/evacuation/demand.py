"""Who leaves, from which node, and when: the evacuation's travel demand.

    snap_buildings(buildings, network, *, max_access_m=400.0) -> (node int32, access_m float64)
    nearest_nodes(geoms, network, *, can_leave=True, can_enter=False) -> (node int32, distance_m float64)
    make_agents(origins, people, network, *, mode, vehicle_occupancy=2.0, response=ResponseTime(),
                seed=0, access_m=None, group=None) -> Agents
    ResponseTime(distribution="immediate" | "uniform" | "rayleigh" | "lognormal", ...).sample(rng, n)
    largest_remainder(values) -> int64 counts with the same (rounded) total

A building reaches the network at the node nearest to its footprint (its edge, not its
centre, so a large building next to a road snaps to that road). People first walk there
(access distance / `WALK_SPEED_MS`), after their response time: the delay between the
warning and setting off. A building farther than `max_access_m` from any node gets node -1:
it has no road access, and `make_agents` makes no agents for it.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import shapely
from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulate.evacuation.model import Agents, Mode, RoadNetwork

# Mean free walking speed of adults (Weidmann 1993, "Transporttechnik der Fussgaenger": 1.34 m/s).
WALK_SPEED_MS = 1.34


class ResponseTime(BaseModel):
    """Delay between the warning and setting off, per agent.

    * immediate: 0 for everyone.
    * uniform: uniform on [0, max_s].
    * rayleigh: Rayleigh with mean `mean_s` (scale mean_s / sqrt(pi / 2)), the mobilisation
      curve of evacuation planning (Tweedie et al. 1986; US NRC NUREG/CR-7002 fits
      Rayleigh/Weibull curves to trip-generation times): few leave at once, most within
      about twice the mean.
    * lognormal: median `median_s` and log-space standard deviation `sigma`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    distribution: Literal["immediate", "uniform", "rayleigh", "lognormal"] = "immediate"
    max_s: float | None = Field(None, gt=0, description="uniform: latest response (s)")
    mean_s: float | None = Field(None, gt=0, description="rayleigh: mean response (s)")
    median_s: float | None = Field(None, gt=0, description="lognormal: median response (s)")
    sigma: float | None = Field(None, gt=0, le=3, description="lognormal: standard deviation of ln(t)")

    @model_validator(mode="after")
    def _parameters_given(self) -> ResponseTime:
        needs = {"immediate": (), "uniform": ("max_s",), "rayleigh": ("mean_s",),
                 "lognormal": ("median_s", "sigma")}[self.distribution]
        missing = [name for name in needs if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.distribution} response time needs {' and '.join(missing)}")
        return self

    @property
    def rayleigh_scale_s(self) -> float:
        return float(self.mean_s) / math.sqrt(math.pi / 2.0)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.distribution == "immediate":
            return np.zeros(n)
        if self.distribution == "uniform":
            return rng.uniform(0.0, self.max_s, n)
        if self.distribution == "rayleigh":
            return rng.rayleigh(self.rayleigh_scale_s, n)
        return rng.lognormal(math.log(self.median_s), self.sigma, n)


def largest_remainder(values: np.ndarray) -> np.ndarray:
    """Non-negative integers, each floor(v) or ceil(v), summing to round(sum(values)):
    the leftover units go to the largest fractional parts (ties: the earlier row)."""
    values = np.clip(np.nan_to_num(np.asarray(values, dtype=float)), 0.0, None)
    counts = np.floor(values).astype(np.int64)
    left = int(round(float(values.sum()))) - int(counts.sum())
    if left > 0:
        order = np.argsort(-(values - counts), kind="stable")
        counts[order[:left]] += 1
    return counts


def _usable_nodes(network: RoadNetwork, *, can_leave: bool, can_enter: bool) -> np.ndarray:
    ok = np.ones(network.n_nodes, bool)
    if can_leave:
        ok &= np.bincount(network.link_from, minlength=network.n_nodes) > 0
    if can_enter:
        ok &= np.bincount(network.link_to, minlength=network.n_nodes) > 0
    return np.flatnonzero(ok)


def nearest_nodes(geoms, network: RoadNetwork, *, can_leave: bool = True,
                  can_enter: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Nearest node to each geometry (distance to its edge, 0 inside), among the nodes with
    an outgoing link (can_leave) and/or an incoming link (can_enter); -1 / inf where there is none."""
    geoms = np.asarray(geoms, dtype=object)
    node = np.full(len(geoms), -1, np.int32)
    dist = np.full(len(geoms), np.inf)
    candidates = _usable_nodes(network, can_leave=can_leave, can_enter=can_enter)
    if len(geoms) == 0 or len(candidates) == 0:
        return node, dist
    # An STRtree gives the exact polygon-to-point distance, which a KD-tree on centroids would not.
    tree = shapely.STRtree(shapely.points(network.node_xy[candidates]))
    (rows, hits), d = tree.query_nearest(geoms, return_distance=True, all_matches=False)
    node[rows] = candidates[hits]
    dist[rows] = d
    return node, dist


def snap_buildings(buildings, network: RoadNetwork, *, max_access_m: float = 400.0) -> tuple[np.ndarray, np.ndarray]:
    """(node, access distance m) per building row: the nearest node that can be left; -1 (and the
    distance it would have been, inf without any node) beyond `max_access_m`."""
    node, dist = nearest_nodes(buildings.geometry.to_numpy(), network, can_leave=True)
    return np.where(dist <= max_access_m, node, -1).astype(np.int32), dist


def make_agents(origins: np.ndarray, people: np.ndarray, network: RoadNetwork, *, mode: Mode,
                vehicle_occupancy: float = 2.0, response: ResponseTime | None = None, seed: int = 0,
                access_m: np.ndarray | None = None, group: np.ndarray | None = None) -> Agents:
    """Agents leaving from `origins` (node per building row, -1: no road access, skipped) with
    `people` per building row. On foot: one agent per person, the people of each building
    rounded by largest remainder over the buildings with access (so the total is kept).
    By car: ceil(people / vehicle_occupancy) vehicles per building, each carrying an equal
    share. Each agent departs after its own response time plus the walk to its node
    (access_m / WALK_SPEED_MS; 0 without access_m). Agents.group is `group` of the agent's
    building (default: its position in `origins`), e.g. the row in the twin's buildings layer."""
    origins = np.asarray(origins, dtype=np.int64)
    people = np.clip(np.nan_to_num(np.asarray(people, dtype=float)), 0.0, None)
    labels = np.arange(len(origins)) if group is None else np.asarray(group, dtype=np.int64)
    if origins.shape != people.shape or labels.shape != origins.shape:
        raise ValueError("origins, people and group need one value per building")
    if np.any(origins >= network.n_nodes):
        raise ValueError("an origin node is not in the network")
    if mode not in ("walk", "drive"):
        raise ValueError(f"mode must be 'walk' or 'drive', not {mode!r}")
    if vehicle_occupancy < 1:
        raise ValueError("vehicle_occupancy must be >= 1")
    walk_s = (np.zeros(len(origins)) if access_m is None
              else np.nan_to_num(np.asarray(access_m, dtype=float), posinf=0.0) / WALK_SPEED_MS)
    reachable = origins >= 0
    if mode == "walk":
        counts = np.zeros(len(origins), np.int64)
        counts[reachable] = largest_remainder(people[reachable])
        building = np.repeat(np.arange(len(origins)), counts)
        persons = np.ones(len(building))
    else:
        counts = np.where(reachable & (people > 0), np.ceil(people / vehicle_occupancy - 1e-9), 0).astype(np.int64)
        building = np.repeat(np.arange(len(origins)), counts)
        persons = people[building] / counts[building]
    rng = np.random.default_rng(seed)
    depart = (response or ResponseTime()).sample(rng, len(building)) + walk_s[building]
    return Agents(origin_node=origins[building].astype(np.int32), depart_s=depart.astype(np.float64),
                  persons=persons.astype(np.float64), group=labels[building].astype(np.int32))
