"""2D flood inundation: LISFLOOD-FP's local-inertial scheme on CPU (NumPy, Numba) and GPU (CuPy).

    grid.py      terrain resampled, buildings blocked, Manning's n       -> FloodGrid
    forcing.py   rain, inflows, stage/free edges, sinks                  -> Forcing / BoundForcing
    model.py     the component: state h, qx, qy; step(dt); mass balance  -> FloodModel
    kernels_*.py the scheme's passes per backend
    outputs.py   COGs, depth frames, time series, water budget
    exposure.py  buildings, roads and facilities reached
    process.py   the "flood" process (simulate.process.Process)
    cli.py       run_flood_cli for `twin flood`
"""
