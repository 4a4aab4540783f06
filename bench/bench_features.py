"""OGC API - Features throughput: items?bbox=...&limit=100 on a 50,000-building synthetic twin,
city-twin against pygeoapi 0.24 + PostGIS, in the same run.

    bash bench/peers/pygeoapi/setup.sh              # once: PostGIS, wrk, pygeoapi venv, data, config
    .venv/bin/python bench/bench_features.py         # 2 workers each, 4 and 16 connections, 15 s runs
    .venv/bin/python bench/bench_features.py --workers 1 --seconds 20 --no-peer

Synthesises a city with `twin.synth.synthesize` and builds the twin (cached in --workdir);
the peer's setup loads the same buildings into PostGIS. The servers run one after the other,
never at once, on the same machine with the same number of worker processes:

* city-twin: `twin serve DIR --workers N --warm buildings --no-access-log` (uvicorn, with
  uvloop and httptools when installed, as uvicorn picks them itself);
* pygeoapi: `gunicorn pygeoapi.flask_app:APP --workers N` (sync workers, pygeoapi's documented
  deployment; `--peer-app starlette` runs `pygeoapi.starlette_app:APP` on uvicorn workers instead),
  PostgreSQL provider over a GIST-indexed table, pretty_print off, logging at ERROR.

Each server is warmed (2 s of wrk, discarded), then `wrk --latency` drives it with a Lua script
cycling through the same 64 bbox windows (~400 m, around random buildings, CRS84) for each
connection count. The 1-minute load average is taken before every run; when it is above
--quiet-load the bench waits up to --wait seconds for it to drop, and reports it either way.
Prints one markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from pyproj import Transformer

ROOT = Path(__file__).resolve().parents[1]

PEER = ROOT / "bench" / "peers" / "pygeoapi"
PEER_APPS = {"flask": ["pygeoapi.flask_app:APP"],
             "starlette": ["pygeoapi.starlette_app:APP", "--worker-class", "uvicorn.workers.UvicornWorker"]}
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
    try:
        out = subprocess.run(["wrk", f"-t{min(conns, 2)}", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s",
                              "--latency", "-s", f.name, url_base], capture_output=True, text=True,
                             check=True).stdout
    finally:
        os.unlink(f.name)

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50": ms("50"), "p99": ms("99"),
            "non2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1).strip() if socket_errors else ""}


def quiet(limit: float, wait: float) -> float:
    """Wait (up to `wait` s) for the 1-minute load average to fall to `limit`; return it."""
    deadline = time.monotonic() + wait
    while os.getloadavg()[0] > limit and time.monotonic() < deadline:
        time.sleep(5)
    return os.getloadavg()[0]


class Server:
    """A server process group started for one benchmark and stopped (SIGTERM to its group) after it."""

    def __init__(self, name: str, cmd: list[str], base: str, prefix: str, env: dict | None = None):
        self.name, self.base, self.prefix = name, base, prefix
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        self.proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def __enter__(self) -> "Server":
        for _ in range(1200):
            if self.proc.poll() is not None:
                break
            try:
                urllib.request.urlopen(self.base + self.prefix + "/conformance", timeout=2)
                return self
            except OSError:
                time.sleep(0.1)
        self.log.seek(0)
        raise SystemExit(f"{self.name} did not start:\n{self.log.read()[-3000:]}")

    def __exit__(self, *exc) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
        os.unlink(self.log.name)


def measure(server: Server, queries: list[str], args) -> tuple[list[int], list[tuple[int, float, dict]]]:
    paths = [server.prefix + "/collections/buildings/items?" + q for q in queries]
    matched = [json.load(urllib.request.urlopen(server.base + p, timeout=30))["numberMatched"] for p in paths[:8]]
    wrk(server.base, paths, max(args.connections), 2)                      # warm-up, discarded
    rows = []
    for c in args.connections:
        load = quiet(args.quiet_load, args.wait)
        rows.append((c, load, wrk(server.base, paths, c, args.seconds)))
    return matched, rows


def peer_ready(db: str) -> str | None:
    """Why the pygeoapi peer cannot run, or None."""
    if not (PEER / ".venv" / "bin" / "gunicorn").is_file() or not (PEER / "pygeoapi-config.yml").is_file():
        return f"no peer install: run bash {PEER.relative_to(ROOT)}/setup.sh"
    try:
        n = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qAtc",
                            "SELECT count(*) FROM buildings"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return f"no PostGIS table {db}.buildings: run bash {PEER.relative_to(ROOT)}/setup.sh"
    return None if int(n) else "the PostGIS table is empty"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--buildings", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--connections", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--workers", type=int, default=2, help="worker processes for each server (default 2)")
    ap.add_argument("--peer-app", choices=sorted(PEER_APPS), default="flask")
    ap.add_argument("--no-peer", action="store_true", help="run city-twin only")
    ap.add_argument("--pg-db", default="pygeoapi_bench")
    ap.add_argument("--quiet-load", type=float, default=(os.cpu_count() or 2) / 2,
                    help="1-minute load average to wait for before each run (default: half the cores)")
    ap.add_argument("--wait", type=float, default=60, help="longest wait for a quiet machine, s")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench-features")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install -y wrk (or run bench/peers/pygeoapi/setup.sh)")
    args.workdir.mkdir(parents=True, exist_ok=True)
    twin_dir = build(args.buildings, args.workdir, args.seed)
    queries = [f"bbox={b}&limit=100" for b in windows(twin_dir, 64, 200.0)]
    why_not = "--no-peer" if args.no_peer else peer_ready(args.pg_db)
    if not args.no_peer and why_not and args.buildings == 50_000:
        sys.exit(f"pygeoapi peer not ready: {why_not}")

    results = {}
    port = _free_port()
    ours = Server("city-twin", [str(Path(sys.executable).parent / "twin"), "serve", str(twin_dir), "--host", "127.0.0.1",
                                "--port", str(port), "--workers", str(args.workers), "--warm", "buildings",
                                "--no-access-log"], f"http://127.0.0.1:{port}", "/ogc")
    with ours:
        results["city-twin /ogc"] = measure(ours, queries, args)
    if not why_not:
        port = _free_port()
        peer = Server("pygeoapi", [str(PEER / ".venv" / "bin" / "gunicorn"), *PEER_APPS[args.peer_app],
                                   "--workers", str(args.workers), "--bind", f"127.0.0.1:{port}",
                                   "--log-level", "warning"], f"http://127.0.0.1:{port}", "",
                      env={"PYGEOAPI_CONFIG": str(PEER / "pygeoapi-config.yml"),
                           "PYGEOAPI_OPENAPI": str(PEER / "pygeoapi-openapi.yml")})
        with peer:
            results[f"pygeoapi 0.24 + PostGIS ({args.peer_app})"] = measure(peer, queries, args)

    print(f"\n{args.buildings:,} buildings; items?bbox=(~400 m window, 64 windows cycled)&limit=100; "
          f"{args.workers} worker process(es) per server; {args.seconds} s per run after a 2 s warm-up; "
          f"{os.cpu_count()} CPU cores shared with wrk (and PostgreSQL for the peer); servers run one after "
          f"the other.\nnumberMatched of the first 8 windows: "
          + "; ".join(f"{k}: {m}" for k, (m, _) in results.items()) + "\n")
    print("| server | connections | req/s | p50 ms | p99 ms | non-2xx | load (1 min) before run |")
    print("|---|---|---|---|---|---|---|")
    for name, (_, rows) in results.items():
        for c, load, r in rows:
            errs = f"{r['non2xx']}" + (f" (socket: {r['socket_errors']})" if r["socket_errors"] else "")
            print(f"| {name} | {c} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {errs} | {load:.2f} |")
    if len(results) == 2:
        (_, a), (_, b) = results.values()
        for (c, _, x), (_, _, y) in zip(a, b):
            print(f"| **ratio city-twin / pygeoapi** | {c} | **{x['rps'] / y['rps']:.1f}x** | "
                  f"{x['p50'] / y['p50']:.3f} | {x['p99'] / y['p99']:.3f} | | |")
    else:
        print(f"\npygeoapi not run: {why_not}")


if __name__ == "__main__":
    main()
