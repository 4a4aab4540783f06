"""The city's flood defaults (city.toml [scenarios.flood], carried in the manifest) flow into a run:
sewer capacity and river stage boundaries, checked against hand-computed water budgets on small
synthetic twins; and the run's pictures (PNG) show what its CSV files hold."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from pyproj import CRS

from layers.base import RasterData
from simulate.flood.errors import FloodInputError
from simulate.flood.grid import FloodGrid
from simulate.flood.plots import budget_figure, probes_figure, read_csv
from simulate.flood.process import (
    FloodInputs,
    FloodProcess,
    build_forcing,
    city_flood_defaults,
    resolve_boundaries,
)
from simulate.plots import line_figure, line_plot
from tests.conftest import TIANHE_TOML
from twin.config import FloodDefaults
from twin.store.memory import MemoryStore

CRS_ = CRS.from_epsg(4547)
LEFT, TOP, DX = 430000.0, 2557000.0, 10.0
ROWS, COLS = 20, 40
CHANNEL_ROWS, CHANNEL_COLS = slice(8, 12), slice(0, 30)      # a dead-end channel from the west edge
SPAN = (TOP - 12 * DX, TOP - 8 * DX)                          # its rows' northings on the west edge
RIVER = {"name": "Test River", "name_zh": "测试河", "edge": "west", "span": list(SPAN),
         "normal_level_m": 0.0, "warning_level_m": 1.5, "gauge": "stage-1"}


def twin(z: np.ndarray, flood: dict | None = None) -> MemoryStore:
    """A twin of one ground raster (10 m cells); `flood` as the manifest carries city.toml's [scenarios.flood]."""
    ground = RasterData(np.asarray(z, np.float32), Affine(DX, 0, LEFT, 0, -DX, TOP), CRS_)
    store = MemoryStore(CRS_, rasters={"ground": ground})
    if flood is not None:
        store._manifest = store.manifest().model_copy(update={"rules": {"scenarios": {"flood": flood}}})
    return store


def channel() -> np.ndarray:
    z = np.full((ROWS, COLS), 2.0)
    z[CHANNEL_ROWS, CHANNEL_COLS] = 0.0
    return z


def run(store, tmp_path, **inputs):
    inputs = FloodInputs(**{"backend": "numpy", "frame_interval_min": 0, **inputs})
    return FloodProcess().execute(store, inputs, tmp_path, lambda report: None)


# -- defaults resolution --------------------------------------------------------------------------------

def test_defaults_come_from_the_manifest_and_inputs_override_them():
    city = city_flood_defaults(twin(channel(), {"drainage_mm_h": 36.0, "rivers": [RIVER]}))
    assert city.drainage_mm_h == 36.0 and city.rivers[0].span == SPAN
    assert city_flood_defaults(twin(channel())) == FloodDefaults()          # an older twin: no defaults

    b = resolve_boundaries(FloodInputs(), city)
    assert (b.drainage_mm_h, b.drainage_source) == (36.0, "city")
    assert [(r.river.name, r.level_m, r.source) for r in b.rivers] == [("Test River", 0.0, "normal level")]
    b = resolve_boundaries(FloodInputs(drainage_mm_h=0, river_level_m=1.2), city)
    assert (b.drainage_mm_h, b.drainage_source) == (0.0, "input") and b.rivers[0].level_m == 1.2
    b = resolve_boundaries(FloodInputs(river_level_m=1.2, river_levels={"测试河": 0.7}), city)
    assert (b.rivers[0].level_m, b.rivers[0].source) == (0.7, "river_levels")
    assert resolve_boundaries(FloodInputs(use_city_rivers=False), city).rivers == ()
    assert resolve_boundaries(FloodInputs(use_city_rivers=False, river_level_m=1.0), city).rivers[0].level_m == 1.0
    assert resolve_boundaries(FloodInputs(), None).drainage_source == "none"

    with pytest.raises(FloodInputError) as err:
        resolve_boundaries(FloodInputs(river_levels={"Nile": 1.0}), city)
    assert err.value.field == "river_levels"
    with pytest.raises(FloodInputError) as err:
        resolve_boundaries(FloodInputs(river_level_m=1.0), FloodDefaults())
    assert err.value.field == "river_level_m"


def test_river_stage_binds_to_its_span_and_leaves_the_rest_of_the_edge_free():
    city = FloodDefaults.model_validate({"rivers": [RIVER]})
    grid = FloodGrid.from_arrays(channel(), DX, origin=(LEFT, TOP))
    inputs = FloodInputs(river_level_m=1.0)
    bound = build_forcing(inputs, resolve_boundaries(inputs, city)).bind(grid)
    stage = bound.boundary["stage"]
    rows, cols = np.unravel_index(stage.cell, grid.shape)
    assert sorted(rows) == [8, 9, 10, 11] and set(cols) == {0}
    assert np.all(bound.stage_levels(0.0) == 1.0)
    free_west = np.unravel_index(bound.boundary["free"].cell, grid.shape)
    on_west = free_west[1][bound.boundary["free"].axis == 0] == 0
    assert on_west.sum() == ROWS - 4                       # the rest of the west edge stays a free outflow

    # stages given as inputs: on a span they leave the rest of their edge free, on a whole edge they close it
    for span, free_cells in ((SPAN, ROWS - 4), (None, 0)):
        inputs = FloodInputs(use_city_rivers=False, stages=[{"edge": "east", "level_m": 0.5, "span": span}])
        bound = build_forcing(inputs, resolve_boundaries(inputs, city)).bind(grid)
        free = bound.boundary["free"]
        assert (np.unravel_index(free.cell, grid.shape)[1][free.axis == 0] == COLS - 1).sum() == free_cells


def test_tianhe_sample_has_sewers_and_the_pearl_river():
    from twin.config import load_city

    flood = load_city(TIANHE_TOML).scenarios.flood
    assert 30 <= flood.drainage_mm_h <= 50
    assert {r.edge for r in flood.rivers} == {"west", "east"}
    for r in flood.rivers:
        assert r.name == "Pearl River" and r.span[1] - r.span[0] > 200
        assert r.warning_level_m is not None and r.warning_level_m > r.normal_level_m


# -- hand-computed water budgets --------------------------------------------------------------------------

def test_city_drainage_equal_to_the_rain_leaves_no_water(tmp_path):
    """36 mm/h of rain for an hour on a flat closed basin with the city's 36 mm/h sewers:
    every drop is drained (rain volume 0.036 m x 80,000 m² = 2,880 m³), none stays."""
    store = twin(np.zeros((ROWS, COLS)), {"drainage_mm_h": 36.0})
    result = run(store, tmp_path, rain_mm=36, duration="1h", horizon="1h", free_edges=[])
    mb = result.summary["mass_balance"]
    rain = 0.036 * ROWS * COLS * DX * DX
    assert mb["rain_m3"] == pytest.approx(rain, rel=1e-6)
    assert mb["drained_m3"] == pytest.approx(rain, rel=1e-3)
    assert mb["storage_m3"] < 1e-3 * rain
    assert result.summary["boundaries"]["drainage_mm_h"] == 36.0
    assert result.summary["boundaries"]["drainage_source"] == "city"


def test_river_stage_fills_a_dry_channel_to_its_level(tmp_path):
    """The city's river raised to 1.0 m at the mouth of a dry dead-end channel (bed 0 m, banks 2 m):
    the channel stands level at 1.0 m, the banks stay dry, and the water that came in over the edge
    is the channel's volume, 4 x 30 cells x 100 m² x 1.0 m = 12,000 m³. A rough bed (n = 0.1) damps the
    filling surge's sloshing within minutes; the steady state does not depend on the roughness."""
    store = twin(channel(), {"drainage_mm_h": 0.0, "rivers": [RIVER]})
    result = run(store, tmp_path, river_level_m=1.0, horizon="40min", manning_default=0.1,
                 probes=[{"name": "mouth", "x": LEFT + 5, "y": TOP - 95},
                         {"name": "dead end", "x": LEFT + 295, "y": TOP - 95}])
    series = read_csv(tmp_path / "timeseries.csv")
    settled = series["t_s"] >= 1500
    for probe in ("mouth", "dead end"):
        np.testing.assert_allclose(series[f"level_m:{probe}"][settled], 1.0, atol=0.01)
    mb = result.summary["mass_balance"]
    assert mb["storage_m3"] == pytest.approx(12_000.0, rel=0.01)
    assert mb["boundary_in_m3"] - mb["boundary_out_m3"] == pytest.approx(mb["storage_m3"], rel=1e-3)
    import rasterio

    with rasterio.open(result.rasters["max_depth"]) as src:
        max_depth = src.read(1)
    banks = np.ones((ROWS, COLS), bool)
    banks[CHANNEL_ROWS, CHANNEL_COLS] = False
    assert np.nanmax(max_depth[banks]) < 1e-6
    (stage,) = result.summary["boundaries"]["stages"]
    assert stage["name"] == "Test River" and stage["level_m"] == 1.0 and stage["source"] == "river_level_m"
    assert stage["faces"] == 4 and stage["above_warning"] is False


def test_river_at_its_normal_level_holds_still(tmp_path):
    """No stage given: the river is held at its normal level (the channel's bed), so nothing moves."""
    store = twin(channel(), {"rivers": [RIVER]})
    result = run(store, tmp_path, horizon="10min")
    assert result.summary["mass_balance"]["storage_m3"] == 0.0
    assert result.summary["boundaries"]["stages"][0]["source"] == "normal level"
    assert result.summary["boundaries"]["drainage_source"] == "none"


# -- pictures ------------------------------------------------------------------------------------------------

def test_run_pictures_are_pngs_of_its_csvs(tmp_path):
    from PIL import Image

    store = twin(channel(), {"drainage_mm_h": 10.0, "rivers": [RIVER]})
    result = run(store, tmp_path, rain_mm=30, duration="20min", horizon="30min",
                 probes=[{"name": "花城广场", "x": LEFT + 105, "y": TOP - 95}])
    assert {"hydrograph_png", "probes_png"} <= set(result.files)
    for name in ("hydrograph_png", "probes_png"):
        assert FloodProcess.outputs[name].media_type == "image/png"
        with Image.open(result.files[name]) as image:
            assert image.format == "PNG" and image.width >= 600 and image.height >= 400

    # the budget figure's lines are the CSV's columns (parsed here independently of plots.read_csv)
    table = np.genfromtxt(result.files["hydrograph"], delimiter=",", names=True)
    top, bottom = budget_figure(read_csv(result.files["hydrograph"])).axes
    lines = {line.get_label(): line for line in top.get_lines()}
    assert set(lines) == {"rain", "out over edges", "drained (sewers)", "stored"}
    np.testing.assert_allclose(lines["rain"].get_xdata(), table["t_s"] / 60)
    for label, column in (("rain", "rain_m3"), ("drained (sewers)", "drained_m3"), ("stored", "storage_m3"),
                          ("out over edges", "boundary_out_m3")):
        np.testing.assert_allclose(lines[label].get_ydata(), table[column])
    rates = {line.get_label(): line.get_ydata() for line in bottom.get_lines()}
    rain_rate = np.diff(table["rain_m3"]) / np.diff(table["t_s"])
    np.testing.assert_allclose(rates["rain"], rain_rate)
    assert rain_rate.max() == pytest.approx(0.030 / 1200 * ROWS * COLS * DX * DX, rel=1e-6)   # 30 mm in 20 min: 2 m³/s

    series = np.genfromtxt(result.files["timeseries"], delimiter=",", names=True, encoding="utf-8")
    (ax,) = probes_figure(read_csv(result.files["timeseries"]), 0.3).axes
    probe, impassable = ax.get_lines()
    assert probe.get_label() == "花城广场"
    np.testing.assert_allclose(probe.get_ydata(), series[series.dtype.names[1]])
    assert set(impassable.get_ydata()) == {0.3}


def test_line_plot_is_generic(tmp_path):
    from PIL import Image

    x = np.arange(0.0, 60.0, 5.0)
    fig = line_figure(x, {"evacuated": x ** 1.5, "on roads": np.sqrt(x)}, xlabel="min", ylabel="people",
                      title="疏散曲线", hlines={"target": 300.0})
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["evacuated", "on roads", "target"]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), x ** 1.5)
    assert ax.get_title() == "疏散曲线" and ax.get_xlabel() == "min"
    path = line_plot(tmp_path / "sub" / "curve.png", x, {"evacuated": x}, xlabel="min", ylabel="people",
                     title="curve")
    with Image.open(path) as image:
        assert image.format == "PNG"
    with pytest.raises(ValueError, match="evacuated"):
        line_figure(x, {"evacuated": x[:-1]})
