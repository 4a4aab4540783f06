"""Small file helpers shared by the tile and imagery writers."""

from __future__ import annotations

import json
import os
from pathlib import Path


def read_json(path: Path) -> dict | None:
    """The JSON document at `path`, or None when it is missing or unreadable (a cache miss)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary sibling and rename, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{id(data)}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
