"""Shared state of the end-to-end tests: a database and data folder with a small vase subset,
scraped from a fake Met through the library (the DAG tests cover the DAGs that do this)."""

from types import SimpleNamespace

import pytest

from tests.conftest import create_database, drop_database

POOLS = {"met_api": 4, "gpu": 1}


@pytest.fixture(scope="session")
def e2e(pg_admin_url, tmp_path_factory):
    from metgan.config import Settings
    from metgan.images.subset import build_subset
    from metgan.met import ingest
    from metgan.met.fake import run_in_thread
    from metgan.store import get_engine, migrate

    root = tmp_path_factory.mktemp("e2e")
    url = create_database(pg_admin_url, prefix="metgan_e2e")
    fake = run_in_thread(seed=5, objects=160, image_width=160)
    env = {"METGAN_DATABASE_URL": url, "METGAN_DATA_DIR": str(root / "data"),
           "METGAN_RESULTS_DIR": str(root / "results"), "METGAN_MET_API_URL": fake.url,
           "METGAN_IMAGE_HOSTS": fake.image_host}
    settings = Settings.from_env(env)
    migrate(get_engine(settings))
    discovery = ingest.discover_object_ids("search", query="vase", batch_size=40, settings=settings)
    summaries = []
    for batch in discovery["batches"]:
        summaries.append(ingest.fetch_records(batch, settings=settings))
        summaries.append(ingest.download_images(batch, settings=settings))
    ingest.finish_run(discovery["run_id"], summaries, settings=settings)
    subset = build_subset("vases", {"size": "32x40"}, settings=settings)
    assert subset["ok"] >= 20, subset
    yield SimpleNamespace(env=env, settings=settings, fake=fake, root=root)
    fake.stop()
    drop_database(pg_admin_url, url)
