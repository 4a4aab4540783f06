"""Time `build_twin` on a synthetic city against the floor any build pays.

    python bench/bench_build.py --buildings 100000 [--seed 0] [--keep DIR]

Synthesizes a city (timed apart), builds the twin, then times plain geopandas reading
the same buildings file and writing it to a GeoPackage: the peer figure. Prints a
markdown table row.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd

from twin.build import build_twin
from twin.synth import synthesize


def _peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildings", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep the files")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="twin-bench-") as tmp:
        work = args.keep or Path(tmp)
        city_toml, t_synth = _timed(lambda: synthesize(work / "city", args.buildings, seed=args.seed))
        rss_synth = _peak_rss_mib()
        _, t_build = _timed(lambda: build_twin(city_toml, work / "twin"))
        rss_build = _peak_rss_mib()

        def peer():
            frame = gpd.read_file(city_toml.parent / "buildings.gpkg", engine="pyogrio")
            frame.to_file(work / "peer.gpkg", driver="GPKG", engine="pyogrio")
        _, t_peer = _timed(peer)

    n = args.buildings
    print("| buildings | synth s | build s | buildings/s | peak RSS MiB (synth / build) "
          "| geopandas read+write s | build / peer |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {n:,} | {t_synth:.1f} | {t_build:.1f} | {n / t_build:,.0f} | "
          f"{rss_synth:,.0f} / {rss_build:,.0f} | {t_peer:.1f} | {t_build / t_peer:.1f}x |")


if __name__ == "__main__":
    main()
