"""The met repository: PostgreSQL storage of scrape runs, object records and image rows, in bulk.

Every write is an upsert or an update keyed by ids, done per chunk of results in one transaction
(``psycopg2.extras.execute_values``), so a task killed at any point leaves whole chunks behind and
a rerun converges to the same rows. A record whose raw JSON did not change is not rewritten:
refetching an unchanged collection changes no row. When PostgreSQL refuses a chunk's records for
their values, they are written again one by one, each under a savepoint, and a refused record is
recorded as an error on its own object: one bad row never loses the rest of its chunk.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg2
from psycopg2.extras import Json, execute_values
from sqlalchemy import Engine

from metgan.db.columns import OBJECT_COLUMNS, ParsedObject, storable_text

log = logging.getLogger(__name__)

# Full and incremental runs cover the whole collection; only they move the watermark.
WATERMARK_MODES = ("full", "incremental")
# SQLSTATE classes that mean PostgreSQL refused a row's values (22 data exception, 23 integrity
# constraint, 54 program limit, e.g. an index row too large). Anything else (a lost connection,
# a deadlock, a syntax error) concerns the whole write and propagates.
ROW_REFUSED_CLASSES = ("22", "23", "54")
MAX_REASON = 500


@contextlib.contextmanager
def transaction(engine: Engine) -> Iterator[Any]:
    """A psycopg2 cursor in one transaction: committed on success, rolled back on error."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        yield cursor
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        connection.close()


# -- runs ----------------------------------------------------------------------------------------

def insert_run(engine: Engine, mode: str, params: dict, object_ids: Sequence[int], batch_size: int,
               metadata_date: str | None = None) -> int:
    """Create a scrape run with its items (ids in the given order, chunked into batches)."""
    with transaction(engine) as cursor:
        cursor.execute(
            "INSERT INTO scrape_runs (mode, params, metadata_date, discovered) "
            "VALUES (%s, %s, %s, %s) RETURNING run_id",
            (mode, Json(params), metadata_date, len(object_ids)))
        run_id = cursor.fetchone()[0]
        buffer = io.StringIO()
        for position, object_id in enumerate(object_ids):
            buffer.write(f"{run_id}\t{int(object_id)}\t{position // batch_size}\n")
        buffer.seek(0)
        cursor.copy_expert("COPY scrape_run_items (run_id, object_id, batch) FROM STDIN", buffer)
    return run_id


def run_batches(engine: Engine, run_id: int) -> list[tuple[int, int, int, int]]:
    """(batch, count, first_id, last_id) of each batch of a run, in batch order."""
    with transaction(engine) as cursor:
        cursor.execute(
            "SELECT batch, count(*), min(object_id), max(object_id) FROM scrape_run_items "
            "WHERE run_id = %s GROUP BY batch ORDER BY batch", (run_id,))
        return [tuple(row) for row in cursor.fetchall()]


def get_run(engine: Engine, run_id: int) -> dict | None:
    with transaction(engine) as cursor:
        cursor.execute(
            "SELECT run_id, mode, params, metadata_date, status, discovered, counts, started_at, "
            "finished_at FROM scrape_runs WHERE run_id = %s", (run_id,))
        row = cursor.fetchone()
        if row is None:
            return None
        names = [d[0] for d in cursor.description]
        return dict(zip(names, row, strict=True))


def latest_unfinished_run(engine: Engine, mode: str, request: dict) -> int | None:
    """The newest run of ``mode`` if it is unfinished (running or failed) and had ``request``."""
    with transaction(engine) as cursor:
        cursor.execute(
            "SELECT run_id, status, params->'request' = %s::jsonb FROM scrape_runs WHERE mode = %s "
            "ORDER BY run_id DESC LIMIT 1", (json.dumps(request), mode))
        row = cursor.fetchone()
    if row is None or row[1] == "success" or not row[2]:
        return None
    return row[0]


def finish_run(engine: Engine, run_id: int, status: str, counts: dict) -> None:
    with transaction(engine) as cursor:
        cursor.execute(
            "UPDATE scrape_runs SET status = %s, counts = %s, finished_at = now() WHERE run_id = %s",
            (status, Json(counts), run_id))


def run_counts(engine: Engine, run_id: int) -> dict:
    """A run's stored outcome: its objects, records and images by status, and how many requests
    its record fetches took (attempts are counted per item as each batch stores it)."""
    with transaction(engine) as cursor:
        cursor.execute("SELECT coalesce(status, 'pending'), count(*), sum(attempts) FROM scrape_run_items "
                       "WHERE run_id = %s GROUP BY 1", (run_id,))
        rows = cursor.fetchall()
        cursor.execute("SELECT i.seq = 0, i.status, count(*) FROM scrape_run_items r JOIN met_images i "
                       "ON i.object_id = r.object_id WHERE r.run_id = %s GROUP BY 1, 2", (run_id,))
        images: dict[str, int] = {}
        additional: dict[str, int] = {}
        for primary, status, count in cursor.fetchall():
            if primary:
                images[status] = count
            else:  # an additional image still pending was not asked for (download_images' additional_images)
                additional["not downloaded" if status == "pending" else status] = count
    records = {status: count for status, count, _ in rows}
    return {"objects": sum(records.values()), "records": records, "primary_images": images,
            "additional_images": additional, "records_requests": int(sum(attempts or 0 for _, _, attempts in rows))}


def object_count(engine: Engine) -> int:
    """How many objects the store holds (from the API or a CSV import)."""
    with transaction(engine) as cursor:
        cursor.execute("SELECT count(*) FROM met_objects")
        return cursor.fetchone()[0]


def watermark(engine: Engine) -> date | None:
    """Start date of the last successful full or incremental run (the next metadataDate)."""
    with transaction(engine) as cursor:
        cursor.execute(
            "SELECT (max(started_at) AT TIME ZONE 'UTC')::date FROM scrape_runs "
            "WHERE status = 'success' AND mode = ANY(%s)", (list(WATERMARK_MODES),))
        return cursor.fetchone()[0]


def unfinished_object_ids(engine: Engine) -> list[int]:
    """Objects whose last fetch failed or never happened (retried by incremental runs)."""
    with transaction(engine) as cursor:
        cursor.execute("SELECT object_id FROM met_objects WHERE status IN ('error', 'pending') "
                       "ORDER BY object_id")
        return [row[0] for row in cursor.fetchall()]


def batch_object_ids(engine: Engine, run_id: int, batch: int, *, pending_only: bool) -> list[int]:
    """The ids of one batch; with ``pending_only``, those not yet fetched ok or gone."""
    condition = "AND (status IS NULL OR status = 'error')" if pending_only else ""
    with transaction(engine) as cursor:
        cursor.execute(
            f"SELECT object_id FROM scrape_run_items WHERE run_id = %s AND batch = %s {condition} "
            "ORDER BY object_id", (run_id, batch))
        return [row[0] for row in cursor.fetchall()]


def batch_fetch_counts(engine: Engine, run_id: int, batch: int) -> dict[str, int]:
    with transaction(engine) as cursor:
        cursor.execute(
            "SELECT coalesce(status, 'pending'), count(*) FROM scrape_run_items "
            "WHERE run_id = %s AND batch = %s GROUP BY 1", (run_id, batch))
        return dict(cursor.fetchall())


# -- object records ------------------------------------------------------------------------------

@dataclass(frozen=True)
class FetchOutcome:
    """How fetching one object ended: ``parsed`` for ok, else a status and reason."""

    object_id: int
    status: str  # ok | gone | error
    attempts: int
    parsed: ParsedObject | None = None
    reason: str | None = None


_JSON_COLUMNS = {"measurements", "raw"}
_OBJECT_TEMPLATE = "(" + ", ".join(
    "%s::text[]" if c == "additional_images" else ("%s::jsonb" if c in _JSON_COLUMNS else "%s")
    for c in OBJECT_COLUMNS) + ", %s, 'ok', NULL, 'api', now())"
_OBJECT_UPDATES = ", ".join(f"{c} = EXCLUDED.{c}" for c in OBJECT_COLUMNS if c != "object_id")

UPSERT_OBJECTS = f"""
INSERT INTO met_objects ({", ".join(OBJECT_COLUMNS)}, attempts, status, status_reason, source, fetched_at)
VALUES %s
ON CONFLICT (object_id) DO UPDATE SET {_OBJECT_UPDATES},
    status = 'ok', status_reason = NULL, source = 'api',
    attempts = met_objects.attempts + EXCLUDED.attempts,
    fetched_at = now(), updated_at = now()
WHERE met_objects.raw IS DISTINCT FROM EXCLUDED.raw OR met_objects.status <> 'ok'
RETURNING object_id
"""

MARK_GONE = """
INSERT INTO met_objects (object_id, status, status_reason, attempts, fetched_at)
VALUES %s
ON CONFLICT (object_id) DO UPDATE SET status = 'gone', status_reason = EXCLUDED.status_reason,
    attempts = met_objects.attempts + EXCLUDED.attempts, fetched_at = now(), updated_at = now()
WHERE met_objects.status <> 'gone' OR met_objects.status_reason IS DISTINCT FROM EXCLUDED.status_reason
"""

# A transient failure never downgrades an object already stored ok (its record is still valid).
MARK_ERROR = """
INSERT INTO met_objects (object_id, status, status_reason, attempts)
VALUES %s
ON CONFLICT (object_id) DO UPDATE SET status = 'error', status_reason = EXCLUDED.status_reason,
    attempts = met_objects.attempts + EXCLUDED.attempts, updated_at = now()
WHERE met_objects.status NOT IN ('ok', 'gone')
"""

UPSERT_IMAGES = """
INSERT INTO met_images (object_id, seq, url) VALUES %s
ON CONFLICT (object_id, seq) DO UPDATE SET url = EXCLUDED.url, status = 'pending', path = NULL,
    width = NULL, height = NULL, bytes = NULL, sha256 = NULL, content_type = NULL, error = NULL,
    attempts = 0, downloaded_at = NULL, updated_at = now()
WHERE met_images.url <> EXCLUDED.url
"""


def _object_values(outcome: FetchOutcome) -> tuple:
    columns = outcome.parsed.columns
    values = []
    for column in OBJECT_COLUMNS:
        value = columns[column]
        if column in _JSON_COLUMNS:
            value = None if value is None else json.dumps(value, ensure_ascii=False)
        values.append(value)
    return (*values, outcome.attempts)


def one_line_reason(text: str | None) -> str | None:
    """A reason as a status column holds it: its first line, storable, at most MAX_REASON chars."""
    if text is None:
        return None
    lines = storable_text(str(text)).strip().splitlines()
    line = lines[0] if lines else ""
    return line if len(line) <= MAX_REASON else line[:MAX_REASON - 1] + "…"


def row_refused(exc: BaseException) -> bool:
    """Whether ``exc`` means one row's values were refused (not the connection or the statement).

    psycopg2 raises ValueError (UnicodeEncodeError) before sending a value it cannot encode, and
    json.dumps RecursionError for a value nested too deep: those are the row's fault too.
    """
    if isinstance(exc, psycopg2.Error):
        return (exc.pgcode or "")[:2] in ROW_REFUSED_CLASSES
    return isinstance(exc, (ValueError, RecursionError))


def _refusal(exc: BaseException) -> str:
    if isinstance(exc, psycopg2.Error):
        return (exc.pgerror or str(exc)).removeprefix("ERROR:").strip()
    return f"{type(exc).__name__}: {exc}"


def _write_records(cursor, ok: list[FetchOutcome]) -> None:
    changed = {row[0] for row in execute_values(
        cursor, UPSERT_OBJECTS, [_object_values(o) for o in ok],
        template=_OBJECT_TEMPLATE, page_size=len(ok), fetch=True)}
    if changed:
        _replace_children(cursor, [o.parsed for o in ok if o.object_id in changed])


def _write_records_isolated(cursor, ok: list[FetchOutcome]) -> dict[int, FetchOutcome]:
    """Write ``ok`` in bulk; if PostgreSQL refuses a value, row by row under savepoints.

    Returns the records refused, as error outcomes naming PostgreSQL's reason. The per-row path
    costs a round trip per record, so it runs only for a chunk whose bulk statement failed.
    """
    if not ok:
        return {}
    cursor.execute("SAVEPOINT bulk_records")
    try:
        _write_records(cursor, ok)
        cursor.execute("RELEASE SAVEPOINT bulk_records")
        return {}
    except Exception as exc:
        if not row_refused(exc):
            raise
        cursor.execute("ROLLBACK TO SAVEPOINT bulk_records")
        log.warning("bulk write of %d records refused (%s); writing them one by one",
                    len(ok), one_line_reason(_refusal(exc)))
    refused: dict[int, FetchOutcome] = {}
    for outcome in ok:
        cursor.execute("SAVEPOINT one_record")
        try:
            _write_records(cursor, [outcome])
            cursor.execute("RELEASE SAVEPOINT one_record")
        except Exception as exc:
            if not row_refused(exc):
                raise
            cursor.execute("ROLLBACK TO SAVEPOINT one_record")
            reason = one_line_reason(f"object {outcome.object_id}: record refused by PostgreSQL: "
                                     f"{_refusal(exc)}")
            log.warning("%s", reason)
            refused[outcome.object_id] = FetchOutcome(outcome.object_id, "error", outcome.attempts,
                                                      reason=reason)
    return refused


def store_fetch_outcomes(engine: Engine, run_id: int, outcomes: Iterable[FetchOutcome]) -> None:
    """Write one chunk of fetch outcomes (records, gone and failed objects) in one transaction.

    A record PostgreSQL refuses is stored as an error on its object (and its run item) with the
    reason; the chunk's other outcomes are stored all the same.
    """
    outcomes = list(outcomes)
    with transaction(engine) as cursor:
        refused = _write_records_isolated(cursor, [o for o in outcomes if o.status == "ok"])
        outcomes = [refused.get(o.object_id, o) if o.status == "ok" else o for o in outcomes]
        gone = [o for o in outcomes if o.status == "gone"]
        errors = [o for o in outcomes if o.status == "error"]
        if gone:
            execute_values(cursor, MARK_GONE, [(o.object_id, "gone", one_line_reason(o.reason), o.attempts, "now")
                                               for o in gone],
                           template="(%s, %s, %s, %s, %s::timestamptz)")
        if errors:
            execute_values(cursor, MARK_ERROR, [(o.object_id, "error", one_line_reason(o.reason), o.attempts)
                                                for o in errors])
        execute_values(
            cursor,
            "UPDATE scrape_run_items AS i SET status = v.status, reason = v.reason, "
            "attempts = i.attempts + v.attempts, fetched_at = now() "
            "FROM (VALUES %s) AS v (run_id, object_id, status, reason, attempts) "
            "WHERE i.run_id = v.run_id AND i.object_id = v.object_id",
            [(run_id, o.object_id, o.status, one_line_reason(o.reason), o.attempts) for o in outcomes],
            template="(%s::bigint, %s::integer, %s, %s, %s::integer)", page_size=max(len(outcomes), 1))


def _replace_children(cursor, parsed: list[ParsedObject]) -> None:
    """Constituents, tags and image rows of records that changed (or are new)."""
    ids = [p.object_id for p in parsed]
    cursor.execute("DELETE FROM met_constituents WHERE object_id = ANY(%s)", (ids,))
    cursor.execute("DELETE FROM met_tags WHERE object_id = ANY(%s)", (ids,))
    constituents = [
        (p.object_id, c["seq"], c["constituent_id"], c["role"], c["name"], c["prefix"], c["suffix"],
         c["display_bio"], c["alpha_sort"], c["nationality"], c["begin_date"], c["end_date"],
         c["gender"], c["ulan_url"], c["wikidata_url"])
        for p in parsed for c in p.constituents]
    if constituents:
        execute_values(
            cursor,
            "INSERT INTO met_constituents (object_id, seq, constituent_id, role, name, prefix, suffix, "
            "display_bio, alpha_sort, nationality, begin_date, end_date, gender, ulan_url, "
            "wikidata_url) VALUES %s", constituents, page_size=1000)
    tags = [(p.object_id, t["seq"], t["term"], t["aat_url"], t["wikidata_url"])
            for p in parsed for t in p.tags]
    if tags:
        execute_values(cursor, "INSERT INTO met_tags (object_id, seq, term, aat_url, wikidata_url) "
                               "VALUES %s", tags, page_size=1000)
    images = [(p.object_id, seq, url) for p in parsed for seq, url in enumerate(p.image_urls)]
    if images:
        execute_values(cursor, UPSERT_IMAGES, images, page_size=1000)
    execute_values(
        cursor,
        "DELETE FROM met_images AS m USING (VALUES %s) AS v (object_id, n) "
        "WHERE m.object_id = v.object_id AND m.seq >= v.n",
        [(p.object_id, len(p.image_urls)) for p in parsed], page_size=1000)


# -- images --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageRow:
    object_id: int
    seq: int
    url: str
    status: str
    path: str | None
    sha256: str | None
    bytes: int | None
    attempts: int


def batch_images(engine: Engine, run_id: int, batch: int, *, additional: bool) -> list[ImageRow]:
    """Image rows of a batch's objects stored ok (primary only unless ``additional``)."""
    with transaction(engine) as cursor:
        cursor.execute(
            "SELECT i.object_id, i.seq, i.url, i.status, i.path, i.sha256, i.bytes, i.attempts "
            "FROM scrape_run_items r JOIN met_objects o ON o.object_id = r.object_id "
            "JOIN met_images i ON i.object_id = r.object_id "
            "WHERE r.run_id = %s AND r.batch = %s AND o.status = 'ok' AND (%s OR i.seq = 0) "
            "ORDER BY i.object_id, i.seq", (run_id, batch, additional))
        return [ImageRow(*row) for row in cursor.fetchall()]


@dataclass(frozen=True)
class ImageOutcome:
    object_id: int
    seq: int
    url: str
    status: str  # ok | failed | rejected | gone
    attempts: int
    path: str | None = None
    width: int | None = None
    height: int | None = None
    bytes: int | None = None
    sha256: str | None = None
    content_type: str | None = None
    error: str | None = None


def store_image_outcomes(engine: Engine, outcomes: Iterable[ImageOutcome]) -> None:
    """Record one chunk of download outcomes; a row whose URL changed meanwhile is left alone."""
    rows = [(o.object_id, o.seq, o.url, o.status, o.path, o.width, o.height, o.bytes, o.sha256,
             o.content_type, one_line_reason(o.error), o.attempts) for o in outcomes]
    if not rows:
        return
    with transaction(engine) as cursor:
        execute_values(
            cursor,
            "UPDATE met_images AS m SET status = v.status, path = v.path, width = v.width, "
            "height = v.height, bytes = v.bytes, sha256 = v.sha256, content_type = v.content_type, "
            "error = v.error, attempts = m.attempts + v.attempts, "
            "downloaded_at = CASE WHEN v.status = 'ok' THEN now() ELSE m.downloaded_at END, "
            "updated_at = now() "
            "FROM (VALUES %s) AS v (object_id, seq, url, status, path, width, height, bytes, sha256, "
            "content_type, error, attempts) "
            "WHERE m.object_id = v.object_id AND m.seq = v.seq AND m.url = v.url",
            rows, page_size=len(rows),
            template="(%s::integer, %s::integer, %s, %s, %s, %s::integer, %s::integer, %s::bigint, "
                     "%s, %s, %s, %s::integer)")
