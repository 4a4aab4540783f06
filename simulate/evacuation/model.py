"""The evacuation model's data: plain arrays in, plain arrays out.

Flow of one scenario (`simulate.evacuation.scenario`):

    roads layer  --network.build_network-->  RoadNetwork (directed links)
    buildings    --population / hazard----->  who leaves, from which building
    pois, bldgs  --shelters.find_shelters-->  Shelters (node, capacity)
    flood result --hazard.flood_hazard----->  Closures (link, time it closes)
                 --demand.make_agents------>  Agents (origin node, departure time, persons)
    all of it    --queue.simulate---------->  SimResult (curves, per-link loads, per-agent fate)

Units: metres and seconds in the project CRS. An agent is one walker, or one vehicle
carrying `persons` people; flows, capacities and storage are in agents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Mode = Literal["walk", "drive"]

# Final state of an agent (SimResult.agent_status) and the series they are counted in.
NOT_DEPARTED, EN_ROUTE, EVACUATED, TRAPPED = 0, 1, 2, 3
# Why an agent is trapped (SimResult.agent_trapped_reason).
NO_ROUTE, CAUGHT_ON_CLOSED_LINK, NO_SHELTER_SPACE = 1, 2, 3


@dataclass(frozen=True)
class RoadNetwork:
    """A directed road graph: one row per link (a road edge in one direction of travel)."""

    mode: Mode
    node_xy: np.ndarray          # (n_nodes, 2) float64
    link_from: np.ndarray        # (n_links,) int32 node index
    link_to: np.ndarray          # (n_links,) int32 node index
    length_m: np.ndarray         # (n_links,) float64, > 0
    free_speed_ms: np.ndarray    # (n_links,) float64, > 0
    capacity_per_s: np.ndarray   # (n_links,) float64 agents per second leaving the link, > 0
    storage: np.ndarray          # (n_links,) float64 agents the link holds at jam density, >= 1
    road_row: np.ndarray         # (n_links,) int32 row of the roads layer it came from (-1: none)
    geometry: np.ndarray | None = None   # (n_links,) shapely LineStrings oriented from -> to
    crs: str | None = None
    node_osm_id: np.ndarray | None = None  # (n_nodes,) int64 OSM node id, -1 where the node was snapped

    @property
    def n_nodes(self) -> int:
        return len(self.node_xy)

    @property
    def n_links(self) -> int:
        return len(self.link_from)

    @property
    def free_time_s(self) -> np.ndarray:
        return self.length_m / self.free_speed_ms


@dataclass(frozen=True)
class Shelters:
    """Places people go. capacity = inf makes a plain exit (leaving the area is enough)."""

    node: np.ndarray             # (n,) int32 network node it is reached at
    capacity: np.ndarray         # (n,) float64 persons
    xy: np.ndarray               # (n, 2) float64 where it is
    name: np.ndarray             # (n,) object
    feature_id: np.ndarray       # (n,) object id of the POI / building it came from ("" for exits)
    kind: np.ndarray             # (n,) object: "school", "community_centre", ..., "exit"

    def __len__(self) -> int:
        return len(self.node)


@dataclass(frozen=True)
class Closures:
    """Links that become impassable: from `at_s` on, nobody enters or leaves them."""

    link: np.ndarray             # (k,) int32
    at_s: np.ndarray             # (k,) float64, 0 = closed from the start

    @staticmethod
    def none() -> Closures:
        return Closures(np.zeros(0, np.int32), np.zeros(0, np.float64))


@dataclass(frozen=True)
class Agents:
    origin_node: np.ndarray      # (m,) int32
    depart_s: np.ndarray         # (m,) float64 when the agent is ready to enter the network
    persons: np.ndarray          # (m,) float64 people it carries (1 on foot)
    group: np.ndarray            # (m,) int32 origin group (building row) it belongs to, -1 none

    def __len__(self) -> int:
        return len(self.origin_node)


@dataclass(frozen=True)
class SimParams:
    horizon_s: float = 3 * 3600.0
    dt_s: float = 1.0
    reroute_s: float = 60.0      # routing tables refreshed this often (and at every closure / full shelter)
    sample_s: float = 60.0       # resolution of the output series
    seed: int = 0
    record_routes: bool = True
    record_link_loads: bool = True   # SimResult.link_load_series (k x n_links float32)


@dataclass
class SimResult:
    """What a run produced. Person counts are float64 (vehicles carry fractional averages)."""

    times_s: np.ndarray                  # (k,) sample times, 0 .. horizon
    not_departed: np.ndarray             # (k,) persons
    en_route: np.ndarray                 # (k,) persons
    evacuated: np.ndarray                # (k,) persons
    trapped: np.ndarray                  # (k,) persons; the four sum to the population at every sample
    shelter_occupancy: np.ndarray        # (k, n_shelters) persons
    agent_persons: np.ndarray            # (m,) float64 people per agent (as in Agents)
    agent_status: np.ndarray             # (m,) int8 final state (NOT_DEPARTED .. TRAPPED)
    agent_arrival_s: np.ndarray          # (m,) float64, NaN unless evacuated
    agent_shelter: np.ndarray            # (m,) int32, -1 unless evacuated
    agent_node: np.ndarray               # (m,) int32 last node reached (where trapped agents are)
    agent_link: np.ndarray               # (m,) int32 link it was on at the end, -1 none
    agent_trapped_reason: np.ndarray     # (m,) int8, 0 unless trapped
    link_entries: np.ndarray             # (n_links,) persons that entered
    link_peak_flow_per_h: np.ndarray     # (n_links,) max outflow over one sample interval, persons per hour
    link_peak_queue: np.ndarray          # (n_links,) max agents waiting at the link end, ready but held
    link_peak_load: np.ndarray           # (n_links,) max agents on the link
    link_last_entry_s: np.ndarray        # (n_links,) last time anyone entered, NaN never
    link_load_series: np.ndarray | None  # (k, n_links) float32 agents on each link, for the animation
    route_ptr: np.ndarray | None = None  # (m + 1,) CSR offsets into route_links
    route_links: np.ndarray | None = None  # links each agent entered, in order
    steps: int = 0
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def population(self) -> float:
        return float(self.not_departed[0] + self.en_route[0] + self.evacuated[0] + self.trapped[0])

    def clearance_s(self, share: float) -> float | None:
        """Exact time by which `share` of the people who can get out (the population minus the
        finally trapped) have arrived, from the agents' arrival times; None if not within the horizon."""
        reachable = self.population - float(self.trapped[-1])
        if reachable <= 0:
            return None
        arrived = np.isfinite(self.agent_arrival_s)
        order = np.argsort(self.agent_arrival_s[arrived], kind="stable")
        times = self.agent_arrival_s[arrived][order]
        persons = np.cumsum(self.agent_persons[arrived][order])
        hit = np.flatnonzero(persons >= share * reachable - 1e-9)
        return float(times[hit[0]]) if len(hit) else None
