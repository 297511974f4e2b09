"""Mistakes about the store are one line that says what to do, in the CLI and in library calls alike.

Each case runs the real CLI in a subprocess from a clean environment (no METGAN_* but the ones set
here) against a real PostgreSQL: a fresh unmigrated database, one migrated only part of the way, a
database name that does not exist, and a port where nothing listens.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from metgan.db import engine
from metgan.errors import DatabaseError
from metgan.met.csv_read import CSV_HEADER
from tests.conftest import REPO, create_database, drop_database, with_database

PASSWORD = "s3cret-pw"  # the server trusts local connections; the password must never be printed


def _with_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)


def metgan(url: str, *args: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
           "METGAN_DATABASE_URL": url, "METGAN_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "metgan", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def assert_one_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and PASSWORD not in result.stderr + result.stdout
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def data_dir(tmp_path):
    # a real file in the import folder, so `import-csv MetObjects.csv` gets as far as the database
    (tmp_path / "data" / "imports").mkdir(parents=True)
    (tmp_path / "data" / "imports" / "MetObjects.csv").write_text(",".join(CSV_HEADER) + "\n", encoding="utf-8")
    return tmp_path / "data"


@pytest.fixture
def fresh_database(pg_admin_url):
    """A database with no metgan schema at all, dropped afterwards."""
    if not pg_admin_url.startswith("postgresql://postgres@127.0.0.1"):
        pytest.skip("needs the PostgreSQL server at 127.0.0.1:5432")
    url = create_database(pg_admin_url, prefix="metgan_errors")
    yield url
    drop_database(pg_admin_url, url)


@pytest.mark.parametrize("command", [
    ("ingest", "--mode", "search", "--q", "vase"),
    ("ingest", "--mode", "targeted"),
    ("subset", "list"),
    ("subset", "build", "vases"),
    ("subset", "show", "vases"),
    ("import-csv", "MetObjects.csv"),
])
def test_unmigrated_database_says_run_migrate(fresh_database, data_dir, command):
    result = metgan(_with_password(fresh_database), *command, data_dir=data_dir)
    line = assert_one_line(result, "has no metgan schema", "run `metgan db migrate`", "127.0.0.1:5432")
    assert "UndefinedTable" not in line
    # no command migrates on its own (import-csv used to): the database is left as it was
    with engine.get_engine_for_url(fresh_database).connect() as conn:
        tables = conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar_one()
    engine.dispose_all()
    assert tables == 0


def test_partly_migrated_database_names_the_pending_migrations(fresh_database, data_dir, tmp_path):
    from metgan.db import engine, migrations

    first_only = tmp_path / "sql"
    first_only.mkdir()
    first = migrations.discover()[0].path
    shutil.copy(first, first_only / first.name)
    migrations.migrate(engine.get_engine_for_url(fresh_database), first_only)
    # One vase, so the targeted run gets past its selection (a named query the first schema
    # already answers) to the run's items, which only a later migration creates.
    with engine.get_engine_for_url(fresh_database).begin() as conn:
        conn.execute(text("INSERT INTO met_objects (object_id, object_name, is_public_domain, status) "
                          "VALUES (1, 'Vase', true, 'pending')"))
    engine.dispose_all()
    later = [m.path.name for m in migrations.discover()[1:]]
    assert later, "the test needs at least two migrations"
    result = metgan(_with_password(fresh_database), "ingest", "--mode", "targeted", data_dir=data_dir)
    assert_one_line(result, "pending migration", later[0], "run `metgan db migrate`")


def test_migrate_on_a_missing_database_points_at_create_database(pg_admin_url, data_dir):
    if not pg_admin_url.startswith("postgresql://postgres@127.0.0.1"):
        pytest.skip("needs the PostgreSQL server at 127.0.0.1:5432")
    url = _with_password(with_database(pg_admin_url, "metgan_no_such_database_x"))
    result = metgan(url, "db", "migrate", data_dir=data_dir)
    assert_one_line(result, "'metgan_no_such_database_x' does not exist", "127.0.0.1:5432", "--create-database")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# (`search status` is in neither list: it reads the search's folders, which are its record, and
# asks the database only who trains a running trial.)
@pytest.mark.parametrize("command", [("db", "migrate"), ("db", "status"), ("ingest", "--mode", "search", "--q", "x"),
                                     ("subset", "list"), ("import-csv", "MetObjects.csv")])
def test_unreachable_server_names_host_port_and_cause(data_dir, command):
    port = _free_port()
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/metgan"
    result = metgan(url, *command, data_dir=data_dir)
    assert_one_line(result, f"cannot connect to PostgreSQL at 127.0.0.1:{port}", "refused",
                    "check METGAN_DATABASE_URL")


def test_unknown_host_is_one_line(data_dir):
    result = metgan(f"postgresql://postgres:{PASSWORD}@no-such-host.invalid:5432/metgan", "db", "status",
                    data_dir=data_dir)
    assert_one_line(result, "no-such-host.invalid:5432", "could not translate host name")


def test_library_calls_raise_the_same_line_for_dag_tasks(fresh_database):
    """DAG tasks call the library: SQLAlchemy and raw-cursor code both get the DatabaseError."""
    from metgan.db import engine
    from metgan.db import met as repository

    eng = engine.get_engine_for_url(fresh_database)
    with pytest.raises(DatabaseError, match="has no metgan schema; run `metgan db migrate`"):
        with eng.connect() as conn:
            conn.execute(text("SELECT count(*) FROM scrape_runs"))
    with pytest.raises(DatabaseError, match="has no metgan schema"):
        with repository.transaction(eng) as cursor:
            cursor.execute("SELECT count(*) FROM scrape_runs")
    # a typo in a query on a current schema is not blamed on migrations
    from metgan.db import migrations

    migrations.migrate(eng)
    with pytest.raises(Exception, match="no_such_table") as raised:
        with eng.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))
    assert not isinstance(raised.value, DatabaseError)
    engine.dispose_all()


def test_unreachable_server_in_library_calls(tmp_path):
    from metgan.db import engine

    eng = engine.get_engine_for_url(f"postgresql://postgres:{PASSWORD}@127.0.0.1:{_free_port()}/metgan")
    with pytest.raises(DatabaseError, match="cannot connect to PostgreSQL at 127.0.0.1") as raised:
        with eng.connect():
            pass
    assert PASSWORD not in str(raised.value)
    engine.dispose_all()



def test_unknown_role_is_one_line(pg_admin_url, data_dir):
    if not pg_admin_url.startswith("postgresql://postgres@127.0.0.1"):
        pytest.skip("needs the PostgreSQL server at 127.0.0.1:5432")
    result = metgan(f"postgresql://no_such_role_x:{PASSWORD}@127.0.0.1:5432/postgres", "subset", "list",
                    data_dir=data_dir)
    assert_one_line(result, "cannot connect to PostgreSQL at 127.0.0.1:5432", 'role "no_such_role_x" does not exist')
