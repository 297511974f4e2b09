"""What `make demo` and `make up` start they stop: the embedded PostgreSQL bookkeeping of metgan.demo.

The demo itself takes minutes, so these drive its start/stop functions directly, around a real
`metgan db migrate` that starts a real embedded server, and look for its processes with pgrep.
"""

import subprocess
import sys
from pathlib import Path

from metgan import demo
from metgan.db import embedded


def postgres_processes(data_dir: Path) -> list[str]:
    found = subprocess.run(["pgrep", "-f", str(embedded.pgdata_dir(data_dir))], capture_output=True, text=True)
    return found.stdout.split()


def migrate(env: dict) -> None:
    result = subprocess.run([sys.executable, "-m", "metgan", "db", "migrate"], env=env, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stderr


def test_a_server_the_command_started_is_stopped_and_no_process_remains(embedded_env):
    env, data_dir = embedded_env
    before = demo.embedded_before(env)
    assert before == demo.EmbeddedServer(data_dir, was_running=False)
    migrate(env)  # what prepare() runs first: it starts the embedded server
    assert embedded.is_running(data_dir) and postgres_processes(data_dir)
    message = demo.release(before)
    assert "stopped the embedded PostgreSQL this command started" in message
    assert not embedded.is_running(data_dir)
    assert postgres_processes(data_dir) == []


def test_a_server_that_was_running_before_is_left_running_and_says_how_to_stop_it(embedded_env):
    env, data_dir = embedded_env
    migrate(env)
    before = demo.embedded_before(env)
    assert before.was_running
    migrate(env)
    message = demo.release(before)
    assert "left running" in message and "metgan db stop" in message
    assert embedded.is_running(data_dir) and postgres_processes(data_dir)


def test_with_a_database_url_nothing_embedded_is_started_or_stopped(embedded_env):
    env, data_dir = embedded_env
    before = demo.embedded_before({**env, "METGAN_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/x"})
    assert before.data_dir is None
    assert "METGAN_DATABASE_URL" in demo.release(before)
    assert not (data_dir / "postgres").exists()


def test_sigterm_unwinds_like_ctrl_c_so_cleanup_runs():
    script = ("import os, signal, time\n"
              "from metgan.demo import interrupt_on_termination\n"
              "interrupt_on_termination()\n"
              "try:\n"
              "    os.kill(os.getpid(), signal.SIGTERM)\n"
              "    time.sleep(10)\n"
              "finally:\n"
              "    print('cleanup ran', flush=True)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "cleanup ran" in result.stdout, result.stderr
    assert "KeyboardInterrupt: SIGTERM" in result.stderr
