"""Shared pieces of the real-browser tests (tests/test_browser_book.py, tests/test_jupyterlab.py).

Headless Chromium from Debian's packages, driven by Playwright for Python (its own browser
download does not work offline, so it launches ``/usr/bin/chromium``). The CDN assets the built
book loads (MathJax 3, require.js, the ipywidgets HTML manager) are answered from a local npm
install in ``tests/browser/node_modules`` (``scripts/setup.sh`` installs all three pieces), so
the tests run with no network. When a piece is missing the tests skip and name it; with
``GENAI_REQUIRE_BROWSER=1`` (set by ``.ci/run``) they fail instead, so CI cannot skip them.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "tests" / "browser" / "node_modules"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",  # lets the audio check call play()
]

# The one console error every page of the book logs, with the reason it stays: Jupyter Book 1.0.4
# adds sphinx-thebe 0.3.1's inline config script to every page twice (sphinx-togglebutton's too),
# so the second copy redeclares the top-level `const THEBE_JS_URL`. Harmless: the first copy is
# the one used, and thebe only starts when a reader presses the live-code button.
ALLOWED_PAGE_ERRORS = {"Identifier 'THEBE_JS_URL' has already been declared"}

# CDN address prefix -> folder of the local npm install that answers it.
CDN_MAP = {
    "https://cdn.jsdelivr.net/npm/mathjax@3/": NODE_MODULES / "mathjax",
    "https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.4/require.min.js": NODE_MODULES / "requirejs/require.js",
}
_NPM_CDN = re.compile(r"https://cdn\.jsdelivr\.net/npm/((?:@[^/@]+/)?[^/@]+)@([^/]+)/(.*)")
_TYPES = {".js": "application/javascript", ".css": "text/css", ".woff": "font/woff", ".woff2": "font/woff2"}


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def missing_pieces() -> list[str]:
    """What the browser tests need and this machine lacks (empty when they can run)."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the Python package playwright (pip install -r requirements.txt)")
    if chromium_path() is None:
        missing.append("Chromium (as root: apt-get install -y chromium; scripts/setup.sh does it)")
    for pkg in ("mathjax", "requirejs", "@jupyter-widgets/html-manager", "axe-core"):
        if not (NODE_MODULES / pkg / "package.json").exists():
            missing.append(f"the npm package {pkg} in tests/browser (cd tests/browser && npm ci)")
    return missing


def require_browser() -> None:
    """Skip (or, under GENAI_REQUIRE_BROWSER=1, fail) when a piece is missing, naming it."""
    missing = missing_pieces()
    if missing:
        msg = "browser test needs " + "; ".join(missing)
        if os.environ.get("GENAI_REQUIRE_BROWSER") == "1":
            pytest.fail(msg + " (GENAI_REQUIRE_BROWSER=1: CI must run this test)")
        pytest.skip(msg)


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium browser (Playwright sync API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def local_file_for(url: str) -> Path | None:
    """The local copy that answers a CDN request, or None."""
    url = url.split("?", 1)[0].split("#", 1)[0]
    for prefix, target in CDN_MAP.items():
        if url == prefix or (prefix.endswith("/") and url.startswith(prefix)):
            path = target / url[len(prefix) :] if prefix.endswith("/") else target
            return path if path.is_file() else None
    m = _NPM_CDN.match(url)
    if m:
        path = NODE_MODULES / m.group(1) / m.group(3)
        return path if path.is_file() else None
    return None


def route_offline(context, unserved: list[str]) -> None:
    """Answer CDN requests from the local npm copies; refuse (and record) any other remote one."""

    def handle(route) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "data:", "blob:", "about:")):
            route.continue_()
            return
        path = local_file_for(url)
        if path is None:
            unserved.append(url)
            route.abort()
            return
        route.fulfill(
            status=200,
            body=path.read_bytes(),
            headers={
                "Content-Type": _TYPES.get(path.suffix, "application/octet-stream"),
                "Access-Control-Allow-Origin": "*",
            },
        )

    context.route("**/*", handle)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (a free port) in a thread; yields the base address."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    """Wait until something listens on 127.0.0.1:port (loopback only, as tests/conftest allows)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.25)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} after {timeout:.0f} s")


def screenshot_dir(name: str, tmp_path_factory) -> Path:
    """Where screenshots go: $GENAI_SCREENSHOTS/<name> if set, else a pytest temp folder."""
    base = os.environ.get("GENAI_SCREENSHOTS")
    folder = Path(base) / name if base else tmp_path_factory.mktemp(f"screenshots_{name}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
