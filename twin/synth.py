"""Synthetic cities of any size, written as source files plus a `city.toml`.

`synthesize(out_dir, n_buildings)` lays out a bent street grid, a meandering river in a
valley, blocks of parcels with one building each, a bare-earth DTM with closed pits and a
DSM with the buildings burnt in, and POIs (schools, hospitals, shelters, service halls,
fire stations). Everything is vectorised; the same seed gives the same city.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from affine import Affine
from pyproj import CRS, Transformer

from twin.errors import ConfigError
from twin.synth_buildings import USE_P, USES, Parcels, footprints, heights, make_parcels
from twin.synth_streets import HIGHWAY_CLASSES, make_streets, river_for, street_ways
from twin.synth_terrain import cell_size, dem, surface, write_tif

Progress = Callable[[str, float], None]

LICENCE = "CC0-1.0"
ATTRIBUTION = "synthetic city by city-twin"
DENSITY_PER_KM2 = 3000.0
MIN_SIDE_M = 400.0
SPARE = (1.0, 1.2)  # parcels per requested building: enough, but not a sparse town


def synthesize(out_dir: Path, n_buildings: int, seed: int = 0, crs: str = "EPSG:4547",
               origin: tuple[float, float] = (113.33, 23.11),
               progress: Progress | None = None) -> Path:
    """Write buildings.gpkg, roads.gpkg, river.gpkg, pois.gpkg, terrain.tif (DTM),
    surface.tif (DSM) and city.toml into `out_dir`; return the path of city.toml."""
    if n_buildings < 1:
        raise ConfigError(f"n_buildings must be at least 1, got {n_buildings}", field="n_buildings")
    project = CRS.from_user_input(crs)
    if not project.is_projected or project.axis_info[0].unit_name not in ("metre", "meter"):
        raise ConfigError(f"{crs} is not a projected metric CRS", field="crs")
    report = progress or (lambda stage, fraction: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cx, cy = Transformer.from_crs("EPSG:4326", project, always_xy=True).transform(*origin)

    report("layout", 0.0)
    side, streets, river, parcels = _layout(n_buildings, seed)
    rng = np.random.default_rng([seed, 2])
    chosen = np.sort(rng.choice(len(parcels.centre), size=n_buildings, replace=False))
    report("buildings", 0.2)
    buildings = _buildings(parcels, chosen, rng)
    report("roads", 0.45)
    roads = _roads(streets, river, np.random.default_rng([seed, 3]))
    bounds = _bounds(buildings, roads)
    water = gpd.GeoDataFrame({"id": ["river-1"], "name": ["Pearl Creek"], "kind": ["river"]},
                             geometry=[shapely.intersection(river.polygon(bounds[0] - 50, bounds[2] + 50),
                                                            shapely.box(*bounds))])
    pois = _pois(buildings, np.random.default_rng([seed, 4]))

    report("terrain", 0.55)
    cell = cell_size(side)
    grid_bounds = tuple(np.floor(np.array(bounds) / cell) * cell + np.array([-2, -2, 2, 2]) * cell)
    ground, transform, _ = dem(grid_bounds, cell, river, side, np.random.default_rng([seed, 5]))
    standing = buildings["layer"].to_numpy() >= 0
    dsm = surface(ground, transform, buildings.geometry.values[standing],
                  buildings["true_height"].to_numpy()[standing])

    report("writing", 0.7)
    shift = Affine.translation(cx, cy)
    for frame in (buildings, roads, water, pois):
        frame.geometry = shapely.transform(frame.geometry.values, lambda xy: xy + [cx, cy])
        frame.set_crs(project, inplace=True, allow_override=True)
    buildings = buildings.drop(columns=["true_height"])
    _write(buildings, out_dir / "buildings.gpkg", "buildings")
    _write(roads, out_dir / "roads.gpkg", "roads")
    _write(water, out_dir / "river.gpkg", "river")
    _write(pois, out_dir / "pois.gpkg", "pois")
    write_tif(out_dir / "terrain.tif", ground, shift @ transform, project.to_string())
    write_tif(out_dir / "surface.tif", dsm, shift @ transform, project.to_string())
    world = (bounds[0] + cx, bounds[1] + cy, bounds[2] + cx, bounds[3] + cy)
    extent = Transformer.from_crs(project, "EPSG:4326", always_xy=True).transform_bounds(*world)
    toml = out_dir / "city.toml"
    toml.write_text(city_toml(f"synthetic-{n_buildings}-{seed}", crs, extent), encoding="utf-8")
    report("done", 1.0)
    return toml


def _layout(n: int, seed: int):
    """Grow or shrink the city until its parcels can take `n` buildings with a little spare."""
    side = max(MIN_SIDE_M, 1000.0 * np.sqrt(n / DENSITY_PER_KM2))
    for attempt in range(10):
        rng = np.random.default_rng([seed, 1])
        streets = make_streets(side, rng)
        river = river_for(side, rng)
        parcels = make_parcels(streets, river, side, rng)
        capacity = len(parcels.centre)
        if n <= capacity and (capacity <= SPARE[1] * n or side <= MIN_SIDE_M or attempt >= 4):
            return side, streets, river, parcels
        aim = 1.1 if attempt < 4 else 1.25
        side = max(MIN_SIDE_M, side * float(np.sqrt(aim * n / max(capacity, 1))))
    raise ConfigError(f"could not lay out {n} buildings (capacity {capacity})", field="n_buildings")


def _buildings(parcels: Parcels, chosen: np.ndarray, rng: np.random.Generator) -> gpd.GeoDataFrame:
    n = len(chosen)
    district = parcels.district[chosen]
    # One uniform draw per building, turned into a use by the district's cumulative mix.
    cum = np.cumsum(USE_P, axis=1)[district]
    use = np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), len(USES) - 1)
    geometry, _ = footprints(parcels.centre[chosen], parcels.angle[chosen], parcels.size[chosen],
                             use, rng)
    levels, height = heights(use, district, rng)
    layer = np.zeros(n, dtype=np.int64)
    under = rng.random(n) < 0.005
    layer[under] = -rng.integers(1, 3, under.sum())
    ids = np.char.add("b", np.arange(1, n + 1).astype(str))
    uses = USES[use]
    return gpd.GeoDataFrame({
        "id": ids,
        "name": _names(uses, rng),
        "height": np.where(rng.random(n) < 0.2, height, np.nan),
        "levels": np.where(rng.random(n) < 0.4, levels.astype(float), np.nan),
        "use": uses,
        "layer": layer,
        "true_height": height,
    }, geometry=geometry)


_NAMED = {"school": "No. {} Middle School", "hospital": "People's Hospital No. {}",
          "office": "Tower {}", "public": "Civic Centre {}", "commercial": "Plaza {}"}


def _names(uses: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    names = np.full(len(uses), None, dtype=object)
    for use, pattern in _NAMED.items():
        sel = np.flatnonzero((uses == use) & ((use in ("school", "hospital")) | (rng.random(len(uses)) < 0.3)))
        head, tail = pattern.split("{}")
        names[sel] = np.char.add(np.char.add(head, np.arange(1, len(sel) + 1).astype(str)), tail)
    return names


def _roads(streets, river, rng: np.random.Generator) -> gpd.GeoDataFrame:
    ways = street_ways(streets, river, rng)
    seq, owner = ways["seq"], ways["owner"]
    geometry = shapely.linestrings(streets.node_xy[seq], indices=owner)
    node_ids = seq + 1  # OSM-like: ids start at 1
    nodes = [json.dumps(part.tolist()) for part in np.split(node_ids, ways["split"])]
    n = len(ways["class"])
    first = np.concatenate([[0], ways["split"]])
    last = np.append(ways["split"], len(seq)) - 1
    highway = HIGHWAY_CLASSES[ways["class"]]
    return gpd.GeoDataFrame({
        "id": np.char.add("w", np.arange(1, n + 1).astype(str)),
        "name": _street_names(ways["line"], highway),
        "highway": highway,
        "oneway": ways["oneway"],
        "lanes": ways["lanes"].astype(np.int64),
        "layer": ways["bridge"].astype(np.int64),
        "bridge": ways["bridge"],
        "tunnel": np.zeros(n, dtype=bool),
        "u": node_ids[first],
        "v": node_ids[last],
        "nodes": nodes,
    }, geometry=geometry)


def _street_names(line: np.ndarray, highway: np.ndarray) -> np.ndarray:
    suffix = np.select([highway == "primary", highway == "secondary"], [" Avenue", " Road"], " Street")
    return np.char.add(np.char.add("Line ", (line + 1).astype(str)), suffix)


_POI_KINDS = (  # kind, use of the building it sits in, share of those buildings, capacity range
    ("school", "school", 1.0, (400, 2400)),
    ("hospital", "hospital", 1.0, (150, 1200)),
    ("shelter", "public", 0.4, (200, 3000)),
    ("townhall", "public", 0.1, (50, 400)),
    ("fire_station", "public", 0.1, (20, 80)),
)


def _pois(buildings: gpd.GeoDataFrame, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """POIs at a point inside a building of the matching use; shelters also in schools."""
    frames = []
    uses = buildings["use"].to_numpy()
    above = buildings["layer"].to_numpy() >= 0
    taken = np.zeros(len(buildings), dtype=bool)
    for kind, use, share, (lo, hi) in _POI_KINDS:
        sel = np.flatnonzero((uses == use) & above & ~taken & (rng.random(len(uses)) < share))
        if kind == "fire_station" and len(sel) == 0 and above.any():
            sel = np.flatnonzero(above)[:1]  # every town has one
        taken[sel] = True
        frames.append(pd.DataFrame({
            "name": [f"{kind.replace('_', ' ').title()} {i + 1}" for i in range(len(sel))],
            "kind": kind,
            "capacity": rng.integers(lo, hi, len(sel)),
            "building": buildings["id"].to_numpy()[sel],
            "geometry": shapely.point_on_surface(buildings.geometry.values[sel]),
        }))
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "id", [f"p{i + 1}" for i in range(len(table))])
    return gpd.GeoDataFrame(table, geometry="geometry")


def _bounds(buildings: gpd.GeoDataFrame, roads: gpd.GeoDataFrame) -> tuple[float, float, float, float]:
    b = np.array([shapely.total_bounds(buildings.geometry.values), shapely.total_bounds(roads.geometry.values)])
    return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())


def _write(frame: gpd.GeoDataFrame, path: Path, layer: str) -> None:
    if path.exists():
        path.unlink()
    pyogrio.write_dataframe(frame, path, layer=layer, driver="GPKG", promote_to_multi=False)


def city_toml(name: str, crs: str, extent: tuple[float, float, float, float]) -> str:
    src = f'licence = "{LICENCE}"\nattribution = "{ATTRIBUTION}"\n'
    def layer(key: str, kind: str, title: str, path: str, fields: str = "") -> str:
        block = (f'[layers.{key}]\nkind = "{kind}"\ntitle = "{title}"\n\n'
                 f'[[layers.{key}.sources]]\npath = "{path}"\n{src}')
        return block + (f"[layers.{key}.sources.fields]\n{fields}" if fields else "") + "\n"
    return "".join([
        f'name = "{name}"\ncrs = "{crs}"\n',
        "extent = [" + ", ".join(f"{v:.7f}" for v in extent) + "]\n",
        'extent_crs = "EPSG:4326"\n\n',
        '[terrain]\nground = "ground"\nsurface = "surface"\nderive_ground = false\n\n',
        layer("buildings", "buildings", "Buildings", "buildings.gpkg",
              'id = "id"\nname = "name"\nheight = "height"\nlevels = "levels"\nuse = "use"\nlayer = "layer"\n'),
        layer("roads", "roads", "Streets", "roads.gpkg", 'id = "id"\nname = "name"\n'),
        layer("water", "water", "River", "river.gpkg", 'id = "id"\nname = "name"\nkind = "kind"\n'),
        layer("pois", "pois", "Public services", "pois.gpkg",
              'id = "id"\nname = "name"\nkind = "kind"\ncapacity = "capacity"\n'),
        layer("ground", "ground", "Terrain (DTM)", "terrain.tif"),
        layer("surface", "surface", "Surface (DSM)", "surface.tif"),
    ])
