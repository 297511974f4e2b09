"""The CSV imports repository: ``csv_imports`` and ``csv_import_errors`` rows, and the SQL of the
bulk load (the lock, the COPYs, the chunk merge, the objects absent from a file).

:class:`CsvImport` is one import's session: its row, its advisory lock, and its one transaction
on one connection, plus a second connection that reads the stored state of a chunk's objects
while the first one merges the previous chunk. The reading and the COPY lines are
:mod:`metgan.met.csv_read` and :mod:`metgan.met.csv_load`'s; this module holds the statements.
Nothing here reads settings or migrates the schema.
"""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime

from sqlalchemy import Engine

from metgan.db.columns import CSV_ARTIST_COLUMNS, CSV_TAG_COLUMNS, csv_columns

log = logging.getLogger(__name__)

# pg_advisory_lock(IMPORT_LOCK_CLASS, import_id): the lock a running CSV import holds ("mc")
IMPORT_LOCK_CLASS = 0x6D63
ABANDONED_MESSAGE = "abandoned: the importing process ended without finishing (killed?)"
ABSENT_REASON = "absent from CSV"

# The columns of a met_objects COPY line, in order (metgan.met.csv_load builds the lines).
OBJECT_COLUMNS: tuple[str, ...] = (
    "object_id", "source", "csv_hash", *csv_columns("bool").values(), *csv_columns("int").values(),
    "metadata_date", *csv_columns("text").values(), "csv_raw", "csv_imported_at")
_TEXT_COLUMNS = tuple(csv_columns("text").values())

_MARK_ABANDONED_SQL = """
UPDATE csv_imports SET status = 'failed', finished_at = now(), counts = counts || %(counts)s::jsonb
WHERE import_id IN (
    SELECT import_id FROM csv_imports
    WHERE status = 'running' AND pg_try_advisory_xact_lock(%(class)s, import_id::integer)
)
"""

_STAGE_SQL = """
CREATE TEMP TABLE csv_chunk (
    object_id integer NOT NULL, source text NOT NULL, csv_hash text NOT NULL,
    is_highlight boolean, is_timeline_work boolean, is_public_domain boolean,
    object_begin_date integer, object_end_date integer, metadata_date timestamptz,
    {text}, csv_raw text NOT NULL, csv_imported_at timestamptz NOT NULL
) ON COMMIT DROP
""".format(text=", ".join(f"{c} text" for c in _TEXT_COLUMNS))
# COPY's text format with NULL '' (no column takes an empty string: text is trimmed to NULL)
_COPY = {
    "new": f"COPY met_objects ({', '.join(OBJECT_COLUMNS)}) FROM STDIN WITH (NULL '')",
    "changed": f"COPY csv_chunk ({', '.join(OBJECT_COLUMNS)}) FROM STDIN WITH (NULL '')",
    "constituents": "COPY met_constituents (object_id, seq, constituent_id, {}) FROM STDIN WITH (NULL '')"
                    .format(", ".join(CSV_ARTIST_COLUMNS.values())),
    "tags": "COPY met_tags (object_id, seq, {}) FROM STDIN WITH (NULL '')".format(
        ", ".join(CSV_TAG_COLUMNS.values())),
    "errors": "COPY csv_import_errors (import_id, line_number, reason, raw_line) FROM STDIN WITH (NULL '')",
}

# The stored state of a chunk's objects: csv_hash (NULL: no earlier CSV import) and whether the
# API owns the typed columns (it returned a record).
_EXISTING_SQL = """
SELECT object_id, csv_hash, source = 'api' AND raw IS NOT NULL
FROM met_objects WHERE object_id = ANY(%s)
"""

_MERGED = [c for c in OBJECT_COLUMNS if c not in ("object_id", "source", "csv_hash", "csv_raw", "csv_imported_at")]
_API_OWNED = "(met_objects.source = 'api' AND met_objects.raw IS NOT NULL)"
_CSV_ABSENT = "(met_objects.status = 'gone' AND met_objects.status_reason LIKE %(absent)s)"
_KEEP_API_FIELDS = ",\n    ".join(
    f"{c} = CASE WHEN {_API_OWNED} THEN met_objects.{c} ELSE EXCLUDED.{c} END" for c in _MERGED)
_MERGE_OBJECTS_SQL = f"""
INSERT INTO met_objects AS met_objects ({", ".join(OBJECT_COLUMNS)})
SELECT {", ".join(OBJECT_COLUMNS)} FROM csv_chunk
ON CONFLICT (object_id) DO UPDATE SET
    {_KEEP_API_FIELDS},
    source = CASE WHEN {_API_OWNED} THEN met_objects.source ELSE 'csv' END,
    status = CASE WHEN {_CSV_ABSENT} THEN 'ok' ELSE met_objects.status END,
    status_reason = CASE WHEN {_CSV_ABSENT} THEN NULL ELSE met_objects.status_reason END,
    csv_raw = EXCLUDED.csv_raw,
    csv_hash = EXCLUDED.csv_hash,
    csv_imported_at = EXCLUDED.csv_imported_at,
    updated_at = now()
WHERE met_objects.csv_hash IS DISTINCT FROM EXCLUDED.csv_hash
"""
_MERGE_PARAMS = {"absent": ABSENT_REASON + "%"}

# Objects an earlier import saw (csv_hash set) that this import did not write: the unchanged
# ones and those absent from this file (the caller tells them apart).
_NOT_WRITTEN_SQL = """
SELECT object_id FROM met_objects
WHERE csv_hash IS NOT NULL AND csv_imported_at IS DISTINCT FROM %(now)s
"""
_MARK_REMOVED_SQL = """
UPDATE met_objects m SET
    csv_hash = NULL,
    status = CASE WHEN m.source = 'csv' AND m.status <> 'gone' THEN 'gone' ELSE m.status END,
    status_reason = CASE WHEN m.source = 'csv' AND m.status <> 'gone' THEN %(reason)s
                         ELSE m.status_reason END,
    updated_at = now()
WHERE m.object_id = ANY(%(ids)s)
"""


def _mark_abandoned(cursor) -> int:
    cursor.execute(_MARK_ABANDONED_SQL, {"class": IMPORT_LOCK_CLASS,
                                         "counts": json.dumps({"error": ABANDONED_MESSAGE})})
    if cursor.rowcount:
        log.warning("marked %d abandoned CSV import(s) as failed", cursor.rowcount)
    return cursor.rowcount


def mark_abandoned_imports(engine: Engine) -> int:
    """Mark ``running`` imports whose session lock is free (their process died: a kill -9, an
    OOM kill, a lost worker) as failed; returns how many."""
    connection = engine.raw_connection()
    try:
        count = _mark_abandoned(connection.cursor())
        connection.commit()
        return count
    finally:
        connection.close()


def import_errors(engine: Engine, import_id: int, limit: int) -> list[tuple[int, str]]:
    """(line number, reason) of the first ``limit`` rows an import recorded as malformed."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT line_number, reason FROM csv_import_errors WHERE import_id = %s "
                       "ORDER BY line_number LIMIT %s", (import_id, limit))
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        connection.rollback()
        connection.close()


class CsvImport:
    """One import: its csv_imports row and lock (committed at once, so a failure can be
    recorded), then its load in one transaction, committed by :meth:`succeed`.

    A context manager: on leaving it the lock is released and both connections are closed.
    """

    def __init__(self, engine: Engine, source: str):
        self._connection = engine.raw_connection()
        self._lookup_connection = None
        self.import_id: int | None = None
        try:
            self._lookup_connection = engine.raw_connection()  # reads stored state while merging
            self._lookup = self._lookup_connection.cursor()
            cursor = self._cursor = self._connection.cursor()
            _mark_abandoned(cursor)
            cursor.execute("INSERT INTO csv_imports (source) VALUES (%s) RETURNING import_id, started_at",
                           (source,))
            self.import_id, self.started_at = cursor.fetchone()
            # held by this session until the import ends (or its process dies): see _mark_abandoned
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", (IMPORT_LOCK_CLASS, self.import_id))
            self._connection.commit()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> CsvImport:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._lookup_connection is not None:
            self._lookup_connection.close()
        if self.import_id is not None:
            self._release_lock()
        self._connection.close()

    def _release_lock(self) -> None:
        # the connection goes back to a pool: a session lock left on it would outlive the import
        try:
            self._connection.rollback()
            cursor = self._connection.cursor()
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", (IMPORT_LOCK_CLASS, self.import_id))
            self._connection.commit()
        except Exception:  # a dead connection holds no lock any more
            log.debug("could not release the lock of CSV import %d", self.import_id, exc_info=True)

    def fail(self, message: str) -> None:
        """Roll the load back and record the import as failed with ``message``."""
        self._connection.rollback()
        self._cursor.execute("UPDATE csv_imports SET status = 'failed', finished_at = now(), counts = %s "
                             "WHERE import_id = %s", (json.dumps({"error": message}), self.import_id))
        self._connection.commit()

    def succeed(self, sha256: str, counts: dict) -> None:
        """Record the import's outcome and commit the whole load."""
        self._cursor.execute("UPDATE csv_imports SET status = 'success', finished_at = now(), sha256 = %s, "
                             "counts = %s WHERE import_id = %s", (sha256, json.dumps(counts), self.import_id))
        self._connection.commit()

    # -- the load (in the import's transaction) --------------------------------------------------

    def begin_load(self) -> bool:
        """Lock met_objects and create the merge's TEMP table; returns whether the store was empty."""
        cursor = self._cursor
        # Readers go on; another import, or an API ingest writing objects, waits for this one to
        # commit, so the store cannot change between a chunk's lookup and its COPY.
        cursor.execute("LOCK TABLE met_objects IN SHARE ROW EXCLUSIVE MODE")
        # one commit at the very end: waiting for its WAL flush buys nothing (a crash before it
        # loses the whole import either way, and the import is rerun)
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute(_STAGE_SQL)
        cursor.execute("SELECT NOT EXISTS (SELECT 1 FROM met_objects)")
        return cursor.fetchone()[0]

    def stored_state(self, object_ids: list[int]) -> dict[int, tuple[str | None, bool]]:
        """(Reading thread.) csv_hash and whether the API owns the record, of the stored objects
        among ``object_ids``, as committed before the import (the second connection)."""
        self._lookup.execute(_EXISTING_SQL, (object_ids,))
        stored = {object_id: (csv_hash, api_owned) for object_id, csv_hash, api_owned in self._lookup.fetchall()}
        self._lookup_connection.rollback()
        return stored

    def copy(self, kind: str, lines: list[str] | list[bytes]) -> None:
        """COPY lines (or blocks of lines) already in the text format, as text or UTF-8, into the
        table of ``kind``: new objects, changed objects (the TEMP table), constituents, tags, errors."""
        if not lines:
            return
        # joined at once and handed over in one read: psycopg2 needs the GIL for every read of the
        # file, and the reading thread, busy building the next chunk, holds it for up to 5 ms a time
        if isinstance(lines[0], bytes):
            lines.append(b"")  # the last line's newline, without copying the joined data again
            data = b"\n".join(lines)
        else:
            lines.append("")
            data = "\n".join(lines).encode("utf-8")
        self._cursor.copy_expert(_COPY[kind], io.BytesIO(data), size=len(data))

    def merge_changed(self) -> None:
        """Merge the TEMP table's objects into met_objects (keeping the API's fields) and empty it."""
        self._cursor.execute(_MERGE_OBJECTS_SQL, _MERGE_PARAMS)
        self._cursor.execute("TRUNCATE csv_chunk")

    def delete_lists(self, object_ids: list[int]) -> None:
        """Delete the constituents and tags of ``object_ids`` (their new lists follow)."""
        self._cursor.execute("DELETE FROM met_constituents WHERE object_id = ANY(%s)", (object_ids,))
        self._cursor.execute("DELETE FROM met_tags WHERE object_id = ANY(%s)", (object_ids,))

    def not_written(self, imported_at: datetime) -> list[int]:
        """Objects an earlier import saw that this one has not written."""
        self._cursor.execute(_NOT_WRITTEN_SQL, {"now": imported_at})
        return [object_id for (object_id,) in self._cursor.fetchall()]

    def mark_removed(self, object_ids: list[int], reason: str) -> int:
        """Mark ``object_ids`` as no longer in the CSV (CSV-only rows become gone); returns how many."""
        self._cursor.execute(_MARK_REMOVED_SQL, {"ids": object_ids, "reason": reason})
        return self._cursor.rowcount
