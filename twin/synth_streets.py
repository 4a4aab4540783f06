"""Street grid of a synthetic city: a jittered lattice bent by a conformal map, so blocks
keep right angles while the grid's orientation drifts from district to district.

Coordinates are metres relative to the city centre; the caller shifts them into the CRS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

HIGHWAY_CLASSES = np.array(["primary", "secondary", "tertiary", "residential"])
# Half the street corridor (carriageway + pavement) per class, metres: the building setback.
HALF_WIDTH = np.array([16.0, 12.0, 9.0, 6.0])
LANES = np.array([6, 4, 2, 2])
WAY_EDGES = 8  # a street line is cut into ways of at most this many lattice edges


@dataclass
class River:
    """Meandering centre line y = amp * (sin(2 pi x / wavelength + phase) + sin(...)/3)."""

    amp: float
    wavelength: float
    phase: float
    phase2: float
    half_width: float

    def centre_y(self, x: np.ndarray) -> np.ndarray:
        k = 2 * np.pi / self.wavelength
        return self.amp * (np.sin(k * x + self.phase) + np.sin(2.3 * k * x + self.phase2) / 3)

    def distance(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Approximate distance to the centre line (exact for a straight reach)."""
        k = 2 * np.pi / self.wavelength
        slope = self.amp * k * (np.cos(k * x + self.phase) + 2.3 * np.cos(2.3 * k * x + self.phase2) / 3)
        return np.abs(y - self.centre_y(x)) / np.sqrt(1 + slope ** 2)

    def polygon(self, x0: float, x1: float, step: float = 10.0) -> shapely.Polygon:
        x = np.arange(x0, x1 + step, step)
        line = shapely.linestrings(np.column_stack([x, self.centre_y(x)]))
        return shapely.buffer(line, self.half_width, cap_style="flat")


@dataclass
class Streets:
    node_xy: np.ndarray      # (ny * nx, 2) lattice nodes, row-major
    nx: int
    ny: int
    edge_a: np.ndarray       # (E,) node index of each lattice edge's start
    edge_b: np.ndarray
    edge_class: np.ndarray   # (E,) index into HIGHWAY_CLASSES
    edge_line: np.ndarray    # (E,) street line number (rows first, then columns)
    edge_pos: np.ndarray     # (E,) position of the edge along its line
    block_corners: np.ndarray  # (B, 4, 2) BL, BR, TR, TL
    block_setback: np.ndarray  # (B, 4) setback from bottom, right, top, left sides
    block_ij: np.ndarray       # (B, 2) lattice cell (row, column)


def river_for(side: float, rng: np.random.Generator) -> River:
    return River(amp=0.09 * side, wavelength=rng.uniform(0.55, 0.8) * side,
                 phase=rng.uniform(0, 2 * np.pi), phase2=rng.uniform(0, 2 * np.pi),
                 half_width=float(np.clip(0.006 * side, 12.0, 120.0)))


def _line_positions(length: float, rng: np.random.Generator) -> np.ndarray:
    spacing = rng.uniform(95.0, 175.0, size=int(length / 95.0) + 3)
    pos = np.concatenate([[0.0], np.cumsum(spacing)])
    pos = pos[pos <= length + 175.0]
    return pos - pos[-1] / 2


def _line_classes(n: int, rng: np.random.Generator) -> np.ndarray:
    i = np.arange(n) + rng.integers(0, 8)
    return np.select([i % 8 == 0, i % 4 == 0, i % 2 == 0], [0, 1, 2], 3)


def _bend(xy: np.ndarray, side: float, rng: np.random.Generator) -> np.ndarray:
    """z -> z + a z^2 + b z^3 on the normalised plane: angle-preserving, so the grid turns
    smoothly (districts of different orientation) without shearing blocks. Small towns
    are bent less."""
    radius = side / 2
    strength = min(1.0, radius / 1500.0)
    a = 0.06 * strength * np.exp(1j * rng.uniform(0, 2 * np.pi))
    b = 0.025 * strength * np.exp(1j * rng.uniform(0, 2 * np.pi))
    z = (xy[:, 0] + 1j * xy[:, 1]) / radius
    w = (z + a * z ** 2 + b * z ** 3) * radius
    return np.column_stack([w.real, w.imag])


def make_streets(side: float, rng: np.random.Generator) -> Streets:
    xs, ys = _line_positions(side, rng), _line_positions(side, rng)
    nx, ny = len(xs), len(ys)
    gx, gy = np.meshgrid(xs, ys)
    flat = np.column_stack([gx.ravel(), gy.ravel()]) + rng.normal(0, 2.5, size=(nx * ny, 2))
    node_xy = _bend(flat, side, rng)
    row_class, col_class = _line_classes(ny, rng), _line_classes(nx, rng)

    idx = np.arange(nx * ny).reshape(ny, nx)
    h_a, h_b = idx[:, :-1].ravel(), idx[:, 1:].ravel()
    v_a, v_b = idx[:-1, :].T.ravel(), idx[1:, :].T.ravel()   # column-major: edges of a column adjacent
    h_line = np.repeat(np.arange(ny), nx - 1)
    v_line = ny + np.repeat(np.arange(nx), ny - 1)
    edge_pos = np.concatenate([np.tile(np.arange(nx - 1), ny), np.tile(np.arange(ny - 1), nx)])

    cell = idx[:-1, :-1].ravel()
    corners = np.stack([cell, cell + 1, cell + nx + 1, cell + nx], axis=1)
    ci, cj = np.divmod(np.arange(len(cell)), nx - 1)  # row, column of each block
    setback = np.column_stack([HALF_WIDTH[row_class[ci]], HALF_WIDTH[col_class[cj + 1]],
                               HALF_WIDTH[row_class[ci + 1]], HALF_WIDTH[col_class[cj]]])
    return Streets(
        node_xy=node_xy, nx=nx, ny=ny,
        edge_a=np.concatenate([h_a, v_a]), edge_b=np.concatenate([h_b, v_b]),
        edge_class=np.concatenate([row_class[h_line], col_class[v_line - ny]]),
        edge_line=np.concatenate([h_line, v_line]), edge_pos=edge_pos,
        block_corners=node_xy[corners], block_setback=setback,
        block_ij=np.column_stack([ci, cj]),
    )


def street_ways(streets: Streets, river: River, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Cut the lattice edges into OSM-like ways. Minor streets stop at the river; primary and
    secondary ones cross it on bridges, which are ways of their own."""
    a, b = streets.edge_a, streets.edge_b
    mid = (streets.node_xy[a] + streets.node_xy[b]) / 2
    half_len = np.linalg.norm(streets.node_xy[b] - streets.node_xy[a], axis=1) / 2
    wet = river.distance(mid[:, 0], mid[:, 1]) < river.half_width + half_len
    if wet.any():  # exact test only where the cheap bound says the edge may reach the water
        water = river.polygon(mid[:, 0].min() - 200, mid[:, 0].max() + 200)
        segs = shapely.linestrings(np.stack([streets.node_xy[a[wet]], streets.node_xy[b[wet]]], axis=1))
        wet[np.flatnonzero(wet)] = shapely.intersects(segs, water)
    major = streets.edge_class <= 1
    keep = ~wet | major
    a, b, cls = a[keep], b[keep], streets.edge_class[keep]
    line, pos, bridge = streets.edge_line[keep], streets.edge_pos[keep], wet[keep]

    start = np.ones(len(a), dtype=bool)
    start[1:] = ((line[1:] != line[:-1]) | (pos[1:] != pos[:-1] + 1) | (bridge[1:] != bridge[:-1])
                 | (pos[1:] % WAY_EDGES == 0))
    first = np.flatnonzero(start)
    last = np.append(first[1:], len(a)) - 1
    way = np.cumsum(start) - 1
    n_way = len(first)
    # Node sequence of every way: the start node of each edge, then the end of its last edge.
    pos_start = np.arange(len(a)) + way
    pos_end = last + np.arange(n_way) + 1
    seq = np.empty(len(a) + n_way, dtype=np.int64)
    owner = np.empty(len(a) + n_way, dtype=np.int64)
    seq[pos_start], owner[pos_start] = a, way
    seq[pos_end], owner[pos_end] = b[last], np.arange(n_way)

    way_class = cls[first]
    minor = way_class >= 2
    oneway = minor & (rng.random(n_way) < 0.15)
    lanes = np.where(oneway, np.maximum(LANES[way_class] // 2, 1), LANES[way_class])
    return {"seq": seq, "owner": owner, "split": pos_end[:-1] + 1, "class": way_class,
            "bridge": bridge[first], "oneway": oneway, "lanes": lanes, "line": line[first]}
