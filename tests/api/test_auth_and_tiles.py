"""The authorisation dependency, the error table and tile caching headers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiKey, Settings

KEYS = [ApiKey(key="k-int", name="ops", clearance="internal", scopes=[]),
        ApiKey(key="k-res", name="chief", clearance="restricted", scopes=["scenario:run"])]


@pytest.fixture(scope="module")
def client(tianhe_twin):
    root = Path(tianhe_twin.store.root)
    tiles = root / "tiles"
    for name in ("buildings", "bim"):
        (tiles / name).mkdir(parents=True, exist_ok=True)
        (tiles / name / "tileset.json").write_text(json.dumps({"asset": {"version": "1.1"}, "pad": "x" * 4000}))
    return TestClient(create_app(Settings(twin_dir=root, api_keys=KEYS)))


def _layers(resp):
    return {l["name"] for l in resp.json()["layers"]}


def test_catalogue_follows_clearance(client):
    assert _layers(client.get("/api/catalogue")) == {"buildings", "roads"}
    assert _layers(client.get("/api/catalogue", headers={"X-API-Key": "k-int"})) == {"buildings", "roads", "pois"}
    assert _layers(client.get("/api/catalogue", headers={"Authorization": "Bearer k-res"})) == \
        {"buildings", "roads", "pois", "bim"}


def test_unknown_key_is_401(client):
    r = client.get("/api/catalogue", headers={"X-API-Key": "forged"})
    assert r.status_code == 401 and r.json()["description"] == "unknown API key"


def test_restricted_tileset_needs_clearance(client):
    assert client.get("/tiles/bim/tileset.json").status_code == 401
    assert client.get("/tiles/bim/tileset.json", headers={"X-API-Key": "k-int"}).status_code == 403
    assert client.get("/tiles/bim/tileset.json", headers={"X-API-Key": "k-res"}).status_code == 200


def test_etag_cache_control_gzip_and_cors(client):
    r = client.get("/tiles/buildings/tileset.json", headers={"Origin": "http://example.org",
                                                              "Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["cache-control"].startswith("public, max-age=")
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["access-control-allow-origin"] == "*"
    again = client.get("/tiles/buildings/tileset.json", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_paths_cannot_escape_the_tiles_folder(client):
    assert client.get("/tiles/buildings/..%2F..%2Fmanifest.json").status_code == 404
    assert client.get("/tiles/nope/tileset.json").status_code == 404
    assert client.get("/viewer/..%2F..%2Fpyproject.toml").status_code == 404


def test_missing_twin_is_a_clear_error(tmp_path):
    from twin.errors import TwinNotFound

    with pytest.raises(TwinNotFound, match="manifest.json missing"):
        create_app(Settings(twin_dir=tmp_path))


def test_collections_link_their_3d_tiles(client):
    doc = client.get("/ogc/collections/buildings").json()
    link = next(l for l in doc["links"] if l["type"] == "application/json+3dtiles")
    href = link["href"].split("://", 1)[1].split("/", 1)[1]
    r = client.get("/" + href)
    assert r.status_code == 200 and r.json()["asset"]["version"] == "1.1"
    assert client.get("/ogc/collections/bim/3dtiles/tileset.json").status_code == 401
    roads = client.get("/ogc/collections/roads").json()
    assert not any(l["type"] == "application/json+3dtiles" for l in roads["links"])


def test_scopes_are_required_for_run_endpoints(tianhe_twin):
    from fastapi import APIRouter, Depends

    from api.auth import authorize

    app = create_app(Settings(twin_dir=tianhe_twin.store.root, api_keys=KEYS))
    r = APIRouter()

    @r.post("/run")
    def run(who=Depends(authorize("scenario:run"))):
        return {"by": who.name}

    app.include_router(r)
    c = TestClient(app)
    assert c.post("/run").status_code == 401
    assert c.post("/run", headers={"X-API-Key": "k-int"}).status_code == 403
    assert c.post("/run", headers={"X-API-Key": "k-res"}).json() == {"by": "chief"}
