"""The height rule chain: every building gets a height and the name of the rule that gave it.

Rules are tried in `HeightRules.order`; the first that yields a plausible value
(between `min_height` and `max_height`) wins. Each rule is a vectorised function
returning a candidate array with NaN where it does not apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import geopandas as gpd
import numpy as np
import pandas as pd

from layers.base import PointSet, RasterData
from layers.normalize import parse_length
from twin.config import HeightRules


@dataclass
class HeightInputs:
    surface: RasterData | None = None
    ground: RasterData | None = None
    points: list[PointSet] = field(default_factory=list)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame else pd.Series(np.nan, index=frame.index)


def _explicit(frame, rules, inputs) -> np.ndarray:
    return parse_length(_column(frame, "height"))


def _levels(frame, rules, inputs) -> np.ndarray:
    levels = parse_length(_column(frame, "levels"))
    levels[~(levels > 0)] = np.nan
    return levels * rules.storey_height


def _solid(frame, rules, inputs) -> np.ndarray:
    return parse_length(_column(frame, "solid_height"))


def _dsm_dtm(frame, rules, inputs) -> np.ndarray:
    if inputs.surface is None or inputs.ground is None:
        return np.full(len(frame), np.nan)
    from layers.terrain import zonal_median_difference

    med, count = zonal_median_difference(inputs.surface, inputs.ground, frame.geometry.values)
    med[count < rules.dsm_min_cells] = np.nan
    return med


def _lidar(frame, rules, inputs) -> np.ndarray:
    if not inputs.points:
        return np.full(len(frame), np.nan)
    from layers.lidar import footprint_heights

    best = np.full(len(frame), np.nan)
    for points in inputs.points:
        h, n, _ = footprint_heights(frame.geometry.values, points, inputs.ground,
                                    roof_percentile=rules.lidar_roof_percentile,
                                    min_points=rules.lidar_min_points)
        best = np.where(np.isnan(best), h, best)
    return best


def _type_default(frame, rules, inputs) -> np.ndarray:
    raw = _column(frame, "use_raw").astype("string").str.lower()
    use = _column(frame, "use").astype("string").str.lower()
    table = {k.lower(): v for k, v in rules.type_defaults.items()}
    by_raw = raw.map(table).astype(float)
    by_use = use.map(table).astype(float)
    return by_raw.fillna(by_use).fillna(rules.default).to_numpy(dtype=float)


RULES: dict[str, Callable[[gpd.GeoDataFrame, HeightRules, HeightInputs], np.ndarray]] = {
    "explicit": _explicit,
    "levels": _levels,
    "solid": _solid,
    "dsm_dtm": _dsm_dtm,
    "lidar": _lidar,
    "type_default": _type_default,
}


def assign_heights(frame: gpd.GeoDataFrame, rules: HeightRules, inputs: HeightInputs,
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Returns (height, rule name per building, count per rule)."""
    n = len(frame)
    height = np.full(n, np.nan)
    rule = np.full(n, "", dtype=object)
    order = list(rules.order)
    if "type_default" not in order:
        order.append("type_default")  # every building must end with a height
    for name in order:
        todo = np.isnan(height)
        if not todo.any():
            break
        candidate = RULES[name](frame.loc[todo] if name in ("dsm_dtm", "lidar") else frame, rules, inputs)
        if name not in ("dsm_dtm", "lidar"):
            candidate = candidate[todo]
        plausible = (candidate >= rules.min_height) & (candidate <= rules.max_height)
        if name == "type_default":  # the configured last resort is taken as given
            plausible = np.isfinite(candidate)
        idx = np.flatnonzero(todo)[plausible]
        height[idx] = candidate[plausible]
        rule[idx] = name
    counts = pd.Series(rule).value_counts().to_dict()
    return height, rule.astype(str), {str(k): int(v) for k, v in counts.items()}
