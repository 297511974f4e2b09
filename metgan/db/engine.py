"""SQLAlchemy engines for metgan's PostgreSQL store.

This is the one place that turns the driver's errors about the store itself into one-line
:class:`~metgan.errors.DatabaseError` messages, so the CLI and the DAG task logs say the same thing:
a server that cannot be reached (host:port and the cause, never the password), a database that
does not exist, a database without metgan's schema or with migrations pending. The engine's
connections get a cursor class that explains "relation does not exist" errors; SQLAlchemy code and
the raw psycopg2 cursors of the repositories both go through it.
"""

from __future__ import annotations

import threading

import psycopg2
import psycopg2.extensions
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

from metgan.config import Settings, get_settings
from metgan.db import embedded
from metgan.errors import ConfigError, DatabaseError
from metgan.urlpolicy import redact_url, redact_urls_in

# undefined_table, undefined_function, undefined_column: what a missing or older schema raises
_SCHEMA_SQLSTATES = {"42P01", "42883", "42703"}

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def database_url(settings: Settings | None = None) -> str:
    """``METGAN_DATABASE_URL``, or the embedded server's URL (starting it if needed)."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    if settings.data_store.is_remote:
        raise ConfigError("METGAN_DATA_DIR is an object store URL, so the embedded database (a local "
                          "folder) cannot be shared: set METGAN_DATABASE_URL to a PostgreSQL server")
    return embedded.ensure_server(settings.data_dir)


def _driver_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def parse_url(url: str) -> URL:
    """``url`` parsed by SQLAlchemy; one ConfigError line (the URL redacted) when it cannot be:
    SQLAlchemy's own message quotes the whole URL, password included."""
    try:
        return make_url(url)
    except Exception:  # noqa: BLE001 - ArgumentError, or ValueError for a port that is not a number
        raise ConfigError(f"database URL {redact_url(url)[:80]!r} is not a valid PostgreSQL URL "
                          "(expected postgresql://user@host:port/db); check METGAN_DATABASE_URL") from None


def safe_url(url: str | URL) -> str:
    """The URL without its password and query (which may hold one too) and without the
    SQLAlchemy driver name, for messages."""
    parsed = parse_url(url) if isinstance(url, str) else url
    return URL.create("postgresql", username=parsed.username, host=parsed.host, port=parsed.port,
                      database=parsed.database).render_as_string(hide_password=True)


def _server(url: URL) -> str:
    host = url.host or url.query.get("host") or "localhost"
    if isinstance(host, tuple):
        host = host[0]
    return f"{host}:{url.port or 5432}"


def connect_error(url: str | URL, exc: Exception) -> DatabaseError:
    """The one-line DatabaseError for a failed connection: host:port and the cause, never the password."""
    parsed = parse_url(url) if isinstance(url, str) else url
    cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # libpq prefixes 'connection to server at "h" (addr), port p failed: '; the message names them
    if " failed: " in cause:
        cause = cause.split(" failed: ", 1)[1]
    cause = redact_urls_in(cause.removeprefix("FATAL:").strip())
    if "does not exist" in cause and f'database "{parsed.database}"' in cause:
        return DatabaseError(f"the database {parsed.database!r} does not exist on PostgreSQL at {_server(parsed)}; "
                          "create it with `metgan db migrate --create-database`")
    # a socket folder is the embedded server's (metgan db status / the server log say more)
    hint = "" if _server(parsed).startswith("/") else "; check METGAN_DATABASE_URL"
    return DatabaseError(f"cannot connect to PostgreSQL at {_server(parsed)} (database {parsed.database!r}): "
                      f"{cause}{hint}")


def schema_error(url: str | URL, exc: Exception) -> DatabaseError | None:
    """A DatabaseError saying the schema is missing or older than the code; None when it is current.

    Asked only after a statement failed with an undefined table, function or column, on a
    connection of its own (the failed one is in an aborted transaction)."""
    from metgan.db import migrations

    parsed = parse_url(url) if isinstance(url, str) else url
    try:
        connection = psycopg2.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False),
                                      connect_timeout=10)
    except psycopg2.Error:
        return None
    try:
        applied = migrations.applied_versions(connection.cursor())
    finally:
        connection.close()
    where = safe_url(parsed)
    if applied is None:
        return DatabaseError(f"the database at {where} has no metgan schema; run `metgan db migrate`")
    pending = [m.path.name for m in migrations.discover() if m.version not in applied]
    if pending:
        return DatabaseError(f"the database at {where} has {len(pending)} pending migration(s) "
                          f"({', '.join(pending)}): its schema is older than this code; run `metgan db migrate`")
    return None


def _explaining_cursor(url: URL) -> type:
    """A psycopg2 cursor class whose schema errors (see schema_error) become one-line StoreErrors."""

    class ExplainingCursor(psycopg2.extensions.cursor):
        def execute(self, query, vars=None):
            try:
                return super().execute(query, vars)
            except psycopg2.Error as exc:
                raise _explained(exc) from exc

        def executemany(self, query, vars_list):
            try:
                return super().executemany(query, vars_list)
            except psycopg2.Error as exc:
                raise _explained(exc) from exc

        # COPY too: the bulk paths (a run's items, the CSV load) reach a table before any SELECT
        def copy_expert(self, sql, file, size=8192):
            try:
                return super().copy_expert(sql, file, size)
            except psycopg2.Error as exc:
                raise _explained(exc) from exc

    def _explained(exc: psycopg2.Error) -> Exception:
        if exc.pgcode in _SCHEMA_SQLSTATES:
            return schema_error(url, exc) or exc
        return exc

    return ExplainingCursor


def get_engine(settings: Settings | None = None) -> Engine:
    """One pooled engine per database URL, shared within the process."""
    return get_engine_for_url(database_url(settings))


def get_engine_for_url(url: str) -> Engine:
    """The process's pooled engine for ``url`` (see get_engine)."""
    url = _driver_url(url)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            parsed = parse_url(url)
            engine = create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4,
                                   connect_args={"cursor_factory": _explaining_cursor(parsed)})
            _explain_connect_failures(engine, parsed)
            _engines[url] = engine
    return engine


def _explain_connect_failures(engine: Engine, url: URL) -> None:
    @event.listens_for(engine, "do_connect")
    def connect(dialect, connection_record, cargs, cparams):
        try:
            return dialect.loaded_dbapi.connect(*cargs, **cparams)
        except psycopg2.OperationalError as exc:
            raise connect_error(url, exc) from exc


def check(engine: Engine) -> str:
    """The server's version string; raises DatabaseError with the URL when it cannot be reached."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version()")).scalar_one()
    except OperationalError as exc:
        raise connect_error(engine.url, exc.orig) from exc


def create_database_if_missing(url: str) -> bool:
    """Create the database ``url`` names, connecting to the server's ``postgres`` database."""
    from psycopg2 import sql

    target = parse_url(url)
    admin = target.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    try:
        connection = psycopg2.connect(admin)
    except psycopg2.OperationalError as exc:
        raise connect_error(make_url(admin), exc) from exc
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
