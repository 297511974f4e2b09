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

REAL_MET_API_URL = "https://collectionapi.metmuseum.org/public/collection/v1"
REAL_IMAGE_HOSTS = ("images.metmuseum.org",)


def _text(name: str, value: str) -> str:
    if not value.strip():
        raise ConfigError(f"{name} is empty; unset it to use the default")
    return value.strip()


def _database_url(name: str, value: str) -> str:
    value = _text(name, value)
    scheme = urlsplit(value).scheme
    if not scheme.startswith("postgresql"):
        raise ConfigError(
            f"{name}={value!r} is not a PostgreSQL URL (expected postgresql://user@host:port/db)"
        )
    return value


def _http_url(name: str, value: str) -> str:
    value = _text(name, value).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name}={value!r} is not an http(s) URL")
    return value


def _path(name: str, value: str) -> Path:
    return Path(_text(name, value)).expanduser().resolve()


def _positive_float(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number") from None
    if not number > 0 or number != number or number == float("inf"):
        raise ConfigError(f"{name}={value!r} must be a finite number above 0")
    return number


def _positive_int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number") from None
    if number < 1:
        raise ConfigError(f"{name}={value!r} must be at least 1")
    return number


def _hosts(name: str, value: str) -> tuple[str, ...]:
    hosts = tuple(h.strip().lower() for h in value.split(",") if h.strip())
    if not hosts:
        raise ConfigError(f"{name} lists no host (expected a comma-separated list of host names)")
    for host in hosts:
        if "/" in host or " " in host or ":" in host.strip("[]").replace("::", ""):
            raise ConfigError(f"{name} entry {host!r} is not a host name")
    return hosts


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
    Variable("METGAN_DATA_DIR", "data_dir", _path, "./data",
             "images, subsets and the embedded database"),
    Variable("METGAN_RESULTS_DIR", "results_dir", _path, "./results",
             "search and trial folders"),
    Variable("METGAN_MET_API_URL", "met_api_url", _http_url, REAL_MET_API_URL,
             "base URL of the Met Collection API"),
    Variable("METGAN_MET_RATE", "met_rate", _positive_float, 80.0,
             "requests per second for the whole deployment (the Met's published limit)"),
    Variable("METGAN_MET_WORKERS", "met_workers", _positive_int, 4,
             "ingest tasks that may run at once (the met_api pool's slots); each gets rate/workers"),
    Variable("METGAN_MET_CONCURRENCY", "met_concurrency", _positive_int, 16,
             "requests in flight at once within one task"),
    Variable("METGAN_MET_TIMEOUT", "met_timeout", _positive_float, 30.0,
             "seconds a request may stay silent before it is abandoned and retried (a streaming image may take 4x)"),
    Variable("METGAN_MET_USER_AGENT", "met_user_agent", _text,
             "metgan (+https://github.com/metgan/metgan; open-access research)",
             "User-Agent sent to the Met"),
    Variable("METGAN_IMAGE_HOSTS", "image_hosts", _hosts, REAL_IMAGE_HOSTS,
             "comma-separated hosts images may be downloaded from"),
    Variable("METGAN_MAX_IMAGE_BYTES", "max_image_bytes", _positive_int, 64 * 1024 * 1024,
             "largest image file accepted, in bytes"),
    Variable("METGAN_MAX_IMAGE_PIXELS", "max_image_pixels", _positive_int, 150_000_000,
             "largest image accepted, in pixels (decompression bombs are refused)"),
)
_BY_NAME = {v.name: v for v in VARIABLES}


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    data_dir: Path
    results_dir: Path
    met_api_url: str
    met_rate: float
    met_workers: int
    met_concurrency: int
    met_timeout: float
    met_user_agent: str
    image_hosts: tuple[str, ...]
    max_image_bytes: int
    max_image_pixels: int

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
                if isinstance(default, str) and variable.parse is _path:
                    default = _path(variable.name, default)
                values[variable.field] = default
            else:
                values[variable.field] = variable.parse(variable.name, raw)
        return cls(**values)


def get_settings() -> Settings:
    """The settings of the current environment (read afresh, so tests may change the env)."""
    return Settings.from_env()
