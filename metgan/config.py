"""Settings read from the environment into one frozen object.

Every variable is listed in ``VARIABLES``; an unknown ``METGAN_*`` variable or a malformed value
raises :class:`~metgan.errors.ConfigError` naming the variable, so a typo never silently falls
back to a default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from metgan.errors import ConfigError
from metgan.storage import Store, is_url, mirror_for, storage_options
from metgan.urlpolicy import forbidden_host, parse_host_list, redact_url

REAL_MET_API_URL = "https://collectionapi.metmuseum.org/public/collection/v1"
REAL_IMAGE_HOSTS = ("images.metmuseum.org",)
# where the Open Access MetObjects.csv is served (the GitHub repository, its LFS media and raw files)
REAL_CSV_HOSTS = ("github.com", "media.githubusercontent.com", "raw.githubusercontent.com")
IMPORT_DIR_DEFAULT = "<data_dir>/imports"


def _text(name: str, value: str) -> str:
    if not value.strip():
        raise ConfigError(f"{name} is empty; unset it to use the default")
    return value.strip()


def _shown(value: str) -> str:
    """A URL setting as a message may show it: redacted (no password, no query), at most 80 characters."""
    return repr(redact_url(value)[:80])


def _database_url(name: str, value: str) -> str:
    value = _text(name, value)
    expected = "expected postgresql://user@host:port/db"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise ConfigError(f"{name}={_shown(value)} is not a valid URL ({expected})") from None
    if not parts.scheme.startswith("postgresql") and parts.scheme != "postgres":
        raise ConfigError(f"{name}={_shown(value)} is not a PostgreSQL URL ({expected})")
    from sqlalchemy.engine import make_url

    try:
        make_url(value)
    except Exception:  # noqa: BLE001 - SQLAlchemy's messages quote the whole URL, password included
        raise ConfigError(f"{name}={_shown(value)} is not a valid PostgreSQL URL ({expected})") from None
    return value


def _http_url(name: str, value: str) -> str:
    value = _text(name, value).rstrip("/")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
        host = parts.hostname or ""
        host.encode("idna")
    except (ValueError, UnicodeError):
        raise ConfigError(f"{name}={_shown(value)} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host or parts.username is not None or "@" in parts.netloc:
        raise ConfigError(f"{name}={_shown(value)} is not an http(s) URL with a host (and no user name)")
    if parts.query or parts.fragment or "#" in value:
        raise ConfigError(f"{name}={_shown(value)} must not hold a query or fragment: it is a base URL "
                          "that paths are added to")
    _refuse_forbidden_host(name, value, host)
    return value


def _refuse_forbidden_host(name: str, value: str, host: str) -> None:
    reason = forbidden_host(host)
    if reason:
        raise ConfigError(f"{name}={_shown(value)}: host {host!r} is {reason}; metgan never connects to it")


# fsspec protocols whose URL names a server (s3://, gs://, az:// name a bucket or container instead)
_HOST_PROTOCOLS = ("http", "https", "ftp", "sftp", "ssh", "webdav", "webdavs", "hdfs", "webhdfs", "smb")


def _endpoints(value: object):
    """Every URL-looking string in a storage options object (``endpoint_url``, nested client kwargs)."""
    if isinstance(value, str):
        if "://" in value:
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _endpoints(item)
    elif isinstance(value, list):
        for item in value:
            yield from _endpoints(item)


def _check_endpoint(name: str, url: str) -> None:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        raise ConfigError(f"{name} holds {_shown(url)}, which is not a valid URL") from None
    _refuse_forbidden_host(name, url, host)


def _path(name: str, value: str) -> Path:
    return Path(_text(name, value)).expanduser().resolve()


def _location(name: str, value: str) -> Path | str:
    """A local folder, or an fsspec URL (``s3://bucket/prefix``) of an object store."""
    value = _text(name, value)
    if not is_url(value):
        return _path(name, value)
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ConfigError(f"{name}={_shown(value)} is not a valid URL") from None
    if not parts.netloc:
        raise ConfigError(f"{name}={_shown(value)} names no bucket (expected e.g. s3://bucket/prefix)")
    if "@" in parts.netloc or parts.query:
        raise ConfigError(f"{name} must not hold credentials or options in the URL; use the backend's "
                          "usual environment (AWS_ACCESS_KEY_ID, ...) or METGAN_STORAGE_OPTIONS")
    if parts.scheme.lower() in _HOST_PROTOCOLS:
        _check_endpoint(name, value)
    return value.rstrip("/")


def _options(name: str, value: str) -> str:
    options = storage_options({name: value})  # raises ConfigError naming the variable when malformed
    for url in _endpoints(options):
        _check_endpoint(name, url)
    return value


def _folders(name: str, value: str) -> tuple[Path, ...]:
    """One folder, or several separated by ``os.pathsep`` (like PATH); never the root folder."""
    folders = tuple(_path(name, part) for part in value.split(os.pathsep) if part.strip())
    if not folders:
        raise ConfigError(f"{name} names no folder")
    if any(folder == Path(folder.anchor) for folder in folders):
        raise ConfigError(f"{name} must not be the root folder: name the folder the CSV files are in")
    return folders


def _bounded_float(low: float, high: float) -> Callable[[str, str], float]:
    """A parser of a number between ``low`` and ``high``: outside that range a limiter hangs
    (a rate of 1e-300 waits for ever) or a server is hammered."""
    def parse(name: str, value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name}={value[:80]!r} is not a number") from None
        if not low <= number <= high:  # NaN fails both comparisons
            raise ConfigError(f"{name}={value[:80]!r} must be between {low:g} and {high:g}")
        return number
    return parse


def _bounded_int(low: int, high: int) -> Callable[[str, str], int]:
    """A parser of a whole number between ``low`` and ``high``."""
    def parse(name: str, value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name}={value[:80]!r} is not a whole number") from None
        if not low <= number <= high:
            raise ConfigError(f"{name}={value[:80]!r} must be between {low} and {high}")
        return number
    return parse


def _positive_int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value[:80]!r} is not a whole number") from None
    if number < 1:
        raise ConfigError(f"{name}={value[:80]!r} must be at least 1")
    return number


def _header_text(name: str, value: str) -> str:
    """An HTTP header value: printable ASCII only (a CR or LF would split the request)."""
    value = _text(name, value)
    bad = next((c for c in value if not (" " <= c <= "~")), None)
    if bad is not None:
        raise ConfigError(f"{name} holds the character {bad!r}; only printable ASCII is allowed "
                          "in an HTTP header")
    return value


def _hosts(name: str, value: str) -> tuple[str, ...]:
    return parse_host_list(name, value)


@dataclass(frozen=True)
class Variable:
    name: str
    field: str
    parse: Callable[[str, str], object]
    default: object
    help: str


VARIABLES: tuple[Variable, ...] = (
    Variable("METGAN_DATABASE_URL", "database_url", _database_url, None,
             "PostgreSQL URL; unset: an embedded server under <data_dir>/postgres"),
    Variable("METGAN_DATA_DIR", "data_dir", _location, "./data",
             "images, subsets and the embedded database: a folder, or an object store URL "
             "(s3://bucket/prefix; then METGAN_DATABASE_URL is required)"),
    Variable("METGAN_RESULTS_DIR", "results_dir", _location, "./results",
             "search and trial folders: a folder, or an object store URL (s3://bucket/prefix)"),
    Variable("METGAN_STORAGE_OPTIONS", "storage_options", _options, "",
             "a JSON object of fsspec options for an object store URL, e.g. "
             '{"endpoint_url": "http://minio:9000"}; credentials come from the backend\'s usual '
             "environment (AWS_ACCESS_KEY_ID, ...)"),
    Variable("METGAN_CACHE_DIR", "cache_dir", _path, "~/.cache/metgan",
             "this worker's local cache of an object store (mirrors of images, subsets, trials)"),
    Variable("METGAN_MET_API_URL", "met_api_url", _http_url, REAL_MET_API_URL,
             "base URL of the Met Collection API"),
    Variable("METGAN_MET_RATE", "met_rate", _bounded_float(0.01, 1000), 80.0,
             "requests per second for the whole deployment (the Met's published limit), 0.01 to 1000"),
    Variable("METGAN_MET_WORKERS", "met_workers", _bounded_int(1, 64), 4,
             "ingest tasks that may run at once (the met_api pool's slots), 1 to 64; each gets rate/workers"),
    Variable("METGAN_MET_CONCURRENCY", "met_concurrency", _bounded_int(1, 256), 16,
             "requests in flight at once within one task, 1 to 256"),
    Variable("METGAN_MET_TIMEOUT", "met_timeout", _bounded_float(1, 600), 30.0,
             "seconds a request may stay silent before it is abandoned and retried (a streaming image "
             "may take 4x), 1 to 600"),
    Variable("METGAN_MET_USER_AGENT", "met_user_agent", _header_text,
             "metgan (+https://github.com/metgan/metgan; open-access research)",
             "User-Agent sent to the Met (printable ASCII)"),
    Variable("METGAN_IMAGE_HOSTS", "image_hosts", _hosts, REAL_IMAGE_HOSTS,
             "comma-separated host or host:port entries images may be downloaded from (redirects "
             "included); an entry without a port allows the default ports, and any port on a "
             "loopback host"),
    Variable("METGAN_CSV_HOSTS", "csv_hosts", _hosts, REAL_CSV_HOSTS,
             "comma-separated host or host:port entries an https CSV URL may be on (redirects "
             "included; http only to a loopback host)"),
    Variable("METGAN_IMPORT_DIR", "import_dirs", _folders, IMPORT_DIR_DEFAULT,
             "the only folder (or folders, separated by ':') import-csv reads local files from; "
             "symlinks and .. are resolved first"),
    Variable("METGAN_MAX_IMAGE_BYTES", "max_image_bytes", _positive_int, 64 * 1024 * 1024,
             "largest image file accepted, in bytes"),
    Variable("METGAN_MAX_IMAGE_PIXELS", "max_image_pixels", _positive_int, 150_000_000,
             "largest image accepted, in pixels (decompression bombs are refused)"),
)
_BY_NAME = {v.name: v for v in VARIABLES}


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    data_dir: Path  # the local folder: METGAN_DATA_DIR itself, or an object store's mirror
    results_dir: Path
    met_api_url: str
    met_rate: float
    met_workers: int
    met_concurrency: int
    met_timeout: float
    met_user_agent: str
    image_hosts: tuple[str, ...]
    csv_hosts: tuple[str, ...]
    import_dirs: tuple[Path, ...]
    max_image_bytes: int
    max_image_pixels: int
    storage_options: str = ""
    cache_dir: Path = Path("~/.cache/metgan")
    data_location: str = ""  # METGAN_DATA_DIR as given: a folder or a URL
    results_location: str = ""

    @property
    def data_store(self) -> Store:
        """Images and subsets: the data folder, or the object store with its local mirror."""
        return self._store(self.data_location, self.data_dir)

    @property
    def results_store(self) -> Store:
        """Search and trial folders: the results folder, or the object store with its mirror."""
        return self._store(self.results_location, self.results_dir)

    def _store(self, location: str, mirror: Path) -> Store:
        if not is_url(location):
            return Store.local(mirror)
        return Store(location, mirror, storage_options({"METGAN_STORAGE_OPTIONS": self.storage_options}))

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def subsets_dir(self) -> Path:
        return self.data_dir / "subsets"

    @property
    def task_rate(self) -> float:
        """The request rate one ingest task may use: the deployment's rate shared by its workers."""
        return self.met_rate / self.met_workers

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        unknown = sorted(k for k in environ if k.startswith("METGAN_") and k not in _BY_NAME)
        if unknown:
            raise ConfigError(
                f"unknown setting {unknown[0]}; valid settings: {', '.join(sorted(_BY_NAME))}"
            )
        values = {}
        for variable in VARIABLES:
            raw = environ.get(variable.name)
            if raw is None:
                default = variable.default
                if default == IMPORT_DIR_DEFAULT:
                    continue  # below: it follows METGAN_DATA_DIR
                if isinstance(default, str) and variable.parse in (_path, _location):
                    default = _path(variable.name, default)
                values[variable.field] = default
            else:
                values[variable.field] = variable.parse(variable.name, raw)
        if any(is_url(str(values[f"{kind}_dir"])) for kind in ("data", "results")):
            for endpoint in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):  # what s3fs (botocore) reads
                if environ.get(endpoint):
                    _check_endpoint(endpoint, environ[endpoint])
        cache = values["cache_dir"]
        for kind in ("data", "results"):
            where = values[f"{kind}_dir"]
            values[f"{kind}_location"] = str(where)
            if isinstance(where, str):  # an object store URL: files are mirrored under the cache
                values[f"{kind}_dir"] = mirror_for(where, kind, {"METGAN_CACHE_DIR": str(cache)})
        values.setdefault("import_dirs", (values["data_dir"] / "imports",))
        return cls(**values)


def get_settings() -> Settings:
    """The settings of the current environment (read afresh, so tests may change the env)."""
    return Settings.from_env()
