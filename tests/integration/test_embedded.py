"""The embedded PostgreSQL server, used when METGAN_DATABASE_URL is unset."""

import json
import subprocess
import sys

import psycopg2

from metgan.db import embedded

WHO = ("import json, psycopg2; from metgan.db import engine;"
       "url = engine.database_url();"
       "c = psycopg2.connect(url); cur = c.cursor(); cur.execute('SELECT pg_postmaster_start_time()::text');"
       "print(json.dumps({'url': url, 'started': cur.fetchone()[0]}))")


def test_two_processes_get_one_server_and_data_survives_a_restart(embedded_env):
    env, data_dir = embedded_env
    procs = [subprocess.Popen([sys.executable, "-c", WHO], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    first, second = (json.loads(out) for out, _ in outs)
    assert first == second  # same socket URL and the same postmaster start time: one server

    conn = psycopg2.connect(first["url"])
    conn.autocommit = True
    conn.cursor().execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
    conn.close()

    assert embedded.stop_server(data_dir) is True
    assert not embedded.is_running(data_dir)

    again = subprocess.run([sys.executable, "-c", WHO], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    url = json.loads(again.stdout)["url"]
    conn = psycopg2.connect(url)
    cur = conn.cursor()
    cur.execute("SELECT v FROM kept")
    assert cur.fetchall() == [("still here",)]
    conn.close()


def test_cli_migrates_the_embedded_server(embedded_env):
    env, _ = embedded_env
    first = subprocess.run([sys.executable, "-m", "metgan", "db", "migrate"], env=env,
                           capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stderr
    assert "applied 0001_initial_schema.sql" in first.stdout
    status = subprocess.run([sys.executable, "-m", "metgan", "db", "status"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert "PostgreSQL 16" in status.stdout
    assert "pending" not in status.stdout


QUIET_START = ("import logging, warnings; logging.basicConfig(level=logging.INFO); warnings.simplefilter('default');"
               "from metgan.db import embedded, engine; from metgan.config import get_settings;"
               "engine.database_url(); engine.database_url(); print(embedded.is_running(get_settings().data_dir))")


def test_starting_the_embedded_server_adds_no_noise_to_a_task_log(embedded_env):
    """An Airflow task logs at INFO with warnings shown: starting (and finding running) the server
    must not add pgserver's "already running" lines or the XDG_RUNTIME_DIR warning."""
    env, _ = embedded_env
    env = {k: v for k, v in env.items() if k != "XDG_RUNTIME_DIR"}
    for attempt in ("starts it", "finds it running"):
        result = subprocess.run([sys.executable, "-c", QUIET_START], env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0 and result.stdout.strip() == "True", (attempt, result.stderr)
        assert "already running" not in result.stderr, (attempt, result.stderr)
        assert "XDG_RUNTIME_DIR" not in result.stderr, (attempt, result.stderr)
        assert "pgserver" not in result.stderr, (attempt, result.stderr)


def test_unmigrated_embedded_database_is_one_line_saying_run_migrate(embedded_env):
    """The default path of a new user: no METGAN_DATABASE_URL, `metgan ingest` before `db migrate`."""
    env, _ = embedded_env
    result = subprocess.run([sys.executable, "-m", "metgan", "ingest", "--mode", "targeted"], env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert "has no metgan schema; run `metgan db migrate`" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_process_that_loses_the_race_to_create_the_data_folder_still_gets_the_server(monkeypatch, embedded_env):
    """Two processes starting the embedded server at once: the other one creates <data>/postgres
    between this one's check and its mkdir. Modelled by creating the folder inside mkdir itself."""
    import pathlib

    _, data_dir = embedded_env
    pgdata = embedded.pgdata_dir(data_dir)
    real_mkdir = pathlib.Path.mkdir

    def other_process_first(self, *args, **kwargs):
        if self == pgdata.resolve() or self == pgdata:
            real_mkdir(self, parents=True, exist_ok=True)  # the other process wins
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", other_process_first)
    url = embedded.ensure_server(data_dir)
    monkeypatch.undo()
    conn = psycopg2.connect(url)
    cur = conn.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)
    conn.close()
