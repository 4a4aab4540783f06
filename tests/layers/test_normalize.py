from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from layers.normalize import parse_length, repair, stable_ids


def test_parse_length():
    got = parse_length(pd.Series(["12", "12.5 m", "40 ft", "7,5", None, "tall", "30'"]))
    expected = [12, 12.5, 40 * 0.3048, 7.5, np.nan, np.nan, 30 * 0.3048]
    assert np.allclose(got, expected, equal_nan=True)


def test_every_repair_is_reported_per_feature():
    bowtie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2)])
    good = shapely.box(5, 5, 6, 6)
    frame = gpd.GeoDataFrame({"source_id": ["a", "b", "c"]}, geometry=[bowtie, good, None], crs=32649)
    out, report = repair(frame, "buildings", layer="buildings", source="t")
    assert len(out) == 2
    assert out.geometry.is_valid.all()
    # The bow-tie becomes two triangles of area 1 each (computed by hand).
    assert abs(out.geometry.iloc[0].area - 2.0) < 1e-9
    assert set(report["source_id"]) == {"a", "c"}
    assert "Self-intersection" in report.set_index("source_id").loc["a", "problem"]
    assert report.set_index("source_id").loc["c", "action"] == "dropped"


def test_ids_are_stable_and_independent_of_row_order():
    geoms = [shapely.box(i, 0, i + 1, 1) for i in range(50)]
    keys = pd.Series([f"osm:w{i}" for i in range(50)])
    keys[7] = None  # no source id: falls back to the geometry
    ids = stable_ids("buildings", keys, gpd.GeoSeries(geoms))
    perm = np.random.default_rng(1).permutation(50)
    shuffled = stable_ids("buildings", keys.iloc[perm].reset_index(drop=True),
                          gpd.GeoSeries([geoms[i] for i in perm]))
    assert list(shuffled) == list(ids[perm])
    assert len(set(ids)) == 50 and all(i.startswith("buildings-") for i in ids)


def test_duplicate_keys_get_distinct_ids():
    geoms = gpd.GeoSeries([shapely.box(0, 0, 1, 1), shapely.box(2, 0, 3, 1)])
    ids = stable_ids("roads", pd.Series(["osm:w1", "osm:w1"]), geoms)
    again = stable_ids("roads", pd.Series(["osm:w1", "osm:w1"]), geoms[::-1].reset_index(drop=True))
    assert ids[0] != ids[1] and set(ids) == set(again)
