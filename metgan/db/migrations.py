"""Numbered plain-SQL migrations, applied in order by one runner.

Files are ``sql/NNNN_name.sql`` (installed as the package metgan.sql, so a wheel carries them). Each
one runs in its own transaction together with the row that records it in ``schema_migrations``
(version, name, sha256 of the file). A session-level advisory lock makes concurrent runners take
turns: the second one finds everything applied and does nothing. An applied file whose checksum
changed is refused: write a new migration instead.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sqlalchemy import Engine

from metgan.errors import MigrationError

log = logging.getLogger(__name__)

# Package data: the same files in a checkout, an editable install and an installed wheel.
SQL_DIR = Path(str(resources.files("metgan.sql")))
_LOCK_KEY = 0x6D657467616E  # "metgan"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class MigrationState:
    migration: Migration
    applied: bool
    changed: bool


def discover(sql_dir: Path = SQL_DIR) -> list[Migration]:
    """The migration files in ``sql_dir``, in version order; duplicate numbers are an error."""
    found: dict[int, Migration] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_case_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations share version {version:04d}: "
                                 f"{found[version].path.name} and {path.name}")
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


def _applied(cursor) -> dict[int, str]:
    cursor.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not cursor.fetchone()[0]:
        return {}
    cursor.execute("SELECT version, checksum FROM schema_migrations")
    return dict(cursor.fetchall())


def applied_versions(cursor) -> set[int] | None:
    """The versions recorded in ``schema_migrations``; None when the table does not exist."""
    cursor.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not cursor.fetchone()[0]:
        return None
    return set(_applied(cursor))


def _plain_cursor(connection):
    # the engine's cursors explain "relation does not exist" as a missing or old schema; inside
    # the runner such an error is the migration's own fault and is reported as it is
    import psycopg2.extensions

    return connection.cursor(cursor_factory=psycopg2.extensions.cursor)


def _refuse_changed(migrations: list[Migration], applied: dict[int, str]) -> None:
    for migration in migrations:
        if migration.version in applied and applied[migration.version] != migration.checksum:
            raise MigrationError(
                f"migration {migration.path.name} was changed after it was applied "
                f"(checksum {applied[migration.version][:12]} recorded, {migration.checksum[:12]} now); "
                "restore it and add a new migration instead"
            )


def migrate(engine: Engine, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply every pending migration; return the names applied (empty when up to date)."""
    migrations = discover(sql_dir)
    done: list[str] = []
    connection = engine.raw_connection()
    try:
        connection.autocommit = True
        cursor = _plain_cursor(connection)
        cursor.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            cursor.execute(_CREATE_TABLE)
            applied = _applied(cursor)
            _refuse_changed(migrations, applied)
            for migration in migrations:
                if migration.version in applied:
                    continue
                connection.autocommit = False
                try:
                    cursor.execute(migration.sql)
                    cursor.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                    connection.commit()
                except Exception as exc:
                    connection.rollback()
                    raise MigrationError(f"migration {migration.path.name} failed: {exc}".strip()) from exc
                finally:
                    connection.autocommit = True
                log.info("applied migration %s", migration.path.name)
                done.append(migration.path.name)
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    finally:
        connection.close()
    return done


def status(engine: Engine, sql_dir: Path = SQL_DIR) -> list[MigrationState]:
    """Each migration file with whether it is applied and whether it changed since."""
    migrations = discover(sql_dir)
    connection = engine.raw_connection()
    try:
        applied = _applied(_plain_cursor(connection))
        connection.rollback()
    finally:
        connection.close()
    return [
        MigrationState(m, m.version in applied, m.version in applied and applied[m.version] != m.checksum)
        for m in migrations
    ]
