"""Ingest end to end over real HTTP (the fake Met) into real PostgreSQL and a real image folder."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from metgan import pipeline
from metgan.config import get_settings
from metgan.db import met as repository
from metgan.errors import MetRetryableError
from metgan.met import ingest

pytest_plugins = ["tests.fakemet"]

REPO = Path(__file__).resolve().parents[2]
SMALL_SCALE = 0.5  # the fake's web-large rendition, which seq 0 downloads


@pytest.fixture
def fake_met_options() -> dict:
    return {"objects": 60, "seed": 11, "image_width": 48}


@pytest.fixture
def met_env(monkeypatch, db, settings, fake_met):
    """Settings pointed at the fake Met: one worker at 40 req/s, short timeouts."""
    monkeypatch.setenv("METGAN_MET_RATE", "40")
    monkeypatch.setenv("METGAN_MET_WORKERS", "1")
    monkeypatch.setenv("METGAN_MET_TIMEOUT", "1.5")
    return get_settings()


def ingest_like_airflow(mode: str = "full", tries: int = 4, **options) -> dict:
    """The pipeline's one orchestration (discover → records → images → finish), each batch step
    tried up to ``tries`` times as the DAG's task retries would; returns the finished run."""
    return pipeline.run_ingest(mode, batch_size=16, tries=tries, new_run=True, **options)


def state(engine, images_dir: Path) -> dict:
    with engine.connect() as conn:
        objects = conn.execute(text(
            "SELECT object_id, status, status_reason, raw, updated_at FROM met_objects ORDER BY 1")).all()
        images = conn.execute(text("SELECT * FROM met_images ORDER BY object_id, seq")).all()
        children = conn.execute(text(
            "SELECT (SELECT count(*) FROM met_constituents), (SELECT count(*) FROM met_tags)")).one()
    files = {str(p.relative_to(images_dir)): (p.stat().st_ino, p.stat().st_mtime_ns)
             for p in images_dir.rglob("*") if p.is_file()} if images_dir.exists() else {}
    return {"objects": objects, "images": images, "children": tuple(children), "files": files}


def expected_primary(truth: dict) -> dict[int, dict]:
    """object id → its primary image's truth, for the objects the API serves."""
    return {int(i): t["images"][0] for i, t in truth.items() if t["status"] == "ok" and t["images"]}


def assert_complete(engine, images_dir: Path, truth: dict) -> None:
    """Every object and primary image stored once, as the fake's truth says it should be."""
    with engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT object_id, status FROM met_objects")).all())
        images = {r.object_id: r for r in conn.execute(text(
            "SELECT object_id, status, path, width, height, bytes, sha256, error FROM met_images "
            "WHERE seq = 0")).all()}
    assert statuses == {int(i): ("ok" if t["status"] == "ok" else "gone") for i, t in truth.items()}
    primary = expected_primary(truth)
    assert set(images) == set(primary)
    for object_id, ref in primary.items():
        row = images[object_id]
        if ref["missing"]:
            assert row.status == "gone", (object_id, row)
            continue
        assert row.status == "ok", (object_id, row)
        assert row.path == f"{object_id}/0.jpg"
        data = (images_dir / row.path).read_bytes()
        assert len(data) == row.bytes and hashlib.sha256(data).hexdigest() == row.sha256
        assert (row.width, row.height) == (max(8, round(ref["width"] * SMALL_SCALE)),
                                           max(8, round(ref["height"] * SMALL_SCALE)))
    files = sorted(str(p.relative_to(images_dir)) for p in images_dir.rglob("*") if p.is_file())
    assert files == sorted(r.path for r in images.values() if r.status == "ok"), \
        "exactly one file per stored image, and no temp file left behind"


def assert_only_images_written(data_dir: Path) -> None:
    outside = [p for p in data_dir.rglob("*") if p.is_file() and "images" not in p.relative_to(data_dir).parts[:1]]
    assert outside == []


def test_fault_soak_stores_everything_recoverable_exactly_once_and_rerun_changes_nothing(met_env, db, fake_met):
    fake_met.set_faults(seed=5, error_5xx=0.10, slow=0.03, slow_seconds=3.0, reset=0.02, truncate=0.02,
                        rate_429=0.02, retry_after=1, wrong_content_type=0.02, corrupt_image=0.02,
                        truncate_image=0.02, block_threshold=15, block_window=1.0, block_cooldown=1.0)
    finished = ingest_like_airflow()
    truth = fake_met.fake.truth()
    assert finished["status"] == "success" and finished["counts"]["objects"] == len(truth)
    stats = fake_met.stats()
    assert stats["faults_injected"].get("block", 0) > 0, "the soak must have met the block page"
    for fault in ("error_5xx", "slow", "reset", "truncate"):
        assert stats["faults_injected"].get(fault, 0) > 0, f"no {fault} fault was injected"
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM met_objects WHERE raw::text LIKE '%Incapsula%'")
                            ).scalar() == 0, "a block page was stored as a record"
        reasons = conn.execute(text("SELECT status_reason FROM met_objects WHERE status = 'gone'")).scalars().all()
    assert reasons and all(("not found" in r.lower() or "not a valid object" in r.lower()) for r in reasons)
    settings = get_settings()
    assert_complete(db, settings.images_dir, truth)
    assert_only_images_written(settings.data_dir)
    assert fake_met.max_requests_in_any_window(1.0) <= 40

    before = state(db, settings.images_dir)
    fake_met.reset()
    ingest_like_airflow()
    assert state(db, settings.images_dir) == before, "a rerun must change no row and no file"
    assert fake_met.counts().get("image", 0) == 0, "stored images were downloaded again"


def test_client_never_exceeds_its_share_of_the_rate(monkeypatch, db, settings, fake_met):
    monkeypatch.setenv("METGAN_MET_RATE", "50")
    monkeypatch.setenv("METGAN_MET_WORKERS", "2")  # this task's share: 25 req/s
    discovery = ingest.discover_object_ids("full", limit=45, batch_size=50)
    ingest.fetch_records(discovery["batches"][0])
    ingest.download_images(discovery["batches"][0])
    assert fake_met.stats()["requests"] >= 80
    assert fake_met.max_requests_in_any_window(1.0) <= 25


def test_kill_9_mid_run_then_rerun_completes_without_duplicates_or_partial_files(met_env, db, fake_met):
    fake_met.set_faults(latency=0.03)
    settings = get_settings()
    command = [sys.executable, "-m", "metgan", "ingest", "--mode", "full", "--batch-size", "20", "--no-bar"]
    env = {**os.environ, "METGAN_MET_RATE": "30"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with db.connect() as conn:
                stored = conn.execute(text("SELECT count(*) FROM met_images WHERE status = 'ok'")).scalar()
            if stored >= 8 or process.poll() is not None:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the ingest finished before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    with db.connect() as conn:
        assert conn.execute(text("SELECT status FROM scrape_runs")).scalars().all() == ["running"]

    rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "resuming run 1" in rerun.stderr
    assert "images: " in rerun.stderr and "/s, ETA" in rerun.stderr, "non-interactive progress lines"
    truth = fake_met.fake.truth()
    assert_complete(db, settings.images_dir, truth)
    assert_only_images_written(settings.data_dir)
    with db.connect() as conn:
        assert conn.execute(text("SELECT run_id, status FROM scrape_runs")).all() == [(1, "success")]
        assert conn.execute(text("SELECT count(*), count(DISTINCT object_id) FROM scrape_run_items")).one() == (
            len(truth), len(truth))
    assert not list(settings.images_dir.rglob("*.part"))


def test_image_host_outside_the_allow_list_is_refused(met_env, monkeypatch, db, fake_met):
    monkeypatch.setenv("METGAN_IMAGE_HOSTS", "images.metmuseum.org")
    discovery = ingest.discover_object_ids("full", limit=10, batch_size=10)
    ingest.fetch_records(discovery["batches"][0])
    summary = ingest.download_images(discovery["batches"][0])
    assert summary["rejected"] == summary["images"] > 0
    assert fake_met.counts().get("image", 0) == 0, "a refused host must not be contacted"
    with db.connect() as conn:
        errors = conn.execute(text("SELECT DISTINCT status, error FROM met_images WHERE seq = 0")).all()
    assert errors == [("rejected", "image host '127.0.0.1' is not in METGAN_IMAGE_HOSTS (images.metmuseum.org)")]
    images_dir = get_settings().images_dir
    assert not images_dir.exists() or not [p for p in images_dir.rglob("*") if p.is_file()]


def test_images_over_the_size_or_pixel_cap_are_refused_and_recorded(met_env, monkeypatch, db, fake_met):
    truth = fake_met.fake.truth()
    with_image = [int(i) for i, t in truth.items() if t["status"] == "ok" and t["images"]
                  and not t["images"][0]["missing"]][:6]
    inflated, huge, fine = with_image[0], with_image[1], with_image[2:]
    fake_met.set_faults(inflate_image_ids=[inflated], inflate_bytes=300_000, huge_image_ids=[huge])
    monkeypatch.setenv("METGAN_MAX_IMAGE_BYTES", "200000")
    run = ingest.create_run("ids", with_image, params={}, batch_size=10)
    ingest.fetch_records(run["batches"][0])
    summary = ingest.download_images(run["batches"][0])
    assert summary["downloaded"] == len(fine) and summary["rejected"] == 2
    with db.connect() as conn:
        rows = {r.object_id: r for r in conn.execute(text(
            "SELECT object_id, status, error, path FROM met_images WHERE seq = 0")).all()}
    assert rows[inflated].status == "rejected" and "METGAN_MAX_IMAGE_BYTES" in rows[inflated].error
    assert rows[huge].status == "rejected" and "METGAN_MAX_IMAGE_PIXELS" in rows[huge].error
    assert rows[inflated].path is None and rows[huge].path is None
    settings = get_settings()
    files = sorted(str(p.relative_to(settings.images_dir)) for p in settings.images_dir.rglob("*") if p.is_file())
    assert files == sorted(f"{i}/0.jpg" for i in fine)
    assert_only_images_written(settings.data_dir)
    fake_met.reset()
    again = ingest.download_images(run["batches"][0])
    assert again["rejected"] == 2 and again["already"] == len(fine) and fake_met.counts().get("image", 0) == 0


def test_search_department_incremental_and_limit(met_env, db, fake_met):
    truth = fake_met.fake.truth()
    collection = fake_met.collection
    vases = collection.search("vase", has_images=True)
    found = ingest.discover_object_ids("search", query="vase")
    assert found["total"] == len(vases) > 0
    assert fake_met.request_log()[-1].query in ("q=vase&hasImages=true", "hasImages=true&q=vase")

    departments = sorted({t["department_id"] for t in truth.values()})[:2]
    by_department = ingest.discover_object_ids("department", department_ids=departments, limit=5)
    assert by_department["total"] == min(5, len(collection.list_ids(department_ids=departments)))

    first = ingest.discover_object_ids("incremental", batch_size=1000)
    assert first["total"] == len(truth), "no watermark yet: incremental lists everything"
    ingest.finish_run(first["run_id"])
    since = sorted(t["metadata_date"] for t in truth.values())[len(truth) // 2]
    from datetime import date

    changed = ingest.discover_object_ids("incremental", metadata_date=since)
    assert changed["total"] == len(collection.list_ids(date.fromisoformat(since)))
    with db.connect() as conn:
        watermark_run = conn.execute(text("SELECT params->>'metadata_date' FROM scrape_runs WHERE run_id = :r"),
                                     {"r": changed["run_id"]}).scalar()
    assert watermark_run == since
    default = ingest.discover_object_ids("incremental")
    assert fake_met.request_log()[-1].query.startswith("metadataDate=")
    assert default["run_id"] > changed["run_id"]


def test_block_page_served_with_200_is_recognised_and_never_stored(met_env, db, fake_met):
    fake_met.set_faults(block_threshold=8, block_window=1.0, block_cooldown=0.5, block_status=200)
    discovery = ingest.discover_object_ids("full", limit=30, batch_size=30)
    summary = ingest.fetch_records(discovery["batches"][0])
    assert fake_met.stats()["faults_injected"].get("block", 0) > 0
    assert summary["blocked"] > 0 and summary["ok"] + summary["gone"] == 30
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM met_objects WHERE raw::text LIKE '%Incapsula%' "
                                 "OR status_reason LIKE '%Incapsula%'")).scalar() == 0


def test_a_batch_that_keeps_failing_marks_its_run_failed_and_says_so_in_one_line(met_env, db, fake_met):
    fake_met.set_faults(scope="images", error_5xx=1.0, max_per_path=1000)
    with pytest.raises(MetRetryableError) as raised:
        pipeline.run_ingest("full", limit=6, batch_size=16, tries=2)
    message = str(raised.value)
    assert message.startswith("run 1 incomplete: ") and "images in batch 0 of run 1" in message
    assert message.endswith("(1 batch(es) affected)") and "\n" not in message
    assert fake_met.counts().get("image", 0) >= 2 * 6, "an image is requested 6 times (the client) in each try"
    with db.connect() as conn:
        status, counts = conn.execute(text("SELECT status, counts FROM scrape_runs")).one()
    assert status == "failed" and "images in batch 0" in counts["reason"]
    assert sum(counts["records"].values()) == 6 and "error" not in counts["records"], "the records are stored"
    assert repository.watermark(db) is None, "a failed run does not move the watermark"
