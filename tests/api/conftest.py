"""API fixtures: throwaway apps over the sample twin, one router set per app."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiKey, Settings

KEYS = [ApiKey(key="internal-key", name="analyst", clearance="internal"),
        ApiKey(key="restricted-key", name="engineer", clearance="restricted")]
INTERNAL = {"X-API-Key": "internal-key"}
RESTRICTED = {"X-API-Key": "restricted-key"}


def compose(twin_dir, **settings) -> "object":
    return create_app(Settings(twin_dir=twin_dir, api_keys=KEYS, **settings))


@pytest.fixture(scope="session")
def twin_dir(tianhe_twin):
    return tianhe_twin.store.root


@pytest.fixture(scope="session")
def app(twin_dir):
    return compose(twin_dir, max_page_size=200, default_page_size=10)


@pytest.fixture(scope="session")
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="session")
def store(twin_dir):
    from twin.store.folder import FolderStore

    return FolderStore(twin_dir)
