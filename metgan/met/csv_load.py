"""Loading checked CSV rows into the store: COPY lines, the chunk merge, the counts.

Per chunk of rows (``Loader.add``):

1. (reading thread) one query on a second connection fetches the stored ``csv_hash`` of the
   chunk's objects (the store as it was before the import: committed rows): an unchanged row is
   done (counted, nothing built or written); for new and changed rows Python builds the COPY
   lines: the text columns trimmed, the pipe-separated artist and tag columns split position by
   position;
2. (merging thread, while Python reads the next chunk: two cores, Python on one, PostgreSQL on
   the other) objects the store has never had are ``COPY``d straight into ``met_objects``; the
   others (an earlier import, the API, a removed one coming back) into the TEMP table
   ``csv_chunk``, merged with one ``INSERT ... ON CONFLICT``; the changed objects' old lists are
   deleted and the constituents and tags ``COPY``d into ``met_constituents`` and ``met_tags``.

Everything runs in the import's transaction (``metgan.met.csv_import`` owns it; the statements
are ``metgan.db.csv_imports``'s). The loader takes ``met_objects`` in SHARE ROW EXCLUSIVE
mode, so no object can appear between a chunk's lookup and its COPY, and keeps the line of every
object id seen: at the end it gives the duplicates and, with one query, the objects absent from
this file.
"""

from __future__ import annotations

import functools
import itertools
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter

from metgan.db.csv_imports import CsvImport
from metgan.met.csv_read import (
    ARTIST_COLUMNS,
    BREAKS,
    CSV_HEADER,
    INT32,
    INTEGER,
    PLAIN,
    SPECIAL,
    TAG_COLUMNS,
    TEXT_COLUMNS,
    WHITESPACE,
    ParsedRow,
)

log = logging.getLogger(__name__)

_RAW_LINE_LIMIT = 10_000

# --- COPY lines (text format, "" is NULL) ------------------------------------------------------

_TEXT_INDEXES = itemgetter(*[CSV_HEADER.index(name) for name in TEXT_COLUMNS])
_ARTIST_INDEXES = itemgetter(*[CSV_HEADER.index(name) for name in ARTIST_COLUMNS])
_TAG_INDEXES = itemgetter(*[CSV_HEADER.index(name) for name in TAG_COLUMNS])
_CONSTITUENT_ID_INDEX = CSV_HEADER.index("Constituent ID")
_METADATA_DATE_INDEX = CSV_HEADER.index("Metadata Date")
_LIST_BLANK = WHITESPACE + "|"
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")
_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_TRIMMED = itertools.repeat(WHITESPACE)  # map(str.strip, values, _TRIMMED): each value trimmed


@functools.lru_cache(maxsize=4096)  # the file's dates repeat: one parse per distinct value
def _timestamp(value: str) -> str:
    """The Metadata Date as ISO 8601 UTC; an unreadable one is dropped (csv_raw keeps it)."""
    value = value.strip(WHITESPACE)
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


def _constituent_ids(value: str, length: int) -> list[str]:
    """One id per constituent when the ids split into ``length`` parts, else "" for each
    (csv_raw keeps them)."""
    parts = value.split("|")
    if len(parts) != length:
        return [""] * length
    ids = [p.strip(WHITESPACE) for p in parts]
    return [p if INTEGER.fullmatch(p) and 0 < int(p) <= INT32 else "" for p in ids]


def _escape(text: str) -> str:
    """A value for COPY's text format."""
    return text.translate(_TEXT_ESCAPES) if _NEEDS_ESCAPE.search(text) else text


def copy_line(fields: list[str] | tuple[str, ...]) -> str:
    """A COPY line (text format) of any fields."""
    return "\t".join([_escape(value) for value in fields])


def _tabbed(values: tuple[str, ...] | list[str], escapes: int) -> str:
    """Values trimmed of spaces, tabs and line breaks, tab-separated for COPY ("" is NULL).

    ``escapes`` (what the record's text holds) picks the way: a PLAIN record's values hold no
    tab or line break, so they are joined, and trimmed only when the joined text shows a space
    at a value's edge; a record with line BREAKS has its values trimmed and then the breaks
    escaped in the joined text; only a record with a tab or backslash has each value escaped alone.
    """
    if escapes == PLAIN:
        joined = "\t".join(values)
        if " \t" in joined or "\t " in joined or joined[:1] == " " or joined[-1:] == " ":
            joined = "\t".join(map(str.strip, values, _TRIMMED))
        return joined
    if escapes == BREAKS:
        return "\t".join(map(str.strip, values, _TRIMMED)).replace("\r", "\\r").replace("\n", "\\n")
    return "\t".join([_escape(value.strip(WHITESPACE)) for value in values])


def _escaped_raw(raw: bytes, escapes: int) -> bytes:
    if escapes == PLAIN:
        return raw
    if escapes == SPECIAL:
        raw = raw.replace(b"\\", b"\\\\").replace(b"\t", b"\\t")
    return raw.replace(b"\r", b"\\r").replace(b"\n", b"\\n")


def staged_object(parsed: ParsedRow, imported_at: bytes) -> bytes:
    """The met_objects COPY line of a record (columns: store.csv_imports.OBJECT_COLUMNS), UTF-8: the record's
    bytes go in as read, only the typed columns are encoded."""
    # unpacked at once: one step, where each attribute of a NamedTuple is a type lookup and a call
    object_id, csv_hash, typed, fields, raw, escapes = parsed
    head = "\t".join([str(object_id), "csv", csv_hash, *typed,
                      _timestamp(fields[_METADATA_DATE_INDEX]), _tabbed(_TEXT_INDEXES(fields), escapes),
                      ""]).encode("utf-8")
    return b"".join((head, _escaped_raw(raw, escapes), imported_at))


def _split_lists(values: tuple[str, ...]) -> tuple[int, list[list[str]]]:
    """Pipe lists side by side, each value trimmed: their longest length and each list padded
    with "" to it."""
    parts = [list(map(str.strip, value.split("|"), _TRIMMED)) if value else [] for value in values]
    length = max(map(len, parts))
    return length, [p + [""] * (length - len(p)) if len(p) < length else p for p in parts]


def staged_constituents(parsed: ParsedRow) -> tuple[int, str]:
    """The met_constituents COPY lines of a record, as one block, and their number: the artist
    columns' pipe lists, position by position, each value trimmed."""
    object_id, _, _, fields, _, escapes = parsed
    artists = _ARTIST_INDEXES(fields)
    if not "".join(artists).strip(_LIST_BLANK):
        return 0, ""
    if escapes == PLAIN and "|" not in "".join(artists):  # one constituent, the commonest case
        (constituent_id,) = _constituent_ids(fields[_CONSTITUENT_ID_INDEX], 1)
        return 1, f"{object_id}\t0\t{constituent_id}\t" + "\t".join(map(str.strip, artists, _TRIMMED))
    length, columns = _split_lists(artists)
    ids = _constituent_ids(fields[_CONSTITUENT_ID_INDEX], length)
    if escapes == PLAIN:
        return length, "\n".join([f"{object_id}\t{seq}\t{ids[seq]}\t" + "\t".join(values)
                                  for seq, values in enumerate(zip(*columns, strict=True))])
    return length, "\n".join([f"{object_id}\t{seq}\t{ids[seq]}\t" + _tabbed(values, escapes)
                              for seq, values in enumerate(zip(*columns, strict=True))])


def staged_tags(parsed: ParsedRow) -> tuple[int, str]:
    """The met_tags COPY lines of a record, as one block, and their number: the three tag
    columns' pipe lists, position by position, trimmed; a position without a term is skipped
    (its seq is not reused)."""
    object_id, _, _, fields, _, escapes = parsed
    tags = _TAG_INDEXES(fields)
    if not tags[0]:
        return 0, ""
    if escapes == PLAIN and "|" not in "".join(tags):  # one tag
        term, aat_url, wikidata_url = map(str.strip, tags, _TRIMMED)
        return (1, f"{object_id}\t0\t{term}\t{aat_url}\t{wikidata_url}") if term else (0, "")
    length, (terms, aat, wikidata) = _split_lists(tags)
    if escapes == PLAIN:
        lines = [f"{object_id}\t{seq}\t{terms[seq]}\t{aat[seq]}\t{wikidata[seq]}"
                 for seq in range(length) if terms[seq]]
    else:
        lines = [f"{object_id}\t{seq}\t" + _tabbed((terms[seq], aat[seq], wikidata[seq]), escapes)
                 for seq in range(length) if terms[seq]]
    return len(lines), "\n".join(lines)


def error_line(import_id: int, line_number: int, reason: str, raw: bytes | None) -> str:
    """The csv_import_errors COPY line of a rejected record (its bytes cut to 10,000 characters)."""
    raw_line = None if raw is None else raw.decode("utf-8", "replace").replace("\x00", "")[:_RAW_LINE_LIMIT]
    return copy_line([str(import_id), str(line_number), reason, raw_line or ""])


# --- the loader --------------------------------------------------------------------------------


@dataclass
class Counts:
    """What the import has done so far. The reading thread counts the objects by kind (each
    once, as its first line found it), the merging thread the list rows written."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    constituents: int = 0
    tags: int = 0


@dataclass
class Timings:
    """Seconds per phase, summed over chunks: lookup and build in the reading thread; objects
    and lists (constituents and tags) in the merging thread. Logged at DEBUG and returned."""

    lookup: float = 0.0
    build: float = 0.0
    objects: float = 0.0
    lists: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {name: round(value, 3) for name, value in vars(self).items()}


@dataclass
class _Chunk:
    """What one chunk writes: COPY lines (blocks of them for the lists) and the objects whose
    earlier lists go."""

    errors: list[str]
    new: list[bytes] = field(default_factory=list)
    changed: list[bytes] = field(default_factory=list)
    constituents: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    replaced: list[int] = field(default_factory=list)
    constituent_rows: int = 0
    tag_rows: int = 0


class _ChunkWriter:
    """Hands chunks to a second thread that loads and merges them, so that PostgreSQL works on
    one chunk while Python reads the next (psycopg2 releases the GIL while the server works)."""

    def __init__(self, process: Callable[[_Chunk], None]):
        self._process = process
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="csv-merge", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            if self._error is None:
                try:
                    self._process(chunk)
                except BaseException as exc:  # handed to the main thread by put() / close()
                    self._error = exc

    def put(self, chunk: _Chunk) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def close(self) -> None:
        """Wait until every chunk is merged; raise what the merging thread met."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


class Loader:
    """Writes chunks of checked rows into the store, in the transaction of the import ``session``.

    Locks ``met_objects`` and creates the merge's TEMP table when made; ``add`` each chunk,
    then ``close`` (waits for the merging thread) and ``mark_removed``.
    """

    def __init__(self, session: CsvImport):
        self._session = session
        self._import_id = session.import_id
        self.counts = Counts()
        self.timings = Timings()
        # the line of every object id of this import so far (about 40 MB for the real file's
        # 490k): a later line of an object is merged over the earlier one, which is recorded as
        # a duplicate at the end
        self.seen: dict[int, int] = {}
        self._duplicates: list[tuple[int, int]] = []  # (object id, an earlier line of it)
        self.errors_written = 0
        # a first import into an empty store (the bootstrap) needs no lookups: every object is new
        self._store_was_empty = session.begin_load()
        self.imported_at = datetime.now(UTC)
        self._imported_at_column = ("\t" + self.imported_at.isoformat()).encode()  # last in a line
        self._writer = _ChunkWriter(self._merge)

    def add(self, rows: list[tuple[int, ParsedRow]], errors: list[str]) -> None:
        """Classify and build a chunk of (line number, row) and the error lines read with it,
        and queue it for the merging thread (which may still be busy with the previous one)."""
        chunk = self._build(rows) if rows else _Chunk([])
        chunk.errors = errors
        self._writer.put(chunk)
        self.errors_written += len(errors)

    def add_duplicates(self) -> None:
        """Record the earlier line of every object a later line replaced, as an error."""
        self.add([], [error_line(self._import_id, earlier, f"duplicate Object ID {object_id} "
                                                           f"(line {self.seen[object_id]} is used)", None)
                      for object_id, earlier in self._duplicates])

    def close(self) -> None:
        """Wait until every chunk is merged; raise what the merging thread met."""
        self._writer.close()

    def mark_removed(self, keep: set[int], reason: str) -> int:
        """Mark the objects an earlier import saw that this one neither wrote, saw unchanged nor
        found in ``keep`` (the ids of malformed rows) as removed; returns how many."""
        absent = [object_id for object_id in self._session.not_written(self.imported_at)
                  if object_id not in self.seen and object_id not in keep]
        if not absent:
            return 0
        return self._session.mark_removed(absent, reason)

    def _build(self, rows: list[tuple[int, ParsedRow]]) -> _Chunk:
        """(Reading thread.) Classify a chunk's rows against the store and build what is written."""
        clock = time.monotonic()
        first_line = rows[0][0]
        seen, counts = self.seen, self.counts
        last: dict[int, ParsedRow] = {}  # a later line wins
        again: set[int] = set()  # objects an earlier chunk already wrote
        for line_number, parsed in rows:
            object_id = parsed.object_id
            earlier = seen.get(object_id)
            if earlier is not None:
                self._duplicates.append((object_id, earlier))
                if earlier < first_line:
                    again.add(object_id)
            seen[object_id] = line_number
            last[object_id] = parsed
        # the store as it was before this import (committed rows), read on the second connection
        # while the first one is busy merging the previous chunk
        stored: dict[int, tuple[str | None, bool]] = {}
        if not self._store_was_empty:
            stored = self._session.stored_state(list(last))
        now = time.monotonic()
        self.timings.lookup += now - clock
        clock = now

        chunk = _Chunk([])
        for object_id, parsed in last.items():
            known = object_id in stored
            csv_hash, api_owned = stored[object_id] if known else (None, False)
            if object_id not in again:  # each object counted once, as its first line found it
                if csv_hash == parsed.csv_hash:
                    counts.unchanged += 1
                    continue
                if csv_hash is None:
                    counts.new += 1
                else:
                    counts.changed += 1
            line = staged_object(parsed, self._imported_at_column)
            if not known and object_id not in again:
                chunk.new.append(line)
            else:
                chunk.changed.append(line)
            if api_owned:
                continue
            if known or object_id in again:  # its earlier lists (from the store or this import) go
                chunk.replaced.append(object_id)
            count, block = staged_constituents(parsed)
            if count:
                chunk.constituent_rows += count
                chunk.constituents.append(block)
            count, block = staged_tags(parsed)
            if count:
                chunk.tag_rows += count
                chunk.tags.append(block)
        self.timings.build += time.monotonic() - clock
        return chunk

    def _merge(self, chunk: _Chunk) -> None:
        """(Merging thread.) Load and merge one built chunk."""
        session = self._session
        session.copy("errors", chunk.errors)
        clock = time.monotonic()
        session.copy("new", chunk.new)
        if chunk.changed:
            session.copy("changed", chunk.changed)
            session.merge_changed()
        now = time.monotonic()
        self.timings.objects += now - clock
        if chunk.replaced:
            session.delete_lists(chunk.replaced)
        session.copy("constituents", chunk.constituents)
        session.copy("tags", chunk.tags)
        self.counts.constituents += chunk.constituent_rows
        self.counts.tags += chunk.tag_rows
        self.timings.lists += time.monotonic() - now
