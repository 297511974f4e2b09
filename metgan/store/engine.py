"""SQLAlchemy engines for metgan's PostgreSQL store."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from metgan.config import Settings, get_settings
from metgan.errors import StoreError
from metgan.store import embedded

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def database_url(settings: Settings | None = None) -> str:
    """``METGAN_DATABASE_URL``, or the embedded server's URL (starting it if needed)."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    return embedded.ensure_server(settings.data_dir)


def _driver_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def get_engine(settings: Settings | None = None) -> Engine:
    """One pooled engine per database URL, shared within the process."""
    url = _driver_url(database_url(settings))
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)
            _engines[url] = engine
    return engine


def check(engine: Engine) -> str:
    """The server's version string; raises StoreError with the URL when it cannot be reached."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version()")).scalar_one()
    except OperationalError as exc:
        raise StoreError(
            f"cannot reach PostgreSQL at {engine.url.render_as_string(hide_password=True)}: "
            f"{str(exc.orig).strip().splitlines()[0]}"
        ) from exc


def create_database_if_missing(url: str) -> bool:
    """Create the database ``url`` names, connecting to the server's ``postgres`` database."""
    import psycopg2
    from psycopg2 import sql
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    try:
        connection = psycopg2.connect(admin)
    except psycopg2.OperationalError as exc:
        raise StoreError(f"cannot reach PostgreSQL to create {target.database!r}: "
                         f"{str(exc).strip().splitlines()[0]}") from exc
    try:
        connection.autocommit = True
        cursor = connection.cursor()
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target.database,))
        if cursor.fetchone():
            return False
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target.database)))
        return True
    finally:
        connection.close()


def dispose_all() -> None:
    """Close every pooled connection (for tests that drop databases, and for clean exits)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
