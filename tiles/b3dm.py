"""Batched 3D Model (b3dm) tiles for 3D Tiles 1.0 clients.

Layout (3D Tiles 1.0, b3dm): a 28-byte header, the feature table JSON
(`BATCH_LENGTH`, and `RTC_CENTER` when given), an empty feature-table
binary, the batch table JSON (one array per property, BATCH_LENGTH long), no
batch-table binary, then the glb whose vertices carry `_BATCHID` (FLOAT).
Every section ends on an 8-byte boundary, padded with spaces (JSON) or
zeros (glb), as the spec requires.
"""

from __future__ import annotations

import json
import struct

B3DM_MAGIC = b"b3dm"
HEADER_BYTES = 28


def _padded_json(obj: dict, start: int) -> bytes:
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    return text + b" " * ((-(start + len(text))) % 8)


def write_b3dm(glb: bytes, batch_table: dict[str, list], batch_length: int,
               rtc_center: tuple[float, float, float] | None = None) -> bytes:
    """Wrap a glb (with `_BATCHID` vertices) and its batch table into a b3dm."""
    for name, values in batch_table.items():
        if len(values) != batch_length:
            raise ValueError(f"batch table property '{name}' has {len(values)} values, expected {batch_length}")
    feature_table: dict = {"BATCH_LENGTH": int(batch_length)}
    if rtc_center is not None:
        feature_table["RTC_CENTER"] = [float(v) for v in rtc_center]
    ft_json = _padded_json(feature_table, HEADER_BYTES)
    bt_json = _padded_json(batch_table, HEADER_BYTES + len(ft_json)) if batch_table else b""
    body = glb + b"\x00" * ((-len(glb)) % 8)
    total = HEADER_BYTES + len(ft_json) + len(bt_json) + len(body)
    header = B3DM_MAGIC + struct.pack("<6I", 1, total, len(ft_json), 0, len(bt_json), 0)
    return header + ft_json + bt_json + body
