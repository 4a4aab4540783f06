"""Flood model speed: kernel throughput against the memory bound, a district run, and ANUGA.

    python bench/bench_flood.py [--size 2000] [--threads 2] [--tianhe DIR] [--tianhe-res 2] [--skip-anuga]

1. Cell updates per second (cells x steps / s) on a wet size x size grid for NumPy and Numba
   (float32 state), with a NumPy copy bandwidth measured in the same run and the bound it
   implies: bandwidth / bytes moved per cell update (each array read or written once per pass).
2. The Tianhe twin (built with `twin build data/tianhe/city.toml --out DIR`) at --tianhe-res m
   under 100 mm/h for one hour: wall time on CPU.
3. The Stoker dam break (SWASHES 1 3 1 1: 10 m, h 5 mm | 1 mm, t = 6 s) with this model and with
   ANUGA (bench/peers/anuga/.venv, if it is installed there): wall time and L1 error against
   the analytic solution.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ANUGA_PY = ROOT / "bench" / "peers" / "anuga" / ".venv" / "bin" / "python"
# float32 bytes per cell update: flux reads z, h, n2, qx, qy and writes qx', qy' (7 x 4);
# the limiter reads h, qx', qy' and writes r (4 x 4); continuity reads h, qx', qy', rain and writes h (5 x 4)
BYTES_PER_UPDATE = (7 + 4 + 5) * 4


def copy_bandwidth(n_bytes: int = 512 * 2 ** 20) -> float:
    a = np.ones(n_bytes // 4, np.float32)
    b = np.empty_like(a)
    np.copyto(b, a)
    best = np.inf
    for _ in range(5):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    return 2 * a.nbytes / best                      # read + write


def kernel_rate(backend: str, size: int, steps: int) -> float:
    from simulate.flood.forcing import Forcing, Series, UniformRain
    from simulate.flood.grid import FloodGrid
    from simulate.flood.model import FloodModel

    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, size)
    z = 2.0 * x[None, :] + 0.5 * x[:, None] + rng.uniform(0, 0.3, (size, size))
    grid = FloodGrid.from_arrays(z, 2.0, n=0.03)
    model = FloodModel(grid, Forcing(rain=UniformRain(Series.constant(50.0))), backend=backend,  # type: ignore[arg-type]
                       initial_level=2.0, track=False)
    model.step()                                      # compile / warm up
    t0 = time.perf_counter()
    for _ in range(steps):
        model.step()
    return size * size * steps / (time.perf_counter() - t0)


def tianhe(twin_dir: Path, resolution: float, threads: int) -> dict:
    from simulate.flood.forcing import Forcing, Series, UniformRain
    from simulate.flood.grid import build_grid
    from simulate.flood.model import FloodModel
    from twin.store.folder import FolderStore

    store = FolderStore(twin_dir)
    t0 = time.perf_counter()
    grid = build_grid(store.read_raster("ground"), resolution, buildings=store.read_layer("buildings"),
                      roads=store.read_layer("roads"))
    rain = UniformRain(Series((0.0,), (100.0,), "step", end=3600.0))
    model = FloodModel(grid, Forcing(rain=rain, free=[]), backend="numba")
    t1 = time.perf_counter()
    model.run(3600.0)
    t2 = time.perf_counter()
    mb = model.mass_balance()
    return {"cells": grid.z.size, "steps": model.steps, "grid_s": t1 - t0, "run_s": t2 - t1,
            "rate": grid.z.size * model.steps / (t2 - t1), "error": mb.relative_error}


def stoker(x: np.ndarray, t: float, h_l: float, h_r: float, x0: float = 5.0, g: float = 9.81) -> np.ndarray:
    from scipy.optimize import brentq

    c_l = np.sqrt(g * h_l)
    h_m = brentq(lambda hm: 2 * (c_l - np.sqrt(g * hm)) - (hm - h_r) * np.sqrt(g * (hm + h_r) / (2 * hm * h_r)),
                 h_r, h_l, xtol=1e-15)
    u_m = 2 * (c_l - np.sqrt(g * h_m))
    s = h_m * u_m / (h_m - h_r)
    xi = (x - x0) / t
    return np.where(xi < -c_l, h_l, np.where(xi < u_m - np.sqrt(g * h_m), (2 * c_l - xi) ** 2 / (9 * g),
                                             np.where(xi < s, h_m, h_r)))


def ours_dam_break(n: int = 400) -> dict:
    from simulate.flood.grid import FloodGrid
    from simulate.flood.model import FloodModel

    x = (np.arange(n) + 0.5) * 10.0 / n
    h0 = np.where(x < 5.0, 0.005, 0.001)
    t0 = time.perf_counter()
    model = FloodModel(FloodGrid.from_arrays(np.zeros((3, n)), 10.0 / n, n=0.0), backend="numba",
                       dtype=np.float64, initial_depth=np.tile(h0, (3, 1)), h_eps=1e-7, track=False)
    model.run(6.0)
    wall = time.perf_counter() - t0
    h = model.depth()[1]
    ref = stoker(x, 6.0, 0.005, 0.001)
    return {"wall_s": wall, "l1": float(np.abs(h - ref).sum() / ref.sum()), "cells": 3 * n}


ANUGA_SCRIPT = r"""
import json, sys, time
import numpy as np
import anuga
n = int(sys.argv[1])
t0 = time.perf_counter()
domain = anuga.rectangular_cross_domain(n, 4, len1=10.0, len2=0.1)
domain.set_name("stoker"); domain.set_datadir(sys.argv[2])
domain.set_flow_algorithm("DE0")
domain.set_minimum_storable_height(1e-7)
domain.set_quantity("elevation", 0.0)
domain.set_quantity("friction", 0.0)
domain.set_quantity("stage", lambda x, y: np.where(x < 5.0, 0.005, 0.001))
reflect = anuga.Reflective_boundary(domain)
domain.set_boundary({"left": reflect, "right": reflect, "top": reflect, "bottom": reflect})
for _ in domain.evolve(yieldstep=6.0, finaltime=6.0):
    pass
wall = time.perf_counter() - t0
xy = domain.centroid_coordinates
h = domain.quantities["stage"].centroid_values - domain.quantities["elevation"].centroid_values
print(json.dumps({"wall_s": wall, "x": xy[:, 0].tolist(), "h": h.tolist(), "triangles": len(h)}))
"""


def anuga_dam_break(n: int = 400) -> dict | str:
    if not ANUGA_PY.exists():
        return "not installed (python -m venv bench/peers/anuga/.venv && bench/peers/anuga/.venv/bin/pip install anuga)"
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "stoker_anuga.py"
        script.write_text(ANUGA_SCRIPT)
        run = subprocess.run([str(ANUGA_PY), str(script), str(n), tmp], capture_output=True, text=True, cwd=tmp,
                             check=False)
    if run.returncode != 0:
        return f"failed: {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else run.returncode}"
    out = json.loads(run.stdout.strip().splitlines()[-1])
    x, h = np.array(out["x"]), np.array(out["h"])
    ref = stoker(x, 6.0, 0.005, 0.001)
    return {"wall_s": out["wall_s"], "l1": float(np.abs(h - ref).sum() / ref.sum()), "cells": out["triangles"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--tianhe", type=Path, default=None, help="a built Tianhe twin folder")
    ap.add_argument("--tianhe-res", type=float, default=2.0)
    ap.add_argument("--skip-anuga", action="store_true")
    args = ap.parse_args()
    import numba

    numba.set_num_threads(args.threads)
    bw = copy_bandwidth()
    bound = bw / BYTES_PER_UPDATE
    rows = ["| case | figure | value |", "|---|---|---|",
            f"| memory | numpy copy bandwidth | {bw / 1e9:.1f} GB/s |",
            f"| memory | bound at {BYTES_PER_UPDATE} B per cell update (float32) | {bound:.3g} cell updates/s |"]
    for backend, steps in (("numpy", max(2, args.steps // 10)), ("numba", args.steps)):
        rate = kernel_rate(backend, args.size, steps)
        rows.append(f"| {args.size}x{args.size} wet, rain | {backend} ({args.threads} threads) "
                    f"| {rate:.3g} cell updates/s ({100 * rate / bound:.0f} % of bound) |")
    if args.tianhe is not None:
        r = tianhe(args.tianhe, args.tianhe_res, args.threads)
        rows.append(f"| Tianhe {args.tianhe_res:g} m, 100 mm/h x 1 h | numba: {r['cells']:,} cells x {r['steps']} steps "
                    f"| run {r['run_s']:.1f} s (+ grid {r['grid_s']:.1f} s), {r['rate']:.3g} updates/s, "
                    f"mass error {r['error']:.1e} |")
    ours = ours_dam_break()
    rows.append(f"| Stoker dam break t = 6 s | this model, {ours['cells']} cells | {ours['wall_s']:.2f} s, "
                f"L1 error {100 * ours['l1']:.1f} % |")
    if not args.skip_anuga:
        peer = anuga_dam_break()
        if isinstance(peer, dict):
            rows.append(f"| Stoker dam break t = 6 s | ANUGA (DE0), {peer['cells']} triangles | {peer['wall_s']:.2f} s, "
                        f"L1 error {100 * peer['l1']:.1f} % |")
        else:
            rows.append(f"| Stoker dam break t = 6 s | ANUGA | {peer} |")
    print("\n".join(rows))


if __name__ == "__main__":
    sys.exit(main())
