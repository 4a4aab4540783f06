"""Shared fixtures: real sample data paths and twins built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Under pytest-xdist every worker already has a core: numba's parallel kernels would oversubscribe them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TIANHE_TOML = ROOT / "data" / "tianhe" / "city.toml"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    assert SHARED.is_dir(), f"shared sample data missing at {SHARED}"
    return SHARED


@pytest.fixture(scope="session")
def tianhe_twin(tmp_path_factory):
    """The sample Tianhe twin, built from data/tianhe/city.toml."""
    from twin.build import build_twin

    out = tmp_path_factory.mktemp("tianhe") / "twin"
    return build_twin(TIANHE_TOML, out)
