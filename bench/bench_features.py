"""OGC API - Features throughput: items?bbox=...&limit=100 on a 50,000-building synthetic twin.

    .venv/bin/python bench/bench_features.py                      # 50,000 buildings, 4 and 16 connections
    .venv/bin/python bench/bench_features.py --buildings 5000 --seconds 5

Synthesises a city with `twin.synth.synthesize`, builds the twin, serves `create_app`
plus the features router with uvicorn on 127.0.0.1 (one worker, no access log), warms the
layer cache with one request and drives `wrk --latency` (apt-get install wrk). Each wrk
run cycles over a set of bbox windows across the city so requests do not hit one cached
answer. The pygeoapi peer (0.24, Python >= 3.12 + PostGIS) is not run here: see the
printed note. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

import numpy as np
from pyproj import Transformer

ROOT = Path(__file__).resolve().parents[1]

SERVER = textwrap.dedent("""
    import sys, uvicorn
    sys.path.insert(0, {root!r})
    from api import errors
    from api.app import create_app
    from api.routers import features
    from api.settings import Settings
    from twin.query.errors import FeatureNotFound, QueryError
    if not any(c is QueryError for c, _ in errors.STATUS):
        errors.STATUS[0:0] = [(QueryError, 400), (FeatureNotFound, 404)]
    app = create_app(Settings(twin_dir={twin!r}))
    if "/ogc/collections" not in {{getattr(r, "path", None) for r in app.routes}}:
        app.include_router(features.router())
    uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning", access_log=False)
""")

WRK_LUA = """
local paths = {{{paths}}}
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(n: int, work: Path, seed: int) -> Path:
    from twin.build import build_twin
    from twin.synth import synthesize

    twin_dir = work / f"twin-{n}-{seed}"
    if (twin_dir / "manifest.json").is_file():
        return twin_dir
    t0 = time.perf_counter()
    toml = synthesize(work / f"src-{n}-{seed}", n, seed)
    build_twin(toml, twin_dir)
    print(f"synthesised and built {n} buildings in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return twin_dir


def windows(twin_dir: Path, count: int, half_m: float) -> list[str]:
    """bbox query strings (CRS84) around random buildings, about 2*half_m metres wide."""
    from twin.store.folder import FolderStore

    gdf = FolderStore(twin_dir).read_layer("buildings", columns=["id"])
    rng = np.random.default_rng(0)
    cent = gdf.geometry.centroid.values[rng.choice(len(gdf), size=count, replace=False)]
    t = Transformer.from_crs("EPSG:4547", "OGC:CRS84", always_xy=True)
    out = []
    for p in cent:
        lo = t.transform(p.x - half_m, p.y - half_m)
        hi = t.transform(p.x + half_m, p.y + half_m)
        out.append(f"{lo[0]:.6f},{lo[1]:.6f},{hi[0]:.6f},{hi[1]:.6f}")
    return out


def wrk(url_base: str, paths: list[str], conns: int, seconds: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_LUA.format(paths=",".join(json.dumps(p) for p in paths)))
    out = subprocess.run(["wrk", f"-t{min(conns, 2)}", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", f.name,
                          url_base], capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50": ms("50"), "p99": ms("99"),
            "non2xx": int(errors.group(1)) if errors else 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--buildings", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench-features")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install -y wrk")
    args.workdir.mkdir(parents=True, exist_ok=True)
    twin_dir = build(args.buildings, args.workdir, args.seed)
    port = _free_port()
    script = SERVER.format(root=str(ROOT), twin=str(twin_dir), port=port)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/ogc/conformance", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        paths = [f"/ogc/collections/buildings/items?bbox={b}&limit=100" for b in windows(twin_dir, 64, 200.0)]
        returned = [json.load(urllib.request.urlopen(base + p))["numberReturned"] for p in paths[:8]]  # warm-up
        rows = [(c, wrk(base, paths, c, args.seconds)) for c in args.connections]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"\n{args.buildings:,} buildings; items?bbox=(~400 m window)&limit=100, features per response "
          f"(first 8 windows): {returned}; one uvicorn worker, {os.cpu_count()} CPU cores shared with wrk\n")
    print("| server | connections | req/s | p50 ms | p99 ms | non-2xx |")
    print("|---|---|---|---|---|---|")
    for c, r in rows:
        print(f"| city-twin /ogc | {c} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['non2xx']} |")
    print("| pygeoapi 0.24 + PostGIS | - | not run | - | - | - |")
    print("\nPeer not run: pygeoapi 0.24 needs Python >= 3.12 and a PostGIS provider; the figure quoted for it "
          "(~65 req/s) is from the brief, not measured here.")


if __name__ == "__main__":
    main()
