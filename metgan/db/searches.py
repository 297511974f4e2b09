"""The searches repository: ``searches``, ``trials`` and ``trial_epochs`` rows, and the trial locks.

The rows are an index of the search folders for SQL queries: :mod:`metgan.gan.search_record` alone
writes them, always after the folder, and rebuilds a trial's row from its folder; nothing in
metgan reads a search's state from them. The trial lock is PostgreSQL's session advisory lock,
held by the one process that trains a trial, whichever host it runs on (every host shares the
database); a killed process's session ends, and its lock with it.

Callers get the engine once at their entry point and pass it here; nothing in this module reads
settings or migrates the schema (``metgan db migrate`` does, and an unmigrated database fails with
one line in store/engine.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, text


def _jsonable(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def record_plan(engine: Engine, search_name: str, *, subset: str, grid: Any, objective: str,
                direction: str, path: str, trials: list[tuple[str, dict, str]],
                strategy: dict | None = None, rungs: list[dict] | None = None) -> None:
    """Upsert the search row and insert its planned trials ``(trial_id, config, path)`` (kept if present)."""
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO searches (name, subset_name, grid, objective, direction, path, strategy, rungs) "
            "VALUES (:name, :subset, CAST(:grid AS jsonb), :objective, :direction, :path, "
            "CAST(:strategy AS jsonb), CAST(:rungs AS jsonb)) "
            "ON CONFLICT (name) DO UPDATE SET subset_name = EXCLUDED.subset_name, grid = EXCLUDED.grid, "
            "objective = EXCLUDED.objective, direction = EXCLUDED.direction, path = EXCLUDED.path, "
            "strategy = EXCLUDED.strategy, rungs = EXCLUDED.rungs, updated_at = now()"),
            {"name": search_name, "subset": subset, "grid": json.dumps(grid),
             "objective": objective, "direction": direction, "path": path,
             "strategy": _jsonable(strategy or {"strategy": "grid"}), "rungs": _jsonable(rungs or [])})
        for trial_id, config, trial_path in trials:
            conn.execute(text(
                "INSERT INTO trials (search_name, trial_id, config, status, path) "
                "VALUES (:search, :trial, CAST(:config AS jsonb), 'pending', :path) "
                "ON CONFLICT (search_name, trial_id) DO NOTHING"),
                {"search": search_name, "trial": trial_id, "config": json.dumps(config), "path": trial_path})


def record_rungs(engine: Engine, search_name: str, trial_id: str, *, status: str | None, rung: int | None,
                 rungs: list[dict], objective: float | None = None) -> None:
    """Mirror a trial's rung history (and a halving decision's status and score) into its row."""
    with engine.begin() as conn:
        conn.execute(text(
            "UPDATE trials SET status = COALESCE(:status, status), rung = :rung, rungs = CAST(:rungs AS jsonb), "
            "objective = COALESCE(:objective, objective), updated_at = now() "
            "WHERE search_name = :search AND trial_id = :trial"),
            {"search": search_name, "trial": trial_id, "status": status, "rung": rung,
             "rungs": _jsonable(rungs), "objective": objective})


# --- one trainer per trial -------------------------------------------------------------------

def _lock_key(text_: str) -> int:
    """A stable non-negative int4 for a name (pg_locks shows it back as an oid)."""
    return int.from_bytes(hashlib.sha256(text_.encode("utf-8")).digest()[:4], "big") >> 1


@contextlib.contextmanager
def trial_lock(engine: Engine, search_name: str, trial_id: str, holder: str) -> Iterator[bool]:
    """Hold the trial's advisory lock for the block on a connection of its own; yields True, or
    False (holding nothing) when another session holds it. ``holder`` ("host pid N") is the
    session's application_name, which :func:`trial_lock_holders` reports to the others."""
    keys = {"search_key": _lock_key(search_name), "trial_key": _lock_key(trial_id)}
    conn = engine.connect()
    held = False
    try:
        conn.execute(text("SELECT set_config('application_name', :holder, false)"), {"holder": holder[:63]})
        held = bool(conn.execute(text("SELECT pg_try_advisory_lock(:search_key, :trial_key)"), keys).scalar())
        conn.commit()  # the lock is the session's: no transaction stays open while the trial trains
        yield held
    finally:
        try:
            if held:
                conn.execute(text("SELECT pg_advisory_unlock(:search_key, :trial_key)"), keys)
            conn.execute(text("SELECT set_config('application_name', '', false)"))
            conn.commit()
        except Exception:  # the session is gone (and its lock with it): never reuse the connection
            conn.invalidate()
        conn.close()


def trial_lock_holders(engine: Engine, search_name: str, trial_ids: list[str]) -> dict[str, str]:
    """{trial id: its holder's application_name} for the trials of ``trial_ids`` whose lock is held."""
    by_key = {_lock_key(trial_id): trial_id for trial_id in trial_ids}
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT l.objid::bigint AS trial_key, coalesce(a.application_name, '') AS holder "
            "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid::bigint = :search_key"), {"search_key": _lock_key(search_name)}).all()
    return {by_key[row.trial_key]: row.holder or "another session" for row in rows if row.trial_key in by_key}


def index_trial(engine: Engine, search_name: str, trial_id: str, *, status: str, epochs_done: int,
                stop_reason: str | None, error: str | None) -> None:
    """Set a trial row's status and progress to what its folder says (a resolved interruption)."""
    with engine.begin() as conn:
        conn.execute(text(
            "UPDATE trials SET status = :status, epochs_done = :epochs_done, stop_reason = :stop_reason, "
            "error = COALESCE(:error, error), updated_at = now() WHERE search_name = :search AND trial_id = :trial"),
            {"search": search_name, "trial": trial_id, "status": status, "epochs_done": epochs_done,
             "stop_reason": stop_reason, "error": error})


class DbRecorder:
    """Mirrors a trial's progress into ``trials`` and ``trial_epochs`` (upserts only)."""

    def __init__(self, engine: Engine, search_name: str, trial_id: str):
        self.engine = engine
        self.search_name = search_name
        self.trial_id = trial_id

    def _run(self, sql: str, params: dict) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(sql), {"search": self.search_name, "trial": self.trial_id, **params})

    def truncate(self, last_epoch: int) -> None:
        self._run("DELETE FROM trial_epochs WHERE search_name = :search AND trial_id = :trial AND epoch > :epoch",
                  {"epoch": last_epoch})

    def started(self, info: dict) -> None:
        self._run("UPDATE trials SET status = 'running', stop_reason = NULL, error = NULL, device = :device, "
                  "hostname = :hostname, epochs_done = :epochs_done, "
                  "started_at = COALESCE(started_at, now()), finished_at = NULL, updated_at = now() "
                  "WHERE search_name = :search AND trial_id = :trial",
                  {"device": info.get("device"), "hostname": info.get("hostname"),
                   "epochs_done": info.get("epochs_done", 0)})

    def epoch(self, line: dict) -> None:
        self._run("INSERT INTO trial_epochs (search_name, trial_id, epoch, metrics) "
                  "VALUES (:search, :trial, :epoch, CAST(:metrics AS jsonb)) "
                  "ON CONFLICT (search_name, trial_id, epoch) DO UPDATE SET metrics = EXCLUDED.metrics, "
                  "recorded_at = now()", {"epoch": line["epoch"], "metrics": _jsonable(line)})
        self._run("UPDATE trials SET epochs_done = :epoch, updated_at = now() "
                  "WHERE search_name = :search AND trial_id = :trial", {"epoch": line["epoch"]})

    def finished(self, info: dict, final: dict, best: dict, objective: float | None) -> None:
        self._run("UPDATE trials SET status = :status, stop_reason = :stop_reason, error = :error, "
                  "epochs_done = :epochs_done, images_per_s = :ips, images_seen = :seen, "
                  "final_metrics = CAST(:final AS jsonb), "
                  "best_metrics = CAST(:best AS jsonb), objective = :objective, device = :device, "
                  "finished_at = now(), updated_at = now() WHERE search_name = :search AND trial_id = :trial",
                  {"status": info["status"], "stop_reason": info.get("stop_reason"), "error": info.get("error"),
                   "epochs_done": info.get("epochs_done", 0), "ips": info.get("images_per_s"),
                   "seen": info.get("images_seen"),
                   "final": _jsonable(final), "best": _jsonable(best), "objective": objective,
                   "device": info.get("device")})
