"""tileset.json from a `TileNode` tree, through py3dtiles' tileset model.

py3dtiles (`py3dtiles.tileset.TileSet`, `Tile`, `BoundingVolumeBox`) gives
the JSON model, its validation of refine modes and box arrays, and reading a
tileset back. We attach children with `children.append` rather than
`Tile.add_child`, because `add_child` re-expresses a child's box through the
inverse of the parent's transform, which is wrong for children of a root
whose transform is an ENU->ECEF matrix (child boxes are already in the
root's frame). The nondeterministic `created_date` py3dtiles puts in the
asset is removed so that an unchanged tree gives a byte-identical file.
"""

from __future__ import annotations

import json
from typing import Callable, Literal

import numpy as np
from py3dtiles.constants import SpecVersion
from py3dtiles.tileset import BoundingVolumeBox, Tile, TileSet

from tiles.hierarchy import TileNode

MIN_HALF_SIZE_M = 0.01


def box_from_bounds(box_min: np.ndarray, box_max: np.ndarray) -> BoundingVolumeBox:
    center = (np.asarray(box_min) + np.asarray(box_max)) / 2.0
    half = np.maximum((np.asarray(box_max) - np.asarray(box_min)) / 2.0, MIN_HALF_SIZE_M)
    box = BoundingVolumeBox()
    box.set_from_list([*center, half[0], 0, 0, 0, half[1], 0, 0, 0, half[2]])
    return box


def build_tileset(root: TileNode, *, transform: np.ndarray, content_uri: Callable[[TileNode], str],
                  mode: Literal["1.1", "1.0"] = "1.1", layer: str = "") -> dict:
    """The tileset as a dict. `transform` is the root's ENU->ECEF 4x4 matrix
    (row-major numpy, written column-major as 3D Tiles wants)."""
    tileset = TileSet(geometric_error=_tileset_error(root),
                      spec_version=SpecVersion.V1_1 if mode == "1.1" else SpecVersion.V1_0)
    tileset.asset.extras = {"generator": "city-twin tiles", "layer": layer}
    tiles: dict[int, Tile] = {}
    for node in root.walk():
        tile = Tile(geometric_error=node.geometric_error, bounding_volume=box_from_bounds(node.box_min, node.box_max),
                    refine_mode="ADD", content_uri=content_uri(node) if len(node.features) else None)
        tiles[id(node)] = tile
        if node is root:
            tile.transform = np.asarray(transform, np.float64)
    for node in root.walk():
        for child in node.children:
            tiles[id(node)].children.append(tiles[id(child)])
    tileset.root_tile = tiles[id(root)]
    return tileset.to_dict()


def _tileset_error(root: TileNode) -> float:
    """Error of showing nothing: at least the root's own error and the size of the whole set."""
    diagonal = float(np.linalg.norm(root.box_max - root.box_min))
    return max(2.0 * root.geometric_error, diagonal / 4.0, 1.0)


def tileset_bytes(tileset: dict) -> bytes:
    return json.dumps(tileset, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
