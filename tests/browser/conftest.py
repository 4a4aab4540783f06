"""Headless Chromium (Debian's, through Playwright) and static file servers for browser tests.

Fixtures:
  browser          session-wide playwright Browser on /usr/bin/chromium (tests FAIL if it is missing)
  static_server    factory: static_server(root_dir) -> base URL serving that folder on 127.0.0.1
  repo_server      base URL serving the repository root (harness page + node_modules/cesium)
  cesium_page      a fresh page with tests/browser/cesium_harness.html loaded; console errors and
                   page errors, failed requests and HTTP >= 400 responses are collected in
                   `page.console_errors`
  artifacts_dir    <repo>/test-artifacts (screenshots)

Never run `playwright install`: only the Python package is used, with the system Chromium.
"""

from __future__ import annotations

import functools
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("TWIN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
HARNESS = "tests/browser/cesium_harness.html"


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


class _QuietCORSHandler(SimpleHTTPRequestHandler):
    """Static files with CORS (pages and tiles may come from different ports), no request log."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".glb": "model/gltf-binary",
                      ".terrain": "application/vnd.quantized-mesh", ".pnts": "application/octet-stream",
                      ".b3dm": "application/octet-stream", ".js": "text/javascript", ".mjs": "text/javascript",
                      ".json": "application/json", ".wasm": "application/wasm"}

    def end_headers(self):
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass


@pytest.fixture(scope="session")
def static_server():
    """Factory: serve a folder on 127.0.0.1 at a free port; returns the base URL (no trailing slash)."""
    servers: list[ThreadingHTTPServer] = []

    def serve(root_dir: str | Path) -> str:
        root = Path(root_dir).resolve()
        if not root.is_dir():
            raise FileNotFoundError(root)
        handler = functools.partial(_QuietCORSHandler, directory=str(root))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def repo_server(static_server) -> str:
    cesium = REPO / "node_modules" / "cesium" / "Build" / "Cesium" / "Cesium.js"
    if not cesium.is_file():
        pytest.fail(f"CesiumJS not found at {cesium}: run scripts/install_node_deps.sh")
    return static_server(REPO)


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright Python package is missing: .venv/bin/pip install playwright "
                    "(do not run `playwright install`; the system Chromium is used)")
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it with `apt-get install chromium` "
                    "(or point TWIN_CHROMIUM at a Chromium binary)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def artifacts_dir() -> Path:
    path = REPO / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def cesium_page(browser, repo_server):
    """A 1280x800 page with the Cesium harness loaded and its viewer ready."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda e: page.console_errors.append(f"pageerror: {e}"))
    page.on("requestfailed", lambda r: page.console_errors.append(f"requestfailed: {r.url} {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and page.console_errors.append(f"HTTP {r.status}: {r.url}"))
    page.set_default_timeout(90_000)
    page.goto(f"{repo_server}/{HARNESS}")
    page.wait_for_function("window.harnessReady !== undefined")
    page.evaluate("window.harnessReady")
    yield page
    context.close()


@pytest.fixture(scope="session")
def tiled_tianhe(tmp_path_factory) -> Path:
    """The sample Tianhe twin with its 3D Tiles, built once per test worker."""
    from tiles.build import build_tiles
    from twin.build import build_twin

    out = tmp_path_factory.mktemp("tiled-tianhe") / "twin"
    report = build_twin(REPO / "data" / "tianhe" / "city.toml", out)
    build_tiles(report.store, out / "tiles")
    return out


@pytest.fixture(scope="session")
def serve_app():
    """Serve a FastAPI app with uvicorn on a free 127.0.0.1 port in a thread: `url = serve_app(app)`.
    Every server started this way stops at the end of the session."""
    import socket
    import threading
    import time

    import uvicorn

    running = []

    def serve(app) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        running.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield serve
    for server, thread in running:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def open_viewer(browser):
    """Open `url + "/"` in a 1280x800 page (with an API key in the session when given).
    Returns (context, page, errors, foreign): console/page errors and HTTP >= 400 responses,
    and requests to any host but 127.0.0.1. The caller closes the context."""

    def open_(url: str, key: str | None = None):
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        if key:
            context.add_init_script(f"sessionStorage.setItem('twin.apiKey', {key!r})")
        page = context.new_page()
        page.set_default_timeout(90_000)
        errors: list[str] = []
        foreign: list[str] = []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
        page.on("response", lambda r: r.status >= 400 and errors.append(f"HTTP {r.status}: {r.url}"))
        page.on("request", lambda r: r.url.startswith(("http:", "https:", "ws:", "wss:"))
                and not r.url.startswith("http://127.0.0.1:") and foreign.append(r.url))
        page.goto(f"{url}/")
        return context, page, errors, foreign

    return open_
