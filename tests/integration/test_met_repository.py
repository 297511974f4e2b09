"""Bulk storage of parsed Met records, runs and image rows in real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from metgan.db import met as repository
from metgan.db.met import FetchOutcome, ImageOutcome
from metgan.met import ingest, parse

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
    ingest.finish_run(search["run_id"], settings=settings)
    assert repository.watermark(db) is None, "a search run covers too little to move the watermark"
    full = ingest.create_run("full", [1, 2], params={}, settings=settings)
    with db.begin() as conn:
        conn.execute(text("UPDATE scrape_runs SET started_at = '2026-03-04 23:30+00' WHERE run_id = :r"),
                     {"r": full["run_id"]})
    repository.store_fetch_outcomes(db, full["run_id"], [FetchOutcome(1, "gone", 3, reason="Not a valid object"),
                                                         FetchOutcome(2, "error", 2, reason="timeout")])
    result = ingest.finish_run(full["run_id"], settings=settings)
    assert result["status"] == "success"
    # the counts are the database's (every batch stored its own), not what the tasks returned
    assert result["counts"]["records"] == {"gone": 1, "error": 1}
    assert result["counts"]["records_requests"] == 5
    with db.connect() as conn:
        assert conn.execute(text("SELECT counts->'records_requests' FROM scrape_runs WHERE run_id = :r"),
                            {"r": full["run_id"]}).scalar() == 5
    assert str(repository.watermark(db)) == "2026-03-04"


def test_too_many_batches_is_refused_with_the_batch_size_to_use(db, settings):
    from metgan.errors import ConfigError

    with pytest.raises(ConfigError, match="at least 3"):
        ingest.create_run("ids", list(range(1, 2050)), params={}, batch_size=2, settings=settings)


def test_a_record_postgresql_refuses_is_an_error_on_its_object_and_the_chunk_is_stored(db, settings):
    # Rows parse_record would never make (it sanitises): built by hand to reach the write path's
    # own isolation. NUL and a lone surrogate fail in psycopg2, NaN in PostgreSQL's jsonb input.
    import dataclasses

    from metgan.db.columns import ParsedObject

    def parsed(object_id: int, **columns) -> ParsedObject:
        base = parse.parse_record({"objectID": object_id, "title": f"object {object_id}",
                                   "tags": [{"term": "Flowers"}], "primaryImage": f"http://h/{object_id}.jpg"})
        return dataclasses.replace(base, columns={**base.columns, **columns})

    ids = [11, 12, 13, 14, 15]
    run = ingest.create_run("ids", ids, params={}, settings=settings)
    outcomes = [FetchOutcome(11, "ok", 1, parsed=parsed(11)),
                FetchOutcome(12, "ok", 1, parsed=parsed(12, title="NUL \x00 inside")),
                FetchOutcome(13, "ok", 1, parsed=parsed(13, raw={"objectID": 13, "title": "\ud800"})),
                FetchOutcome(14, "ok", 1, parsed=parsed(14, raw={"objectID": 14, "h": float("nan")})),
                FetchOutcome(15, "gone", 1, reason="object 15: ObjectID not found")]
    repository.store_fetch_outcomes(db, run["run_id"], outcomes)
    with db.connect() as conn:
        objects = {r.object_id: r for r in conn.execute(text(
            "SELECT object_id, status, status_reason, title FROM met_objects")).all()}
        items = dict(conn.execute(text("SELECT object_id, status FROM scrape_run_items")).all())
        children = conn.execute(text(
            "SELECT object_id, count(*) FROM met_tags GROUP BY 1 ORDER BY 1")).all()
    assert (objects[11].status, objects[11].title, items[11]) == ("ok", "object 11", "ok")
    assert (objects[15].status, items[15]) == ("gone", "gone")
    for object_id in (12, 13, 14):
        row = objects[object_id]
        assert (row.status, items[object_id], row.title) == ("error", "error", None)
        assert row.status_reason.startswith(f"object {object_id}: record refused by PostgreSQL: ")
        assert "\n" not in row.status_reason
    assert "json" in objects[14].status_reason.lower()
    assert children == [(11, 1)], "a refused record leaves no children behind"

    # A record already stored ok keeps its row when a later version is refused.
    repository.store_fetch_outcomes(db, run["run_id"], [FetchOutcome(11, "ok", 1, parsed=parsed(11, title="\x00"))])
    with db.connect() as conn:
        assert conn.execute(text("SELECT status, title FROM met_objects WHERE object_id = 11")).one() == (
            "ok", "object 11")
        assert conn.execute(text("SELECT status FROM scrape_run_items WHERE object_id = 11")).scalar() == "error"


def test_only_a_row_s_own_values_count_as_refused_not_the_connection_or_the_statement(db):
    import psycopg2

    def error_of(sql: str, close_first: bool = False) -> BaseException:
        connection = db.raw_connection()
        try:
            if close_first:
                connection.dbapi_connection.close()
            with pytest.raises(psycopg2.Error) as caught:
                connection.cursor().execute(sql)
            return caught.value
        finally:
            connection.invalidate() if close_first else connection.close()

    assert repository.row_refused(error_of("SELECT 'NaN'::jsonb"))            # 22P02
    assert repository.row_refused(error_of("SELECT 1/0"))                      # 22012
    assert repository.row_refused(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"))
    assert not repository.row_refused(error_of("SELEC 1"))                    # 42601: our statement
    assert not repository.row_refused(error_of("SELECT 1", close_first=True))  # the connection
