"""Bulk storage of parsed Met records, runs and image rows in real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from metgan.met import ingest, parse, repository
from metgan.met.repository import FetchOutcome, ImageOutcome

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "met-samples" / "objects"
RECORDS = ([json.loads(p.read_text(encoding="utf-8")) for p in sorted(SAMPLES.glob("*.json"))]
           if SAMPLES.is_dir() else [])
needs_samples = pytest.mark.skipif(not RECORDS, reason=f"no Met samples under {SAMPLES}")


def snapshot(engine) -> dict:
    with engine.connect() as conn:
        return {
            table: conn.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2")).all()
            for table in ("met_objects", "met_constituents", "met_tags", "met_images")
        }


def outcomes_for(records, extra: list[FetchOutcome] = ()) -> list[FetchOutcome]:
    return [FetchOutcome(r["objectID"], "ok", 1, parsed=parse.parse_record(r)) for r in records] + list(extra)


@needs_samples
def test_samples_are_stored_with_children_and_raw(db, settings):
    ids = [r["objectID"] for r in RECORDS] + [999999901, 999999902]
    run = ingest.create_run("ids", ids, params={}, batch_size=4, settings=settings)
    assert run["total"] == len(ids)
    assert [b["count"] for b in run["batches"]] == [4, 4, 3]
    assert run["batches"][0]["label"] == "objects 1–4"
    outcomes = outcomes_for(RECORDS, [
        FetchOutcome(999999901, "gone", 1, reason="object 999999901: ObjectID not found"),
        FetchOutcome(999999902, "error", 6, reason="HTTP 503 (after 6 attempts)"),
    ])
    repository.store_fetch_outcomes(db, run["run_id"], outcomes)
    with db.connect() as conn:
        row = conn.execute(text(
            "SELECT title, gallery_number, raw->>'title', metadata_date, additional_images, status, source "
            "FROM met_objects WHERE object_id = 436535")).one()
        assert row[0] == "Wheat Field with Cypresses" and row[1] == "822" and row[2] == row[0]
        assert len(row[4]) == 4 and row[5] == "ok" and row[6] == "api"
        assert conn.execute(text("SELECT term FROM met_tags WHERE object_id = 1000 ORDER BY seq")
                            ).scalars().all() == ["Coat of Arms", "Dishes"]
        assert conn.execute(text("SELECT count(*) FROM met_constituents WHERE object_id = 786829")).scalar() == 3
        assert conn.execute(text("SELECT count(*) FROM met_images WHERE object_id = 1027")).scalar() == 0
        images = conn.execute(text("SELECT seq, url, status FROM met_images WHERE object_id = 786829 "
                                   "ORDER BY seq")).all()
        assert len(images) == 18 and images[0][1].endswith("ESDA Kalimian Temple.jpg")
        assert {i[2] for i in images} == {"pending"}
        statuses = dict(conn.execute(text("SELECT object_id, status_reason FROM met_objects "
                                          "WHERE status <> 'ok'")).all())
        assert statuses == {999999901: "object 999999901: ObjectID not found",
                            999999902: "HTTP 503 (after 6 attempts)"}
        items = dict(conn.execute(text("SELECT coalesce(status, 'pending'), count(*) FROM scrape_run_items "
                                       "GROUP BY 1")).all())
        assert items == {"ok": len(RECORDS), "gone": 1, "error": 1}
    assert repository.batch_object_ids(db, run["run_id"], 2, pending_only=True) == [999999902]
    assert repository.unfinished_object_ids(db) == [999999902]

    before = snapshot(db)
    repository.store_fetch_outcomes(db, run["run_id"], [o for o in outcomes if o.status != "error"])
    assert snapshot(db) == before, "storing the same records again must change no row"


@needs_samples
def test_changed_record_replaces_children_and_resets_changed_images(db, settings):
    record = next(r for r in RECORDS if r["objectID"] == 436535)
    run = ingest.create_run("ids", [436535], params={}, settings=settings)
    repository.store_fetch_outcomes(db, run["run_id"], outcomes_for([record]))
    repository.store_image_outcomes(db, [ImageOutcome(436535, 0, record["primaryImageSmall"], "ok", 1,
                                                      path="436535/0.jpg", sha256="ab", bytes=2)])
    changed = dict(record, tags=[{"term": "Wheat"}], additionalImages=record["additionalImages"][:1])
    changed["additionalImages"][0] = "https://images.metmuseum.org/CRDImages/ep/original/new.jpg"
    repository.store_fetch_outcomes(db, run["run_id"], outcomes_for([changed]))
    with db.connect() as conn:
        assert conn.execute(text("SELECT term FROM met_tags WHERE object_id = 436535")).scalars().all() == ["Wheat"]
        images = conn.execute(text("SELECT seq, status, url FROM met_images WHERE object_id = 436535 "
                                   "ORDER BY seq")).all()
    assert [(s, st) for s, st, _ in images] == [(0, "ok"), (1, "pending")]
    assert images[1][2].endswith("/new.jpg")


def test_gone_and_error_never_downgrade_a_stored_record(db, settings):
    record = {"objectID": 5, "title": "t", "primaryImage": "", "metadataDate": "2020-01-01T00:00:00Z"}
    run = ingest.create_run("ids", [5], params={}, settings=settings)
    repository.store_fetch_outcomes(db, run["run_id"], outcomes_for([record]))
    repository.store_fetch_outcomes(db, run["run_id"], [FetchOutcome(5, "error", 3, reason="timeout")])
    with db.connect() as conn:
        assert conn.execute(text("SELECT status FROM met_objects WHERE object_id = 5")).scalar() == "ok"
    repository.store_fetch_outcomes(db, run["run_id"], [FetchOutcome(5, "gone", 1, reason="Not a valid object")])
    with db.connect() as conn:
        assert conn.execute(text("SELECT status, status_reason, raw->>'title' FROM met_objects")).one() == (
            "gone", "Not a valid object", "t")


def test_watermark_is_the_start_date_of_the_last_successful_full_or_incremental_run(db, settings):
    assert repository.watermark(db) is None
    search = ingest.create_run("search", [1], params={"query": "vase"}, settings=settings)
    ingest.finish_run(search["run_id"], [], settings=settings)
    assert repository.watermark(db) is None, "a search run covers too little to move the watermark"
    full = ingest.create_run("full", [1, 2], params={}, settings=settings)
    with db.begin() as conn:
        conn.execute(text("UPDATE scrape_runs SET started_at = '2026-03-04 23:30+00' WHERE run_id = :r"),
                     {"r": full["run_id"]})
    result = ingest.finish_run(full["run_id"], [{"records": {"requests": 3}, "images": {"requests": 2}}],
                               settings=settings)
    assert result["status"] == "success"
    assert result["counts"]["records_requests"] == 3 and result["counts"]["images_requests"] == 2
    assert str(repository.watermark(db)) == "2026-03-04"


def test_too_many_batches_is_refused_with_the_batch_size_to_use(db, settings):
    from metgan.errors import ConfigError

    with pytest.raises(ConfigError, match="at least 3"):
        ingest.create_run("ids", list(range(1, 2050)), params={}, batch_size=2, settings=settings)
