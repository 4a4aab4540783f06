"""A real OGC client (OWSLib) against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
import shapely
import uvicorn
from pyproj import Transformer

from tests.api.conftest import compose

owslib_features = pytest.importorskip("owslib.ogcapi.features")


@pytest.fixture(scope="module")
def server(twin_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(compose(twin_dir), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started
    yield f"http://127.0.0.1:{port}/ogc"
    srv.should_exit = True
    thread.join(timeout=5)


def test_owslib_reads_collections_bbox_and_filter(server, store):
    api = owslib_features.Features(server)
    assert {"buildings", "roads"} <= set(api.feature_collections())
    assert "bim" not in api.feature_collections()
    assert api.collection("buildings")["storageCrs"].endswith("/EPSG/0/4547")
    gdf = store.read_layer("buildings")
    ll = (113.315, 23.115, 113.325, 23.125)
    t = Transformer.from_crs("OGC:CRS84", "EPSG:4547", always_xy=True)
    box = shapely.transform(shapely.segmentize(shapely.box(*ll), 0.0005),
                            lambda c: np.column_stack(t.transform(c[:, 0], c[:, 1])))
    fc = api.collection_items("buildings", bbox=list(ll), limit=500)
    assert {f["id"] for f in fc["features"]} == set(gdf.id[gdf.intersects(box)])
    fc = api.collection_items("buildings", filter="height > 40 AND use <> 'residential'", limit=500)
    want = gdf[(gdf.height > 40) & gdf.use.notna() & (gdf.use != "residential")]
    assert {f["id"] for f in fc["features"]} == set(want.id) and fc["numberMatched"] == len(want)
    q = api.collection_queryables("buildings")
    assert "height" in q["properties"]
