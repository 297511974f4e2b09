"""Import the Met's Open Access ``MetObjects.csv`` into the tables the API ingest fills.

The file (about 317 MB, 490k rows, 54 columns, UTF-8 with a BOM) is streamed: the csv module
reads it record by record from a text wrapper over the file or the HTTP body; Python checks what
must be rejected with a line number (column count, the Object ID, the begin/end dates, the
booleans), hashes the row and hands it, raw, to a second thread in chunks. That thread ``COPY``s
each chunk into a TEMP staging table and merges it at once, so PostgreSQL works on one chunk while
Python reads the next: typed ``met_objects`` columns (trimmed, "" as NULL, as the API parser
does), ``csv_raw`` (the row's non-empty fields as a JSON object), and the pipe-separated artist
and tag columns unnested, position by position, into ``met_constituents`` and ``met_tags``. The
whole import is one transaction (a failed one leaves nothing behind; concurrent imports take
turns). Memory stays at a chunk or two, whatever the file size.

Rules of the merge:

- ``csv_hash`` (of the row's fields) detects change: an unchanged row is not written at all.
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

import csv
import hashlib
import io
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

from metgan.config import Settings, get_settings
from metgan.errors import ConfigError, MetRetryableError
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

# CSV column -> met_objects column, by kind. "Object ID" is the key.
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
# Checked and converted in Python (a bad value rejects the row with its line number).
BOOL_COLUMNS: dict[str, str] = {
    "Is Highlight": "is_highlight",
    "Is Timeline Work": "is_timeline_work",
    "Is Public Domain": "is_public_domain",
}
INT_COLUMNS: dict[str, str] = {
    "Object Begin Date": "object_begin_date",
    "Object End Date": "object_end_date",
}
# Pipe-separated, position-aligned lists -> met_constituents / met_tags columns.
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

_INT32 = 2**31 - 1
_INTEGER = re.compile(r"[-+]?[0-9]+")
_WHITESPACE = " \t\r\n"
_TRUE = frozenset({"true", "t", "1", "yes"})
_FALSE = frozenset({"false", "f", "0", "no"})
_BOOLS = {"True": "t", "False": "f", "": ""}
_LFS_POINTER = b"version https://git-lfs"
_RAW_LINE_LIMIT = 10_000
_FIELD_SIZE_LIMIT = 16 * 1024 * 1024
# Part of every csv_hash: change it when the mapping of columns changes, so the next import of
# the same file rewrites every CSV-owned row instead of skipping it as unchanged.
_HASH_PERSON = b"metgan-csv-v1"
_ADVISORY_KEY = 0x6D6574637376  # "metcsv": one import at a time per database
ABSENT_REASON = "absent from CSV"


class RowError(ValueError):
    """A CSV row that cannot be imported; the message is the reason recorded for it."""


# --- parsing -----------------------------------------------------------------------------------
#
# The hot loop (490k rows). Text stays raw: PostgreSQL trims and splits it in the merge, in C.


def _int(value: str, column: str) -> str:
    if value.isascii() and value.isdigit() and len(value) < 10:
        return value
    value = value.strip(_WHITESPACE)
    if not value:
        return ""
    if not _INTEGER.fullmatch(value) or not -_INT32 <= int(value) <= _INT32:
        raise RowError(f"{column} {value!r} is not a whole number")
    return str(int(value))


def _bool(value: str, column: str) -> str:
    known = _BOOLS.get(value)
    if known is not None:
        return known
    lowered = value.strip(_WHITESPACE).lower()
    if not lowered:
        return ""
    if lowered in _TRUE:
        return "t"
    if lowered in _FALSE:
        return "f"
    raise RowError(f"{column} {value!r} is not True or False")


def _timestamp(value: str) -> str:
    """The Metadata Date as ISO 8601 UTC; an unreadable one is dropped (csv_raw keeps it)."""
    value = value.strip(_WHITESPACE)
    if not value:
        return ""
    for parse in (datetime.fromisoformat, lambda v: datetime.strptime(v, "%m/%d/%Y %I:%M:%S %p")):
        try:
            parsed = parse(value)
        except ValueError:
            continue
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC).isoformat()
    return ""


def _constituent_ids(value: str, artists: tuple[str, ...]) -> str:
    """Pipe-joined ids when they split into one per constituent, else "" (csv_raw keeps them)."""
    value = value.strip(_WHITESPACE)
    if not value:
        return ""
    parts = value.split("|")
    if len(parts) != max(v.count("|") for v in artists) + 1:
        return ""
    ids = [p.strip(_WHITESPACE) for p in parts]
    return "|".join(p if _INTEGER.fullmatch(p) and 0 < int(p) <= _INT32 else "" for p in ids)


def _getter(indexes: list[int | None]) -> Callable[[list[str]], tuple[str, ...]]:
    """A fast row -> tuple of fields; a column the header lacks reads as ""."""
    if all(i is not None for i in indexes):
        if len(indexes) == 1:
            first = indexes[0]
            return lambda row: (row[first],)
        return itemgetter(*indexes)
    return lambda row: tuple("" if i is None else row[i] for i in indexes)


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
        self.id_index = index["Object ID"]
        positions = [index.get(name) for name in CSV_HEADER]
        # the staged raw columns follow CSV_HEADER whatever the file's column order
        self._canonical = None if self.header == list(CSV_HEADER) else _getter(positions)
        self._bools = itemgetter(*[CSV_HEADER.index(c) for c in BOOL_COLUMNS])
        self._ints = itemgetter(*[CSV_HEADER.index(c) for c in INT_COLUMNS])
        self._artists = itemgetter(*[CSV_HEADER.index(c) for c in ARTIST_COLUMNS])
        self._metadata_date = CSV_HEADER.index("Metadata Date")
        self._constituent_id = CSV_HEADER.index("Constituent ID")
        missing = [c for c, i in zip(CSV_HEADER, positions, strict=True) if i is None]
        extra = [c for c in self.header if c not in CSV_HEADER]
        if missing:
            log.warning("CSV header lacks %d of the Met's columns (imported as empty): %s",
                        len(missing), ", ".join(missing))
        if extra:
            log.warning("CSV header has %d unknown columns (not imported): %s", len(extra), ", ".join(extra))

    def object_id(self, row: list[str]) -> int | None:
        """The row's Object ID when it is a valid one, else None."""
        raw_id = row[self.id_index].strip(_WHITESPACE) if len(row) > self.id_index else ""
        if _INTEGER.fullmatch(raw_id) and 0 < int(raw_id) <= _INT32:
            return int(raw_id)
        return None

    def parse(self, row: list[str]) -> list[str]:
        """The staging row: id, hash, typed booleans/ints/date, constituent ids, then the raw fields."""
        if len(row) != self.width:
            raise RowError(f"expected {self.width} columns, found {len(row)}")
        object_id = self.object_id(row)
        if object_id is None:
            raise RowError(f"Object ID {row[self.id_index].strip()!r} is not a positive whole number")
        if self._canonical is not None:
            row = list(self._canonical(row))
        joined = "\x1f".join(row)
        if "\x00" in joined:  # PostgreSQL text cannot hold NUL
            row = [value.replace("\x00", "") for value in row]
            joined = "\x1f".join(row)
        digest = hashlib.blake2b(joined.encode("utf-8"), digest_size=16, person=_HASH_PERSON).hexdigest()
        staged = [str(object_id), digest]
        staged.extend(_bool(value, column) for value, column in zip(self._bools(row), BOOL_COLUMNS, strict=True))
        staged.extend(_int(value, column) for value, column in zip(self._ints(row), INT_COLUMNS, strict=True))
        staged.append(_timestamp(row[self._metadata_date]))
        artists = self._artists(row)
        staged.append(_constituent_ids(row[self._constituent_id], artists) if any(artists) else "")
        staged.extend(row)
        return staged


# --- input -------------------------------------------------------------------------------------


@dataclass
class _Source:
    name: str
    stream: IO[bytes]
    total_bytes: int | None
    close: Callable[[], None]
    is_url: bool = False


class _CountingReader(io.RawIOBase):
    """A raw binary stream that hashes and counts the bytes read through it."""

    def __init__(self, source: _Source):
        self._source = source
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self._source.stream.read(len(buffer))
        except Exception as exc:
            if not self._source.is_url:
                raise
            # a dropped connection or a stalled body: worth retrying (the import is one transaction)
            raise MetRetryableError(f"download of {self._source.name} broke off after "
                                    f"{self.bytes_read} bytes: {exc}") from exc
        if not data:
            return 0
        n = len(data)
        buffer[:n] = data
        self.sha256.update(data)
        self.bytes_read += n
        return n


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _open_source(source: str | os.PathLike, settings: Settings) -> _Source:
    text = os.fspath(source)
    if _is_url(text):
        import requests

        try:
            response = requests.get(text, stream=True, timeout=settings.met_timeout,
                                    headers={"User-Agent": settings.met_user_agent})
        except requests.RequestException as exc:
            raise MetRetryableError(f"cannot download {text}: {exc}") from exc
        if response.status_code >= 400:
            response.close()
            error = ConfigError if 400 <= response.status_code < 500 and response.status_code != 429 \
                else MetRetryableError
            raise error(f"cannot download {text}: HTTP {response.status_code} {response.reason}")
        response.raw.decode_content = True
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() and not response.headers.get(
            "Content-Encoding") else None
        return _Source(text, response.raw, total, response.close, is_url=True)
    path = Path(text).expanduser()
    if not path.is_file():
        raise ConfigError(f"CSV file {text} does not exist")
    handle = open(path, "rb")
    return _Source(str(path), handle, path.stat().st_size, handle.close)


def _records(text: IO[str]) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """(line number where the record starts, fields or None, error or None) for each record."""
    reader = csv.reader(text, strict=False)
    last_line = reader.line_num
    # a field may be long (a stray quote swallows lines up to the next one): the row is then
    # reported with a wrong column count rather than failing the import
    limit = csv.field_size_limit(_FIELD_SIZE_LIMIT)
    try:
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
    finally:
        csv.field_size_limit(limit)


# --- database ----------------------------------------------------------------------------------
# --- database ----------------------------------------------------------------------------------

_RAW = [f"c{i:02d}" for i in range(len(CSV_HEADER))]  # staged raw fields, in CSV_HEADER order
_RAW_OF = dict(zip(CSV_HEADER, _RAW, strict=True))
_TYPED_STAGE = ("is_highlight", "is_timeline_work", "is_public_domain", "object_begin_date",
                "object_end_date", "metadata_date")
_STAGE_COLUMNS = ("line_number", "object_id", "csv_hash", *_TYPED_STAGE, "constituent_ids", *_RAW)
_WS = r"E' \t\r\n'"


def _trimmed(expression: str) -> str:
    return f"nullif(btrim({expression}, {_WS}), '')"


# Each chunk is COPYed into csv_chunk and merged at once (by the sending thread, while Python reads
# the next chunk); csv_seen keeps every staged (object, line) for the end: duplicates and removals.
_STAGE_SQL = f"""
CREATE TEMP TABLE csv_chunk (
    line_number integer NOT NULL, object_id integer NOT NULL, csv_hash text NOT NULL,
    is_highlight boolean, is_timeline_work boolean, is_public_domain boolean,
    object_begin_date integer, object_end_date integer, metadata_date timestamptz,
    constituent_ids text, {", ".join(f"{c} text" for c in _RAW)}
) ON COMMIT DROP;
CREATE TEMP TABLE csv_delta (
    object_id integer PRIMARY KEY, line_number integer NOT NULL, kind text NOT NULL,
    api_owned boolean NOT NULL, existed boolean NOT NULL
) ON COMMIT DROP;
CREATE TEMP TABLE csv_seen (object_id integer NOT NULL, line_number integer NOT NULL) ON COMMIT DROP;
CREATE TEMP TABLE csv_kinds (object_id integer PRIMARY KEY, kind text NOT NULL) ON COMMIT DROP;
CREATE TEMP TABLE csv_stage_errors (
    line_number integer NOT NULL, object_id integer, reason text NOT NULL, raw_line text
) ON COMMIT DROP;
"""
_COPY = {
    "objects": f"COPY csv_chunk ({', '.join(_STAGE_COLUMNS)}) FROM STDIN WITH (FORMAT csv)",
    "errors": "COPY csv_stage_errors (line_number, object_id, reason, raw_line) FROM STDIN WITH (FORMAT csv)",
}

# Each object of the chunk against the store: new (no earlier CSV import of it), changed or
# unchanged; whether the API owns its typed columns (it returned a record); whether a row existed.
# Of two lines of one object in a chunk the later is merged; the first classification of an
# object in this import is the one counted (csv_kinds).
_CLASSIFY_SQL = """
TRUNCATE csv_delta;
INSERT INTO csv_seen (object_id, line_number) SELECT object_id, line_number FROM csv_chunk;
INSERT INTO csv_delta (object_id, line_number, kind, api_owned, existed)
SELECT DISTINCT ON (s.object_id) s.object_id, s.line_number,
       CASE WHEN m.object_id IS NULL OR m.csv_hash IS NULL THEN 'new'
            WHEN m.csv_hash = s.csv_hash THEN 'unchanged'
            ELSE 'changed' END,
       coalesce(m.source = 'api' AND m.raw IS NOT NULL, false),
       m.object_id IS NOT NULL
FROM csv_chunk s LEFT JOIN met_objects m USING (object_id)
ORDER BY s.object_id, s.line_number DESC;
INSERT INTO csv_kinds (object_id, kind) SELECT object_id, kind FROM csv_delta
ON CONFLICT (object_id) DO NOTHING;
"""
_CHUNK_JOIN = "csv_chunk s JOIN csv_delta d ON d.object_id = s.object_id AND d.line_number = s.line_number"

# At the end: a later line with the same Object ID won; the earlier ones are recorded as errors.
_DUPLICATES_SQL = """
CREATE INDEX ON csv_seen (object_id);
ANALYZE csv_seen;
INSERT INTO csv_stage_errors (line_number, object_id, reason)
SELECT s.line_number, s.object_id,
       'duplicate Object ID ' || s.object_id || ' (line ' || last.line_number || ' is used)'
FROM csv_seen s
JOIN (SELECT object_id, max(line_number) AS line_number FROM csv_seen
      GROUP BY object_id HAVING count(*) > 1) last USING (object_id)
WHERE s.line_number < last.line_number;
"""

_OBJECT_SOURCES: dict[str, str] = {
    **{column: f"s.{column}" for column in _TYPED_STAGE},
    **{column: _trimmed(f"s.{_RAW_OF[name]}") for name, column in TEXT_COLUMNS.items()},
}
_API_OWNED = "(met_objects.source = 'api' AND met_objects.raw IS NOT NULL)"
_CSV_ABSENT = "(met_objects.status = 'gone' AND met_objects.status_reason LIKE %(absent)s)"
_KEEP_API_FIELDS = ",\n    ".join(
    f"{c} = CASE WHEN {_API_OWNED} THEN met_objects.{c} ELSE EXCLUDED.{c} END" for c in _OBJECT_SOURCES)
_MERGE_OBJECTS_SQL = f"""
INSERT INTO met_objects AS met_objects (object_id, source, status, {", ".join(_OBJECT_SOURCES)},
                                        csv_raw, csv_hash, csv_imported_at, updated_at)
SELECT s.object_id, 'csv', 'ok', {", ".join(_OBJECT_SOURCES.values())},
       jsonb_strip_nulls(jsonb_object(%(header)s::text[], ARRAY[{", ".join(f"s.{c}" for c in _RAW)}])),
       s.csv_hash, %(now)s, now()
FROM {_CHUNK_JOIN}
WHERE d.kind <> 'unchanged'
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

# Constituents and tags of objects whose typed columns the CSV owns are replaced when their row is
# new or changed: the pipe lists unnested side by side (unnest pads shorter lists with NULL).
_CSV_OWNED_CHANGES = "d.kind <> 'unchanged' AND NOT d.api_owned"
_DELETE_LISTS_SQL = """
DELETE FROM {table} t USING csv_delta d
WHERE t.object_id = d.object_id AND d.existed AND {owned}
"""
_ARTIST_RAW = [f"s.{_RAW_OF[name]}" for name in ARTIST_COLUMNS]
_INSERT_CONSTITUENTS_SQL = f"""
INSERT INTO met_constituents (object_id, seq, constituent_id, {", ".join(ARTIST_COLUMNS.values())})
SELECT s.object_id, u.seq - 1, nullif(u.constituent_id, '')::integer,
       {", ".join(_trimmed(f"u.{c}") for c in ARTIST_COLUMNS.values())}
FROM {_CHUNK_JOIN}
CROSS JOIN LATERAL unnest(string_to_array(s.constituent_ids, '|'),
                          {", ".join(f"string_to_array({c}, '|')" for c in _ARTIST_RAW)})
     WITH ORDINALITY AS u(constituent_id, {", ".join(ARTIST_COLUMNS.values())}, seq)
WHERE {_CSV_OWNED_CHANGES}
  AND btrim(concat({", ".join(_ARTIST_RAW)}), E' \\t\\r\\n|') <> ''
"""
_TAG_RAW = [f"s.{_RAW_OF[name]}" for name in TAG_COLUMNS]
_INSERT_TAGS_SQL = f"""
INSERT INTO met_tags (object_id, seq, {", ".join(TAG_COLUMNS.values())})
SELECT s.object_id, u.seq - 1, {", ".join(_trimmed(f"u.{c}") for c in TAG_COLUMNS.values())}
FROM {_CHUNK_JOIN}
CROSS JOIN LATERAL unnest({", ".join(f"string_to_array({c}, '|')" for c in _TAG_RAW)})
     WITH ORDINALITY AS u({", ".join(TAG_COLUMNS.values())}, seq)
WHERE {_CSV_OWNED_CHANGES} AND {_TAG_RAW[0]} IS NOT NULL AND {_trimmed("u.term")} IS NOT NULL
"""

# Objects an earlier import saw (csv_hash set) that this file lacks; malformed rows are not absent.
_REMOVED_SQL = """
UPDATE met_objects m SET
    csv_hash = NULL,
    status = CASE WHEN m.source = 'csv' AND m.status <> 'gone' THEN 'gone' ELSE m.status END,
    status_reason = CASE WHEN m.source = 'csv' AND m.status <> 'gone' THEN %(reason)s
                         ELSE m.status_reason END,
    updated_at = now()
WHERE m.csv_hash IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM csv_seen s WHERE s.object_id = m.object_id)
  AND NOT EXISTS (SELECT 1 FROM csv_stage_errors e WHERE e.object_id = m.object_id)
"""


def _copy(cursor, kind: str, rows: list[list[str]]) -> None:
    if not rows:
        return
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    buffer.seek(0)
    cursor.copy_expert(_COPY[kind], buffer, size=1 << 16)


class _ChunkWriter:
    """Hands chunks to a second thread that loads and merges them, so that PostgreSQL works on
    one chunk while Python reads the next (psycopg2 releases the GIL while the server works)."""

    def __init__(self, process: Callable[[dict[str, list[list[str]]]], None]):
        self._process = process
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="csv-merge", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            chunks = self._queue.get()
            if chunks is None:
                return
            if self._error is None:
                try:
                    self._process(chunks)
                except BaseException as exc:  # handed to the main thread by put() / close()
                    self._error = exc

    def put(self, chunks: dict[str, list[list[str]]]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunks)

    def close(self) -> None:
        """Wait until every chunk is merged; raise what the merging thread met."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def _raw_line(row: list[str] | None) -> str | None:
    if row is None:
        return None
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(row)
    return buffer.getvalue().replace("\x00", "")[:_RAW_LINE_LIMIT]


# --- the import --------------------------------------------------------------------------------


def import_csv(source: str | os.PathLike, *, mark_removed: bool = True, chunk_rows: int = 2000,
               settings: Settings | None = None, engine=None,
               progress: Progress | None = None) -> dict[str, Any]:
    """Stream ``MetObjects.csv`` (a path or an http(s) URL) into the store; return the counts.

    Counts: ``rows`` (records read), ``objects`` (distinct objects imported), ``errors``
    (malformed rows and earlier duplicates, each in csv_import_errors with its line number),
    ``new`` (not in an earlier import), ``changed``, ``unchanged``, ``removed`` (in an earlier
    import, absent now; counted and marked only with ``mark_removed``), ``constituents`` and
    ``tags`` (rows written), plus ``import_id``, ``source``, ``sha256``, ``bytes``,
    ``read_seconds`` (reading, loading and merging), ``finish_seconds``, ``seconds`` and
    ``rows_per_s``. A small JSON-able dict (an Airflow task may return it). Importing the same
    file twice changes nothing the second time.
    """
    from metgan.store import get_engine

    settings = settings or get_settings()
    engine = engine or get_engine(settings)
    started = time.monotonic()
    opened = _open_source(source, settings)
    connection = engine.raw_connection()
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
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            cursor.execute("UPDATE csv_imports SET status = 'failed', finished_at = now(), counts = %s "
                           "WHERE import_id = %s", (json.dumps({"error": message}), import_id))
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
    read_started = time.monotonic()
    counting = _CountingReader(opened)
    buffered = io.BufferedReader(counting, buffer_size=1 << 20)
    if buffered.peek(len(_LFS_POINTER))[: len(_LFS_POINTER)] == _LFS_POINTER:
        raise ConfigError(f"{opened.name} is a Git LFS pointer, not the CSV; fetch the file itself "
                          "(git lfs pull, or the media.githubusercontent.com URL)")
    text = io.TextIOWrapper(buffered, encoding="utf-8-sig", errors="replace", newline="")
    records = _records(text)
    first = next(records, None)
    if first is None:
        raise ConfigError(f"{opened.name} is empty")
    if first[1] is None:
        raise ConfigError(f"{opened.name}: the header line is not readable CSV")
    parser = RowParser(first[1])

    # progress counts megabytes read: the row count is unknown until the end
    progress = progress or Progress(f"import {Path(opened.name).name} (MB)", logger=log)
    if opened.total_bytes:
        progress.start(max(1, round(opened.total_bytes / 1e6)))
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_KEY,))
    cursor.execute(_STAGE_SQL)
    merge_params = {"header": list(CSV_HEADER), "now": datetime.now(UTC),
                    "absent": ABSENT_REASON + "%"}
    written = {"constituents": 0, "tags": 0}

    def merge(chunks: dict[str, list[list[str]]]) -> None:
        _copy(cursor, "errors", chunks["errors"])
        if not chunks["objects"]:
            return
        _copy(cursor, "objects", chunks["objects"])
        cursor.execute(_CLASSIFY_SQL)
        cursor.execute(_MERGE_OBJECTS_SQL, merge_params)
        for table, insert in (("met_constituents", _INSERT_CONSTITUENTS_SQL), ("met_tags", _INSERT_TAGS_SQL)):
            cursor.execute(_DELETE_LISTS_SQL.format(table=table, owned=_CSV_OWNED_CHANGES))
            cursor.execute(insert)
            written[table.removeprefix("met_")] += cursor.rowcount
        cursor.execute("TRUNCATE csv_chunk")

    rows = 0
    writer = _ChunkWriter(merge)
    reported = 0

    def flush() -> None:
        nonlocal reported
        writer.put({"objects": staged, "errors": errors})
        megabytes = round(counting.bytes_read / 1e6)
        progress.advance(megabytes - reported)
        reported = megabytes

    staged: list[list[str]] = []
    errors: list[list[str | None]] = []
    try:
        for line_number, row, error in records:
            rows += 1
            if error is None:
                try:
                    staged.append([str(line_number), *parser.parse(row)])
                    if len(staged) >= chunk_rows:
                        flush()
                        staged, errors = [], []
                    continue
                except RowError as exc:
                    error = str(exc)
            object_id = parser.object_id(row) if row is not None else None
            errors.append([str(line_number), "" if object_id is None else str(object_id), error,
                           _raw_line(row)])
        flush()
    finally:
        writer.close()
    progress.finish()
    read_done = time.monotonic()

    cursor.execute(_DUPLICATES_SQL)
    cursor.execute("SELECT kind, count(*) FROM csv_kinds GROUP BY kind")
    by_kind = dict(cursor.fetchall())
    counts: dict[str, Any] = {"rows": rows, **written}
    removed = 0
    if mark_removed:
        cursor.execute(_REMOVED_SQL, {"reason": f"{ABSENT_REASON} {import_started.date().isoformat()}"})
        removed = cursor.rowcount
    cursor.execute(
        "INSERT INTO csv_import_errors (import_id, line_number, reason, raw_line) "
        "SELECT %s, line_number, reason, raw_line FROM csv_stage_errors "
        "ON CONFLICT (import_id, line_number) DO NOTHING", (import_id,))
    counts["errors"] = cursor.rowcount
    counts.update({
        "objects": sum(by_kind.values()),
        "new": by_kind.get("new", 0), "changed": by_kind.get("changed", 0),
        "unchanged": by_kind.get("unchanged", 0), "removed": removed,
        "bytes": counting.bytes_read, "sha256": counting.sha256.hexdigest(),
        "read_seconds": round(read_done - read_started, 3),
        "finish_seconds": round(time.monotonic() - read_done, 3),
    })
    cursor.execute("UPDATE csv_imports SET status = 'success', finished_at = now(), sha256 = %s, "
                   "counts = %s WHERE import_id = %s", (counts["sha256"], json.dumps(counts), import_id))
    connection.commit()
    return counts
