"""Shared state of the end-to-end tests: a fake Met, and per deployment a migrated metgan database
with empty data folders, as ``make up`` leaves them. The data comes from the DAGs, run by the
deployment under test; nothing here scrapes or builds a subset."""

import os
import subprocess
from types import SimpleNamespace

import pytest

from tests.conftest import create_database, drop_database
from tests.e2e.cluster import BIN, REPO

POOLS = {"met_api": 4, "gpu": 1}


@pytest.fixture(scope="session")
def e2e_fake_met():
    from metgan.testing.fakemet import run_in_thread

    fake = run_in_thread(seed=5, objects=160, image_width=160)
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def metgan_store(pg_admin_url, e2e_fake_met, tmp_path_factory):
    """A fresh metgan database migrated by the CLI (``metgan db migrate``, what ``make up`` runs),
    its data and results folders, and the environment the deployment's processes get."""
    root = tmp_path_factory.mktemp("metgan")
    url = create_database(pg_admin_url, prefix="metgan_e2e")
    env = {"METGAN_DATABASE_URL": url, "METGAN_DATA_DIR": str(root / "data"),
           "METGAN_RESULTS_DIR": str(root / "results"), "METGAN_MET_API_URL": e2e_fake_met.url,
           "METGAN_IMAGE_HOSTS": e2e_fake_met.image_host}
    cli_env = {**{k: v for k, v in os.environ.items() if not k.startswith("METGAN_")}, **env,
               "PYTHONPATH": str(REPO)}
    migrated = subprocess.run([str(BIN / "metgan"), "db", "migrate"], env=cli_env, capture_output=True,
                              text=True, timeout=120)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    yield SimpleNamespace(env=env, url=url, root=root, fake=e2e_fake_met,
                          data_dir=root / "data", results_dir=root / "results")
    drop_database(pg_admin_url, url)
