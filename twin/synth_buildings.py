"""Parcels and building footprints of a synthetic city, all as arrays.

Every block's inscribed rectangle (in the block's own axes, inside the street setbacks)
is cut into a grid of parcels and each used parcel holds one building drawn inside it,
so buildings never overlap by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from scipy.spatial import cKDTree

from twin.synth_streets import River, Streets

DISTRICTS = np.array(["village", "estate", "downtown", "industrial", "campus"])
DISTRICT_P = np.array([0.68, 0.12, 0.1, 0.06, 0.04])
PARCEL_M = np.array([11.5, 32.0, 24.0, 45.0, 40.0])  # parcel edge per district type
USES = np.array(["residential", "commercial", "office", "school", "industrial", "public", "hospital"])
# P(use | district), rows follow DISTRICTS, columns USES.
USE_P = np.array([
    [0.86, 0.08, 0.00, 0.025, 0.00, 0.03, 0.005],
    [0.88, 0.05, 0.00, 0.04, 0.00, 0.03, 0.00],
    [0.12, 0.40, 0.40, 0.00, 0.00, 0.06, 0.02],
    [0.00, 0.05, 0.07, 0.00, 0.88, 0.00, 0.00],
    [0.00, 0.00, 0.00, 0.70, 0.00, 0.20, 0.10],
])
# Levels range and storey height per use.
LEVELS_LO = np.array([2, 1, 6, 2, 1, 2, 4])
LEVELS_HI = np.array([33, 8, 60, 6, 3, 8, 16])
STOREY_M = np.array([3.0, 4.0, 3.6, 3.6, 6.0, 3.8, 3.8])
PARK_SHARE = 0.04
SHAPES = ("rect", "l_shape", "courtyard", "multi")


@dataclass
class Parcels:
    centre: np.ndarray    # (P, 2)
    angle: np.ndarray     # (P,) radians, the block's u axis
    size: np.ndarray      # (P, 2) width along u, depth along v
    district: np.ndarray  # (P,) index into DISTRICTS
    block: np.ndarray     # (P,) block number


def _block_frames(corners: np.ndarray, setback: np.ndarray):
    """Centre, angle and the inscribed rectangle (u0, u1, v0, v1) of every block."""
    centre = corners.mean(axis=1)
    axis = corners[:, 1] - corners[:, 0]
    angle = np.arctan2(axis[:, 1], axis[:, 0])
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    rel = corners - centre[:, None, :]
    u = rel[..., 0] * c + rel[..., 1] * s
    v = -rel[..., 0] * s + rel[..., 1] * c
    # Corners BL, BR, TR, TL: the rectangle between the innermost corner on each side
    # lies inside the (convex, near-rectangular) block.
    u0 = np.maximum(u[:, 0], u[:, 3]) + setback[:, 3]
    u1 = np.minimum(u[:, 1], u[:, 2]) - setback[:, 1]
    v0 = np.maximum(v[:, 0], v[:, 1]) + setback[:, 0]
    v1 = np.minimum(v[:, 2], v[:, 3]) - setback[:, 2]
    return centre, angle, u0, u1, v0, v1


def districts_of(points: np.ndarray, side: float, rng: np.random.Generator) -> np.ndarray:
    n = max(6, int(round(side * side / 1.5e6)))
    seeds = rng.uniform(-side / 2, side / 2, size=(n, 2))
    kinds = rng.choice(len(DISTRICTS), size=n, p=DISTRICT_P)
    kinds[:6] = rng.permutation([0, 0, 0, 1, 2, 4])  # even a small town is mixed
    return kinds[cKDTree(seeds).query(points)[1]]


def make_parcels(streets: Streets, river: River, side: float, rng: np.random.Generator) -> Parcels:
    centre, angle, u0, u1, v0, v1 = _block_frames(streets.block_corners, streets.block_setback)
    district = districts_of(centre, side, rng)
    park = rng.random(len(centre)) < PARK_SHARE
    pw = PARCEL_M[district] * rng.uniform(0.9, 1.15, size=len(centre))
    width, depth = u1 - u0, v1 - v0
    ok = (width > 8) & (depth > 8) & ~park
    n_u = np.where(ok, np.maximum(np.floor(width / pw), 1), 0).astype(np.int64)
    n_v = np.where(ok, np.maximum(np.floor(depth / pw), 1), 0).astype(np.int64)
    count = n_u * n_v
    block = np.repeat(np.arange(len(centre)), count)
    k = np.arange(len(block)) - np.repeat(np.cumsum(count) - count, count)
    a, b = k % n_u[block], k // n_u[block]
    cell_u, cell_v = width[block] / n_u[block], depth[block] / n_v[block]
    lu = u0[block] + (a + 0.5) * cell_u
    lv = v0[block] + (b + 0.5) * cell_v
    ang = angle[block]
    cos, sin = np.cos(ang), np.sin(ang)
    xy = centre[block] + np.column_stack([lu * cos - lv * sin, lu * sin + lv * cos])
    size = np.column_stack([cell_u, cell_v])
    radius = np.hypot(cell_u, cell_v) / 2
    dry = river.distance(xy[:, 0], xy[:, 1]) > river.half_width + radius + 8.0
    return Parcels(centre=xy[dry], angle=ang[dry], size=size[dry], district=district[block][dry],
                   block=block[dry])


def _rings(kind: str, hw: np.ndarray, hh: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Local (u, v) coordinate arrays (n, k, 2) of the rings of each part of a shape."""
    n = len(hw)
    def rect(u0, v0, u1, v1):
        return np.stack([np.column_stack(p) for p in
                         ((u0, v0), (u1, v0), (u1, v1), (u0, v1), (u0, v0))], axis=1)
    if kind == "rect":
        return [rect(-hw, -hh, hw, hh)]
    if kind == "l_shape":
        cu = hw - 2 * hw * rng.uniform(0.35, 0.6, n)
        cv = hh - 2 * hh * rng.uniform(0.35, 0.6, n)
        pts = ((-hw, -hh), (hw, -hh), (hw, cv), (cu, cv), (cu, hh), (-hw, hh), (-hw, -hh))
        ring = np.stack([np.column_stack(p) for p in pts], axis=1)
        turn = rng.integers(0, 4, n)  # notch at any corner: quarter turns keep the ring valid
        for q in range(1, 4):
            sel = turn == q
            for _ in range(q):
                ring[sel] = np.stack([-ring[sel][..., 1] * hw[sel, None] / hh[sel, None],
                                      ring[sel][..., 0] * hh[sel, None] / hw[sel, None]], axis=-1)
        return [ring]
    if kind == "courtyard":
        t = np.clip(0.3 * np.minimum(hw, hh), 5.0, 12.0)
        return [rect(-hw, -hh, hw, hh), rect(-hw + t, -hh + t, hw - t, hh - t)]
    split = hw * rng.uniform(0.1, 0.4, n)  # main block and a detached annex, 3 m apart
    return [rect(-hw, -hh, split - 1.5, hh), rect(split + 1.5, -0.6 * hh, hw, 0.6 * hh)]


def _place(local: np.ndarray, centre: np.ndarray, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    u, v = local[..., 0], local[..., 1]
    return np.stack([centre[:, 0:1] + u * c - v * s, centre[:, 1:2] + u * s + v * c], axis=-1)


def footprints(centre: np.ndarray, angle: np.ndarray, size: np.ndarray, use: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """-> (geometry array, shape index into SHAPES) of one building per parcel."""
    n = len(centre)
    fill = np.where(np.isin(use, [4, 3]), 0.8, 0.72)[:, None] * rng.uniform(0.82, 1.0, size=(n, 2))
    hw, hh = size[:, 0] * fill[:, 0] / 2, size[:, 1] * fill[:, 1] / 2
    # Shift the building inside its parcel's free margin, never past it.
    slack = size / 2 - np.column_stack([hw, hh])
    offset = slack * rng.uniform(-0.8, 0.8, size=(n, 2))
    c, s = np.cos(angle), np.sin(angle)
    centre = centre + np.column_stack([offset[:, 0] * c - offset[:, 1] * s,
                                       offset[:, 0] * s + offset[:, 1] * c])
    shape = rng.choice(4, size=n, p=[0.55, 0.25, 0.1, 0.1])
    big = np.minimum(hw, hh) >= 9.0
    shape[(shape == 2) & ~big] = 0
    shape[(shape == 3) & (hw < 5.0)] = 0
    geoms = np.empty(n, dtype=object)
    for k, kind in enumerate(SHAPES):
        sel = np.flatnonzero(shape == k)
        if len(sel) == 0:
            continue
        rings = [_place(r, centre[sel], angle[sel]) for r in _rings(kind, hw[sel], hh[sel], rng)]
        if kind == "courtyard":
            geoms[sel] = shapely.polygons(rings[0], holes=rings[1][:, None])
        elif kind == "multi":
            parts = shapely.polygons(np.stack([rings[0], rings[1]], axis=1).reshape(-1, 5, 2))
            geoms[sel] = shapely.multipolygons(parts, indices=np.repeat(np.arange(len(sel)), 2))
        else:
            geoms[sel] = shapely.polygons(rings[0])
    return shapely.orient_polygons(geoms), shape


def heights(use: np.ndarray, district: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """-> (levels, height m). Residential towers stand in estates and downtown only."""
    n = len(use)
    lo, hi = LEVELS_LO[use].copy(), LEVELS_HI[use].copy()
    home = use == 0
    hi[home & (district == 0)] = 8                     # urban village houses
    lo[home & (district == 1)] = 10                    # tower estates
    hi[home & (district >= 2)] = 30
    # Skewed towards the low end, as real stock is.
    levels = np.floor(lo + (hi - lo + 1) * rng.random(n) ** 2).astype(np.int64)
    height = levels * STOREY_M[use] + rng.uniform(0.5, 2.5, n)
    return levels, np.round(height, 1)
