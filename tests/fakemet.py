"""Pytest plugin: a fake Met server for tests (``pytest_plugins = ["tests.fakemet"]``).

``fake_met`` serves a fresh 120-object collection per test on an ephemeral port, with
METGAN_MET_API_URL and METGAN_IMAGE_HOSTS pointed at it; the handle changes fault knobs
(``fake_met.set_faults(...)``) and reads the request accounting (``fake_met.stats()``,
``fake_met.max_requests_in_any_window(1.0)``). ``fake_met_session`` is one server for the session
(reset before each use); do not change its faults without restoring them.
"""

from __future__ import annotations

import pytest

FAKE_MET_OBJECTS = 120
FAKE_MET_IMAGE_WIDTH = 64


def _point_env_at(monkeypatch, handle) -> None:
    monkeypatch.setenv("METGAN_MET_API_URL", handle.url)
    monkeypatch.setenv("METGAN_IMAGE_HOSTS", handle.image_host)


@pytest.fixture
def fake_met_options() -> dict:
    """Override in a test module to change the collection, e.g. ``{"objects": 40, "seed": 3}``."""
    return {}


@pytest.fixture
def fake_met(monkeypatch, fake_met_options):
    """A fake Met for this test only (faults off unless the test sets them)."""
    from metgan.testing.fakemet import run_in_thread

    options = {"objects": FAKE_MET_OBJECTS, "image_width": FAKE_MET_IMAGE_WIDTH, **fake_met_options}
    faults = options.pop("faults", None)
    handle = run_in_thread(faults=faults, **options)
    _point_env_at(monkeypatch, handle)
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def _fake_met_session_server():
    from metgan.testing.fakemet import run_in_thread

    handle = run_in_thread(objects=FAKE_MET_OBJECTS, image_width=FAKE_MET_IMAGE_WIDTH)
    yield handle
    handle.stop()


@pytest.fixture
def fake_met_session(_fake_met_session_server, monkeypatch):
    """One fake Met shared by the session, with its request log and fault state reset for this test."""
    from metgan.testing.fakemet import Faults

    handle = _fake_met_session_server
    handle.fake.fault_state.faults = Faults()
    handle.reset()
    _point_env_at(monkeypatch, handle)
    return handle
