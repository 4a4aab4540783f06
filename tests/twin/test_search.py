"""Feature search on the Tianhe twin, checked against the store read directly with geopandas + pyproj."""

from __future__ import annotations

import json

import pytest
from pyproj import Transformer

from twin.search import EXACT_ID, EXACT_NAME, NAME_CONTAINS, NAME_PREFIX, SearchError, SearchIndex, search


@pytest.fixture(scope="module")
def store(tianhe_twin):
    return tianhe_twin.store


@pytest.fixture(scope="module")
def index(store):
    return SearchIndex.from_store(store)


@pytest.fixture(scope="module")
def to_wgs84(store):
    return Transformer.from_crs(store.manifest().crs, "EPSG:4326", always_xy=True)


def test_exact_name_finds_the_building_at_its_centroid(store, index, to_wgs84):
    buildings = store.read_layer("buildings")
    row = buildings[buildings["name"] == "广州图书馆"].iloc[0]
    lon, lat = to_wgs84.transform(row.geometry.centroid.x, row.geometry.centroid.y)
    hits = index.search("广州图书馆")
    top = hits[0]
    assert (top.layer, top.id, top.name, top.score) == ("buildings", row["id"], "广州图书馆", EXACT_NAME)
    assert top.lon == pytest.approx(lon, abs=1e-9) and top.lat == pytest.approx(lat, abs=1e-9)
    assert top.height == pytest.approx(row["height"], abs=0.01)
    assert top.top == pytest.approx(row["roof"], abs=0.01)
    # the POI of the same name comes too, after the building (layer order)
    assert [h.layer for h in hits] == ["buildings", "pois"]


def test_english_names_from_the_source_tags_match_case_insensitively(store, index):
    buildings = store.read_layer("buildings")
    tagged = buildings[buildings["attrs"].str.contains('"name:en": "Guangzhou Library"', regex=False, na=False)]
    assert len(tagged) == 1
    hits = index.search("guangzhou LIBRARY")
    assert hits[0].id == tagged.iloc[0]["id"] and hits[0].name_en == "Guangzhou Library"
    assert index.search("library")[0].score == NAME_CONTAINS


def test_ids_match_exactly_and_by_prefix(store, index):
    row = store.read_layer("buildings").iloc[5]
    assert index.search(row["id"])[0].id == row["id"]
    assert index.search(row["id"])[0].score == EXACT_ID
    assert index.search(row["id"].upper())[0].id == row["id"]
    prefix_hits = index.search(row["id"][:14], limit=100)
    assert row["id"] in [h.id for h in prefix_hits]
    assert index.search(row["source_id"])[0].id == row["id"]


def test_bim_elements_by_global_id_with_their_top(store, index, to_wgs84):
    bim = store.read_layer("bim")
    row = bim[bim["ifc_class"] == "IfcStair"].iloc[0]
    hit = index.search(row["global_id"])[0]
    assert (hit.layer, hit.id, hit.name) == ("bim", row["id"], row["name"])
    assert hit.top == pytest.approx(row["z_max"], abs=0.01)
    assert hit.height == pytest.approx(row["z_max"] - row["z_min"], abs=0.01)
    lon, lat = to_wgs84.transform(row.geometry.centroid.x, row.geometry.centroid.y)
    assert hit.lon == pytest.approx(lon, abs=1e-6) and hit.lat == pytest.approx(lat, abs=1e-6)


def test_road_segments_of_one_name_fold_into_one_hit(store, index):
    roads = store.read_layer("roads")
    name = roads["name"].dropna().value_counts().index[0]
    count = int((roads["name"] == name).sum())
    assert count > 1
    hits = [h for h in index.search(name, layers={"roads"}) if h.name == name]
    assert len(hits) == 1 and hits[0].matches == count
    # the hit's point lies on one of those roads
    from shapely.geometry import Point

    to_project = Transformer.from_crs("EPSG:4326", store.manifest().crs, always_xy=True)
    x, y = to_project.transform(hits[0].lon, hits[0].lat)
    assert roads[roads["name"] == name].distance(Point(x, y)).min() < 0.01


def test_prefix_matches_rank_before_substring_matches(index):
    hits = index.search("广州", limit=100)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert NAME_PREFIX in scores
    for h in hits:
        expected = NAME_PREFIX if (h.name or "").startswith("广州") else NAME_CONTAINS
        assert h.score == expected


def test_layers_filter_and_limit(index):
    assert all(h.layer == "buildings" for h in index.search("广州图书馆", layers={"buildings"}))
    assert index.search("广州图书馆", layers={"roads"}) == []
    assert len(index.search("路", limit=3)) == 3


def test_no_match_and_bad_queries(index):
    assert index.search("zzzz-no-such-feature") == []
    with pytest.raises(SearchError):
        index.search("   ")
    with pytest.raises(SearchError):
        index.search("路", limit=0)


def test_one_off_search_reads_only_the_given_layers(store):
    hits = search(store, "广州图书馆", layers=["pois"])
    assert [h.layer for h in hits] == ["pois"]
    pois = store.read_layer("pois")
    assert hits[0].id == pois[pois["name"] == "广州图书馆"].iloc[0]["id"]
    assert json.dumps(hits[0].__dict__, ensure_ascii=False)   # plain, serialisable values
