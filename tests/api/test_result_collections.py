"""A flood job's result layers become OGC API Features collections, and leave with the job."""

from __future__ import annotations

import shutil

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiKey, Settings

KEY = {"X-API-Key": "k-ops"}


@pytest.fixture(scope="module")
def client(tianhe_twin, tmp_path_factory):
    root = tmp_path_factory.mktemp("results") / "twin"
    shutil.copytree(tianhe_twin.store.root, root)
    keys = [ApiKey(key="k-ops", name="ops", clearance="internal", scopes=["scenario:run"])]
    return TestClient(create_app(Settings(twin_dir=root, api_keys=keys)))


def test_flood_results_are_collections(client):
    r = client.post("/ogc/processes/flood/execution", headers=KEY,
                    json={"inputs": {"rain_mm": 120, "duration": "2h", "resolution_m": 50, "horizon": "2h"}})
    assert r.status_code == 200, r.text
    job_id = client.get("/ogc/jobs", headers=KEY).json()["jobs"][0]["jobID"]
    names = {c["id"] for c in client.get("/ogc/collections", headers=KEY).json()["collections"]}
    ours = {n for n in names if n.startswith(f"job-{job_id}-")}
    assert f"job-{job_id}-buildings" in ours

    # The collection serves the same rows the job wrote (read back independently with geopandas).
    items = client.get(f"/ogc/collections/job-{job_id}-buildings/items", params={"limit": 1000}, headers=KEY).json()
    gpkg = next(client.app.state.store.root.joinpath("jobs").rglob("results.gpkg"))
    written = gpd.read_file(gpkg, layer="buildings")
    assert items["numberMatched"] == len(written)
    depth = {f["properties"]["id"]: f["properties"]["depth_m"] for f in items["features"]}
    assert depth == pytest.approx(dict(zip(written["id"], written["depth_m"])))
    flooded = client.get(f"/ogc/collections/job-{job_id}-buildings/items",
                         params={"filter": "depth_m > 0.3", "limit": 1000}, headers=KEY).json()
    assert flooded["numberMatched"] == int((written["depth_m"] > 0.3).sum())

    assert client.delete(f"/ogc/jobs/{job_id}", headers=KEY).status_code in (200, 204)
    assert client.get(f"/ogc/collections/job-{job_id}-buildings/items", headers=KEY).status_code == 404
    names = {c["id"] for c in client.get("/ogc/collections", headers=KEY).json()["collections"]}
    assert not any(n.startswith(f"job-{job_id}-") for n in names)
