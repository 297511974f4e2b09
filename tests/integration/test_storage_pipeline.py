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


def test_a_subset_built_on_one_worker_is_trained_from_another(s3_env, db, fake_met, monkeypatch, tmp_path):
    import csv
    import io

    from metgan.images.staging import stage_subset
    from metgan.images.subset import build_subset, subset_info

    pipeline.run_ingest("full", batch_size=10, tries=3, new_run=True)
    monkeypatch.setenv("METGAN_CACHE_DIR", str(tmp_path / "worker-b"))  # builds with an empty cache
    built = build_subset("vases", {"size": "32x40"}, settings=get_settings(), workers=1)
    assert built["ok"] > 0 and built["path"].startswith("s3://")
    store = get_settings().data_store
    rows = list(csv.DictReader(io.StringIO(store.read_bytes("subsets/vases/manifest.csv").decode())))
    assert len(rows) == built["ok"]
    assert set(store.list("subsets/vases/images")) == {f"subsets/vases/{row['file']}" for row in rows}
    assert subset_info("vases", settings=get_settings())["disk_bytes"] == sum(
        store.list("subsets/vases/images").values())

    monkeypatch.setenv("METGAN_CACHE_DIR", str(tmp_path / "worker-c"))  # a third host rebuilds: nothing to do
    assert build_subset("vases", settings=get_settings(), workers=1)["processed"] == 0
    folder = stage_subset("vases", get_settings())
    assert folder.is_relative_to(tmp_path / "worker-c")
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png")) == sorted(r["file"] for r in rows)

    from metgan.gan.data import subset_images
    assert subset_images(folder) == (len(rows), 40, 32)


def test_a_search_on_the_store_resumes_a_trial_on_another_worker_and_publishes(
        s3_env, db, fake_met, monkeypatch, tmp_path):
    import json

    from metgan.gan import search
    from metgan.images.subset import build_subset
    from tests.gan_support import TINY

    pipeline.run_ingest("full", batch_size=10, tries=3, new_run=True)
    build_subset("vases", {"size": "32x40"}, settings=get_settings(), workers=1)

    # worker B plans the search and trains its trial to epoch 2 of 3 (as if killed after that checkpoint)
    monkeypatch.setenv("METGAN_CACHE_DIR", str(tmp_path / "worker-b"))
    base = {**TINY, "epochs": 3, "swd_every": 1, "checkpoint_every": 1, "n_generated": 2, "batch_size": 4}
    [trial] = search.plan_trials("s3-search", {"loss": ["hinge"]}, subset="vases", base=base,
                                 settings=get_settings())
    first = search.train_trial("s3-search", trial["trial_id"], settings=get_settings(), until_epoch=2)
    assert first["epochs"] == 2
    store = get_settings().results_store
    key = f"s3-search/{trial['trial_id']}"
    assert store.exists(f"{key}/checkpoints/ckpt_0002.json")
    lines_b = store.read_bytes(f"{key}/metrics.jsonl").decode().splitlines()
    assert [json.loads(line)["epoch"] for line in lines_b] == [1, 2]

    # worker C (an empty cache) resumes it from the synced checkpoint: epoch 3 only
    monkeypatch.setenv("METGAN_CACHE_DIR", str(tmp_path / "worker-c"))
    result = search.train_trial("s3-search", trial["trial_id"], settings=get_settings())
    assert result["status"] == "completed" and result["epochs"] == 3
    lines_c = get_settings().results_store.read_bytes(f"{key}/metrics.jsonl").decode().splitlines()
    assert lines_c[:2] == lines_b and json.loads(lines_c[2])["epoch"] == 3, "epochs 1-2 were trained again"
    info = json.loads(get_settings().results_store.read_bytes(f"{key}/trial.json"))
    assert info["status"] == "completed" and info["images_seen"] > 0
    assert get_settings().results_store.exists(f"{key}/best/generator.keras")

    # worker D publishes the report from the store
    monkeypatch.setenv("METGAN_CACHE_DIR", str(tmp_path / "worker-d"))
    written = pipeline.publish_search("s3-search", settings=get_settings())
    assert written["statuses"] == {"completed": 1}
    report = get_settings().results_store.read_bytes("s3-search/report.html").decode()
    assert trial["trial_id"] in report


def test_a_refused_png_upload_fails_the_build_without_a_manifest_and_the_rerun_puts_only_it(
        s3_env, db, fake_met, monkeypatch):
    from metgan.errors import StorageError
    from metgan.images.subset import build_subset
    from metgan.storage import Store

    pipeline.run_ingest("full", batch_size=10, tries=3, new_run=True)
    publish = Store.publish
    refused: list[str] = []

    def flaky(self, key, **kwargs):
        if key.endswith(".png") and not refused:
            refused.append(key)
            raise StorageError(f"storage upload of {key!r} failed: refused")
        publish(self, key, **kwargs)
    monkeypatch.setattr(Store, "publish", flaky)
    with pytest.raises(StorageError, match="refused"):
        build_subset("vases", {"size": "32x40"}, settings=get_settings(), workers=1)
    store = get_settings().data_store
    assert not store.exists("subsets/vases/manifest.csv")  # no reader sees a subset missing a file
    assert refused[0] not in store.list("subsets/vases/images")

    monkeypatch.setattr(Store, "publish", publish)
    rebuilt = build_subset("vases", settings=get_settings(), workers=1)
    assert rebuilt["processed"] == 1  # the rows were kept: only the refused image is converted again
    assert refused[0] in store.list("subsets/vases/images") and store.exists("subsets/vases/manifest.csv")
    assert len(store.list("subsets/vases/images")) == rebuilt["ok"]
