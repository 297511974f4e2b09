"""The hostile server, one per module, its request log cleared before each test."""

from __future__ import annotations

import pytest

from tests.hostile.server import HostileServer


@pytest.fixture(scope="module")
def _hostile_server():
    server = HostileServer().start()
    yield server
    server.stop()


@pytest.fixture
def hostile(_hostile_server) -> HostileServer:
    _hostile_server.paths.clear()
    _hostile_server.sent.clear()
    return _hostile_server
