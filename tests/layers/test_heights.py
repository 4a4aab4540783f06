from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from pyproj import CRS

from layers.base import RasterData
from layers.heights import HeightInputs, assign_heights
from twin.config import HeightRules


def _frame():
    geoms = [shapely.box(1000 + 30 * i, 1900, 1020 + 30 * i, 1920) for i in range(5)]
    return gpd.GeoDataFrame({
        "height": ["50", None, None, None, "9000"],       # the last is implausible: rejected
        "levels": [10, 6, None, None, None],
        "use_raw": ["office", "apartments", "school", "castle", "yes"],
    }, geometry=geoms, crs=32649)


def _terrain(frame, roof=18.0):
    crs = CRS.from_epsg(32649)
    t = Affine(1.0, 0, 990.0, 0, -1.0, 1950.0)
    ground = np.zeros((60, 200), dtype=np.float32)
    dsm = ground.copy()
    # Only the fourth building shows in the surface model, 18 m tall.
    dsm[30:50, 100:120] = roof
    return RasterData(dsm, t, crs), RasterData(ground, t, crs)


def test_rules_apply_in_order_and_are_recorded():
    frame = _frame()
    surface, ground = _terrain(frame)
    rules = HeightRules(storey_height=3.0, type_defaults={"school": 15.0}, default=9.0)
    height, rule, counts = assign_heights(frame, rules, HeightInputs(surface=surface, ground=ground))
    assert list(rule) == ["explicit", "levels", "type_default", "dsm_dtm", "type_default"]
    assert np.allclose(height, [50.0, 18.0, 15.0, 18.0, 9.0])
    assert counts == {"explicit": 1, "levels": 1, "type_default": 2, "dsm_dtm": 1}


def test_custom_order_puts_surface_before_levels():
    frame = _frame()
    surface, ground = _terrain(frame)
    rules = HeightRules(order=["dsm_dtm", "explicit", "levels"], default=9.0)
    height, rule, _ = assign_heights(frame, rules, HeightInputs(surface=surface, ground=ground))
    assert rule[3] == "dsm_dtm" and rule[0] == "explicit"
    assert rule[4] == "type_default"  # appended as the last resort
