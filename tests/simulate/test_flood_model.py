"""Flood model invariants: lake at rest, mass conservation, backend agreement, validation."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from simulate.flood.errors import FloodInputError
from simulate.flood.forcing import (
    DrainageZone,
    EdgeInflow,
    Forcing,
    FreeOutflow,
    GaugeRain,
    PointInflow,
    Series,
    StageBoundary,
    UniformRain,
    hyetograph,
)
from simulate.flood.grid import FloodGrid
from simulate.flood.model import FloodModel
from simulate.flood.process import FloodInputs, parse_duration
from simulate.process import ProcessError


def uneven(ny: int = 40, nx: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.0, 1.5, (ny, nx))
    z[10:15, 10:15] = 3.0                    # an island above the lake
    return z


def valley(ny: int = 40, nx: int = 60, seed: int = 1) -> FloodGrid:
    """A tilted valley with random bumps, a closed depression and a building."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, nx)
    y = np.linspace(-1, 1, ny)[:, None]
    z = 3.0 * (1 - x)[None, :] + 2.0 * y ** 2 + rng.uniform(0, 0.2, (ny, nx))
    z[18:24, 25:31] -= 1.5                  # a pit that fills and may spill
    blocked = np.zeros((ny, nx), bool)
    blocked[5:9, 40:46] = True
    return FloodGrid.from_arrays(z, 2.0, blocked=blocked, n=0.03)


def storm() -> Forcing:
    return Forcing(
        rain=UniformRain(hyetograph(60.0, 900.0, [1, 3, 2])),
        inflows=[PointInflow(20.0, -40.0, Series((0.0, 300.0, 900.0), (0.0, 2.0, 0.0)))],
        edge_inflows=[EdgeInflow("north", Series((0.0, 600.0), (0.5, 0.0)), span=(10.0, 40.0))],
        free=[FreeOutflow("east", 0.01), FreeOutflow("north", 0.01)],    # the north inflow span owns its faces
        stages=[StageBoundary("south", Series.constant(-0.5))],
        drainage_mm_h=8.0, infiltration_mm_h=4.0)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lake_at_rest_over_uneven_terrain(backend, dtype):
    """A flat lake over bumps, an island and dry cells stays still for 10 minutes:
    max |u| < 1e-6 m/s and the surface flat to 1e-6 m (float32: 1e-5 m)."""
    grid = FloodGrid.from_arrays(uneven(), 2.0, n=0.03)
    model = FloodModel(grid, backend=backend, dtype=dtype, initial_level=1.0)
    model.run(600.0)
    assert model.steps > 100
    wet = model.depth() > 0
    assert wet.sum() > 0.5 * wet.size and (~wet).sum() > 25
    assert model.host("max_speed").max() < 1e-6
    tol = 1e-5 if dtype is np.float32 else 1e-6
    level = model.level()[wet]
    assert level.max() - 1.0 < tol and 1.0 - level.min() < tol
    assert model.mass_balance().relative_error < 1e-6


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_mass_conservation_rain_inflow_wetting_drying(backend):
    """Rain, point and edge inflows, drainage, infiltration, free and stage edges over dry,
    uneven ground with a building: closing error < 0.1 % of the water that came in
    (float32 state; the budget is float64). Every term is active."""
    model = FloodModel(valley(), storm(), backend=backend)
    model.run(1800.0)
    mb = model.mass_balance()
    came_in = mb.rain_m3 + mb.inflow_m3 + mb.boundary_in_m3
    assert abs(mb.closing_error_m3) < 1e-3 * came_in
    assert model.depth()[~model.grid.blocked].min() >= 0.0
    for term in ("rain_m3", "inflow_m3", "boundary_out_m3", "drained_m3", "infiltrated_m3", "storage_m3"):
        assert getattr(mb, term) > 0, term
    # the hyetograph delivers its 60 mm over the open + roof area (roof rain is moved, not lost)
    area = model.grid.z.size * model.grid.cell_area
    assert mb.rain_m3 == pytest.approx(0.060 * area, rel=0.02)
    assert mb.inflow_m3 == pytest.approx(0.5 * 2.0 * 900.0 + 0.5 * 0.5 * 600.0, rel=0.01)
    assert np.isfinite(model.host("time_wet")).any()


def test_numpy_and_numba_agree():
    """Same case on both CPU backends, float64, with a fixed 0.25 s step (adaptive steps
    would amplify round-off through dt): depths agree to 1e-8 m after 20 minutes; only
    the order of floating-point operations differs (Numba is built with fastmath)."""
    runs = {}
    for backend in ("numpy", "numba"):
        model = FloodModel(valley(), storm(), backend=backend, dtype=np.float64)
        for _ in range(4800):
            assert model.step(0.25) == 0.25
        runs[backend] = model
    a, b = runs["numpy"], runs["numba"]
    np.testing.assert_allclose(a.depth(), b.depth(), atol=1e-8, equal_nan=True)
    np.testing.assert_allclose(a.host("max_depth"), b.host("max_depth"), atol=1e-8)
    assert a.mass_balance().storage_m3 == pytest.approx(b.mass_balance().storage_m3, rel=1e-9)


@pytest.mark.gpu
def test_gpu_agrees_with_numba():
    """CuPy backend against Numba on the same case, float64: depths within 1e-6 m."""
    from simulate.flood.kernels_gpu import gpu_available

    if not gpu_available():
        pytest.skip("no CUDA device / CuPy")
    runs = {}
    for backend in ("gpu", "numba"):
        model = FloodModel(valley(), storm(), backend=backend, dtype=np.float64)
        for _ in range(4800):
            model.step(0.25)
        runs[backend] = model
    np.testing.assert_allclose(runs["gpu"].depth(), runs["numba"].depth(), atol=1e-6, equal_nan=True)


def test_gauge_rain_is_inverse_distance_weighted():
    """Two gauges (10 and 30 mm/h): the field equals each gauge at its cell and the
    IDW mean between; roof rain is routed to open cells (total preserved)."""
    grid = FloodGrid.from_arrays(np.zeros((10, 21)), 1.0)
    rain = GaugeRain(xy=((0.5, -5.5), (20.5, -5.5)), intensity=(Series.constant(10.0), Series.constant(30.0)))
    field_, changed = Forcing(rain=rain).bind(grid).rain_at(0.0)
    mm_h = field_ * 3.6e6
    assert changed
    assert mm_h[5, 0] == pytest.approx(10.0) and mm_h[5, 20] == pytest.approx(30.0)
    assert mm_h[5, 10] == pytest.approx(20.0)
    blocked = np.zeros((10, 21), bool)
    blocked[3:6, 8:12] = True
    roofed = Forcing(rain=rain).bind(FloodGrid.from_arrays(np.zeros((10, 21)), 1.0, blocked=blocked))
    moved, _ = roofed.rain_at(0.0)
    assert moved[blocked].sum() == 0 and moved.sum() == pytest.approx(field_.sum())


def test_drainage_zone_overrides_uniform_capacity():
    from shapely.geometry import box

    grid = FloodGrid.from_arrays(np.zeros((10, 10)), 1.0)
    bound = Forcing(drainage_mm_h=5.0, drainage_zones=[DrainageZone(box(0, -5, 5, 0), 50.0)]).bind(grid)
    assert bound.drain[2, 2] * 3.6e6 == pytest.approx(50.0) and bound.drain[8, 8] * 3.6e6 == pytest.approx(5.0)


def test_parameters_are_validated():
    grid = FloodGrid.from_arrays(np.zeros((5, 5)), 1.0)
    with pytest.raises(FloodInputError) as err:
        FloodModel(grid, theta=1.5)
    assert err.value.field == "theta" and isinstance(err.value, ProcessError)
    with pytest.raises(FloodInputError, match="backend"):
        FloodModel(grid, backend="fortran")  # type: ignore[arg-type]
    with pytest.raises(FloodInputError) as err:
        Forcing(inflows=[PointInflow(100.0, 100.0, Series.constant(1.0))]).bind(grid)
    assert err.value.field == "inflows"


def test_process_inputs():
    inputs = FloodInputs(rain_mm=120, duration="2h", resolution_m=5)
    assert inputs.duration_s == 7200 and inputs.horizon_s == 7200 + 3600
    assert parse_duration("PT1H30M") == 5400 and parse_duration("90min") == 5400 and parse_duration(45) == 45
    for bad, field in (({"resolution_m": 1}, "resolution_m"), ({"duration": "soon"}, "duration"),
                       ({"rain_mm": -1}, "rain_mm"), ({"backend": "tpu"}, "backend"),
                       ({"inflows": [{"x": 1.0, "discharge_m3s": 1.0}]}, "inflows"),
                       ({"stages": [{"edge": "up", "level_m": 1.0}]}, "stages"),
                       ({"hyetograph": [0, 0]}, "hyetograph")):
        with pytest.raises(ValidationError) as err:
            FloodInputs(**bad)
        assert err.value.errors()[0]["loc"][0] == field
