"""Tiling throughput of LOD1 buildings, with py3dtiles' own writer on plain boxes as an anchor.

    .venv/bin/python bench/bench_tiles.py                 # 100,000 and 1,000,000 buildings
    .venv/bin/python bench/bench_tiles.py --sizes 20000   # quick run
    .venv/bin/python bench/bench_tiles.py --no-cesium     # without the browser figure

Footprints are generated with numpy (rotated rectangles, a few with holes
would need GEOS; rectangles are the common case of real cities). Our figure
is the whole `build_tiles` call: extrusion, metadata, tree, glb encoding,
hashing and writing. The anchor builds the same number of flat-shaded boxes
(24 vertices, 12 triangles, normals, batch ids) in tiles of 2,000 with
`py3dtiles.tileset.content.B3dm.from_numpy_arrays` and writes them, without
batch tables, tree or metadata. Prints a markdown table with wall seconds,
CPU seconds (this process and its forked encoders) and the peak resident set
size so far (sizes run in increasing order, so it is each size's peak).

Second figure (the 100,000-building tileset, when the Playwright harness
`tests/browser/conftest.py` + `cesium_harness.html` is present): CesiumJS in
headless Chromium (SwiftShader) adds the tileset, flies to its full extent and
waits for `tileset.tilesLoaded`, timed with `performance.now()` in the page;
memory is the page's JS heap (CDP `Performance.getMetrics`), CesiumJS's own
count of the tileset's GPU memory (`totalMemoryUsageInBytes`) and the resident
memory of all Chromium processes.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

from tiles.build import build_tiles
from twin.store.memory import MemoryStore

REPO = Path(__file__).resolve().parents[1]
BROWSER_CONFTEST = REPO / "tests" / "browser" / "conftest.py"
HARNESS_PAGE = REPO / "tests" / "browser" / "cesium_harness.html"
CESIUM_SIZE = 100_000
X0, Y0 = 430_000.0, 2_540_000.0
CRS_4547 = CRS.from_epsg(4547)
BOXES_PER_TILE = 2000


def BenchStore(buildings):
    return MemoryStore(CRS_4547, layers={"buildings": buildings}, kinds={"buildings": "buildings"})


def synthetic_buildings(n: int, seed: int = 0) -> gpd.GeoDataFrame:
    """n rotated rectangles at city density (about 2,500 per km^2) with the canonical columns."""
    rng = np.random.default_rng(seed)
    side = np.sqrt(n / 2500.0) * 1000.0
    centre = np.column_stack([X0 + rng.uniform(0, side, n), Y0 + rng.uniform(0, side, n)])
    half = np.column_stack([rng.uniform(4, 20, n), rng.uniform(4, 15, n)])
    angle = rng.uniform(0, np.pi / 2, n)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], float)
    local = corners[None] * half[:, None, :]
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    ring = np.stack([local[..., 0] * c - local[..., 1] * s, local[..., 0] * s + local[..., 1] * c], axis=-1)
    geoms = shapely.polygons(ring + centre[:, None, :])
    height = rng.gamma(2.0, 10.0, n) + 3.0
    ground = rng.uniform(0, 20, n)
    uses = np.array(["residential", "commercial", "office", "industrial", "school"])
    return gpd.GeoDataFrame({
        "id": np.char.add("b", np.arange(n).astype(str)).astype(object),
        "source": "synthetic", "source_id": np.arange(n).astype(str).astype(object),
        "name": None, "use": uses[rng.integers(0, len(uses), n)], "use_raw": "yes",
        "height": height, "height_rule": "explicit", "levels": np.round(height / 3.2),
        "ground": ground, "roof": ground + height, "underground": False,
        "area": shapely.area(geoms), "population": np.nan, "capacity": np.nan, "attrs": "{}",
    }, geometry=geoms, crs=CRS_4547)


def bench_ours(frame: gpd.GeoDataFrame, out: Path) -> tuple[float, float, int, int]:
    """(wall seconds, CPU seconds incl. forked workers, bytes, tiles) of one full build."""
    before = os.times()
    t0 = time.perf_counter()
    report = build_tiles(BenchStore(frame), out)
    seconds = time.perf_counter() - t0
    after = os.times()
    cpu = sum(after[:4]) - sum(before[:4])
    layer = report.layers["buildings"]
    return seconds, cpu, layer.bytes, layer.tiles


def peak_rss_mb() -> float:
    """Peak resident set size of this process or of its largest child so far (Linux: KiB)."""
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(self_kb, child_kb) / 1024.0


def cesium_available() -> bool:
    return BROWSER_CONFTEST.is_file() and HARNESS_PAGE.is_file()


def bench_cesium(tiles_dir: Path, timeout_s: float = 600.0) -> dict:
    """Load `tiles_dir/buildings/tileset.json` in the Cesium harness (headless Chromium) and measure."""
    import functools
    import threading
    from http.server import ThreadingHTTPServer

    from playwright.sync_api import sync_playwright

    spec = importlib.util.spec_from_file_location("browser_conftest", BROWSER_CONFTEST)
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    servers = []

    def serve(root: Path) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(harness._QuietCORSHandler,
                                                                         directory=str(root)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    try:
        repo_url, tiles_url = serve(REPO), serve(tiles_dir)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=harness.CHROMIUM, headless=True,
                                        args=[*harness.CHROMIUM_ARGS, "--enable-precise-memory-info"])
            page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            page.set_default_timeout(timeout_s * 1000)
            page.goto(f"{repo_url}/{harness.HARNESS}")
            page.wait_for_function("window.harnessReady !== undefined")
            page.evaluate("window.harnessReady")
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            result = page.evaluate("""async ([url, timeoutMs]) => {
                const t0 = performance.now();
                const info = await loadTileset(url, { timeoutMs });
                const seconds = (performance.now() - t0) / 1000;
                const tileset = window.tilesets[info.index];
                const stats = tileset._statistics;
                return { seconds, tilesLoaded: info.tilesLoaded, errors: window.harnessErrors.length,
                         gpuBytes: tileset.totalMemoryUsageInBytes,
                         heapBytes: performance.memory ? performance.memory.usedJSHeapSize : null,
                         // private statistics (CesiumJS 1.145): how much of the tileset is in memory
                         tilesReady: stats ? stats.numberOfTilesWithContentReady : null,
                         featuresLoaded: stats ? stats.numberOfFeaturesLoaded : null };
            }""", [f"{tiles_url}/buildings/tileset.json", int(timeout_s * 1000)])
            metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            result["cdpHeapBytes"] = metrics.get("JSHeapUsedSize")
            result["chromiumRssBytes"] = _chromium_rss(browser)
            browser.close()
        return result
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def _chromium_rss(browser) -> int | None:
    """Sum of the resident memory of the browser process tree (Linux /proc)."""
    try:
        root = browser.process.pid if hasattr(browser, "process") else None
    except Exception:   # noqa: BLE001 - playwright hides the process in some versions
        root = None
    pids = _descendants(root) if root else _chromium_pids()
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/statm").read_text().split()
            total += int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total or None


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parts = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(parts[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, []))
    return out


def _chromium_pids() -> list[int]:
    """Chromium processes started by this benchmark (descendants of this process)."""
    return [pid for pid in _descendants(os.getpid())[1:]
            if "chrom" in Path(f"/proc/{pid}/comm").read_text(errors="replace")]


def bench_py3dtiles_boxes(n: int, out: Path) -> tuple[float, int]:
    from py3dtiles.tileset.content import B3dm

    rng = np.random.default_rng(1)
    unit = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], float)
    faces = [((0, 3, 2, 1), (0, 0, -1)), ((4, 5, 6, 7), (0, 0, 1)), ((0, 1, 5, 4), (0, -1, 0)),
             ((1, 2, 6, 5), (1, 0, 0)), ((2, 3, 7, 6), (0, 1, 0)), ((3, 0, 4, 7), (-1, 0, 0))]
    box_vertices = unit[[i for quad, _ in faces for i in quad]]                      # 24
    box_normals = np.repeat(np.array([nrm for _, nrm in faces], np.float32), 4, axis=0)
    box_tris = np.array([[4 * f, 4 * f + 1, 4 * f + 2, 4 * f, 4 * f + 2, 4 * f + 3] for f in range(6)]).reshape(-1, 3)
    t0 = time.perf_counter()
    total_bytes = 0
    for tile, start in enumerate(range(0, n, BOXES_PER_TILE)):
        k = min(BOXES_PER_TILE, n - start)
        size = np.column_stack([rng.uniform(8, 40, k), rng.uniform(8, 30, k), rng.uniform(3, 60, k)])
        origin = np.column_stack([rng.uniform(0, 1000, k), rng.uniform(0, 1000, k), np.zeros(k)])
        points = (box_vertices[None] * size[:, None] + origin[:, None]).reshape(-1, 3).astype(np.float32)
        triangles = (box_tris[None] + 24 * np.arange(k)[:, None, None]).reshape(-1, 3).astype(np.uint32)
        b3dm = B3dm.from_numpy_arrays(points, triangles, normal=np.tile(box_normals, (k, 1)),
                                      batchids=np.repeat(np.arange(k, dtype=np.uint32), 24))
        data = b3dm.to_array().tobytes()
        (out / f"{tile}.b3dm").write_bytes(data)
        total_bytes += len(data)
    return time.perf_counter() - t0, total_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--no-cesium", action="store_true", help="skip the CesiumJS load figure")
    args = parser.parse_args()
    rows, cesium = [], None
    for n in sorted(args.sizes):
        frame = synthetic_buildings(n)
        with tempfile.TemporaryDirectory() as tmp:
            ours_s, ours_cpu, ours_bytes, tiles = bench_ours(frame, Path(tmp) / "ours")
            peak = peak_rss_mb()
            if n == CESIUM_SIZE and not args.no_cesium and cesium_available():
                cesium = bench_cesium(Path(tmp) / "ours")
            (Path(tmp) / "anchor").mkdir()
            anchor_s, anchor_bytes = bench_py3dtiles_boxes(n, Path(tmp) / "anchor")
            shutil.rmtree(tmp, ignore_errors=True)
        del frame
        rows.append((n, "city-twin LOD1 + metadata (glb 1.1)", ours_s, ours_cpu, ours_bytes, tiles, peak))
        rows.append((n, "py3dtiles B3dm.from_numpy_arrays, plain boxes", anchor_s, None, anchor_bytes,
                     -(-n // BOXES_PER_TILE), None))
    print("| buildings | writer | seconds | CPU s | buildings/s | bytes/building | tiles | peak RSS MB |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for n, name, seconds, cpu, size, tiles, peak in rows:
        print(f"| {n:,} | {name} | {seconds:.1f} | {'' if cpu is None else f'{cpu:.1f}'} | {n / seconds:,.0f} "
              f"| {size / n:.0f} | {tiles:,} | {'' if peak is None else f'{peak:,.0f}'} |")
    if cesium is not None:
        mb = (lambda v: "n/a" if v is None else f"{v / 2**20:,.0f}")
        print()
        print("| CesiumJS, headless Chromium (SwiftShader) | buildings | tiles / features loaded "
              "| seconds to tilesLoaded | JS heap MB (CDP) | tileset GPU MB | Chromium RSS MB | errors |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| full extent, maximumScreenSpaceError 2 | {CESIUM_SIZE:,} "
              f"| {cesium['tilesReady']} / {cesium['featuresLoaded']} | {cesium['seconds']:.1f} "
              f"| {mb(cesium['cdpHeapBytes'])} | {mb(cesium['gpuBytes'])} | {mb(cesium['chromiumRssBytes'])} "
              f"| {cesium['errors']} |")


if __name__ == "__main__":
    main()
