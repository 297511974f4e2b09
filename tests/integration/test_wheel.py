"""The built wheel, installed non-editable into a fresh virtualenv, works from a folder outside the
checkout: its SQL ships inside the package, and a scrape + subset build run through its own CLI.

The fresh virtualenv gets metgan from the wheel alone; its third-party dependencies come from the
test's own environment through a path entry (installing TensorFlow and Airflow again would cost
minutes and gigabytes without testing anything of ours).
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, create_database, drop_database
from tests.e2e.cluster import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy without the checkout's build/: setuptools builds in the tree and reuses
    # build/lib, so a file an earlier build left there would reach the wheel whatever package-data says.
    source = tmp_path_factory.mktemp("source") / "metgan"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", ".airflow",
        ".demo", "data", "results"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
                   check=True, cwd=out)
    (built,) = out.glob("metgan-*.whl")
    return built


def test_wheel_carries_the_migrations_and_named_queries(wheel):
    # The top-level sql/ installs as the package metgan.sql (pyproject's package-dir).
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = sorted(p.name for p in (REPO / "sql").glob("*.sql"))
    queries = sorted(p.name for p in (REPO / "sql" / "queries").glob("*.sql"))
    assert migrations and queries
    for name in migrations:
        assert f"metgan/sql/{name}" in names
    for name in queries:
        assert f"metgan/sql/queries/{name}" in names


def test_wheel_carries_every_module(wheel):
    # pyproject lists the packages (find cannot map sql/ to metgan.sql): a new one left out of the
    # list would be missing from every installed copy, and only there.
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = sorted(path.relative_to(REPO).as_posix() for path in (REPO / "metgan").rglob("*.py")
                     if "__pycache__" not in path.parts)
    assert len(modules) > 50
    assert [module for module in modules if module not in names] == []


def test_wheel_carries_the_report_template_style_and_script(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = sorted(p.name for p in (REPO / "metgan" / "viz" / "templates").iterdir() if p.is_file())
    assert {"report.html.j2", "report.css", "report.js"} <= set(templates)
    for name in templates:
        assert f"metgan/viz/templates/{name}" in names


def test_installed_wheel_migrates_scrapes_and_builds_a_subset(wheel, tmp_path, pg_admin_url):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # Without the caller's PYTHONPATH: with a checkout on it (its metgan.egg-info beside the package),
    # pip finds metgan "already satisfied" and installs nothing into the new virtualenv.
    outer = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    str(wheel)], check=True, env=outer)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # A plain path line: the outer environment's packages, but not its .pth files (the editable
    # install of this checkout is one of those), so metgan can only come from the wheel.
    Path(purelib, "outer-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    url = create_database(pg_admin_url, prefix="metgan_wheel")
    port = free_port()
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METGAN_", "PYTHON"))}
    env.update({"METGAN_DATABASE_URL": url, "METGAN_DATA_DIR": str(work / "data"),
                "METGAN_RESULTS_DIR": str(work / "results"),
                "METGAN_MET_API_URL": f"http://127.0.0.1:{port}/public/collection/v1",
                "METGAN_IMAGE_HOSTS": "127.0.0.1"})
    metgan = str(venv / "bin" / "metgan")

    def run(*args: str) -> str:
        done = subprocess.run([metgan, *args], cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    where = subprocess.run([str(python), "-c", "import metgan; print(metgan.__file__)"], cwd=work, env=env,
                           check=True, capture_output=True, text=True).stdout.strip()
    assert where.startswith(purelib), where

    server = subprocess.Popen([metgan, "fake-met", "serve", "--port", str(port), "--objects", "80", "--seed", "3"],
                              cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert "applied 0001_initial_schema.sql" in run("db", "migrate")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise AssertionError("the fake Met exited")
            try:
                import urllib.request

                urllib.request.urlopen(f"http://127.0.0.1:{port}/public/collection/v1/departments", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        run("ingest", "--mode", "search", "--q", "vase", "--limit", "40")
        run("subset", "build", "vases", "--size", "32x40")
        pngs = list((work / "data" / "subsets" / "vases").rglob("*.png"))
        assert len(pngs) >= 5, pngs
    finally:
        server.terminate()
        server.wait(timeout=30)
        drop_database(pg_admin_url, url)
