"""The subset build from the host processes users run it in, not only from pytest.

An Airflow or Celery worker's main script cannot be imported a second time (its settings fail in
a child); multiprocessing's spawn and forkserver children do exactly that. Each host here is a
real separate process that builds a real subset with two workers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import text

from tests.conftest import REPO
from tests.integration.test_subset import COLLECTION, add_image, insert_objects, manifest_rows, portrait

BUILD = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
from metgan.images.subset import build_subset
print(json.dumps(build_subset("vases", {"size": "32x40"}, workers=2)))
"""

# What `.venv/bin/airflow` does when a child imports it again: its settings cannot be parsed there.
AIRFLOW_LIKE = """
import multiprocessing
if __name__ != "__main__" or multiprocessing.parent_process() is not None:
    raise ValueError("Could not parse SQLAlchemy URL from string 'airflow-db-not-allowed:///'")
""" + BUILD

# An Airflow 3 task process: its main script is .venv/bin/airflow, which imports airflow.__main__,
# and before task code runs the supervisor blocks the metadata database by pointing the
# SQLAlchemy URL at "airflow-db-not-allowed:///", in the environment too. A child that runs the
# main script again cannot even import airflow then ("Could not parse SQLAlchemy URL").
AIRFLOW_TASK = """
from airflow.__main__ import main  # noqa: F401
if __name__ == "__main__":
    import airflow.settings  # noqa: F401
    from airflow.sdk.execution_time.supervisor import block_orm_access
    block_orm_access()
""" + textwrap.indent(BUILD, "    ")

# No __main__ guard and no check: imported again, it would build the subset again in every child.
UNGUARDED = BUILD

# An embedding host (uWSGI, some notebook servers) whose sys.executable is not a Python.
EMBEDDED = "import sys\nsys.executable = '/bin/false'\n" + BUILD


def host_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.fixture
def vases(db, settings):
    insert_objects(db, COLLECTION)
    return [add_image(db, settings, oid, portrait((40 * i, 90, 120))) for i, oid in enumerate((1, 2, 3, 6, 9))]


def run_host(tmp_path, how: str, code: str) -> subprocess.CompletedProcess:
    if how == "python -c":
        command = [sys.executable, "-c", code]
    else:
        script = tmp_path / "host.py"
        script.write_text(code)
        command = [sys.executable, str(script)]
    return subprocess.run(command, env=host_env(), cwd=tmp_path, capture_output=True, text=True, timeout=180)


def assert_built(db, settings, process, shas):
    assert process.returncode == 0, process.stderr
    assert "Traceback" not in process.stderr, process.stderr
    summary = json.loads(process.stdout.strip().splitlines()[-1])
    assert (summary["ok"], summary["skipped"], summary["processed"]) == (len(shas), 0, len(shas))
    rows = manifest_rows(settings, "vases")
    assert sorted(r["sha256"] for r in rows) == sorted(shas)
    for row in rows:
        with Image.open(settings.subsets_dir / "vases" / row["file"]) as image:
            assert image.size == (32, 40)
    with db.connect() as conn:
        statuses = conn.execute(text("SELECT status, count(*) FROM subset_images GROUP BY status")).all()
    assert statuses == [("ok", len(shas))]


@pytest.mark.parametrize("how, code", [("script", AIRFLOW_TASK), ("script", AIRFLOW_LIKE), ("script", UNGUARDED),
                                       ("python -c", AIRFLOW_LIKE)],
                         ids=["airflow task process", "main script that fails in a child",
                              "script without a main guard", "python -c"])
def test_the_build_works_from_any_host_process(db, settings, vases, tmp_path, how, code):
    process = run_host(tmp_path, how, code)
    assert_built(db, settings, process, vases)
    assert "could not start" not in process.stderr and "died" not in process.stderr, process.stderr


def test_workers_that_cannot_start_are_one_warning_and_the_build_converts_in_process(db, settings, vases, tmp_path):
    process = run_host(tmp_path, "script", EMBEDDED)
    assert_built(db, settings, process, vases)
    warnings = [line for line in process.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1, process.stderr
    assert "2 of 2 converter processes could not start" in warnings[0]
    assert "converting 5 tasks in this process" in warnings[0]


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"      # a zombie has exited, it waits to be reaped


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_workers_exit_when_the_build_is_killed(db, settings, tmp_path):
    # 400 distinct images (by sha256) that are all one large noisy PNG: slow enough to kill mid-way.
    source = settings.images_dir / "big.png"
    source.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(0).integers(0, 256, (1500, 1200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(source, compress_level=1)
    count = 400
    with db.begin() as conn:
        conn.execute(text("INSERT INTO met_objects (object_id, object_name, is_public_domain, status) "
                          "VALUES (:id, 'Vase', true, 'ok')"), [{"id": i} for i in range(count)])
        conn.execute(text(
            "INSERT INTO met_images (object_id, seq, url, status, path, width, height, bytes, sha256) "
            "VALUES (:id, 0, :url, 'ok', 'big.png', 1200, 1500, 1, :sha)"),
            [{"id": i, "url": f"https://images.example/{i}.jpg", "sha": f"{i:064x}"} for i in range(count)])
    metgan = Path(sys.executable).with_name("metgan")
    build = subprocess.Popen([str(metgan), "subset", "build", "vases", "--workers", "2"], env=host_env(),
                             cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        workers: set[int] = set()
        while time.monotonic() < deadline and build.poll() is None:
            workers = children(build.pid)
            if len(workers) >= 2 and any((settings.subsets_dir / "vases").rglob("*.png")):
                break           # both workers are up and converting
            time.sleep(0.1)
        assert build.poll() is None and len(workers) >= 2, "the build never got to converting"
        build.send_signal(signal.SIGKILL)
        build.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(alive(pid) for pid in workers):
            time.sleep(0.1)
        assert not [pid for pid in workers if alive(pid)], "workers outlived their killed parent"
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
