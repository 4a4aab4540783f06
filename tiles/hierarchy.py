"""The spatial tree of a feature tileset: a median quadtree with ADD refinement.

Every feature appears in exactly one tile. A tile that would hold more than
`max_features` features or `max_bytes` bytes keeps only its most prominent
features (largest `prominence`, e.g. footprint area x height) up to a share
of the caps, and hands the rest to up to four children, split at the median
x and then the median y of their centroids (so the tree stays balanced on
clustered cities and always makes progress on duplicate centroids).

Geometric error of a tile is the largest size of any feature that is NOT
drawn when the tile is shown without its descendants, i.e. the biggest
feature in its descendants' content. It therefore never grows with depth
and is 0 at the leaves. Bounding boxes are axis-aligned in the tileset's
ENU frame and contain the tile's own content and all its children.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BOX_PADDING_M = 0.02  # covers float32 rounding of content positions


@dataclass
class TileNode:
    address: str                   # "0", "0_2", "0_2_1" ... (stable across rebuilds)
    depth: int
    features: np.ndarray           # feature rows in this tile's content (sorted)
    children: list["TileNode"] = field(default_factory=list)
    box_min: np.ndarray = field(default_factory=lambda: np.zeros(3))
    box_max: np.ndarray = field(default_factory=lambda: np.zeros(3))
    geometric_error: float = 0.0

    def walk(self):
        """This node and all descendants, parents before children."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))


@dataclass(frozen=True)
class TreeLimits:
    max_features: int = 2000
    max_bytes: int = 2_000_000
    parent_share: float = 0.25   # share of the caps a parent keeps for its prominent features
    max_depth: int = 24


def build_tree(centroids: np.ndarray, feature_min: np.ndarray, feature_max: np.ndarray, prominence: np.ndarray,
               feature_bytes: np.ndarray, limits: TreeLimits = TreeLimits(), *, finish: bool = True) -> TileNode:
    """Tree over features 0..F-1; all arrays have one row per feature (ENU metres).

    With `finish=False` the boxes and geometric errors are left for `finish_tree`
    (when the features' bounds are only known later, e.g. after extrusion)."""
    centroids = np.asarray(centroids, np.float64)
    n = len(centroids)
    if n == 0:
        raise ValueError("no features to tile")
    rows = np.arange(n)
    # unique ranks replace the (value, row) sort keys, so that each split is one O(n) partition
    rank_x = _rank(np.lexsort((rows, centroids[:, 0])))
    rank_y = _rank(np.lexsort((rows, centroids[:, 1])))
    rank_p = _rank(np.lexsort((rows, -np.asarray(prominence, np.float64))))   # most prominent first
    root = TileNode("0", 0, np.zeros(0, np.int64))
    stack: list[tuple[TileNode, np.ndarray]] = [(root, rows)]
    while stack:
        node, members = stack.pop()
        fits = len(members) <= limits.max_features and feature_bytes[members].sum() <= limits.max_bytes
        if fits or node.depth >= limits.max_depth:
            node.features = np.sort(members)
            continue
        keep_mask = _most_prominent(members, rank_p, feature_bytes, limits)
        node.features = np.sort(members[keep_mask])
        rest = members[~keep_mask]
        for quadrant, part in enumerate(_median_quadrants(rest, rank_x, rank_y)):
            if len(part):
                child = TileNode(f"{node.address}_{quadrant}", node.depth + 1, np.zeros(0, np.int64))
                node.children.append(child)
                stack.append((child, part))
    if finish:
        finish_tree(root, feature_min, feature_max)
    return root


def _rank(order: np.ndarray) -> np.ndarray:
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank


def _smallest(members: np.ndarray, rank: np.ndarray, k: int) -> np.ndarray:
    """Mask of the k members of smallest rank (ranks are unique, so the set is exact)."""
    mask = np.zeros(len(members), bool)
    if k >= len(members):
        mask[:] = True
    elif k > 0:
        mask[np.argpartition(rank[members], k - 1)[:k]] = True
    return mask


def _most_prominent(members: np.ndarray, rank_p: np.ndarray, feature_bytes: np.ndarray,
                    limits: TreeLimits) -> np.ndarray:
    """The most prominent members (ties by row) within a share of both caps; at least one, never all."""
    count_cap = min(max(1, int(limits.max_features * limits.parent_share)), len(members) - 1)
    top = np.flatnonzero(_smallest(members, rank_p, count_cap))
    top = top[np.argsort(rank_p[members[top]])]
    within_bytes = np.cumsum(feature_bytes[members[top]]) <= limits.max_bytes * limits.parent_share
    take = min(count_cap, max(1, int(np.count_nonzero(within_bytes))))
    mask = np.zeros(len(members), bool)
    mask[top[:take]] = True
    return mask


def _median_quadrants(members: np.ndarray, rank_x: np.ndarray, rank_y: np.ndarray) -> list[np.ndarray]:
    """Split at the median x (lower half gets the extra one), then each half at its median y."""
    west = _smallest(members, rank_x, (len(members) + 1) // 2)
    quadrants = []
    for half in (members[west], members[~west]):
        south = _smallest(half, rank_y, (len(half) + 1) // 2)
        quadrants.extend([half[south], half[~south]])
    return quadrants


def finish_tree(root: TileNode, feature_min: np.ndarray, feature_max: np.ndarray) -> None:
    """Boxes and geometric errors, children before parents (arrays indexed by `node.features`)."""
    size = np.max(feature_max - feature_min, axis=1)
    subtree_size: dict[int, float] = {}
    for node in reversed(list(root.walk())):
        lo = [feature_min[node.features].min(axis=0)] if len(node.features) else []
        hi = [feature_max[node.features].max(axis=0)] if len(node.features) else []
        lo += [c.box_min for c in node.children]
        hi += [c.box_max for c in node.children]
        node.box_min = np.min(lo, axis=0) - BOX_PADDING_M
        node.box_max = np.max(hi, axis=0) + BOX_PADDING_M
        own = float(size[node.features].max()) if len(node.features) else 0.0
        below = max((subtree_size[id(c)] for c in node.children), default=0.0)
        node.geometric_error = below
        subtree_size[id(node)] = max(own, below)
