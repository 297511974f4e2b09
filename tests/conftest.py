"""Shared fixtures: a real PostgreSQL database per test session, isolated data folders.

The database is a fresh one on the server at 127.0.0.1:5432 when it answers, else on the
embedded server (set ``METGAN_TEST_SERVER=embedded`` to force that path). Every ``METGAN_*``
variable the caller had is cleared first, so the developer's environment never leaks in.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import psycopg2
import pytest

from tests.e2e.ui import CHROMIUM

TEST_SERVER_MODE = os.environ.pop("METGAN_TEST_SERVER", "auto")
for _name in [n for n in os.environ if n.startswith("METGAN_")]:
    del os.environ[_name]

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# Airflow reads its configuration when first imported, so its test home is set here, before any
# test module can import it: a throwaway AIRFLOW_HOME (SQLite metadata) with the project's DAGs.
os.environ.update({
    "AIRFLOW_HOME": tempfile.mkdtemp(prefix="metgan-airflow-test-"),
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
})

pytest_plugins = ["tests.fakemet"] if (Path(__file__).parent / "fakemet.py").exists() else []
LOCAL_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def local_server_answers() -> bool:
    try:
        psycopg2.connect(LOCAL_ADMIN_URL, connect_timeout=3).close()
        return True
    except psycopg2.OperationalError:
        return False


def with_database(url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=database).render_as_string(hide_password=False)


def create_database(admin_url: str, prefix: str = "metgan_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return with_database(admin_url, name)


def drop_database(admin_url: str, url: str) -> None:
    from sqlalchemy.engine import make_url

    from metgan.db.engine import dispose_all

    dispose_all()
    name = make_url(url).database
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """URL of the ``postgres`` database on the server the tests use."""
    if TEST_SERVER_MODE != "embedded" and local_server_answers():
        yield LOCAL_ADMIN_URL
        return
    yield from embedded_server("metgan-test-pg-")


def embedded_server(prefix: str):
    """An embedded server in a fresh folder outside pytest's basetemp: pgserver runs PostgreSQL as
    an unprivileged user who must traverse the path, and pytest resets its basetemp root to 0700."""
    import shutil

    from metgan.db import embedded

    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield embedded.ensure_server(data_dir)
    finally:
        embedded.stop_server(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(pg_admin_url) -> str:
    """A fresh, migrated database for this test session; METGAN_DATABASE_URL points at it."""
    from metgan.db import get_engine, migrate

    url = create_database(pg_admin_url)
    os.environ["METGAN_DATABASE_URL"] = url
    migrate(get_engine())
    yield url
    os.environ.pop("METGAN_DATABASE_URL", None)
    drop_database(pg_admin_url, url)


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """Settings with data and results under this test's tmp_path."""
    from metgan.config import get_settings

    monkeypatch.setenv("METGAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("METGAN_RESULTS_DIR", str(tmp_path / "results"))
    return get_settings()


@pytest.fixture
def db(database_url, settings):
    """The session database, emptied of data before the test (the schema stays)."""
    from sqlalchemy import text

    from metgan.db import get_engine

    engine = get_engine()
    with engine.begin() as conn:
        tables = conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'schema_migrations'")).scalars().all()
        if tables:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    return engine


@pytest.fixture
def embedded_env():
    """(environment, data_dir) for a CLI subprocess on its own embedded server: no METGAN_* of the
    caller, data under a fresh folder; the server is stopped and the folder removed afterwards."""
    import shutil

    from metgan.db import embedded

    # outside pytest's basetemp, which pytest keeps at 0700: PostgreSQL runs as another user
    data_dir = Path(tempfile.mkdtemp(prefix="metgan-embedded-")) / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("METGAN_")}
    env["METGAN_DATA_DIR"] = str(data_dir)
    yield env, data_dir
    if (data_dir / "postgres").exists():
        embedded.stop_server(data_dir)
    shutil.rmtree(data_dir.parent, ignore_errors=True)


# What a run could not test, said where a developer looks: the last lines before pytest's own
# count. Each prerequisite: its name, how to tell it is missing, the test files that need it, and
# how to install it.
PREREQUISITES = (
    ("Chromium", lambda: not CHROMIUM.exists(), ("tests/e2e/",),
     "apt-get install -y --no-install-recommends chromium fonts-dejavu-core"),
    ("Redis at 127.0.0.1:6379", lambda: not redis_answers(), ("tests/e2e/test_celery.py",),
     "apt-get install -y redis-server redis-tools && redis-server --daemonize yes --bind 127.0.0.1 --save ''"),
)


def redis_answers() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter):
    """After pytest's short summary: how many tests were skipped, and how to install what the
    skipped or failed tests of this run needed (.ci/run installs all of it)."""
    result = yield
    stats = terminalreporter.stats
    skipped = [r for r in stats.get("skipped", []) if getattr(r, "when", None) in ("setup", "call")]
    not_passed = skipped + [r for key in ("failed", "error") for r in stats.get(key, [])
                            if hasattr(r, "nodeid")]
    missing = [(name, install) for name, is_missing, paths, install in PREREQUISITES
               if any(r.nodeid.startswith(paths) for r in not_passed) and is_missing()]
    if not skipped and not missing:
        return result
    write = terminalreporter.write_line
    terminalreporter.write_sep("=", "not tested in this run")
    write(f"{len(skipped)} test{'s' if len(skipped) != 1 else ''} skipped (reasons above, under 'short test summary')")
    for name, install in missing:
        write(f"{name} is missing: {install}")
    if missing:
        write("or run .ci/run as root: it installs these, starts PostgreSQL and Redis, then runs make test")
    return result
