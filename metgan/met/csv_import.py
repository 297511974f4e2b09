"""Import the Met's Open Access ``MetObjects.csv`` into the tables the API ingest fills.

The file (about 317 MB, 490k rows, 54 columns, UTF-8 with a BOM) is streamed: it is read in
1 MB blocks (from disk or the HTTP body) split into lines, the csv module parses the decoded
lines, and each record's bytes are kept as they stand in the file (``csv_raw``). Python checks
what must be rejected with a line number (column count, the Object ID, the begin/end dates, the
booleans) and hashes the record.
Per chunk of rows it asks the store for their stored hashes in one query (on a second
connection: the store as it was before the import), so that an unchanged row is only counted (a
re-import of the same file writes almost nothing), and builds COPY lines for the new and changed
ones: the text columns trimmed, the pipe-separated artist and tag columns split position by
position. A second thread loads each built chunk while Python reads the next (two cores: Python
on one, PostgreSQL on the other):

- objects the store has never had are ``COPY``d straight into ``met_objects``;
- objects it has (an earlier import, the API, a removed one coming back) are ``COPY``d into a
  TEMP table and merged with one ``INSERT ... ON CONFLICT``;
- constituents and tags are ``COPY``d into ``met_constituents`` and ``met_tags`` after one
  ``DELETE`` of the changed objects' old lists.

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

import csv
import functools
import hashlib
import io
import itertools
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
from metgan.urlpolicy import excerpt

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
# the three boolean columns as the file spells them -> their COPY values, in one lookup
_BOOL_TRIPLES = {(a, b, c): (_BOOLS[a], _BOOLS[b], _BOOLS[c]) for a in _BOOLS for b in _BOOLS for c in _BOOLS}
_LFS_POINTER = b"version https://git-lfs"
_RAW_LINE_LIMIT = 10_000
_FIELD_SIZE_LIMIT = 16 * 1024 * 1024
# Part of every csv_hash: change it when the mapping of columns changes, so the next import of
# the same file rewrites every CSV-owned row instead of skipping it as unchanged.
# v2: sha256 of the record's bytes (v1: blake2b of its fields). Copied per record: cheaper than
# a new hash object, and OpenSSL's sha256 is 1.5x faster per record here than blake2b.
_HASH_SEED = hashlib.sha256(b"metgan-csv-v2\x00")
ABSENT_REASON = "absent from CSV"


class RowError(ValueError):
    """A CSV row that cannot be imported; the message is the reason recorded for it."""


# --- parsing -----------------------------------------------------------------------------------
#
# The hot loop (490k rows): every record is checked and hashed; only new and changed rows are built.


def _int(value: str, column: str) -> str:
    if value.isascii() and len(value) < 10 and (value.isdigit() or value[:1] == "-" and value[1:].isdigit()):
        return value  # the file's spelling (a year, B.C. ones negative) is COPY's
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


@functools.lru_cache(maxsize=4096)  # the file's dates repeat: one parse per distinct value
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


def _constituent_ids(value: str, length: int) -> list[str]:
    """One id per constituent when the ids split into ``length`` parts, else "" for each
    (csv_raw keeps them)."""
    parts = value.split("|")
    if len(parts) != length:
        return [""] * length
    ids = [p.strip(_WHITESPACE) for p in parts]
    return [p if _INTEGER.fullmatch(p) and 0 < int(p) <= _INT32 else "" for p in ids]


def _getter(indexes: list[int | None]) -> Callable[[list[str]], tuple[str, ...]]:
    """A fast row -> tuple of fields; a column the header lacks reads as ""."""
    if all(i is not None for i in indexes):
        if len(indexes) == 1:
            first = indexes[0]
            return lambda row: (row[first],)
        return itemgetter(*indexes)
    return lambda row: tuple("" if i is None else row[i] for i in indexes)


# What a record's text holds that COPY's text format must escape, which decides how its lines
# are built (see _tabbed): nothing (most records), only line breaks (multi-line Dimensions), or
# a tab or backslash somewhere.
PLAIN, BREAKS, SPECIAL = 0, 1, 2
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")


def _escapes(raw: bytes) -> int:
    # find, not `in`: bytes.__contains__ tries its argument as an int first and builds a
    # TypeError before it searches (3% of the import's instructions for these checks)
    if raw.find(b"\t") >= 0 or raw.find(b"\\") >= 0:
        return SPECIAL
    return BREAKS if raw.find(b"\n") >= 0 or raw.find(b"\r") >= 0 else PLAIN


class RowParser:
    """Turns CSV records into checked rows, given the file's header."""

    def __init__(self, header: list[str]):
        self.header = [name.lstrip("\ufeff").strip() for name in header]
        index = {name: i for i, name in enumerate(self.header)}
        if "Object ID" not in index:
            raise ConfigError("the CSV header has no 'Object ID' column; is this the Met's MetObjects.csv?")
        self.width = len(self.header)
        self.id_index = index["Object ID"]
        positions = [index.get(name) for name in CSV_HEADER]
        # the fields follow CSV_HEADER whatever the file's column order
        self._canonical = None if self.header == list(CSV_HEADER) else _getter(positions)
        self._bools = itemgetter(*[CSV_HEADER.index(c) for c in BOOL_COLUMNS])
        self._ints = itemgetter(*[CSV_HEADER.index(c) for c in INT_COLUMNS])
        missing = [c for c, i in zip(CSV_HEADER, positions, strict=True) if i is None]
        extra = [c for c in self.header if c not in CSV_HEADER]
        if missing:
            log.warning("CSV header lacks %d of the Met's columns (imported as empty): %s",
                        len(missing), ", ".join(missing))
        if extra:
            log.warning("CSV header has %d unknown columns (not imported), the first %s",
                        len(extra), excerpt(extra[0]))

    def object_id(self, row: list[str]) -> int | None:
        """The row's Object ID when it is a valid one, else None."""
        raw_id = row[self.id_index].strip(_WHITESPACE) if len(row) > self.id_index else ""
        if raw_id.isascii() and raw_id.isdigit() and len(raw_id) < 10:
            return int(raw_id) or None
        if _INTEGER.fullmatch(raw_id) and 0 < int(raw_id) <= _INT32:
            return int(raw_id)
        return None

    def parse(self, row: list[str], raw: str) -> Parsed:
        """Check a record (a bad one raises RowError) and return it with its id, hash and typed values.

        ``raw`` is the record's bytes as read, without its line break. Only the checks and the
        hash are done for every row; the COPY lines are built by ``staged_*`` for the rows that
        are new or changed.
        """
        if len(row) != self.width:
            raise RowError(f"expected {self.width} columns, found {len(row)}")
        object_id = self.object_id(row)
        if object_id is None:
            raise RowError(f"Object ID {row[self.id_index].strip()!r} is not a positive whole number")
        if raw.find(b"\x00") >= 0:  # PostgreSQL text cannot hold NUL (find: see _escapes)
            row = [value.replace("\x00", "") for value in row]
            raw = raw.replace(b"\x00", b"")
        if self._canonical is not None:
            row = list(self._canonical(row))
        digest = _HASH_SEED.copy()
        digest.update(raw)
        digest = digest.hexdigest()[:32]
        # the common spellings by lookup; anything else through the checking converters
        bools = self._bools(row)
        typed = _BOOL_TRIPLES.get(bools)
        typed = list(typed) if typed is not None else [
            _bool(value, column) for value, column in zip(bools, BOOL_COLUMNS, strict=True)]
        begin, end = self._ints(row)
        if begin.isdigit() and end.isdigit() and len(begin) < 10 and len(end) < 10 and (begin + end).isascii():
            typed += (begin, end)
        else:
            typed += (_int(begin, "Object Begin Date"), _int(end, "Object End Date"))
        return object_id, digest, typed, row, raw, _escapes(raw)


# A checked record: (object id, csv_hash, typed booleans and ints, the fields in CSV_HEADER
# order, the record's bytes (UTF-8, as in the file), what they hold that COPY must escape).
Parsed = tuple[int, str, list[str], list[str], bytes, int]

_TEXT_INDEXES = itemgetter(*[CSV_HEADER.index(name) for name in TEXT_COLUMNS])
_ARTIST_INDEXES = itemgetter(*[CSV_HEADER.index(name) for name in ARTIST_COLUMNS])
_TAG_INDEXES = itemgetter(*[CSV_HEADER.index(name) for name in TAG_COLUMNS])
_CONSTITUENT_ID_INDEX = CSV_HEADER.index("Constituent ID")
_METADATA_DATE_INDEX = CSV_HEADER.index("Metadata Date")
_LIST_BLANK = _WHITESPACE + "|"
_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_TRIMMED = itertools.repeat(_WHITESPACE)  # map(str.strip, values, _TRIMMED): each value trimmed


def _escape(text: str) -> str:
    """A value for COPY's text format."""
    return text.translate(_TEXT_ESCAPES) if _NEEDS_ESCAPE.search(text) else text


def _line(fields: list[str] | tuple[str, ...]) -> str:
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
    return "\t".join([_escape(value.strip(_WHITESPACE)) for value in values])


def _escaped_raw(raw: bytes, escapes: int) -> bytes:
    if escapes == PLAIN:
        return raw
    if escapes == SPECIAL:
        raw = raw.replace(b"\\", b"\\\\").replace(b"\t", b"\\t")
    return raw.replace(b"\r", b"\\r").replace(b"\n", b"\\n")


def staged_object(parsed: Parsed, imported_at: bytes) -> bytes:
    """The met_objects COPY line of a record (columns: OBJECT_COLUMNS), UTF-8: the record's
    bytes go in as read, only the typed columns are encoded."""
    object_id, digest, typed, row, raw, escapes = parsed
    head = "\t".join([str(object_id), "csv", digest, *typed, _timestamp(row[_METADATA_DATE_INDEX]),
                      _tabbed(_TEXT_INDEXES(row), escapes), ""]).encode("utf-8")
    return b"".join((head, _escaped_raw(raw, escapes), imported_at))


def _split_lists(values: tuple[str, ...]) -> tuple[int, list[list[str]]]:
    """Pipe lists side by side, each value trimmed: their longest length and each list padded
    with "" to it."""
    parts = [list(map(str.strip, value.split("|"), _TRIMMED)) if value else [] for value in values]
    length = max(map(len, parts))
    return length, [p + [""] * (length - len(p)) if len(p) < length else p for p in parts]


def staged_constituents(parsed: Parsed) -> tuple[int, str]:
    """The met_constituents COPY lines of a record, as one block, and their number: the artist
    columns' pipe lists, position by position, each value trimmed."""
    object_id, _, _, row, _, escapes = parsed
    artists = _ARTIST_INDEXES(row)
    if not "".join(artists).strip(_LIST_BLANK):
        return 0, ""
    if escapes == PLAIN and "|" not in "".join(artists):  # one constituent, the commonest case
        (constituent_id,) = _constituent_ids(row[_CONSTITUENT_ID_INDEX], 1)
        return 1, f"{object_id}\t0\t{constituent_id}\t" + "\t".join(map(str.strip, artists, _TRIMMED))
    length, columns = _split_lists(artists)
    ids = _constituent_ids(row[_CONSTITUENT_ID_INDEX], length)
    if escapes == PLAIN:
        return length, "\n".join([f"{object_id}\t{seq}\t{ids[seq]}\t" + "\t".join(values)
                                  for seq, values in enumerate(zip(*columns, strict=True))])
    return length, "\n".join([f"{object_id}\t{seq}\t{ids[seq]}\t" + _tabbed(values, escapes)
                              for seq, values in enumerate(zip(*columns, strict=True))])


def staged_tags(parsed: Parsed) -> tuple[int, str]:
    """The met_tags COPY lines of a record, as one block, and their number: the three tag
    columns' pipe lists, position by position, trimmed; a position without a term is skipped
    (its seq is not reused)."""
    object_id, _, _, row, _, escapes = parsed
    tags = _TAG_INDEXES(row)
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


# --- input -------------------------------------------------------------------------------------


@dataclass
class _Source:
    name: str
    stream: IO[bytes]
    total_bytes: int | None
    close: Callable[[], None]
    is_url: bool = False


class _CountingReader:
    """Reads the source in blocks, hashing and counting the bytes."""

    BLOCK = 1 << 20

    def __init__(self, source: _Source):
        self._source = source
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0

    def read(self) -> bytes:
        """The next block (b"" at the end)."""
        try:
            data = self._source.stream.read(self.BLOCK)
        except Exception as exc:
            if not self._source.is_url:
                raise
            # a dropped connection or a stalled body: worth retrying (the import is one transaction)
            raise MetRetryableError(f"download of {self._source.name} broke off after "
                                    f"{self.bytes_read} bytes: {exc}") from exc
        self.sha256.update(data)
        self.bytes_read += len(data)
        return data


def _is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


# Never read from these, whatever METGAN_IMPORT_DIR says: /proc/self/environ is a "regular file".
_SYSTEM_FOLDERS = (Path("/proc"), Path("/sys"), Path("/dev"))
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")  # ftp://, file://: refused, not read as a path


def _open_source(source: str | os.PathLike, settings: Settings) -> _Source:
    """Open an https URL on ``METGAN_CSV_HOSTS`` or a regular file under ``METGAN_IMPORT_DIR``.

    A CSV source comes from a DAG trigger's form as well as the CLI: it must not reach the
    worker's own files (``/proc/self/environ``, a key under $HOME) or an internal host.
    """
    text = os.fspath(source)
    if _is_url(text):
        return _open_url(text, settings)
    if _SCHEME.match(text):
        raise ConfigError(f"CSV source {excerpt(text)} is neither an https URL nor a file in the import folder")
    return _open_file(text, settings)


def _open_url(url: str, settings: Settings) -> _Source:
    import requests

    from metgan.urlpolicy import REDIRECT_STATUSES, UrlPolicy

    policy = UrlPolicy.for_csv(settings.csv_hosts)
    target = policy.check(url)
    hops = 0
    while True:
        try:
            # redirects by hand: requests would follow them anywhere, unchecked
            response = requests.get(target, stream=True, timeout=settings.met_timeout, allow_redirects=False,
                                    headers={"User-Agent": settings.met_user_agent})
        except requests.RequestException as exc:
            raise MetRetryableError(f"cannot download {target}: {type(exc).__name__}") from exc
        if response.status_code not in REDIRECT_STATUSES:
            break
        response.close()
        hops += 1
        target = policy.follow(target, response.headers.get("Location"), hops)
    if response.status_code >= 400:
        response.close()
        error = ConfigError if 400 <= response.status_code < 500 and response.status_code != 429 \
            else MetRetryableError
        raise error(f"cannot download {target}: HTTP {response.status_code} {excerpt(response.reason or '')}")
    response.raw.decode_content = True
    length = response.headers.get("Content-Length")
    total = int(length) if length and length.isdigit() and not response.headers.get(
        "Content-Encoding") else None
    return _Source(target, response.raw, total, response.close, is_url=True)


def _open_file(text: str, settings: Settings) -> _Source:
    import stat

    roots = [folder.resolve() for folder in settings.import_dirs]
    given = Path(text).expanduser()
    # a relative path is in the (first) import folder: a worker's working directory means nothing
    path = (given if given.is_absolute() else roots[0] / given).resolve()  # symlinks and .. first
    if not any(path.is_relative_to(root) for root in roots) or any(
            path.is_relative_to(folder) for folder in _SYSTEM_FOLDERS):
        raise ConfigError(f"CSV file {excerpt(text)} is outside the import folder "
                          f"{os.pathsep.join(map(str, roots))} (METGAN_IMPORT_DIR); put the file there, "
                          "or import it from an https URL")
    try:
        # O_NONBLOCK: a FIFO must not hang the open; O_NOFOLLOW: no symlink swapped in since resolve()
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise ConfigError(f"CSV file {excerpt(text)} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"CSV file {excerpt(text)} cannot be opened: {exc.strerror}") from None
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode):
        os.close(descriptor)
        raise ConfigError(f"CSV file {excerpt(text)} is not a regular file")
    os.set_blocking(descriptor, True)
    handle = os.fdopen(descriptor, "rb")
    return _Source(str(path), handle, info.st_size, handle.close)


def _check_header(name: str, header: list[str]) -> None:
    """Refuse a header that is not the Met's, naming the first column it lacks (never its
    content: the "header" of a wrong file may be anything, a secret included)."""
    present = {column.lstrip("\ufeff").strip() for column in header}
    missing = [column for column in CSV_HEADER if column not in present]
    if missing:
        raise ConfigError(f"{name} is not the Met's MetObjects.csv: its header lacks the column "
                          f"{missing[0]!r} ({len(missing)} of the {len(CSV_HEADER)} columns missing)")


def _public_message(exc: BaseException) -> str:
    """What csv_imports.counts records of a failure: the first line, short and escaped."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else type(exc).__name__
    return first if len(first) <= 300 and first.isprintable() else excerpt(first, 300)


def _line_blocks(chunks: Iterator[bytes]) -> Iterator[list[bytes]]:
    """The lines of the file (bytes, each with its line break: \\n, \\r\\n or \\r, as a csv
    reader over a text file opened with newline="" sees them), a block of them per chunk read;
    a UTF-8 BOM at the start is dropped."""
    bom = b"\xef\xbb\xbf"
    pending = b""
    first = True
    for data in chunks:
        data = pending + data
        if first:
            if len(data) < len(bom) and bom.startswith(data):  # a read shorter than the BOM
                pending = data
                continue
            data = data.removeprefix(bom)
            first = False
        lines = data.splitlines(keepends=True)
        # the last line goes on with the next chunk unless it ends in \n (one ending in \r may
        # be the first half of a \r\n)
        pending = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""
        if lines:
            yield lines
    if pending:
        yield [pending]


_UTF8, _REPLACE = itertools.repeat("utf-8"), itertools.repeat("replace")


def _records(chunks: Iterator[bytes]) -> Iterator[tuple[int, list[str] | None, str | None, bytes]]:
    """(line number where the record starts, fields or None, error or None, the record's bytes
    without its line break) for each record of the file read in ``chunks``."""
    # The csv reader reads text lines from blocks of them (itertools.chain: no Python call per
    # line); a record's bytes are the lines it took, found by the reader's line count. Bytes
    # that are not UTF-8 read (and are stored) as U+FFFD.
    blocks: list[tuple[int, list[bytes]]] = []  # (index of the block's first line, its lines)

    def read_blocks() -> Iterator[list[str]]:
        first = 0
        for lines in _line_blocks(chunks):
            try:
                text = list(map(bytes.decode, lines))
            except UnicodeDecodeError:  # a line that is not UTF-8: its bytes become the text's
                text = list(map(bytes.decode, lines, _UTF8, _REPLACE))
                lines = [line.encode("utf-8") for line in text]
            blocks.append((first, lines))
            first += len(lines)
            yield text

    reader = csv.reader(itertools.chain.from_iterable(read_blocks()), strict=False)
    taken = 0  # lines the reader has taken
    # a field may be long (a stray quote swallows lines up to the next one): the row is then
    # reported with a wrong column count rather than failing the import
    limit = csv.field_size_limit(_FIELD_SIZE_LIMIT)
    try:
        while True:
            start = taken
            try:
                row = next(reader)
                error = None
            except StopIteration:
                return
            except csv.Error as exc:
                row, error = None, f"unreadable CSV record: {exc}"
            taken = reader.line_num
            first, lines = blocks[-1]
            if start >= first:  # the record is in the last block: the earlier ones are done with
                if len(blocks) > 1:
                    del blocks[:-1]
                raw = lines[start - first] if taken - start == 1 else b"".join(lines[start - first:taken - first])
            else:  # a record across blocks
                while blocks[1][0] <= start:
                    del blocks[0]
                raw = b"".join(line for block_first, block in blocks
                               for line in block[max(start - block_first, 0):taken - block_first])
            if row or error:
                yield start + 1, row, error, raw.rstrip(b"\r\n")
    finally:
        csv.field_size_limit(limit)


# --- database ----------------------------------------------------------------------------------
#
# Per chunk:
#
# 1. (reading thread) one query on the second connection fetches the stored csv_hash of the
#    chunk's objects: an unchanged row is done (counted, nothing built or written); for new and
#    changed rows Python builds the COPY lines;
# 2. (merging thread) objects the store lacks are COPYed into met_objects; the others into the
#    TEMP table csv_chunk, merged with one INSERT ... ON CONFLICT; the changed objects' old lists
#    are deleted and the constituents and tags COPYed into their tables.
#
# Python keeps the line of every object id seen: at the end it gives the duplicates and, with
# one query, the objects absent from this file.

OBJECT_COLUMNS = ("object_id", "source", "csv_hash", *BOOL_COLUMNS.values(), *INT_COLUMNS.values(),
                  "metadata_date", *TEXT_COLUMNS.values(), "csv_raw", "csv_imported_at")
_STAGE_SQL = """
CREATE TEMP TABLE csv_chunk (
    object_id integer NOT NULL, source text NOT NULL, csv_hash text NOT NULL,
    is_highlight boolean, is_timeline_work boolean, is_public_domain boolean,
    object_begin_date integer, object_end_date integer, metadata_date timestamptz,
    {text}, csv_raw text NOT NULL, csv_imported_at timestamptz NOT NULL
) ON COMMIT DROP
""".format(text=", ".join(f"{c} text" for c in TEXT_COLUMNS.values()))
# COPY's text format with NULL '' (no column takes an empty string: text is trimmed to NULL)
_COPY = {
    "new": f"COPY met_objects ({', '.join(OBJECT_COLUMNS)}) FROM STDIN WITH (NULL '')",
    "changed": f"COPY csv_chunk ({', '.join(OBJECT_COLUMNS)}) FROM STDIN WITH (NULL '')",
    "constituents": "COPY met_constituents (object_id, seq, constituent_id, {}) FROM STDIN WITH (NULL '')"
                    .format(", ".join(ARTIST_COLUMNS.values())),
    "tags": "COPY met_tags (object_id, seq, {}) FROM STDIN WITH (NULL '')".format(
        ", ".join(TAG_COLUMNS.values())),
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

# Objects an earlier import saw (csv_hash set) that this import did not write: the unchanged
# ones and those absent from this file (Python tells them apart).
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


def _copy(cursor, kind: str, lines: list[str] | list[bytes]) -> None:
    """COPY lines (or blocks of lines) already in the text format, as text or UTF-8."""
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
    cursor.copy_expert(_COPY[kind], io.BytesIO(data), size=len(data))


class _ChunkWriter:
    """Hands chunks to a second thread that loads and merges them, so that PostgreSQL works on
    one chunk while Python reads the next (psycopg2 releases the GIL while the server works)."""

    def __init__(self, process: Callable[[dict[str, Any]], None]):
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

    def put(self, chunks: dict[str, Any]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunks)

    def close(self) -> None:
        """Wait until every chunk is merged; raise what the merging thread met."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


@dataclass
class _Timings:
    """Seconds per phase, summed over chunks: lookup and build in the reading thread; objects
    and lists (constituents and tags) in the merging thread. Logged at DEBUG and returned."""

    lookup: float = 0.0
    build: float = 0.0
    objects: float = 0.0
    lists: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {name: round(value, 3) for name, value in vars(self).items()}


# --- the import --------------------------------------------------------------------------------


def import_csv(source: str | os.PathLike, *, mark_removed: bool = True, chunk_rows: int = 5000,
               settings: Settings | None = None, engine=None,
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
    ``rows_per_s`` and ``phases`` (seconds per phase, see ``_Timings``). A small JSON-able
    dict (an Airflow task may return it). Importing the same file twice changes nothing the
    second time.
    """
    from metgan.store import get_engine

    settings = settings or get_settings()
    engine = engine or get_engine(settings)
    started = time.monotonic()
    opened = _open_source(source, settings)
    connection = engine.raw_connection()
    lookup_connection = engine.raw_connection()  # reads stored hashes while `connection` merges
    import_id = None
    try:
        cursor = connection.cursor()
        _mark_abandoned(cursor)
        cursor.execute("INSERT INTO csv_imports (source) VALUES (%s) RETURNING import_id, started_at",
                       (opened.name,))
        import_id, import_started = cursor.fetchone()
        # held by this session until the import ends (or its process dies): see _mark_abandoned
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", (IMPORT_LOCK_CLASS, import_id))
        connection.commit()
        try:
            counts = _run(connection, cursor, lookup_connection, opened, import_id, import_started,
                          mark_removed=mark_removed, chunk_rows=chunk_rows, progress=progress)
        except BaseException as exc:
            connection.rollback()
            cursor.execute("UPDATE csv_imports SET status = 'failed', finished_at = now(), counts = %s "
                           "WHERE import_id = %s", (json.dumps({"error": _public_message(exc)}), import_id))
            connection.commit()
            raise
    finally:
        opened.close()
        lookup_connection.close()
        if import_id is not None:
            _release_lock(connection, import_id)
        connection.close()
    counts["seconds"] = round(time.monotonic() - started, 3)
    counts["rows_per_s"] = round(counts["rows"] / counts["seconds"], 1) if counts["seconds"] else None
    log.info("CSV import %d of %s: %d rows, %d new, %d changed, %d unchanged, %d removed, "
             "%d errors in %.1f s", import_id, opened.name, counts["rows"], counts["new"],
             counts["changed"], counts["unchanged"], counts["removed"], counts["errors"],
             counts["seconds"])
    return {"import_id": import_id, "source": opened.name, **counts}


# pg_advisory_lock(IMPORT_LOCK_CLASS, import_id): the lock a running CSV import holds ("mc")
IMPORT_LOCK_CLASS = 0x6D63
ABANDONED_MESSAGE = "abandoned: the importing process ended without finishing (killed?)"
_MARK_ABANDONED_SQL = """
UPDATE csv_imports SET status = 'failed', finished_at = now(), counts = counts || %(counts)s::jsonb
WHERE import_id IN (
    SELECT import_id FROM csv_imports
    WHERE status = 'running' AND pg_try_advisory_xact_lock(%(class)s, import_id::integer)
)
"""


def _mark_abandoned(cursor) -> int:
    """Mark ``running`` imports whose session lock is free (their process died: a kill -9, an
    OOM kill, a lost worker) as failed; returns how many. Runs in the caller's transaction."""
    cursor.execute(_MARK_ABANDONED_SQL, {"class": IMPORT_LOCK_CLASS,
                                         "counts": json.dumps({"error": ABANDONED_MESSAGE})})
    if cursor.rowcount:
        log.warning("marked %d abandoned CSV import(s) as failed", cursor.rowcount)
    return cursor.rowcount


def mark_abandoned_imports(engine=None, settings: Settings | None = None) -> int:
    """Mark CSV imports left ``running`` by a process that died as ``failed``; returns how many.

    Every import does this before it starts; call it before reading ``csv_imports`` statuses.
    """
    from metgan.store import get_engine

    engine = engine or get_engine(settings or get_settings())
    connection = engine.raw_connection()
    try:
        count = _mark_abandoned(connection.cursor())
        connection.commit()
        return count
    finally:
        connection.close()


def _release_lock(connection, import_id: int) -> None:
    # the connection goes back to a pool: a session lock left on it would outlive the import
    try:
        connection.rollback()
        cursor = connection.cursor()
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", (IMPORT_LOCK_CLASS, import_id))
        connection.commit()
    except Exception:  # a dead connection holds no lock any more
        log.debug("could not release the lock of CSV import %d", import_id, exc_info=True)


def _error_line(import_id: int, line_number: int, reason: str, raw: bytes | None) -> str:
    raw_line = None if raw is None else raw.decode("utf-8", "replace").replace("\x00", "")[:_RAW_LINE_LIMIT]
    return _line([str(import_id), str(line_number), reason, raw_line or ""])


def _run(connection, cursor, lookup_connection, opened: _Source, import_id: int, import_started: datetime, *,
         mark_removed: bool, chunk_rows: int, progress: Progress | None) -> dict[str, Any]:
    read_started = time.monotonic()
    counting = _CountingReader(opened)
    head = counting.read()
    if head.startswith(_LFS_POINTER):
        raise ConfigError(f"{opened.name} is a Git LFS pointer, not the CSV; fetch the file itself "
                          "(git lfs pull, or the media.githubusercontent.com URL)")
    records = _records(itertools.chain([head], iter(counting.read, b"")))
    first = next(records, None)
    if first is None:
        raise ConfigError(f"{opened.name} is empty")
    if first[1] is None:
        raise ConfigError(f"{opened.name}: the header line is not readable CSV")
    _check_header(opened.name, first[1])
    parser = RowParser(first[1])

    # progress counts megabytes read: the row count is unknown until the end
    progress = progress or Progress(f"import {Path(opened.name).name} (MB)", logger=log)
    if opened.total_bytes:
        progress.start(max(1, round(opened.total_bytes / 1e6)))
    # Readers go on; another import, or an API ingest writing objects, waits for this one to
    # commit, so the store cannot change between a chunk's lookup and its COPY.
    cursor.execute("LOCK TABLE met_objects IN SHARE ROW EXCLUSIVE MODE")
    # one commit at the very end: waiting for its WAL flush buys nothing (a crash before it
    # loses the whole import either way, and the import is rerun)
    cursor.execute("SET LOCAL synchronous_commit = off")
    cursor.execute(_STAGE_SQL)
    # a first import into an empty store (the bootstrap) needs no lookups: every object is new
    cursor.execute("SELECT NOT EXISTS (SELECT 1 FROM met_objects)")
    store_was_empty = cursor.fetchone()[0]
    imported_at = datetime.now(UTC)
    imported_at_column = ("\t" + imported_at.isoformat()).encode()  # csv_imported_at, last in a line
    merge_params = {"absent": ABSENT_REASON + "%"}
    lookup = lookup_connection.cursor()
    written = {"constituents": 0, "tags": 0}
    kinds = {"new": 0, "changed": 0, "unchanged": 0}
    timings = _Timings()
    # the line of every object id of this import so far (about 40 MB for the real file's
    # 490k): a later line of an object is merged over the earlier one, which is recorded as
    # a duplicate at the end
    seen: dict[int, int] = {}
    duplicates: list[tuple[int, int]] = []  # (object id, an earlier line of it)
    error_ids: set[int] = set()  # objects of malformed rows: not counted as removed

    def classify_and_build(lines: list[tuple[int, Parsed]]) -> dict[str, Any]:
        """(Reading thread.) Classify a chunk's rows against the store and build what is written."""
        clock = time.monotonic()
        first_line = lines[0][0]
        last: dict[int, Parsed] = {}  # a later line wins
        again: set[int] = set()  # objects an earlier chunk already wrote
        for line_number, parsed in lines:
            object_id = parsed[0]
            earlier = seen.get(object_id)
            if earlier is not None:
                duplicates.append((object_id, earlier))
                if earlier < first_line:
                    again.add(object_id)
            seen[object_id] = line_number
            last[object_id] = parsed
        # the store as it was before this import (committed rows), read on the second connection
        # while the first one is busy merging the previous chunk
        stored: dict[int, tuple[str | None, bool]] = {}
        if not store_was_empty:
            lookup.execute(_EXISTING_SQL, (list(last),))
            stored = {object_id: (csv_hash, api_owned) for object_id, csv_hash, api_owned in lookup.fetchall()}
            lookup_connection.rollback()
        now = time.monotonic()
        timings.lookup += now - clock
        clock = now

        built: dict[str, Any] = {"new": [], "changed": [], "constituents": [], "tags": [], "replaced": [],
                                 "listed": {"constituents": 0, "tags": 0}}  # list rows built
        for object_id, parsed in last.items():
            known = object_id in stored
            csv_hash, api_owned = stored[object_id] if known else (None, False)
            if object_id not in again:  # each object counted once, as its first line found it
                if csv_hash == parsed[1]:
                    kinds["unchanged"] += 1
                    continue
                kinds["new" if csv_hash is None else "changed"] += 1
            line = staged_object(parsed, imported_at_column)
            if not known and object_id not in again:
                built["new"].append(line)
            else:
                built["changed"].append(line)
            if api_owned:
                continue
            if known or object_id in again:  # its earlier lists (from the store or this import) go
                built["replaced"].append(object_id)
            for kind, stage in (("constituents", staged_constituents), ("tags", staged_tags)):
                count, block = stage(parsed)
                if count:
                    built["listed"][kind] += count
                    built[kind].append(block)
        timings.build += time.monotonic() - clock
        return built

    def merge(chunk: dict[str, Any]) -> None:
        """(Merging thread.) Load and merge one built chunk."""
        _copy(cursor, "errors", chunk["errors"])
        clock = time.monotonic()
        _copy(cursor, "new", chunk["new"])
        if chunk["changed"]:
            _copy(cursor, "changed", chunk["changed"])
            cursor.execute(_MERGE_OBJECTS_SQL, merge_params)
            cursor.execute("TRUNCATE csv_chunk")
        now = time.monotonic()
        timings.objects += now - clock
        if chunk["replaced"]:
            cursor.execute("DELETE FROM met_constituents WHERE object_id = ANY(%s)", (chunk["replaced"],))
            cursor.execute("DELETE FROM met_tags WHERE object_id = ANY(%s)", (chunk["replaced"],))
        _copy(cursor, "constituents", chunk["constituents"])
        _copy(cursor, "tags", chunk["tags"])
        for kind, count in chunk["listed"].items():
            written[kind] += count
        timings.lists += time.monotonic() - now

    rows = 0
    errors_written = 0
    writer = _ChunkWriter(merge)
    reported = 0

    def flush() -> None:
        nonlocal reported, errors_written
        built = classify_and_build(staged) if staged else {
            "new": [], "changed": [], "constituents": [], "tags": [], "replaced": [],
            "listed": {"constituents": 0, "tags": 0}}
        writer.put({**built, "errors": errors})
        errors_written += len(errors)
        megabytes = round(counting.bytes_read / 1e6)
        progress.advance(megabytes - reported)
        reported = megabytes

    staged: list[tuple[int, Parsed]] = []
    errors: list[str] = []
    try:
        for line_number, row, error, raw in records:
            rows += 1
            if error is None:
                try:
                    staged.append((line_number, parser.parse(row, raw)))
                    if len(staged) >= chunk_rows:
                        flush()
                        staged, errors = [], []
                    continue
                except RowError as exc:
                    error = str(exc)
            object_id = parser.object_id(row) if row is not None else None
            if object_id is not None:
                error_ids.add(object_id)
            errors.append(_error_line(import_id, line_number, error, raw))
        flush()
        # an earlier line of an object a later line replaced is an error too
        errors = [_error_line(import_id, earlier, f"duplicate Object ID {object_id} "
                                                  f"(line {seen[object_id]} is used)", None)
                  for object_id, earlier in duplicates]
        staged = []
        flush()
    finally:
        writer.close()
    progress.finish()
    read_done = time.monotonic()

    counts: dict[str, Any] = {"rows": rows, **written}
    removed = 0
    if mark_removed:
        cursor.execute(_NOT_WRITTEN_SQL, {"now": imported_at})
        absent = [object_id for (object_id,) in cursor.fetchall()
                  if object_id not in seen and object_id not in error_ids]
        if absent:
            cursor.execute(_MARK_REMOVED_SQL, {
                "ids": absent, "reason": f"{ABSENT_REASON} {import_started.date().isoformat()}"})
            removed = cursor.rowcount
    counts.update({
        "errors": errors_written,
        "objects": len(seen),
        **kinds, "removed": removed,
        "bytes": counting.bytes_read, "sha256": counting.sha256.hexdigest(),
        "read_seconds": round(read_done - read_started, 3),
        "finish_seconds": round(time.monotonic() - read_done, 3),
        "phases": timings.as_dict(),
    })
    log.debug("CSV import %d merge phases (s): %s", import_id, counts["phases"])
    cursor.execute("UPDATE csv_imports SET status = 'success', finished_at = now(), sha256 = %s, "
                   "counts = %s WHERE import_id = %s", (counts["sha256"], json.dumps(counts), import_id))
    connection.commit()
    return counts
