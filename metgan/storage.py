"""Where metgan's files live: a local folder (the default) or an object store, through one class.

``METGAN_DATA_DIR`` and ``METGAN_RESULTS_DIR`` name a local folder or an fsspec URL
(``s3://bucket/prefix``, ``gs://...``, ``memory://...``). Every part of metgan works on local files;
a :class:`Store` pairs the configured location with a **local mirror** folder and moves files
between the two:

* on a local location the mirror *is* the location: :meth:`Store.publish` and
  :meth:`Store.fetch` do nothing, so the embedded default costs nothing;
* on a remote location the mirror is a worker-local cache (``METGAN_CACHE_DIR``): writers build a
  file in the mirror and :meth:`~Store.publish` it (an object-store put is atomic: no reader ever
  sees a partial object); readers :meth:`~Store.fetch` it into the mirror first.

Keys are ``/``-separated paths relative to the location (``images/436524/0.jpg``); a key that
climbs out (``..``), is absolute or is empty is refused, so a name from a form or a database row
cannot address a file outside the store.

Credentials and endpoints come the usual way for the backend (for S3: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``), plus
``METGAN_STORAGE_OPTIONS``, a JSON object passed to fsspec (for instance
``{"endpoint_url": "http://minio:9000"}``); a URL's options never go into logs or errors.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from metgan.errors import ConfigError, StorageError
from metgan.files import disk_error, is_disk_error, writing_to
from metgan.urlpolicy import redact_urls_in

__all__ = ["Store", "is_url", "check_key", "cache_root"]

# Protocols treated as the local file system (a plain path has none).
_LOCAL_PROTOCOLS = ("", "file", "local")

# How many per-file requests a folder operation (push, pull, delete) keeps in flight. An object
# store answers each request in a round trip of a few milliseconds or more; issued one after the
# other, a subset's 5,000 PNGs cost 5,000 round trips. s3fs runs every call on one event loop, so
# threads here only wait; 16 keeps a LAN MinIO or S3 busy without tripping request-rate limits.
STORE_CONCURRENCY = 16


def _each(action: Callable[[str], Any], keys: Iterable[str]) -> None:
    """Run ``action`` on every key, up to STORE_CONCURRENCY at a time; every key is tried, then
    the first failure (in key order) is raised, so one refused upload does not hide which others
    went through and does not leave the rest untried."""
    keys = list(keys)
    if len(keys) <= 1:
        for key in keys:
            action(key)
        return
    errors: dict[str, BaseException] = {}

    def attempt(key: str) -> None:
        try:
            action(key)
        except Exception as exc:  # noqa: BLE001 - re-raised below, after the others ran
            errors[key] = exc
    with ThreadPoolExecutor(min(STORE_CONCURRENCY, len(keys))) as pool:
        list(pool.map(attempt, keys))
    _raise_first(errors)


def _raise_first(errors: dict[str, BaseException | None]) -> None:
    """Raise the failure of the first key (in key order) that has one."""
    failed = sorted(key for key, error in errors.items() if error is not None)
    if failed:
        raise errors[failed[0]]


def is_url(location: str | os.PathLike) -> bool:
    """True when ``location`` names an fsspec protocol other than the local file system."""
    text = os.fspath(location)
    scheme = urlsplit(text).scheme
    # "C:\\data" parses with scheme "c": one letter is a drive, not a protocol
    return len(scheme) > 1 and "://" in text and scheme not in _LOCAL_PROTOCOLS


def check_key(key: str) -> str:
    """``key`` normalised, or StorageError when it is empty, absolute or climbs out with ``..``."""
    if not isinstance(key, str) or not key or "\x00" in key:
        raise StorageError(f"invalid storage key {key!r}")
    normal = posixpath.normpath(key.replace("\\", "/"))
    if normal.startswith("/") or normal == "." or normal == ".." or normal.startswith("../"):
        raise StorageError(f"storage key {key!r} is outside the store")
    return normal


def cache_root(environ: dict[str, str] | None = None) -> Path:
    """The worker-local cache folder: ``METGAN_CACHE_DIR``, else ``~/.cache/metgan``."""
    environ = os.environ if environ is None else environ
    base = environ.get("METGAN_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "metgan")
    return Path(base).expanduser().resolve()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _timestamp(info: dict) -> float | None:
    """An fsspec listing entry's modification time (s3fs: LastModified; local: mtime)."""
    value = info.get("LastModified") or info.get("mtime") or info.get("updated")
    if value is None:
        return None
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _md5(info: dict) -> str | None:
    """The content MD5 of a listing entry when the backend states it: an S3 ETag of one part
    (32 hex digits; a multipart ETag ends in -N and is not an MD5), GCS's md5Hash is base64."""
    etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
    return etag.lower() if len(etag) == 32 and all(c in "0123456789abcdefABCDEF" for c in etag) else None


# The MD5 of a mirror file by (path, size, mtime in ns): a long-lived reader (the gallery pulls on
# every page load) hashes a file again only when it changed. Not the version a pull compares on
# its own: S3 gives modification times to the second, too coarse to tell two puts apart.
_MD5_BY_VERSION: dict[tuple[str, int, int], str | None] = {}
_MD5_CACHE_SIZE = 200_000


def _mirror_md5(path: Path) -> str | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    version = (str(path), stat.st_size, stat.st_mtime_ns)
    if version not in _MD5_BY_VERSION:
        if len(_MD5_BY_VERSION) >= _MD5_CACHE_SIZE:
            _MD5_BY_VERSION.clear()
        _MD5_BY_VERSION[version] = file_md5(path)
    return _MD5_BY_VERSION[version]


def file_md5(path: Path) -> str | None:
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1024 * 1024), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _local_versions(root: Path, prefix: str = "") -> dict[str, tuple[int, float]]:
    """key -> (size, mtime) of every file under ``root/prefix`` (temp files left out)."""
    start = root / check_key(prefix) if prefix else root
    out = {}
    for folder, _dirs, files in os.walk(start):
        for name in files:
            if name.endswith(".part"):
                continue
            path = Path(folder, name)
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            out[path.relative_to(root).as_posix()] = (stat.st_size, stat.st_mtime)
    return out


def mirror_for(url: str, kind: str, environ: dict[str, str] | None = None) -> Path:
    """The local mirror of a remote location: one folder per URL under the cache root."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return cache_root(environ) / kind / digest


def storage_options(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """``METGAN_STORAGE_OPTIONS`` parsed (a JSON object), or ``{}``."""
    environ = os.environ if environ is None else environ
    raw = environ.get("METGAN_STORAGE_OPTIONS", "").strip()
    if not raw:
        return {}
    try:
        options = json.loads(raw)
    except ValueError:
        raise ConfigError("METGAN_STORAGE_OPTIONS is not valid JSON (expected an object such as "
                          '{"endpoint_url": "http://minio:9000"})') from None
    if not isinstance(options, dict):
        raise ConfigError("METGAN_STORAGE_OPTIONS must be a JSON object")
    return options


@dataclass
class Store:
    """A location (local folder or URL) and its local mirror; see the module docstring."""

    location: str
    mirror: Path
    options: dict[str, Any] = field(default_factory=dict, repr=False)
    _fs: Any = field(default=None, init=False, repr=False)

    # --- construction -----------------------------------------------------------------------

    @classmethod
    def local(cls, folder: Path | str) -> Store:
        folder = Path(folder)
        return cls(location=str(folder), mirror=folder)

    @property
    def is_remote(self) -> bool:
        return is_url(self.location)

    @property
    def fs(self):
        """The fsspec file system of a remote location (imported on first use)."""
        if self._fs is None:
            import fsspec

            protocol = urlsplit(self.location).scheme
            # No listings cache: another host changes the store between two calls, and a cached
            # listing of a folder makes s3fs answer "not there" for a file put since.
            options = {"use_listings_cache": False, **self.options} if protocol in ("s3", "s3a", "gs", "gcs") \
                else dict(self.options)
            try:
                self._fs = fsspec.filesystem(protocol, **options)
            except (ImportError, ValueError) as exc:
                raise StorageError(f"cannot open storage protocol {protocol!r}: {exc}") from None
        return self._fs

    def _remote(self, key: str) -> str:
        root = self.location.rstrip("/")
        return f"{root}/{check_key(key)}"

    # --- naming -----------------------------------------------------------------------------

    def path(self, key: str) -> Path:
        """The key's file in the local mirror (for a local store: the file itself)."""
        return self.mirror / check_key(key)

    def url(self, key: str) -> str:
        """The key's full address: a URL for a remote store, a path otherwise."""
        return self._remote(key) if self.is_remote else str(self.path(key))

    def child(self, prefix: str) -> Store:
        """The store rooted at ``prefix`` (a subset, a search, a trial)."""
        prefix = check_key(prefix)
        if self.is_remote:
            return Store(self._remote(prefix), self.mirror / prefix, self.options)
        return Store.local(self.mirror / prefix)

    # --- single files -----------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        if not self.is_remote:
            return self.path(key).is_file()
        # not fs.isfile: s3fs answers False when the server cannot be reached at all
        return self.size(key) is not None

    def size(self, key: str) -> int | None:
        """The stored object's size in bytes, or None when it is not there."""
        if not self.is_remote:
            try:
                return self.path(key).stat().st_size
            except FileNotFoundError:
                return None

        def info():
            try:
                info = self.fs.info(self._remote(key))
            except FileNotFoundError:
                return None
            return int(info["size"]) if info.get("type", "file") == "file" else None
        return self._call("stat", key, info)

    @property
    def _speaks_s3(self) -> bool:
        return urlsplit(self.location).scheme in ("s3", "s3a")

    def publish(self, key: str, *, sha256: str | None = None) -> None:
        """Upload the mirror's file for ``key`` to the store (a local store: nothing to do).
        ``sha256``, when given, is kept as the object's metadata where the backend has it (S3),
        so :meth:`stored_sha256` can vouch for the object without downloading it."""
        if not self.is_remote:
            return
        local = self.path(key)
        if not local.is_file():
            raise StorageError(f"cannot publish {key!r}: {local} does not exist")
        extra = {"Metadata": {"sha256": sha256}} if sha256 and self._speaks_s3 else {}
        self._call("upload", key, lambda: self.fs.put_file(str(local), self._remote(key), **extra))

    def stored_sha256(self, key: str) -> str | None:
        """The sha256 the store holds for ``key``: computed from the file on a local store, the
        object's metadata on S3; None when the object is missing or the backend keeps none."""
        if not self.is_remote:
            try:
                return file_sha256(self.path(key))
            except OSError:
                return None
        if not self._speaks_s3:
            return None

        def read():
            try:
                return (self.fs.metadata(self._remote(key)) or {}).get("sha256")
            except FileNotFoundError:
                return None
        return self._call("stat", key, read)

    def fetch(self, key: str, *, refresh: bool = False) -> Path:
        """The key's file in the mirror, downloaded first when the mirror lacks it (or
        ``refresh``); the download goes to a temp file renamed into place, so a killed fetch
        never leaves a partial file under the real name."""
        local = self.path(key)
        if not self.is_remote or (local.is_file() and not refresh):
            if not local.is_file():
                raise StorageError(f"{key!r} is not in the store at {self.location}")
            return local
        with writing_to(local.parent):
            local.parent.mkdir(parents=True, exist_ok=True)
        temp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.part")

        def get():
            try:
                self.fs.get_file(self._remote(key), str(temp))
            except FileNotFoundError:
                raise StorageError(f"{key!r} is not in the store at {self.location}") from None
        try:
            self._call("download", key, get, written=local.parent)
            os.replace(temp, local)
        finally:
            temp.unlink(missing_ok=True)
        return local

    def read_bytes(self, key: str) -> bytes:
        if not self.is_remote:
            try:
                return self.path(key).read_bytes()
            except FileNotFoundError:
                raise StorageError(f"{key!r} is not in the store at {self.location}") from None
        return self.fetch(key, refresh=True).read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write ``data`` under ``key`` atomically: the mirror by temp file and rename, then the
        store by one put."""
        local = self.path(key)
        temp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with writing_to(local.parent):
                local.parent.mkdir(parents=True, exist_ok=True)
                temp.write_bytes(data)
                os.replace(temp, local)
        finally:
            temp.unlink(missing_ok=True)
        self.publish(key)

    def remove(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)
        if self.is_remote:
            def rm():
                try:
                    self.fs.rm_file(self._remote(key))
                except FileNotFoundError:
                    pass
            self._call("delete", key, rm)

    # --- folders ----------------------------------------------------------------------------

    def list(self, prefix: str = "") -> dict[str, int]:
        """Every stored file under ``prefix``: key (relative to the store) -> size in bytes."""
        return {key: version[0] for key, version in self.versions(prefix).items()}

    def versions(self, prefix: str = "") -> dict[str, tuple[int, float | None, str | None]]:
        """Every stored file under ``prefix``: key -> (size, modification time as a POSIX
        timestamp, content MD5 in hex), the last two None where the backend gives none (S3 gives
        the MD5 as the ETag of an object put in one part). One listing call on a remote store."""
        if not self.is_remote:
            return {key: (size, modified, None) for key, (size, modified) in _local_versions(self.mirror, prefix).items()}
        base = self.location.rstrip("/")
        start = self._remote(prefix) if prefix else base

        def find():
            try:
                found = self.fs.find(start, detail=True)
            except FileNotFoundError:
                return {}
            strip = urlsplit(base)
            root = (strip.netloc + strip.path).rstrip("/") + "/"
            out = {}
            for name, info in found.items():
                name = name.split("://", 1)[-1]
                if info.get("type") == "file" and name.startswith(root):
                    out[name[len(root):]] = (int(info.get("size") or 0), _timestamp(info), _md5(info))
            return out
        return self._call("list", prefix or "/", find)

    def push(self, prefix: str = "", *, last: Iterable[str] = (), prune: bool = False) -> int:
        """Upload every mirror file under ``prefix`` whose stored copy is missing or of another
        size; the keys in ``last`` go after all others (a manifest or a checkpoint's record, so
        that a reader who finds it finds everything it names). ``prune`` then deletes stored
        files under ``prefix`` the mirror no longer has (only right when the mirror was pulled
        first). Returns how many files were uploaded."""
        if not self.is_remote:
            return 0
        local = Store.local(self.mirror).list(prefix)
        stored = self.list(prefix)
        todo = [k for k, size in local.items() if stored.get(k) != size]
        self._publish_all(todo, last)
        if prune:
            self.remove_all(sorted(set(stored) - set(local)))
        return len(todo)

    def pull(self, prefix: str = "", *, exclude: Iterable[str] = ()) -> int:
        """Bring the mirror up to date with the store under ``prefix``: download every file the
        mirror lacks or holds in another version (size or modification time), except keys
        containing one of the ``exclude`` parts (``"/checkpoints/"``); remove mirror files the
        store no longer has (a local cache must not resurrect them). Returns how many files were
        downloaded."""
        if not self.is_remote:
            return 0
        skip = tuple(exclude)
        local = _local_versions(self.mirror, prefix)
        stored = self.versions(prefix)
        stale = []
        for key, (size, modified, md5) in sorted(stored.items()):
            if any(part in f"/{key}" for part in skip):
                continue
            have = local.get(key)
            if have is None or have[0] != size:
                stale.append(key)
            elif md5 is not None:  # S3's single-part ETag: the content itself decides
                if _mirror_md5(self.path(key)) != md5:
                    stale.append(key)
            elif modified is not None and have[1] != modified:
                stale.append(key)

        def download(key: str) -> None:
            path = self.fetch(key, refresh=True)
            modified = stored[key][1]
            if modified is not None:
                os.utime(path, (modified, modified))  # the version we hold, for the next pull
        _each(download, stale)
        for key in set(local) - set(stored):
            if not any(part in f"/{key}" for part in skip):
                self.path(key).unlink(missing_ok=True)
        return len(stale)

    @contextlib.contextmanager
    def synced(self, prefix: str, *, exclude: Iterable[str] = (), last: Iterable[str] = ()):
        """Work on ``prefix`` in the mirror as on a local folder: pulled first, and what this
        block wrote, changed or deleted there pushed back at the end, also when it raises (a
        failed trial's record must reach the store too). The :class:`Sync` it yields pushes
        in between as well (a trainer's checkpoints). Only files this block changed are pushed,
        so two workers syncing different trial folders of one search never undo each other's
        files. On a local store it does nothing."""
        if not self.is_remote:
            yield Sync(self, prefix, ())
            return
        self.pull(prefix, exclude=exclude)
        sync = Sync(self, prefix, tuple(last))
        try:
            yield sync
        finally:
            sync.push()

    def _publish_all(self, keys: Iterable[str], last: Iterable[str]) -> None:
        final = [check_key(k) for k in last]
        keys = set(keys)
        _each(self.publish, sorted(keys - set(final)))  # all of these land before any of ``last``
        for key in final:
            if key in keys:
                self.publish(key)

    @contextlib.contextmanager
    def uploads(self):
        """Publish files while the block is still producing them: ``uploads.add(key)`` starts
        the put of a mirror file that is complete (up to STORE_CONCURRENCY in flight); leaving the
        block waits for all and raises the first failure. A subset build hands each PNG over as
        its conversion finishes, so the uploads overlap the converting instead of following it.
        On a local store ``add`` does nothing."""
        if not self.is_remote:
            yield _Uploads(self, None)
            return
        with ThreadPoolExecutor(STORE_CONCURRENCY) as pool:
            uploads = _Uploads(self, pool)
            yield uploads
            uploads.wait()

    def remove_all(self, keys: Iterable[str]) -> None:
        """:meth:`remove` every key (concurrently on a remote store)."""
        _each(self.remove, keys)

    # --- errors -----------------------------------------------------------------------------

    def _call(self, what: str, key: str, action, *, written: Path | str | None = None):
        """Run one remote operation; a backend failure becomes one StorageError line that names
        the operation, the key and the location (never the options, which may hold secrets, and no
        URL with its query). A disk's refusal (full, read-only, failing) is a DiskWriteError naming
        ``written`` (the local folder a download goes to) or the location."""
        try:
            return action()
        except StorageError:
            raise
        except Exception as exc:  # noqa: BLE001 - each backend has its own (botocore, gcsfs, ...)
            if is_disk_error(exc):
                raise disk_error(written or self.location, exc) from exc
            reason = redact_urls_in(str(exc).splitlines()[0])[:200] if str(exc) else type(exc).__name__
            raise StorageError(f"storage {what} of {key!r} at {self.location} failed: {reason}") from exc


class _Uploads:
    """The puts started by one :meth:`Store.uploads` block."""

    def __init__(self, store: Store, pool: ThreadPoolExecutor | None):
        self.store = store
        self.pool = pool
        self.futures: dict[str, Any] = {}

    def add(self, key: str) -> None:
        if self.pool is not None and key not in self.futures:
            self.futures[key] = self.pool.submit(self.store.publish, key)

    def wait(self) -> None:
        _raise_first({key: future.exception() for key, future in self.futures.items()})


class Sync:
    """What one :meth:`Store.synced` block has pushed: the mirror's files as they were at the last
    pull or push, so :meth:`push` sends only what changed since."""

    def __init__(self, store: Store, prefix: str, last: tuple[str, ...]):
        self.store = store
        self.prefix = prefix
        self.last = last
        self.seen = _local_versions(store.mirror, prefix) if store.is_remote else {}

    def push(self, *, last: Iterable[str] = ()) -> int:
        """Upload the files written or changed since the last pull/push (``last`` and the
        block's own ``last`` keys after the others) and delete from the store the files removed
        from the mirror since. Returns how many files were uploaded."""
        if not self.store.is_remote:
            return 0
        now = _local_versions(self.store.mirror, self.prefix)
        changed = [key for key, version in now.items() if self.seen.get(key) != version]
        self.store._publish_all(changed, (*last, *self.last))
        self.store.remove_all(sorted(set(self.seen) - set(now)))
        self.seen = now
        return len(changed)
