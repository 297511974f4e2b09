"""Import the Met's Open Access ``MetObjects.csv`` into the tables the API ingest fills.

The file (about 317 MB, 490k rows, 54 columns, UTF-8 with a BOM) is streamed: the csv module
reads it row by row from a text wrapper over the file or HTTP body, rows are parsed into
``met_objects`` / ``met_constituents`` / ``met_tags`` shapes and sent in chunks with ``COPY`` into
TEMP staging tables; then one merge per table runs in the same transaction. Memory stays at one
chunk, whatever the file size.

Rules of the merge:

- A row's ``csv_hash`` (over its non-empty fields) detects change: an unchanged row is not written.
- Objects the API returned (``source = 'api'`` with a raw record) keep their API fields; only
  ``csv_raw``, ``csv_hash`` and ``csv_imported_at`` are updated on them. CSV-only rows are
  overwritten by a later API fetch (the API ingest sets ``source = 'api'``).
- Artist columns and tag columns hold pipe-separated lists in matching order; they become one
  constituent / tag row per position. Constituent IDs are often concatenated without a separator
  in the published file, so they are kept only when they split into the same number of parts.
- A malformed row (wrong column count, an unreadable Object ID, begin/end date or boolean) is
  recorded in ``csv_import_errors`` with its line number and skipped; the import goes on.
- Objects that an earlier import saw but this file lacks are counted as removed: CSV-only rows are
  marked ``status = 'gone'`` (reason ``absent from CSV <date>``); nothing is deleted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from metgan.config import Settings, get_settings
from metgan.errors import ConfigError
from metgan.progress import Progress

log = logging.getLogger(__name__)

CSV_HEADER: tuple[str, ...] = (
    "Object Number", "Is Highlight", "Is Timeline Work", "Is Public Domain", "Object ID",
    "Gallery Number", "Department", "AccessionYear", "Object Name", "Title", "Culture", "Period",
    "Dynasty", "Reign", "Portfolio", "Constituent ID", "Artist Role", "Artist Prefix",
    "Artist Display Name", "Artist Display Bio", "Artist Suffix", "Artist Alpha Sort",
    "Artist Nationality", "Artist Begin Date", "Artist End Date", "Artist Gender",
    "Artist ULAN URL", "Artist Wikidata URL", "Object Date", "Object Begin Date",
    "Object End Date", "Medium", "Dimensions", "Credit Line", "Geography Type", "City", "State",
    "County", "Country", "Region", "Subregion", "Locale", "Locus", "Excavation", "River",
    "Classification", "Rights and Reproduction", "Link Resource", "Object Wikidata URL",
    "Metadata Date", "Repository", "Tags", "Tags AAT URL", "Tags Wikidata URL",
)

# CSV column -> met_objects column, by kind. "Object ID" is the key and handled on its own.
TEXT_COLUMNS: dict[str, str] = {
    "Object Number": "accession_number",
    "Gallery Number": "gallery_number",
    "Department": "department",
    "AccessionYear": "accession_year",
    "Object Name": "object_name",
    "Title": "title",
    "Culture": "culture",
    "Period": "period",
    "Dynasty": "dynasty",
    "Reign": "reign",
    "Portfolio": "portfolio",
    "Object Date": "object_date",
    "Medium": "medium",
    "Dimensions": "dimensions",
    "Credit Line": "credit_line",
    "Geography Type": "geography_type",
    "City": "city",
    "State": "state",
    "County": "county",
    "Country": "country",
    "Region": "region",
    "Subregion": "subregion",
    "Locale": "locale",
    "Locus": "locus",
    "Excavation": "excavation",
    "River": "river",
    "Classification": "classification",
    "Rights and Reproduction": "rights_and_reproduction",
    "Link Resource": "link_resource",
    "Object Wikidata URL": "object_wikidata_url",
    "Repository": "repository",
}
BOOL_COLUMNS: dict[str, str] = {
    "Is Highlight": "is_highlight",
    "Is Timeline Work": "is_timeline_work",
    "Is Public Domain": "is_public_domain",
}
INT_COLUMNS: dict[str, str] = {
    "Object Begin Date": "object_begin_date",
    "Object End Date": "object_end_date",
}
# Pipe-separated, position-aligned lists.
ARTIST_COLUMNS: dict[str, str] = {
    "Artist Role": "role",
    "Artist Prefix": "prefix",
    "Artist Display Name": "name",
    "Artist Display Bio": "display_bio",
    "Artist Suffix": "suffix",
    "Artist Alpha Sort": "alpha_sort",
    "Artist Nationality": "nationality",
    "Artist Begin Date": "begin_date",
    "Artist End Date": "end_date",
    "Artist Gender": "gender",
    "Artist ULAN URL": "ulan_url",
    "Artist Wikidata URL": "wikidata_url",
}
TAG_COLUMNS: dict[str, str] = {
    "Tags": "term",
    "Tags AAT URL": "aat_url",
    "Tags Wikidata URL": "wikidata_url",
}

# The typed met_objects columns a CSV row fills, in staging-table order.
OBJECT_COLUMNS: tuple[str, ...] = (
    *BOOL_COLUMNS.values(), *TEXT_COLUMNS.values(), *INT_COLUMNS.values(), "metadata_date",
)
CONSTITUENT_COLUMNS: tuple[str, ...] = ("seq", "constituent_id", *ARTIST_COLUMNS.values())
TAG_ROW_COLUMNS: tuple[str, ...] = ("seq", *TAG_COLUMNS.values())

_INT32 = 2**31 - 1
_INTEGER = re.compile(r"[-+]?\d+")
_TRUE = frozenset({"true", "t", "1", "yes"})
_FALSE = frozenset({"false", "f", "0", "no"})
_LFS_POINTER = b"version https://git-lfs"
_RAW_LINE_LIMIT = 10_000
_ADVISORY_KEY = 0x6D6574637376  # "metcsv": one import at a time per database


class RowError(ValueError):
    """A CSV row that cannot be imported; the message is the reason recorded for it."""


@dataclass(frozen=True)
class ParsedRow:
    """One CSV record as staging rows (values already in COPY CSV text form)."""

    object_id: int
    csv_hash: str
    object_row: list[str]
    constituents: list[list[str]]
    tags: list[list[str]]


# --- parsing -----------------------------------------------------------------------------------


def _text(value: str) -> str:
    """Stripped text; "" is written unquoted, which COPY CSV reads as NULL (as the API parser does)."""
    return value.strip()


def _int(value: str, column: str) -> str:
    value = value.strip()
    if not value:
        return ""
    if not _INTEGER.fullmatch(value) or not -_INT32 <= int(value) <= _INT32:
        raise RowError(f"{column} {value!r} is not a whole number")
    return str(int(value))


def _bool(value: str, column: str) -> str:
    lowered = value.strip().lower()
    if not lowered:
        return ""
    if lowered in _TRUE:
        return "t"
    if lowered in _FALSE:
        return "f"
    raise RowError(f"{column} {value!r} is not True or False")


def _timestamp(value: str) -> str:
    """The Metadata Date as ISO 8601 UTC; an unreadable one is dropped (csv_raw keeps it)."""
    value = value.strip()
    if not value:
        return ""
    for parse in (datetime.fromisoformat, lambda v: datetime.strptime(v, "%m/%d/%Y %I:%M:%S %p")):
        try:
            parsed = parse(value)
        except ValueError:
            continue
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc).isoformat()
    return ""


def _constituent_ids(value: str, count: int) -> list[str]:
    """IDs per constituent when they can be told apart, else blanks (the raw row keeps them)."""
    value = value.strip()
    parts = [p.strip() for p in value.split("|")] if value else []
    if len(parts) != count:
        return [""] * count
    return [p if _INTEGER.fullmatch(p) and 0 < int(p) <= _INT32 else "" for p in parts]


def _aligned(values: list[str]) -> tuple[list[list[str]], int]:
    """Split pipe lists; the count is the longest list among the non-empty columns."""
    split = [v.split("|") if v else [] for v in values]
    return split, max((len(s) for s in split), default=0)


class RowParser:
    """Turns CSV records into staging rows, given the file's header."""

    def __init__(self, header: list[str]):
        self.header = [name.lstrip("\ufeff").strip() for name in header]
        index = {name: i for i, name in enumerate(self.header)}
        if "Object ID" not in index:
            raise ConfigError(
                "the CSV header has no 'Object ID' column; is this the Met's MetObjects.csv? "
                f"(header starts {', '.join(self.header[:4])!r})"
            )
        self.width = len(self.header)
        self._id = index["Object ID"]

        def getter(name: str) -> Callable[[list[str]], str]:
            i = index.get(name)
            return (lambda row: row[i]) if i is not None else (lambda row: "")

        self._bools = [(getter(c), c) for c in BOOL_COLUMNS]
        self._texts = [getter(c) for c in TEXT_COLUMNS]
        self._ints = [(getter(c), c) for c in INT_COLUMNS]
        self._metadata_date = getter("Metadata Date")
        self._constituent_id = getter("Constituent ID")
        self._artists = [getter(c) for c in ARTIST_COLUMNS]
        self._tags = [getter(c) for c in TAG_COLUMNS]
        missing = [c for c in CSV_HEADER if c not in index]
        if missing:
            log.warning("CSV header lacks %d of the Met's columns (imported as empty): %s",
                        len(missing), ", ".join(missing))

    def parse(self, row: list[str]) -> ParsedRow:
        if len(row) != self.width:
            raise RowError(f"expected {self.width} columns, found {len(row)}")
        raw_id = row[self._id].strip()
        if not _INTEGER.fullmatch(raw_id) or not 0 < int(raw_id) <= _INT32:
            raise RowError(f"Object ID {raw_id!r} is not a positive whole number")
        object_id = int(raw_id)
        raw = {name: value for name, value in zip(self.header, row) if value}
        raw_json = json.dumps(raw, ensure_ascii=False, separators=(",", ":"))
        if "\\u0000" in raw_json:  # PostgreSQL text cannot hold NUL
            row = [value.replace("\x00", "") for value in row]
            raw = {name: value for name, value in zip(self.header, row) if value}
            raw_json = json.dumps(raw, ensure_ascii=False, separators=(",", ":"))
        csv_hash = hashlib.blake2b(raw_json.encode("utf-8"), digest_size=16).hexdigest()

        values = [_bool(get(row), column) for get, column in self._bools]
        values.extend(_text(get(row)) for get in self._texts)
        values.extend(_int(get(row), column) for get, column in self._ints)
        values.append(_timestamp(self._metadata_date(row)))

        artist_lists, count = _aligned([get(row).strip() and get(row) for get in self._artists])
        constituents = []
        if count:
            ids = _constituent_ids(self._constituent_id(row), count)
            for seq in range(count):
                constituent = [str(seq), ids[seq]]
                constituent.extend(_text(parts[seq]) if seq < len(parts) else "" for parts in artist_lists)
                constituents.append(constituent)

        tag_lists, _ = _aligned([get(row).strip() and get(row) for get in self._tags])
        tags = []
        for seq, term in enumerate(tag_lists[0]):
            if term.strip():
                tag = [str(seq)]
                tag.extend(_text(parts[seq]) if seq < len(parts) else "" for parts in tag_lists)
                tags.append(tag)
        return ParsedRow(object_id, csv_hash, [str(object_id), csv_hash, raw_json, *values],
                         constituents, tags)


# --- input -------------------------------------------------------------------------------------


class _CountingReader(io.RawIOBase):
    """A raw binary stream that hashes and counts the bytes read through it."""

    def __init__(self, stream: IO[bytes]):
        self._stream = stream
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._stream.read(len(buffer))
        if not data:
            return 0
        n = len(data)
        buffer[:n] = data
        self.sha256.update(data)
        self.bytes_read += n
        return n


@dataclass
class _Source:
    name: str
    stream: IO[bytes]
    total_bytes: int | None
    close: Callable[[], None]


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _open_source(source: str | os.PathLike, settings: Settings) -> _Source:
    text = os.fspath(source)
    if _is_url(text):
        import requests

        try:
            response = requests.get(text, stream=True, timeout=settings.met_timeout,
                                    headers={"User-Agent": settings.met_user_agent})
            response.raise_for_status()
        except requests.RequestException as exc:
            raise ConfigError(f"cannot download {text}: {exc}") from exc
        response.raw.decode_content = True
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() and not response.headers.get(
            "Content-Encoding") else None
        return _Source(text, response.raw, total, response.close)
    path = Path(text).expanduser()
    if not path.is_file():
        raise ConfigError(f"CSV file {text} does not exist")
    handle = open(path, "rb")
    return _Source(str(path), handle, path.stat().st_size, handle.close)


def _records(text: IO[str]) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """(line number where the record starts, fields or None, error or None) for each record."""
    reader = csv.reader(text, strict=False)
    last_line = reader.line_num
    while True:
        start = last_line + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            last_line = reader.line_num
            yield start, None, f"unreadable CSV record: {exc}"
            continue
        last_line = reader.line_num
        if row:
            yield start, row, None


# --- database ----------------------------------------------------------------------------------

_STAGE_SQL = f"""
CREATE TEMP TABLE csv_stage_objects (
    line_number integer NOT NULL, object_id integer NOT NULL, csv_hash text NOT NULL,
    csv_raw jsonb NOT NULL,
    is_highlight boolean, is_timeline_work boolean, is_public_domain boolean,
    {", ".join(f"{c} text" for c in TEXT_COLUMNS.values())},
    object_begin_date integer, object_end_date integer, metadata_date timestamptz
) ON COMMIT DROP;
CREATE TEMP TABLE csv_stage_constituents (
    line_number integer NOT NULL, object_id integer NOT NULL, seq integer NOT NULL,
    constituent_id integer, {", ".join(f"{c} text" for c in ARTIST_COLUMNS.values())}
) ON COMMIT DROP;
CREATE TEMP TABLE csv_stage_tags (
    line_number integer NOT NULL, object_id integer NOT NULL, seq integer NOT NULL,
    term text NOT NULL, aat_url text, wikidata_url text
) ON COMMIT DROP;
CREATE TEMP TABLE csv_stage_errors (
    line_number integer NOT NULL, object_id integer, reason text NOT NULL, raw_line text
) ON COMMIT DROP;
"""

_STAGE_OBJECT_COLUMNS = ("line_number", "object_id", "csv_hash", "csv_raw", *OBJECT_COLUMNS)
_COPY = {
    "objects": "COPY csv_stage_objects ({}) FROM STDIN WITH (FORMAT csv)".format(
        ", ".join(_STAGE_OBJECT_COLUMNS)),
    "constituents": "COPY csv_stage_constituents (line_number, object_id, {}) FROM STDIN "
                    "WITH (FORMAT csv)".format(", ".join(CONSTITUENT_COLUMNS)),
    "tags": "COPY csv_stage_tags (line_number, object_id, {}) FROM STDIN "
            "WITH (FORMAT csv)".format(", ".join(TAG_ROW_COLUMNS)),
    "errors": "COPY csv_stage_errors (line_number, object_id, reason, raw_line) FROM STDIN "
              "WITH (FORMAT csv)",
}

# A later line with the same Object ID wins; the earlier ones are recorded as errors.
_DEDUPLICATE_SQL = """
CREATE INDEX ON csv_stage_objects (object_id, line_number);
ANALYZE csv_stage_objects;
CREATE TEMP TABLE csv_stage_duplicates ON COMMIT DROP AS
SELECT s.line_number, s.object_id, d.last_line
FROM csv_stage_objects s
JOIN (SELECT object_id, max(line_number) AS last_line FROM csv_stage_objects
      GROUP BY object_id HAVING count(*) > 1) d USING (object_id)
WHERE s.line_number < d.last_line;
INSERT INTO csv_stage_errors (line_number, object_id, reason)
SELECT line_number, object_id, 'duplicate Object ID ' || object_id || ' (line ' || last_line || ' is used)'
FROM csv_stage_duplicates;
DELETE FROM csv_stage_objects s USING csv_stage_duplicates d WHERE s.line_number = d.line_number;
DELETE FROM csv_stage_constituents s USING csv_stage_duplicates d WHERE s.line_number = d.line_number;
DELETE FROM csv_stage_tags s USING csv_stage_duplicates d WHERE s.line_number = d.line_number;
"""

# What each staged object is relative to the store: new (no earlier CSV import of it), changed,
# unchanged; and whether the API owns its typed columns (it returned a record for it).
_CLASSIFY_SQL = """
CREATE TEMP TABLE csv_delta ON COMMIT DROP AS
SELECT s.object_id,
       CASE WHEN m.object_id IS NULL OR m.csv_hash IS NULL THEN 'new'
            WHEN m.csv_hash = s.csv_hash THEN 'unchanged'
            ELSE 'changed' END AS kind,
       coalesce(m.source = 'api' AND m.raw IS NOT NULL, false) AS api_owned
FROM csv_stage_objects s LEFT JOIN met_objects m USING (object_id);
CREATE UNIQUE INDEX ON csv_delta (object_id);
ANALYZE csv_delta;
"""

_API_OWNED = "(met_objects.source = 'api' AND met_objects.raw IS NOT NULL)"
_MERGE_OBJECTS_SQL = """
INSERT INTO met_objects AS met_objects (object_id, source, status, status_reason, {columns},
                                        csv_raw, csv_hash, csv_imported_at, updated_at)
SELECT s.object_id, 'csv', 'ok', NULL, {staged}, s.csv_raw, s.csv_hash, %(now)s, now()
FROM csv_stage_objects s JOIN csv_delta d USING (object_id)
WHERE d.kind <> 'unchanged'
ON CONFLICT (object_id) DO UPDATE SET
    {typed},
    source = CASE WHEN {api_owned} THEN met_objects.source ELSE 'csv' END,
    status = CASE WHEN {api_owned} OR met_objects.status IN ('gone', 'error') AND met_objects.source = 'api'
                  THEN met_objects.status ELSE 'ok' END,
    status_reason = CASE WHEN {api_owned} OR met_objects.status IN ('gone', 'error') AND met_objects.source = 'api'
                         THEN met_objects.status_reason END,
    csv_raw = EXCLUDED.csv_raw,
    csv_hash = EXCLUDED.csv_hash,
    csv_imported_at = EXCLUDED.csv_imported_at,
    updated_at = now()
WHERE met_objects.csv_hash IS DISTINCT FROM EXCLUDED.csv_hash
""".format(
    columns=", ".join(OBJECT_COLUMNS),
    staged=", ".join(f"s.{c}" for c in OBJECT_COLUMNS),
    typed=",\n    ".join(
        f"{c} = CASE WHEN {_API_OWNED} THEN met_objects.{c} ELSE EXCLUDED.{c} END" for c in OBJECT_COLUMNS
    ),
    api_owned=_API_OWNED,
)

# Lists of objects whose typed columns the CSV owns are replaced when their row is new or changed.
_MERGE_LISTS_SQL = """
DELETE FROM {table} t USING csv_delta d
WHERE t.object_id = d.object_id AND d.kind <> 'unchanged' AND NOT d.api_owned;
INSERT INTO {table} (object_id, {columns})
SELECT s.object_id, {staged} FROM {stage} s JOIN csv_delta d USING (object_id)
WHERE d.kind <> 'unchanged' AND NOT d.api_owned;
"""
_MERGE_CONSTITUENTS_SQL = _MERGE_LISTS_SQL.format(
    table="met_constituents", stage="csv_stage_constituents",
    columns=", ".join(CONSTITUENT_COLUMNS), staged=", ".join(f"s.{c}" for c in CONSTITUENT_COLUMNS))
_MERGE_TAGS_SQL = _MERGE_LISTS_SQL.format(
    table="met_tags", stage="csv_stage_tags",
    columns=", ".join(TAG_ROW_COLUMNS), staged=", ".join(f"s.{c}" for c in TAG_ROW_COLUMNS))

# Objects an earlier import saw (csv_hash set) that this file lacks, malformed rows aside.
_REMOVED_SQL = """
WITH removed AS (
    UPDATE met_objects m SET
        csv_hash = NULL,
        status = CASE WHEN m.source = 'csv' THEN 'gone' ELSE m.status END,
        status_reason = CASE WHEN m.source = 'csv' THEN %(reason)s ELSE m.status_reason END,
        updated_at = now()
    WHERE m.csv_hash IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM csv_stage_objects s WHERE s.object_id = m.object_id)
      AND NOT EXISTS (SELECT 1 FROM csv_stage_errors e WHERE e.object_id = m.object_id)
    RETURNING 1
)
SELECT count(*) FROM removed
"""


def _copy(cursor, kind: str, rows: list[list[str]]) -> None:
    if not rows:
        return
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    buffer.seek(0)
    cursor.copy_expert(_COPY[kind], buffer)


def _raw_line(row: list[str] | None) -> str | None:
    if row is None:
        return None
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(row)
    return buffer.getvalue().replace("\x00", "")[:_RAW_LINE_LIMIT]


# --- the import --------------------------------------------------------------------------------


def import_csv(source: str | os.PathLike, *, mark_removed: bool = True, chunk_rows: int = 5000,
               settings: Settings | None = None, engine=None,
               progress: Progress | None = None) -> dict[str, Any]:
    """Stream ``MetObjects.csv`` (a path or an http(s) URL) into the store; return the counts.

    Counts: ``rows`` (records read), ``imported`` (rows staged), ``errors`` (malformed rows and
    earlier duplicates, each in csv_import_errors), ``new``, ``changed``, ``unchanged``,
    ``removed`` (in an earlier import, absent now; only with ``mark_removed``), ``constituents``
    and ``tags`` (rows written), plus ``import_id``, ``sha256``, ``bytes`` and ``seconds``.
    Running it twice on the same file changes nothing the second time.
    """
    from metgan.store import get_engine

    settings = settings or get_settings()
    engine = engine or get_engine(settings)
    started = time.monotonic()
    opened = _open_source(source, settings)
    connection = engine.raw_connection()
    import_id = None
    try:
        cursor = connection.cursor()
        cursor.execute("INSERT INTO csv_imports (source) VALUES (%s) RETURNING import_id, started_at",
                       (opened.name,))
        import_id, import_started = cursor.fetchone()
        connection.commit()
        try:
            counts = _run(connection, cursor, opened, import_id, import_started,
                          mark_removed=mark_removed, chunk_rows=chunk_rows, progress=progress)
        except BaseException as exc:
            connection.rollback()
            cursor.execute(
                "UPDATE csv_imports SET status = 'failed', finished_at = now(), counts = %s "
                "WHERE import_id = %s",
                (json.dumps({"error": str(exc).strip().splitlines()[0] if str(exc).strip()
                             else type(exc).__name__}), import_id))
            connection.commit()
            raise
    finally:
        opened.close()
        connection.close()
    counts["seconds"] = round(time.monotonic() - started, 3)
    counts["rows_per_s"] = round(counts["rows"] / counts["seconds"], 1) if counts["seconds"] else None
    log.info("CSV import %d of %s: %d rows, %d new, %d changed, %d unchanged, %d removed, "
             "%d errors in %.1f s", import_id, opened.name, counts["rows"], counts["new"],
             counts["changed"], counts["unchanged"], counts["removed"], counts["errors"],
             counts["seconds"])
    return {"import_id": import_id, "source": opened.name, **counts}


def _run(connection, cursor, opened: _Source, import_id: int, import_started: datetime, *,
         mark_removed: bool, chunk_rows: int, progress: Progress | None) -> dict[str, Any]:
    counting = _CountingReader(opened.stream)
    buffered = io.BufferedReader(counting, buffer_size=1 << 20)
    if buffered.peek(len(_LFS_POINTER))[: len(_LFS_POINTER)] == _LFS_POINTER:
        raise ConfigError(f"{opened.name} is a Git LFS pointer, not the CSV; fetch the file itself "
                          "(git lfs pull, or the media.githubusercontent.com URL)")
    text = io.TextIOWrapper(buffered, encoding="utf-8-sig", errors="replace", newline="")
    csv.field_size_limit(16 * 1024 * 1024)
    records = _records(text)
    try:
        _, header, _ = next(records)
    except StopIteration:
        raise ConfigError(f"{opened.name} is empty") from None
    if header is None:
        raise ConfigError(f"{opened.name}: the header line is not readable CSV")
    parser = RowParser(header)

    progress = progress or Progress(f"import {Path(opened.name).name}", opened.total_bytes,
                                    logger=log)
    if opened.total_bytes:
        progress.start(opened.total_bytes)
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_KEY,))
    cursor.execute(_STAGE_SQL)

    counts = {"rows": 0, "imported": 0, "errors": 0}
    chunks: dict[str, list[list[str]]] = {"objects": [], "constituents": [], "tags": [], "errors": []}
    reported = 0

    def flush() -> None:
        nonlocal reported
        for kind, rows in chunks.items():
            _copy(cursor, kind, rows)
            rows.clear()
        progress.advance(counting.bytes_read - reported)
        reported = counting.bytes_read

    for line_number, row, error in records:
        counts["rows"] += 1
        object_id = ""
        if error is None:
            try:
                parsed = parser.parse(row)
            except RowError as exc:
                error = str(exc)
                raw_id = row[parser._id].strip() if len(row) > parser._id else ""
                if _INTEGER.fullmatch(raw_id) and 0 < int(raw_id) <= _INT32:
                    object_id = str(int(raw_id))
        if error is not None:
            chunks["errors"].append([str(line_number), object_id, error, _raw_line(row)])
            continue
        line = str(line_number)
        chunks["objects"].append([line, *parsed.object_row])
        oid = parsed.object_row[0]
        chunks["constituents"].extend([line, oid, *c] for c in parsed.constituents)
        chunks["tags"].extend([line, oid, *t] for t in parsed.tags)
        if len(chunks["objects"]) >= chunk_rows:
            flush()
    flush()
    progress.finish()

    cursor.execute(_DEDUPLICATE_SQL)
    cursor.execute(_CLASSIFY_SQL)
    cursor.execute("SELECT kind, count(*) FROM csv_delta GROUP BY kind")
    by_kind = dict(cursor.fetchall())
    now = datetime.now(timezone.utc)
    cursor.execute(_MERGE_OBJECTS_SQL, {"now": now})
    cursor.execute(_MERGE_CONSTITUENTS_SQL)
    cursor.execute("SELECT count(*) FROM csv_stage_constituents s JOIN csv_delta d USING (object_id) "
                   "WHERE d.kind <> 'unchanged' AND NOT d.api_owned")
    constituents = cursor.fetchone()[0]
    cursor.execute(_MERGE_TAGS_SQL)
    cursor.execute("SELECT count(*) FROM csv_stage_tags s JOIN csv_delta d USING (object_id) "
                   "WHERE d.kind <> 'unchanged' AND NOT d.api_owned")
    tags = cursor.fetchone()[0]
    removed = 0
    if mark_removed:
        cursor.execute(_REMOVED_SQL, {"reason": f"absent from CSV {import_started.date().isoformat()}"})
        removed = cursor.fetchone()[0]
    cursor.execute(
        "INSERT INTO csv_import_errors (import_id, line_number, reason, raw_line) "
        "SELECT %s, line_number, reason, raw_line FROM csv_stage_errors "
        "ON CONFLICT (import_id, line_number) DO NOTHING",
        (import_id,))
    cursor.execute("SELECT count(*) FROM csv_stage_errors")
    errors = cursor.fetchone()[0]
    cursor.execute("SELECT count(*) FROM csv_stage_objects")
    imported = cursor.fetchone()[0]
    counts.update({
        "imported": imported, "errors": errors,
        "new": by_kind.get("new", 0), "changed": by_kind.get("changed", 0),
        "unchanged": by_kind.get("unchanged", 0), "removed": removed,
        "constituents": constituents, "tags": tags,
        "bytes": counting.bytes_read, "sha256": counting.sha256.hexdigest(),
    })
    cursor.execute(
        "UPDATE csv_imports SET status = 'success', finished_at = now(), sha256 = %s, counts = %s "
        "WHERE import_id = %s",
        (counts["sha256"], json.dumps(counts), import_id))
    connection.commit()
    return counts
