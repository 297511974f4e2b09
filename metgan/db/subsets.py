"""The subsets repository: ``subsets`` and ``subset_images`` rows and the named selection query, on
an injected engine.

The selection rule (which objects a subset can take) is the named query
``sql/queries/subset_candidates.sql``; ``subset_images.sql`` reads the downloaded images of
those candidates, composed on top of the rule as a CTE so that both uses run the same text. This
module runs them with the bound parameters :meth:`metgan.images.selection.Selection.query_params`
gives; what the parameters mean is the images package's. Nothing here reads settings or migrates
the schema (``metgan db migrate`` does, and an unmigrated database fails with one line in
store/engine.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import DataError, ProgrammingError

from metgan.errors import SubsetError

QUERIES_DIR = Path(str(resources.files("metgan.sql").joinpath("queries")))
_LOCK_CLASS = 0x5342  # "SB": subset builds


# -- the named selection query -------------------------------------------------------------------

def load_query(name: str) -> str:
    """The SQL of ``sql/queries/<name>.sql``, without its comment lines.

    psycopg2 binds parameters into the text client-side, comments included; dropping comment
    lines means no placeholder can ever sit where a value's newline would end a comment.
    """
    sql = (QUERIES_DIR / f"{name}.sql").read_text(encoding="utf-8")
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


def images_query() -> str:
    """subset_images.sql on top of the selection rule (subset_candidates.sql) as CTE "candidates".

    The rule lives in subset_candidates.sql alone; composing here (rather than repeating it, or
    keeping it in a schema function) is what lets both uses read the same text.
    """
    return f"WITH candidates AS (\n{load_query('subset_candidates')}\n)\n{load_query('subset_images')}"


def _run(engine: Engine, sql: str, query_params: Mapping[str, Any]) -> list[tuple]:
    try:
        with engine.connect() as conn:
            return list(conn.exec_driver_sql(sql, dict(query_params)).fetchall())
    except (DataError, ProgrammingError) as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        if "regular expression" in first:
            raise SubsetError(f"a pattern is not a valid PostgreSQL regular expression: {first}") from exc
        raise


def candidate_object_ids(engine: Engine, query_params: Mapping[str, Any]) -> list[int]:
    """The object ids the selection rule picks, ascending (no image needed)."""
    return [row[0] for row in _run(engine, load_query("subset_candidates"), query_params)]


def candidate_image_rows(engine: Engine, query_params: Mapping[str, Any]) -> list[tuple]:
    """(object_id, seq, path, sha256, width, height) of the candidates' downloaded images."""
    return _run(engine, images_query(), query_params)


# -- a build's rows ------------------------------------------------------------------------------

@contextmanager
def build_lock(engine: Engine, name: str) -> Iterator[None]:
    """Hold the build lock of subset ``name``; SubsetError when another process holds it."""
    with engine.connect() as conn:
        key = {"cls": _LOCK_CLASS, "name": name}
        got = conn.execute(text("SELECT pg_try_advisory_lock(:cls, hashtext(:name))"), key).scalar_one()
        conn.commit()
        if not got:
            raise SubsetError(f"subset {name!r} is being built by another process; try again when it ends")
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:cls, hashtext(:name))"), key)
            conn.commit()


def stored_params(engine: Engine, name: str) -> dict | None:
    """The parameters subset ``name`` was last built with, or None for a new subset."""
    with engine.connect() as conn:
        return conn.execute(text("SELECT params FROM subsets WHERE name = :name"), {"name": name}).scalar()


def create_if_new(engine: Engine, name: str, params: dict, path: str) -> None:
    """A row for a new subset; an existing one keeps its parameters (until finish_build)."""
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO subsets (name, params, path) VALUES (:name, CAST(:params AS jsonb), :path) "
            "ON CONFLICT (name) DO NOTHING"),
            {"name": name, "params": json.dumps(params), "path": path})


def image_rows(engine: Engine, name: str) -> dict[str, dict]:
    """The subset's image rows (built and skipped) by sha256: status, reason, params_hash."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT sha256, status, reason, params_hash FROM subset_images WHERE subset_name = :name"),
            {"name": name}).mappings().all()
    return {row["sha256"]: dict(row) for row in rows}


_UPSERT_IMAGES = text("""
INSERT INTO subset_images (subset_name, sha256, object_id, image_seq, status, reason, path,
                           params_hash, source_width, source_height)
VALUES (:subset_name, :sha256, :object_id, :image_seq, :status, :reason, :path,
        :params_hash, :source_width, :source_height)
ON CONFLICT (subset_name, sha256) DO UPDATE SET
    object_id = EXCLUDED.object_id, image_seq = EXCLUDED.image_seq, status = EXCLUDED.status,
    reason = EXCLUDED.reason, path = EXCLUDED.path, params_hash = EXCLUDED.params_hash,
    source_width = EXCLUDED.source_width, source_height = EXCLUDED.source_height, created_at = now()
""")


def upsert_images(engine: Engine, rows: list[dict]) -> None:
    """Record conversion results (the columns of subset_images, by name) in one transaction."""
    if rows:
        with engine.begin() as conn:
            conn.execute(_UPSERT_IMAGES, rows)


def manifest_rows(engine: Engine, name: str, selected: set[str]) -> list[dict]:
    """The rows of the images in ``selected`` (sha256s), by sha256: what the manifest lists."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT sha256, object_id, image_seq, status, reason, source_width, source_height "
            "FROM subset_images WHERE subset_name = :name ORDER BY sha256"), {"name": name}).mappings().all()
    return [dict(row) for row in rows if row["sha256"] in selected]


def finish_build(engine: Engine, name: str, *, params: dict, counts: dict, path: str,
                 dropped: list[str]) -> None:
    """After the switch to a new manifest: drop the rows of images no longer selected, store the
    parameters and counts (one transaction)."""
    with engine.begin() as conn:
        if dropped:
            conn.execute(text("DELETE FROM subset_images WHERE subset_name = :name AND sha256 = ANY(:shas)"),
                         {"name": name, "shas": dropped})
        conn.execute(text(
            "UPDATE subsets SET params = CAST(:params AS jsonb), counts = CAST(:counts AS jsonb), "
            "path = :path, updated_at = now() WHERE name = :name"),
            {"name": name, "params": json.dumps(params), "counts": json.dumps(counts), "path": path})


# -- reading subsets -----------------------------------------------------------------------------

_SUBSET_COLUMNS = "name, params, counts, path, created_at, updated_at"


def list_subsets(engine: Engine) -> list[dict]:
    """Every subset row, by name."""
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT {_SUBSET_COLUMNS} FROM subsets ORDER BY name")).mappings()
        return [dict(row) for row in rows]


def get_subset(engine: Engine, name: str) -> dict | None:
    """Subset ``name``'s row, or None."""
    with engine.connect() as conn:
        row = conn.execute(text(f"SELECT {_SUBSET_COLUMNS} FROM subsets WHERE name = :name"),
                           {"name": name}).mappings().first()
    return None if row is None else dict(row)


def subset_names(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT name FROM subsets ORDER BY name")).scalars())


def image_sources(engine: Engine, name: str) -> list[dict]:
    """status, reason, source_width and source_height of each of the subset's images."""
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(text(
            "SELECT status, reason, source_width, source_height FROM subset_images "
            "WHERE subset_name = :name"), {"name": name}).mappings()]
