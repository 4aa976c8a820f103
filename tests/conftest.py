"""Test-suite set-up: fast mode, a private cache, and no network for any unit test."""

from __future__ import annotations

import os
import socket
import tempfile

import pytest

# Notebooks executed by nbval inherit this environment: tiny data, few steps.
os.environ.setdefault("GENAI_FAST", "1")
os.environ.setdefault("GENAI_CACHE_DIR", tempfile.mkdtemp(prefix="genai_cache_"))


class NetworkBlockedError(RuntimeError):
    """Raised when a test tries to open a network connection."""


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to connect anywhere fails the test (loopback for local tools excepted)."""

    def guard(host: object) -> None:
        name = host[0] if isinstance(host, tuple) else host
        if name not in ("127.0.0.1", "localhost", "::1") and not (isinstance(name, str) and name.startswith("/")):
            raise NetworkBlockedError(f"a test tried to open a network connection to {host!r}")

    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def connect(self: socket.socket, address: object) -> None:
        guard(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        guard(address)
        return real_connect_ex(self, address)

    def create_connection(address: object, *args: object, **kwargs: object) -> socket.socket:
        guard(address)
        raise NetworkBlockedError(f"a test tried to open a network connection to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "create_connection", create_connection)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


# The two longest files (minutes each) go first, so that under scripts/test.sh's two
# pytest-xdist workers (which hand out whole files in collection order) each starts at once on a
# worker of its own instead of being the tail of the run.
FIRST = ("tests/test_readme_commands.py", "tests/test_browser_book.py")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    def rank(item) -> int:
        path = item.nodeid.split("::")[0]
        return FIRST.index(path) if path in FIRST else len(FIRST)

    items.sort(key=rank)  # stable: the rest keep their order
