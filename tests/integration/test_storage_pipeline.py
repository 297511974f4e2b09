"""The pipeline's stages with METGAN_DATA_DIR on an S3-compatible server (moto's, over HTTP).

Each "worker" has its own cache folder (METGAN_CACHE_DIR), so a file one wrote reaches the other
only through the server, as on two hosts.
"""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import text

from metgan import pipeline
from metgan.config import get_settings

pytest.importorskip("moto")
pytest_plugins = ["tests.fakemet"]

from metgan.testing.s3server import s3_server  # noqa: E402


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        yield server


@pytest.fixture
def fake_met_options() -> dict:
    return {"objects": 30, "seed": 4, "image_width": 40}


@pytest.fixture
def s3_env(monkeypatch, tmp_path, s3, db, fake_met):
    """Settings of a worker whose data lives on the S3 server under a prefix of this test."""
    prefix = f"t-{tmp_path.name}"
    for name, value in s3.env(f"{prefix}/data", f"{prefix}/results").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("METGAN_CACHE_DIR", str(tmp_path / "worker-a"))
    monkeypatch.setenv("METGAN_MET_RATE", "40")
    monkeypatch.setenv("METGAN_MET_WORKERS", "1")
    return get_settings()


def stored_images(db) -> dict[str, str]:
    with db.connect() as conn:
        return dict(conn.execute(text(
            "SELECT path, sha256 FROM met_images WHERE status = 'ok'")).all())


def test_ingest_puts_every_image_on_the_store_and_a_second_worker_downloads_none(
        s3_env, s3, db, fake_met, monkeypatch, tmp_path):
    finished = pipeline.run_ingest("full", batch_size=10, tries=3, new_run=True)
    assert finished["status"] == "success"
    images = stored_images(db)
    assert len(images) >= 20
    store = get_settings().data_store
    listed = store.list("images")
    assert set(listed) == {f"images/{path}" for path in images}, "one object per stored image, no temp"
    for path, sha in images.items():
        other = get_settings().data_store  # a fresh handle: the bytes come from the server
        other.mirror = tmp_path / "reader"
        assert hashlib.sha256(other.read_bytes(f"images/{path}")).hexdigest() == sha
        assert store.stored_sha256(f"images/{path}") == sha

    # worker B: an empty cache of its own, the same store: nothing is downloaded from the Met again
    monkeypatch.setenv("METGAN_CACHE_DIR", str(tmp_path / "worker-b"))
    fake_met.reset()
    again = pipeline.run_ingest("full", batch_size=10, tries=3, new_run=True)
    assert again["status"] == "success"
    assert fake_met.counts().get("image", 0) == 0, "images already on the store were fetched again"
    assert not (get_settings().data_dir / "images").exists() or not any(
        p.is_file() for p in (get_settings().data_dir / "images").rglob("*"))


def test_an_object_changed_on_the_store_is_downloaded_again(s3_env, db, fake_met):
    pipeline.run_ingest("full", batch_size=10, tries=3, new_run=True)
    path = next(iter(stored_images(db)))
    store = get_settings().data_store
    store.path(f"images/{path}").write_bytes(b"not the image")
    store.publish(f"images/{path}", sha256=hashlib.sha256(b"not the image").hexdigest())
    fake_met.reset()
    pipeline.run_ingest("full", batch_size=10, tries=3, new_run=True)
    assert fake_met.counts().get("image", 0) == 1
    assert hashlib.sha256(store.read_bytes(f"images/{path}")).hexdigest() == stored_images(db)[path]
