"""The sample district builds into the twin the issue asks for.

References are read independently from the source files with plain json/pyproj.
"""

from __future__ import annotations

import json

import numpy as np
import pyproj
import pytest
import shapely

from tests.conftest import ROOT

SRC = ROOT / "data" / "tianhe"


def _features(name):
    return json.loads((SRC / name).read_text(encoding="utf-8"))["features"]


def test_all_342_buildings_with_height_and_rule(tianhe_twin):
    b = tianhe_twin.store.read_layer("buildings")
    assert len(b) == len(_features("buildings_osm.geojson")) == 342
    assert b["height"].notna().all() and (b["height"] > 0).all()
    assert set(b["height_rule"]) <= {"explicit", "levels", "dsm_dtm", "type_default"}
    assert b["id"].is_unique
    assert tianhe_twin.store.manifest().crs == "EPSG:4547"
    assert b.crs.to_epsg() == 4547


def test_explicit_heights_and_levels_follow_the_rules(tianhe_twin):
    b = tianhe_twin.store.read_layer("buildings").set_index("source_id")
    storey = 3.2  # data/tianhe/city.toml
    for f in _features("buildings_osm.geojson"):
        p = f["properties"]
        row = b.loc[p["osm_id"]]
        if p["height"] not in (None, ""):
            assert row["height_rule"] == "explicit"
            assert row["height"] == pytest.approx(float(str(p["height"]).split()[0]))
        elif p["building_levels"]:
            assert row["height_rule"] == "levels"
            assert row["height"] == pytest.approx(float(p["building_levels"]) * storey)
    assert (b["roof"] - b["ground"] - b["height"]).abs().max() < 1e-6


def test_underground_structures_are_flagged(tianhe_twin):
    b = tianhe_twin.store.read_layer("buildings").set_index("source_id")
    expected = {f["properties"]["osm_id"] for f in _features("buildings_osm.geojson")
                if f["properties"]["layer"] is not None and int(f["properties"]["layer"]) < 0}
    assert expected, "the sample has metro structures with negative layer"
    assert set(b.index[b["underground"]]) == expected


def test_footprints_are_reprojected_exactly(tianhe_twin):
    b = tianhe_twin.store.read_layer("buildings").set_index("source_id")
    t = pyproj.Transformer.from_crs(4326, 4547, always_xy=True)
    f = _features("buildings_osm.geojson")[0]
    lon, lat = np.array(f["geometry"]["coordinates"][0]).T
    x, y = t.transform(lon, lat)
    ours = shapely.get_coordinates(b.loc[f["properties"]["osm_id"], "geometry"].exterior)
    assert np.allclose(np.sort(ours[:, 0]), np.sort(x), atol=1e-3)
    assert np.allclose(np.sort(ours[:, 1]), np.sort(y), atol=1e-3)


def test_ground_is_sampled_from_a_bare_earth_ground(tianhe_twin):
    store = tianhe_twin.store
    m = store.manifest()
    assert set(m.rasters) == {"surface", "ground"}
    assert m.rasters["ground"].method == "derived from surface"
    ground, surface = store.read_raster("ground"), store.read_raster("surface")
    ok = np.isfinite(ground.array) & np.isfinite(surface.array)
    assert (ground.array[ok] <= surface.array[ok] + 1e-4).all()
    b = store.read_layer("buildings")
    assert b["ground"].between(np.nanmin(ground.array) - 0.01, np.nanmax(ground.array) + 0.01).all()


def test_roads_have_routable_topology(tianhe_twin):
    roads = tianhe_twin.store.read_layer("roads")
    src = _features("roads_osm.geojson")
    assert roads["u"].notna().all() and roads["v"].notna().all()
    # Every node shared by two source ways is an edge end in the twin.
    from collections import Counter
    counts = Counter(n for f in src for n in f["properties"]["nodes"])
    shared = {n for n, c in counts.items() if c > 1}
    ends = set(roads["u"].astype(int)) | set(roads["v"].astype(int))
    assert shared <= ends
    # Splitting keeps the total length (measured independently with pyproj.Geod).
    geod = pyproj.Geod(ellps="GRS80")
    total = sum(geod.line_length(*zip(*f["geometry"]["coordinates"])) for f in src)
    assert roads["length"].sum() == pytest.approx(total, rel=2e-3)


def test_pois_and_licences(tianhe_twin):
    m = tianhe_twin.store.manifest()
    assert m.layers["pois"].count == 25
    assert m.layers["pois"].classification == "internal"
    assert any("OpenStreetMap" in a for a in m.layers["buildings"].attributions)
    assert any("Copernicus" in a for a in m.rasters["surface"].attributions)
    for s in m.sources:
        assert len(s.sha256) == 64 and s.bytes > 0


def test_placed_bim_model_stands_in_tianhe(tianhe_twin):
    store = tianhe_twin.store
    bim = store.read_layer("bim")
    assert len(bim) > 50 and bim["global_id"].is_unique
    t = pyproj.Transformer.from_crs(4326, 4547, always_xy=True)
    ax, ay = t.transform(113.32420, 23.11866)  # the anchor in city.toml
    c = shapely.centroid(shapely.union_all(bim.geometry.values))
    assert np.hypot(c.x - ax, c.y - ay) < 30
    mesh = store.read_mesh("bim")
    assert mesh.face_feature.max() == len(bim) - 1
    ground = store.read_raster("ground")
    from layers.raster import sample
    g = sample(ground, np.array([ax]), np.array([ay]))[0]
    assert abs(mesh.vertices[:, 2].min() - g) < 3.0


def test_placed_bim_model_is_clear_of_other_buildings(tianhe_twin):
    store = tianhe_twin.store
    house = shapely.union_all(store.read_layer("bim").geometry.values)
    buildings = store.read_layer("buildings")
    above = buildings[~buildings["underground"]]
    assert not shapely.intersects(house, above.geometry.values).any()
