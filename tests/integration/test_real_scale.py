"""Ingest against the fake Met at the real API's size and with its hostile bodies, over real HTTP
into real PostgreSQL: the 490,000-id listing, ``metgan ingest`` as a user runs it, bad records."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from metgan.errors import MetRetryableError
from metgan.met import ingest
from metgan.testing.fakemet.collection import HOSTILE_KINDS, REAL_LISTING

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def real_met():
    from metgan.testing.fakemet import run_in_thread

    with run_in_thread(scale="real", image_width=32) as handle:
        yield handle


@pytest.fixture
def real_env(monkeypatch, db, settings, real_met):
    monkeypatch.setenv("METGAN_MET_API_URL", real_met.url)
    monkeypatch.setenv("METGAN_IMAGE_HOSTS", real_met.image_host)
    monkeypatch.setenv("METGAN_MET_RATE", "200")
    real_met.reset()
    from metgan.config import get_settings

    return get_settings()


def test_full_discovery_lists_all_490000_ids_in_batches_that_cover_them(real_env, db, real_met):
    started = time.monotonic()
    discovery = ingest.discover_object_ids("full", batch_size=1000)
    seconds = time.monotonic() - started
    listed = list(itertools.chain(real_met.collection.sorted_ids, real_met.collection.extra_ids))
    assert len(listed) == REAL_LISTING
    assert discovery["total"] == REAL_LISTING
    batches = discovery["batches"]
    assert [b["batch"] for b in batches] == list(range(490))
    assert sum(b["count"] for b in batches) == REAL_LISTING
    assert all(b["count"] == 1000 for b in batches)
    assert batches[0]["first_id"] == listed[0] and batches[-1]["last_id"] == listed[-1]
    assert all(a["last_id"] < b["first_id"] for a, b in itertools.pairwise(batches)), "batches overlap"
    with db.connect() as conn:
        stored = conn.execute(text(
            "SELECT count(*), count(DISTINCT object_id), min(object_id), max(object_id) FROM scrape_run_items "
            "WHERE run_id = :r"), {"r": discovery["run_id"]}).one()
    assert tuple(stored) == (REAL_LISTING, REAL_LISTING, listed[0], listed[-1])
    assert real_met.counts() == {"objects": 1}, "one listing request, no object fetched"
    assert seconds < 60, f"a 490,000-id discovery took {seconds:.1f}s (about 6 s on an idle 2-core machine)"


def test_cli_ingest_full_limit_5_against_the_real_scale_listing(real_env, db, real_met):
    env = {**os.environ, "METGAN_MET_API_URL": real_met.url, "METGAN_IMAGE_HOSTS": real_met.image_host,
           "METGAN_DATA_DIR": str(real_env.data_dir), "METGAN_MET_RATE": "50"}
    result = subprocess.run([sys.executable, "-m", "metgan", "ingest", "--mode", "full", "--limit", "5",
                             "--no-bar"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "success" and summary["counts"]["objects"] == 5
    first_five = real_met.collection.sorted_ids[:5]
    truth = real_met.fake.truth()
    with db.connect() as conn:
        statuses = dict(conn.execute(text("SELECT object_id, status FROM met_objects")).all())
        images = dict(conn.execute(text("SELECT object_id, status FROM met_images WHERE seq = 0")).all())
    assert statuses == {i: ("ok" if truth[str(i)]["status"] == "ok" else "gone") for i in first_five}
    with_image = [i for i in first_five if truth[str(i)]["status"] == "ok" and truth[str(i)]["images"]]
    assert with_image and images == {i: "gone" if truth[str(i)]["images"][0]["missing"] else "ok"
                                     for i in with_image}
    assert real_met.counts()["objects"] == 1


def test_a_record_of_1_mb_is_stored_whole(real_env, db, real_met):
    huge = [i for i, kind in real_met.collection.special.items() if kind == "huge"]
    run = ingest.create_run("ids", huge, params={}, batch_size=10)
    summary = ingest.fetch_records(run["batches"][0])
    assert summary["ok"] == len(huge) == 2
    with db.connect() as conn:
        rows = conn.execute(text(
            "SELECT octet_length(raw::text), cardinality(additional_images), "
            "(SELECT count(*) FROM met_tags t WHERE t.object_id = o.object_id), "
            "(SELECT count(*) FROM met_images i WHERE i.object_id = o.object_id) "
            "FROM met_objects o WHERE object_id = ANY(:ids)"), {"ids": huge}).all()
    for size, additional, tags, images in rows:
        assert 900_000 < size <= 1_100_000
        assert additional == tags == 2500 and images == additional + 1


@pytest.fixture
def hostile_met(monkeypatch, db, settings):
    """A small fake serving every hostile body (faults off), the settings pointed at it."""
    from metgan.config import get_settings
    from metgan.testing.fakemet import run_in_thread

    with run_in_thread(objects=60, image_width=32, hostile=True, seed=3) as handle:
        monkeypatch.setenv("METGAN_MET_API_URL", handle.url)
        monkeypatch.setenv("METGAN_IMAGE_HOSTS", handle.image_host)
        monkeypatch.setenv("METGAN_MET_RATE", "200")
        get_settings()
        yield handle


def hostile_state(engine) -> dict:
    with engine.connect() as conn:
        return {
            "objects": conn.execute(text(
                "SELECT object_id, status, status_reason, title, raw FROM met_objects ORDER BY 1")).all(),
            "items": conn.execute(text("SELECT object_id, status, reason FROM scrape_run_items ORDER BY 1")).all(),
            "tags": conn.execute(text("SELECT object_id, seq, term FROM met_tags ORDER BY 1, 2")).all(),
        }


def test_hostile_records_are_recorded_on_their_objects_while_the_batch_is_stored(hostile_met, db):
    by_kind = {kind: i for i, kind in hostile_met.collection.special.items()}
    assert set(by_kind) == set(HOSTILE_KINDS)
    good = [i for i, o in hostile_met.collection.objects.items()
            if o.status == "ok" and i not in hostile_met.collection.special][:8]
    ids = sorted([*by_kind.values(), *good])
    run = ingest.create_run("ids", ids, params={}, batch_size=len(ids))
    with pytest.raises(MetRetryableError, match="2 of 18 records"):
        ingest.fetch_records(run["batches"][0])

    with db.connect() as conn:
        objects = {r.object_id: r for r in conn.execute(text(
            "SELECT object_id, status, status_reason, title, medium, culture, raw FROM met_objects")).all()}
        items = dict(conn.execute(text("SELECT object_id, status FROM scrape_run_items")).all())
        tags = conn.execute(text("SELECT term FROM met_tags WHERE object_id = :i"), {"i": by_kind["nul"]}).scalars().all()
    assert all(objects[i].status == "ok" and items[i] == "ok" for i in good), "the good records were lost"
    deep, nested = objects[by_kind["deep"]], objects[by_kind["nested"]]
    assert (deep.status, items[deep.object_id]) == ("error", "error")
    assert deep.status_reason == f"object {deep.object_id}: record nested too deep to decode (RecursionError)"
    assert (nested.status, items[nested.object_id]) == ("error", "error")
    assert nested.status_reason == f"object {nested.object_id}: record nested deeper than 64 levels"
    # What PostgreSQL cannot hold is made storable, the rest of the record kept.
    measurements = {kind: objects[by_kind[kind]].raw["measurements"][0]["elementMeasurements"]
                    for kind in ("nan", "infinity", "overflow")}
    assert measurements == {"nan": {"Height": None, "Width": 4.0}, "infinity": {"Height": None, "Width": None},
                            "overflow": {"Height": None}}
    surrogate = objects[by_kind["surrogate"]]
    assert surrogate.title == "Vase \ufffd with a lone surrogate" and surrogate.culture == "\ufffd"
    assert surrogate.raw["title"] == surrogate.title
    nul = objects[by_kind["nul"]]
    assert (nul.title, nul.medium, tags) == ("Vase with NUL", None, ["Flowers"])
    assert nul.raw["title"] == "Vase with NUL" and nul.raw["medium"] == ""
    escaped = objects[by_kind["escaped_nul"]]
    assert escaped.raw["title"] == escaped.title == "C:\\u0000\\vase (text that looks like an escaped NUL)"
    for kind in ("bad_port_url", "bad_bracket_url"):
        assert objects[by_kind[kind]].status == "ok"

    before = hostile_state(db)
    with pytest.raises(MetRetryableError, match="2 of 18 records"):
        ingest.fetch_records(run["batches"][0])
    after = hostile_state(db)
    assert after == before, "a rerun changes nothing and crashes on nothing"


def test_hostile_image_urls_are_refused_on_their_rows_and_the_other_images_download(hostile_met, db):
    by_kind = {kind: i for i, kind in hostile_met.collection.special.items()}
    good = [i for i, o in hostile_met.collection.objects.items() if o.status == "ok" and o.images
            and not o.images[0].missing and i not in hostile_met.collection.special][:4]
    ids = sorted([by_kind["bad_port_url"], by_kind["bad_bracket_url"], *good])
    run = ingest.create_run("ids", ids, params={}, batch_size=len(ids))
    ingest.fetch_records(run["batches"][0])
    summary = ingest.download_images(run["batches"][0])
    assert (summary["downloaded"], summary["rejected"], summary["failed"]) == (len(good), 2, 0)
    with db.connect() as conn:
        rows = {r.object_id: r for r in conn.execute(text(
            "SELECT object_id, status, error, url FROM met_images WHERE seq = 0")).all()}
    for kind in ("bad_port_url", "bad_bracket_url"):
        row = rows[by_kind[kind]]
        assert row.status == "rejected", row
        assert row.error and "\n" not in row.error and ("URL" in row.error or "url" in row.error), row
    assert all(rows[i].status == "ok" for i in good)
    again = ingest.download_images(run["batches"][0])
    assert (again["already"], again["rejected"]) == (len(good), 2)


def test_image_redirects_are_followed_only_onto_allowed_hosts(real_env, db, real_met):
    """A same-host 302 is followed and stored; a 302 onto a host off METGAN_IMAGE_HOSTS is refused on
    that image's row, and nothing is fetched from there."""
    by_kind: dict[str, list[int]] = {}
    for object_id, kind in real_met.collection.special.items():
        by_kind.setdefault(kind, []).append(object_id)
    same, foreign = by_kind["redirect_same_host"], by_kind["redirect_foreign_host"]
    ids = sorted(same + foreign)
    run = ingest.create_run("ids", ids, params={}, batch_size=len(ids))
    ingest.fetch_records(run["batches"][0])
    ingest.download_images(run["batches"][0])
    with db.connect() as conn:
        rows = {r.object_id: r for r in conn.execute(text(
            "SELECT object_id, status, error, path FROM met_images WHERE seq = 0")).all()}
    for object_id in same:
        assert rows[object_id].status == "ok" and rows[object_id].path, rows[object_id]
    for object_id in foreign:
        row = rows[object_id]
        assert row.status == "rejected" and row.path is None, row
        assert "localhost" in row.error and "METGAN_IMAGE_HOSTS" in row.error, row
