"""Import the Met's Open Access ``MetObjects.csv`` into the tables the API ingest fills.

The import reads the file (``metgan.met.csv_read``: the source, its lines and records, a checked
row) and loads it a chunk at a time (``metgan.met.csv_load``: COPY lines, lookup, COPY and merge
in a second thread); this module runs the import itself: its row in ``csv_imports``, its lock
and its one transaction (``metgan.db.csv_imports.CsvImport`` holds their statements).

The whole import is one transaction: a failed one leaves nothing behind. It holds ``met_objects``
in SHARE ROW EXCLUSIVE mode: readers go on, concurrent imports take turns, and an API ingest
writing objects meanwhile waits for the commit (so no object can appear between the lookup and
the COPY). Memory stays at a few chunks, whatever the file size, plus the line number of every
object id seen (about 40 MB for the real file).

Rules of the merge:

- ``csv_hash`` (of the record's bytes) detects change: an unchanged row is not written at all.
- Objects the API returned (``source = 'api'`` with a raw record) keep their API fields; only
  ``csv_raw``, ``csv_hash`` and ``csv_imported_at`` are updated on them. CSV-only rows are
  overwritten by a later API fetch (the API ingest's upsert sets ``source = 'api'``).
- Constituent IDs are concatenated without a separator in the published file, so they are kept
  only when they split into as many parts as there are constituents.
- A malformed row (wrong column count, an unreadable Object ID, begin/end date or boolean) is
  recorded in ``csv_import_errors`` with its line number and skipped; the import goes on. Of two
  rows with the same Object ID the later one is used and the earlier one recorded.
- Objects an earlier import saw that this file lacks are counted as removed: CSV-only rows are
  marked ``status = 'gone'`` (reason ``absent from CSV <date>``); nothing is deleted. Such a row
  that comes back in a later file is ``ok`` again.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from metgan.config import Settings, get_settings
from metgan.db.csv_imports import ABANDONED_MESSAGE, ABSENT_REASON, IMPORT_LOCK_CLASS, CsvImport
from metgan.db.csv_imports import mark_abandoned_imports as _mark_abandoned_imports
from metgan.errors import ConfigError
from metgan.met.csv_load import Loader, error_line
from metgan.met.csv_read import (
    CSV_HEADER,
    LFS_POINTER,
    CountingReader,
    ParsedRow,
    RowError,
    RowParser,
    Source,
    check_header,
    open_source,
    records,
)
from metgan.progress import Progress
from metgan.urlpolicy import excerpt

# tests/hostile/test_http.py reaches the source policy through this module
_open_source = open_source

__all__ = ["ABANDONED_MESSAGE", "CSV_HEADER", "IMPORT_LOCK_CLASS", "import_csv", "mark_abandoned_imports"]

log = logging.getLogger(__name__)


# --- the import --------------------------------------------------------------------------------


def import_csv(source: str | os.PathLike, *, mark_removed: bool = True, chunk_rows: int = 5000,
               settings: Settings | None = None, engine: Engine | None = None,
               progress: Progress | None = None) -> dict[str, Any]:
    """Stream ``MetObjects.csv`` into the store; return the counts.

    ``source`` is a file in the import folder (``METGAN_IMPORT_DIR``; a relative path is looked
    up there) or an https URL on ``METGAN_CSV_HOSTS``; anything else raises ConfigError.

    Counts: ``rows`` (records read), ``objects`` (distinct objects imported), ``errors``
    (malformed rows and earlier duplicates, each in csv_import_errors with its line number),
    ``new`` (not in an earlier import), ``changed``, ``unchanged``, ``removed`` (in an earlier
    import, absent now; counted and marked only with ``mark_removed``), ``constituents`` and
    ``tags`` (rows written), plus ``import_id``, ``source``, ``sha256``, ``bytes``,
    ``read_seconds`` (reading, loading and merging), ``finish_seconds``, ``seconds``,
    ``rows_per_s`` and ``phases`` (seconds per phase, see ``csv_load.Timings``). A small JSON-able
    dict (an Airflow task may return it). Importing the same file twice changes nothing the
    second time.
    """
    from metgan.db import get_engine

    settings = settings or get_settings()
    engine = engine or get_engine(settings)
    started = time.monotonic()
    opened = open_source(source, settings)
    try:
        with CsvImport(engine, opened.name) as session:
            import_id = session.import_id
            try:
                counts = _run(session, opened, mark_removed=mark_removed, chunk_rows=chunk_rows,
                              progress=progress)
            except BaseException as exc:
                session.fail(_public_message(exc))
                raise
    finally:
        opened.close()
    counts["seconds"] = round(time.monotonic() - started, 3)
    counts["rows_per_s"] = round(counts["rows"] / counts["seconds"], 1) if counts["seconds"] else None
    log.info("CSV import %d of %s: %d rows, %d new, %d changed, %d unchanged, %d removed, "
             "%d errors in %.1f s", import_id, opened.name, counts["rows"], counts["new"],
             counts["changed"], counts["unchanged"], counts["removed"], counts["errors"],
             counts["seconds"])
    return {"import_id": import_id, "source": opened.name, **counts}


def mark_abandoned_imports(engine: Engine | None = None, settings: Settings | None = None) -> int:
    """Mark CSV imports left ``running`` by a process that died as ``failed``; returns how many.

    Every import does this before it starts; call it before reading ``csv_imports`` statuses.
    """
    from metgan.db import get_engine

    return _mark_abandoned_imports(engine or get_engine(settings))


def _public_message(exc: BaseException) -> str:
    """What csv_imports.counts records of a failure: the first line, short and escaped."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else type(exc).__name__
    return first if len(first) <= 300 and first.isprintable() else excerpt(first, 300)


def _run(session: CsvImport, opened: Source, *, mark_removed: bool, chunk_rows: int,
         progress: Progress | None) -> dict[str, Any]:
    import_id = session.import_id
    read_started = time.monotonic()
    counting = CountingReader(opened)
    head = counting.read()
    if head.startswith(LFS_POINTER):
        raise ConfigError(f"{opened.name} is a Git LFS pointer, not the CSV; fetch the file itself "
                          "(git lfs pull, or the media.githubusercontent.com URL)")
    file_records = records(itertools.chain([head], iter(counting.read, b"")))
    first = next(file_records, None)
    if first is None:
        raise ConfigError(f"{opened.name} is empty")
    if first[1] is None:
        raise ConfigError(f"{opened.name}: the header line is not readable CSV")
    check_header(opened.name, first[1])
    parser = RowParser(first[1])

    # progress counts megabytes read: the row count is unknown until the end
    progress = progress or Progress(f"import {Path(opened.name).name} (MB)", logger=log)
    if opened.total_bytes:
        progress.start(max(1, round(opened.total_bytes / 1e6)))
    loader = Loader(session)
    error_ids: set[int] = set()  # objects of malformed rows: not counted as removed
    rows = reported = 0
    staged: list[tuple[int, ParsedRow]] = []
    errors: list[str] = []
    try:
        for line_number, row, error, raw in file_records:
            rows += 1
            if error is None:
                try:
                    staged.append((line_number, parser.parse(row, raw)))
                    if len(staged) >= chunk_rows:
                        loader.add(staged, errors)
                        staged, errors = [], []
                        megabytes = round(counting.bytes_read / 1e6)
                        progress.advance(megabytes - reported)
                        reported = megabytes
                    continue
                except RowError as exc:
                    error = str(exc)
            object_id = parser.object_id(row) if row is not None else None
            if object_id is not None:
                error_ids.add(object_id)
            errors.append(error_line(import_id, line_number, error, raw))
        loader.add(staged, errors)
        progress.advance(round(counting.bytes_read / 1e6) - reported)
        loader.add_duplicates()
    finally:
        loader.close()
    progress.finish()
    read_done = time.monotonic()

    removed = 0
    if mark_removed:
        removed = loader.mark_removed(error_ids, f"{ABSENT_REASON} {session.started_at.date().isoformat()}")
    counts: dict[str, Any] = {
        "rows": rows, "constituents": loader.counts.constituents, "tags": loader.counts.tags,
        "errors": loader.errors_written, "objects": len(loader.seen),
        "new": loader.counts.new, "changed": loader.counts.changed, "unchanged": loader.counts.unchanged,
        "removed": removed,
        "bytes": counting.bytes_read, "sha256": counting.sha256.hexdigest(),
        "read_seconds": round(read_done - read_started, 3),
        "finish_seconds": round(time.monotonic() - read_done, 3),
        "phases": loader.timings.as_dict(),
    }
    log.debug("CSV import %d merge phases (s): %s", import_id, counts["phases"])
    session.succeed(counts["sha256"], counts)
    return counts
