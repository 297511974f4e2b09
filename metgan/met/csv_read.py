"""Reading ``MetObjects.csv``: where it may come from, its lines and records, a checked row.

The file (about 317 MB, 490k rows, 54 columns, UTF-8 with a BOM) is streamed: it is read in
1 MB blocks (from disk or the HTTP body) split into lines, the csv module parses the decoded
lines, and each record's bytes are kept as they stand in the file (``csv_raw``). ``RowParser``
checks what must be rejected with a line number (column count, the Object ID, the begin/end
dates, the booleans) and hashes the record; building the COPY lines of the rows that are written
is the loader's (``metgan.met.csv_load``).

A source is an https URL on ``METGAN_CSV_HOSTS`` or a regular file under ``METGAN_IMPORT_DIR``:
it comes from a DAG trigger's form as well as the CLI, so it must not reach the worker's own
files or an internal host, and no error echoes what a wrong file holds.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import IO, NamedTuple

from metgan.config import Settings
from metgan.db.columns import CSV_ARTIST_COLUMNS, CSV_TAG_COLUMNS, csv_columns
from metgan.errors import ConfigError, MetRetryableError
from metgan.urlpolicy import excerpt, redact_url

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

# CSV column -> met_objects column, by kind, from the map the API parser shares (parse.py).
# "Object ID" is the key.
TEXT_COLUMNS: dict[str, str] = csv_columns("text")
# Checked and converted in Python (a bad value rejects the row with its line number).
BOOL_COLUMNS: dict[str, str] = csv_columns("bool")
INT_COLUMNS: dict[str, str] = csv_columns("int")
# Pipe-separated, position-aligned lists -> met_constituents / met_tags columns (parse.py's map).
ARTIST_COLUMNS: dict[str, str] = CSV_ARTIST_COLUMNS
TAG_COLUMNS: dict[str, str] = CSV_TAG_COLUMNS

INT32 = 2**31 - 1
INTEGER = re.compile(r"[-+]?[0-9]+")
WHITESPACE = " \t\r\n"
_TRUE = frozenset({"true", "t", "1", "yes"})
_FALSE = frozenset({"false", "f", "0", "no"})
_BOOLS = {"True": "t", "False": "f", "": ""}
# the three boolean columns as the file spells them -> their COPY values, in one lookup
_BOOL_TRIPLES = {(a, b, c): (_BOOLS[a], _BOOLS[b], _BOOLS[c]) for a in _BOOLS for b in _BOOLS for c in _BOOLS}
LFS_POINTER = b"version https://git-lfs"
_FIELD_SIZE_LIMIT = 16 * 1024 * 1024
# Part of every csv_hash: change it when the mapping of columns changes, so the next import of
# the same file rewrites every CSV-owned row instead of skipping it as unchanged.
# v2: sha256 of the record's bytes (v1: blake2b of its fields). Copied per record: cheaper than
# a new hash object, and OpenSSL's sha256 is 1.5x faster per record here than blake2b.
_HASH_SEED = hashlib.sha256(b"metgan-csv-v2\x00")


class RowError(ValueError):
    """A CSV row that cannot be imported; the message is the reason recorded for it."""


# --- a checked row -----------------------------------------------------------------------------
#
# The hot loop (490k rows): every record is checked and hashed; only new and changed rows are built.

# What a record's text holds that COPY's text format must escape, which decides how the loader
# builds its lines: nothing (most records), only line breaks (multi-line Dimensions), or a tab
# or backslash somewhere.
PLAIN, BREAKS, SPECIAL = 0, 1, 2


# A NamedTuple rather than a plain tuple, though one is built per row: with the field reads
# the loader does, it costs 0.9% of the first import's Python instructions and 1.8% of an
# unchanged re-import's (callgrind, 3,000 rows, PYTHONHASHSEED=0), within the noise of a run.
# The loader unpacks it at once where it needs most fields (an attribute read is a type lookup).
class ParsedRow(NamedTuple):
    """A checked record."""

    object_id: int
    csv_hash: str
    typed: list[str]  # the booleans and the begin/end dates, as COPY values, in BOOL/INT_COLUMNS order
    fields: list[str]  # the record's fields in CSV_HEADER order, whatever the file's column order
    raw: bytes  # the record's bytes as in the file (UTF-8), without its line break
    escapes: int  # PLAIN, BREAKS or SPECIAL


def _int(value: str, column: str) -> str:
    if value.isascii() and len(value) < 10 and (value.isdigit() or value[:1] == "-" and value[1:].isdigit()):
        return value  # the file's spelling (a year, B.C. ones negative) is COPY's
    value = value.strip(WHITESPACE)
    if not value:
        return ""
    if not INTEGER.fullmatch(value) or not -INT32 <= int(value) <= INT32:
        raise RowError(f"{column} {value!r} is not a whole number")
    return str(int(value))


def _bool(value: str, column: str) -> str:
    known = _BOOLS.get(value)
    if known is not None:
        return known
    lowered = value.strip(WHITESPACE).lower()
    if not lowered:
        return ""
    if lowered in _TRUE:
        return "t"
    if lowered in _FALSE:
        return "f"
    raise RowError(f"{column} {value!r} is not True or False")


def _getter(indexes: list[int | None]) -> Callable[[list[str]], tuple[str, ...]]:
    """A fast row -> tuple of fields; a column the header lacks reads as ""."""
    if all(i is not None for i in indexes):
        if len(indexes) == 1:
            first = indexes[0]
            return lambda row: (row[first],)
        return itemgetter(*indexes)
    return lambda row: tuple("" if i is None else row[i] for i in indexes)


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
        raw_id = row[self.id_index].strip(WHITESPACE) if len(row) > self.id_index else ""
        if raw_id.isascii() and raw_id.isdigit() and len(raw_id) < 10:
            return int(raw_id) or None
        if INTEGER.fullmatch(raw_id) and 0 < int(raw_id) <= INT32:
            return int(raw_id)
        return None

    def parse(self, row: list[str], raw: bytes) -> ParsedRow:
        """Check a record (a bad one raises RowError) and return it with its id, hash and typed values.

        ``raw`` is the record's bytes as read, without its line break. Only the checks and the
        hash are done for every row; the loader builds the COPY lines of the rows that are new
        or changed.
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
        return ParsedRow(object_id, digest.hexdigest()[:32], typed, row, raw, _escapes(raw))


# --- sources -----------------------------------------------------------------------------------


@dataclass
class Source:
    """An opened CSV source: its name (the resolved path or the final URL) and its byte stream."""

    name: str
    stream: IO[bytes]
    total_bytes: int | None
    close: Callable[[], None]
    is_url: bool = False


class CountingReader:
    """Reads the source in blocks, hashing and counting the bytes."""

    BLOCK = 1 << 20

    def __init__(self, source: Source):
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


def open_source(source: str | os.PathLike, settings: Settings) -> Source:
    """Open an https URL on ``METGAN_CSV_HOSTS`` or a regular file under ``METGAN_IMPORT_DIR``.

    A CSV source comes from a DAG trigger's form as well as the CLI: it must not reach the
    worker's own files (``/proc/self/environ``, a key under $HOME) or an internal host.
    """
    text = os.fspath(source)
    if _is_url(text):
        return _open_url(text, settings)
    if _SCHEME.match(text):
        raise ConfigError(f"CSV source {excerpt(redact_url(text))} is neither an https URL nor a file in the "
                          "import folder")
    return _open_file(text, settings)


def _open_url(url: str, settings: Settings) -> Source:
    import requests

    from metgan.urlpolicy import REDIRECT_STATUSES, UrlPolicy, check_resolved

    policy = UrlPolicy.for_csv(settings.csv_hosts)
    target = policy.check(url)
    hops = 0
    while True:
        check_resolved(target, ConfigError)
        try:
            # redirects by hand: requests would follow them anywhere, unchecked
            response = requests.get(target, stream=True, timeout=settings.met_timeout, allow_redirects=False,
                                    headers={"User-Agent": settings.met_user_agent})
        except requests.RequestException as exc:
            raise MetRetryableError(f"cannot download {redact_url(target)}: {type(exc).__name__}") from exc
        if response.status_code not in REDIRECT_STATUSES:
            break
        response.close()
        hops += 1
        target = policy.follow(target, response.headers.get("Location"), hops)
    if response.status_code >= 400:
        response.close()
        error = ConfigError if 400 <= response.status_code < 500 and response.status_code != 429 \
            else MetRetryableError
        raise error(f"cannot download {redact_url(target)}: HTTP {response.status_code} {excerpt(response.reason or '')}")
    response.raw.decode_content = True
    length = response.headers.get("Content-Length")
    total = int(length) if length and length.isdigit() and not response.headers.get(
        "Content-Encoding") else None
    return Source(target, response.raw, total, response.close, is_url=True)


def _open_file(text: str, settings: Settings) -> Source:
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
    return Source(str(path), handle, info.st_size, handle.close)


def check_header(name: str, header: list[str]) -> None:
    """Refuse a header that is not the Met's, naming the first column it lacks (never its
    content: the "header" of a wrong file may be anything, a secret included)."""
    present = {column.lstrip("\ufeff").strip() for column in header}
    missing = [column for column in CSV_HEADER if column not in present]
    if missing:
        raise ConfigError(f"{name} is not the Met's MetObjects.csv: its header lacks the column "
                          f"{missing[0]!r} ({len(missing)} of the {len(CSV_HEADER)} columns missing)")


# --- lines and records -------------------------------------------------------------------------


def line_blocks(chunks: Iterator[bytes]) -> Iterator[list[bytes]]:
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

# (line number where the record starts, fields or None, error or None, the record's bytes
# without its line break)
Record = tuple[int, list[str] | None, str | None, bytes]


def records(chunks: Iterator[bytes]) -> Iterator[Record]:
    """Each record of the file read in ``chunks`` (see ``Record``)."""
    # The csv reader reads text lines from blocks of them (itertools.chain: no Python call per
    # line); a record's bytes are the lines it took, found by the reader's line count. Bytes
    # that are not UTF-8 read (and are stored) as U+FFFD.
    blocks: list[tuple[int, list[bytes]]] = []  # (index of the block's first line, its lines)

    def read_blocks() -> Iterator[list[str]]:
        first = 0
        for lines in line_blocks(chunks):
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
