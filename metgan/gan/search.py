"""Grid searches: expand a grid into trials, run them, keep the results in files and PostgreSQL.

A grid follows scikit-learn's ``ParameterGrid``: a dict of lists (every combination) or a list
of such dicts (the union, so meaningless combinations can be left out); a scalar stands for a
one-value list. Each combination is laid over ``base`` (which may name a ``preset``), resolved
to a :class:`~metgan.gan.config.GanConfig` and validated; the whole grid is checked before any
trial is written, and the first bad combination is named in the error. A trial's id is the hash
of its resolved config (plus the schema version), so a rerun skips finished trials and a changed
grid never shifts results into the wrong folder (the origin's resume index did).

Planning (``plan_trials``, ``expand_grid``, ``load_grid``) imports no TensorFlow: Airflow parses
the DAG and plans cheaply; ``train_trial`` imports it when it trains.
"""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path
from typing import Any

from metgan import names
from metgan.config import Settings, get_settings
from metgan.errors import ConfigError, GanConfigError, MetganError, TrainingError
from metgan.gan.config import GanConfig

log = logging.getLogger(__name__)

OBJECTIVES = ("swd", "color_distance", "diversity", "fid", "d_loss", "g_loss")


# --- grids ------------------------------------------------------------------------------------

def load_grid(path: Path | str) -> dict:
    """Read a grid file (YAML or JSON).

    The file is either the grid itself (a dict of lists, or a list of them), or a dict with a
    ``grid`` key and optional ``base``, ``objective``, ``direction``. Returns that second form.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise GanConfigError(f"grid file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise GanConfigError(f"grid file {path} is not valid YAML/JSON: {str(exc).splitlines()[0]}") from None
    if isinstance(data, dict) and "grid" in data:
        unknown = set(data) - {"grid", "base", "objective", "direction"}
        if unknown:
            raise GanConfigError(f"grid file {path} has unknown top-level key {sorted(unknown)[0]!r}; "
                                 "valid: grid, base, objective, direction")
        return {"grid": data["grid"], "base": data.get("base") or {},
                "objective": data.get("objective", "swd"), "direction": data.get("direction", "min")}
    return {"grid": data, "base": {}, "objective": "swd", "direction": "min"}


def _parse_grid_text(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GanConfigError(f"grid text is not valid YAML/JSON: {str(exc).splitlines()[0]}") from None


def expand_grid(grid: dict | list[dict] | str | None) -> list[dict]:
    """ParameterGrid semantics: every combination of a dict of lists; a list of dicts concatenated.

    A string is parsed as YAML/JSON first (an Airflow param may arrive as text).
    """
    if isinstance(grid, str):
        grid = _parse_grid_text(grid)
    if grid is None or grid == {}:
        return [{}]
    if isinstance(grid, dict):
        grid = [grid]
    if not isinstance(grid, list) or not all(isinstance(part, dict) for part in grid):
        raise GanConfigError("a grid must be a dict of lists or a list of such dicts")
    combos: list[dict] = []
    for part in grid:
        keys = sorted(part)
        values = []
        for key in keys:
            value = part[key]
            if isinstance(value, list) and key != "diffaugment":
                if not value:
                    raise GanConfigError(f"grid key {key!r} has an empty list of values")
                values.append(value)
            elif key == "diffaugment" and isinstance(value, list) and value and all(isinstance(v, list) for v in value):
                values.append(value)
            else:
                values.append([value])
        combos.extend(dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values))
    return combos


def resolve_grid(grid: dict | list[dict] | str | None, base: dict | None = None) -> list[tuple[dict, GanConfig]]:
    """(combination, config) for every grid point, all validated; duplicates removed."""
    resolved, seen = [], set()
    for combo in expand_grid(grid):
        try:
            config = GanConfig.from_dict({**(base or {}), **combo})
        except GanConfigError as exc:
            raise GanConfigError(f"grid combination {json.dumps(combo, sort_keys=True)} is invalid: {exc}") from None
        if config.trial_id() not in seen:
            seen.add(config.trial_id())
            resolved.append((combo, config))
    return resolved


def grid_labels(combos: list[dict]) -> list[str]:
    """Name each trial by the grid settings that vary across the search ("loss=hinge d_norm=none"),
    not by everything that differs from the preset, which repeats the search's shared settings."""
    keys = sorted({key for combo in combos for key in combo})
    varying = [key for key in keys
               if len({json.dumps(combo.get(key, "\0"), sort_keys=True) for combo in combos}) > 1]

    def text(value: Any) -> str:
        return "+".join(map(str, value)) or "none" if isinstance(value, list) else str(value)

    return [" ".join(f"{key}={text(combo[key])}" for key in varying if key in combo) for combo in combos]


# --- folders ----------------------------------------------------------------------------------

def search_dir(search_name: str, settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    try:
        names.check_name(search_name, "search name")
    except ConfigError as exc:
        raise GanConfigError(str(exc)) from None
    return settings.results_dir / search_name


def _write_json(path: Path, data: Any) -> None:
    import os

    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def _utc_now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# --- planning ---------------------------------------------------------------------------------

def plan_trials(search_name: str, grid: dict | list[dict] | str, *, subset: str, base: dict | None = None,
                objective: str = "swd", direction: str = "min", settings: Settings | None = None,
                dry_run: bool = False) -> list[dict]:
    """Validate the whole grid, then write the search folder, trial folders and DB rows.

    Returns [{"search_name", "trial_id", "label"}] in grid order. Idempotent: planning the same
    grid again changes nothing; planning a grown grid adds the new trials. ``dry_run`` validates
    and returns the plan without writing anything.
    """
    settings = settings or get_settings()
    if objective not in OBJECTIVES:
        raise GanConfigError(f"objective {objective!r} is not one of {', '.join(OBJECTIVES)}")
    if direction not in ("min", "max"):
        raise GanConfigError(f"direction {direction!r} must be 'min' or 'max'")
    folder = search_dir(search_name, settings)
    if isinstance(grid, str):
        grid = _parse_grid_text(grid)
    resolved = resolve_grid(grid, base)
    labels = grid_labels([combo for combo, _ in resolved])
    plan = [{"search_name": search_name, "trial_id": config.trial_id(), "label": label or config.label()}
            for (_, config), label in zip(resolved, labels, strict=True)]
    if dry_run:
        return plan
    subset_dir = settings.subsets_dir / subset
    folder.mkdir(parents=True, exist_ok=True)
    previous = _read_json(folder / "search.json") or {}
    trial_ids = list(dict.fromkeys(list(previous.get("trials", [])) + [p["trial_id"] for p in plan]))
    record = {"name": search_name, "subset": subset, "subset_dir": str(subset_dir), "grid": grid,
              "base": base or {}, "objective": objective, "direction": direction,
              "created_at": previous.get("created_at", _utc_now()), "trials": trial_ids}
    _write_json(folder / "search.json", record)
    for (_, config), item in zip(resolved, plan, strict=True):
        trial_dir = folder / item["trial_id"]
        trial_dir.mkdir(exist_ok=True)
        if not (trial_dir / "config.json").exists():
            _write_json(trial_dir / "config.json", config.to_dict())
        if not (trial_dir / "trial.json").exists():
            _write_json(trial_dir / "trial.json", {
                "search_name": search_name, "trial_id": item["trial_id"], "status": "pending",
                "stop_reason": None, "error": None, "epochs_done": 0, "epochs": config.epochs,
                "started_at": None, "finished_at": None, "wall_s": None, "device": None, "hostname": None,
                "images_per_s": None, "overrides": config.overrides(), "label": item["label"]})
    _db_plan(search_name, record, folder, resolved, settings)
    log.info("search %s: %d trials planned (%d in the grid)", search_name, len(plan), len(expand_grid(grid)))
    return plan


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


_MIGRATED: set[str] = set()


def _engine(settings: Settings):
    """The store's engine, migrated once per process (so a fresh database just works)."""
    from metgan.store import get_engine, migrate

    engine = get_engine(settings)
    url = engine.url.render_as_string(hide_password=False)
    if url not in _MIGRATED:
        migrate(engine)
        _MIGRATED.add(url)
    return engine


def _db_plan(search_name: str, record: dict, folder: Path, resolved, settings: Settings) -> None:
    from sqlalchemy import text

    with _engine(settings).begin() as conn:
        conn.execute(text(
            "INSERT INTO searches (name, subset_name, grid, objective, direction, path) "
            "VALUES (:name, :subset, CAST(:grid AS jsonb), :objective, :direction, :path) "
            "ON CONFLICT (name) DO UPDATE SET subset_name = EXCLUDED.subset_name, grid = EXCLUDED.grid, "
            "objective = EXCLUDED.objective, direction = EXCLUDED.direction, path = EXCLUDED.path, "
            "updated_at = now()"),
            {"name": search_name, "subset": record["subset"], "grid": json.dumps(record["grid"]),
             "objective": record["objective"], "direction": record["direction"], "path": str(folder)})
        for _, config in resolved:
            conn.execute(text(
                "INSERT INTO trials (search_name, trial_id, config, status, path) "
                "VALUES (:search, :trial, CAST(:config AS jsonb), 'pending', :path) "
                "ON CONFLICT (search_name, trial_id) DO NOTHING"),
                {"search": search_name, "trial": config.trial_id(), "config": json.dumps(config.to_dict()),
                 "path": str(folder / config.trial_id())})


# --- the database recorder --------------------------------------------------------------------

def _jsonable(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class DbRecorder:
    """Mirrors a trial's progress into ``trials`` and ``trial_epochs`` (upserts only)."""

    def __init__(self, search_name: str, trial_id: str, settings: Settings):
        self.search_name = search_name
        self.trial_id = trial_id
        self.settings = settings

    def _run(self, sql: str, params: dict) -> None:
        from sqlalchemy import text

        with _engine(self.settings).begin() as conn:
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
                  "epochs_done = :epochs_done, images_per_s = :ips, final_metrics = CAST(:final AS jsonb), "
                  "best_metrics = CAST(:best AS jsonb), objective = :objective, device = :device, "
                  "finished_at = now(), updated_at = now() WHERE search_name = :search AND trial_id = :trial",
                  {"status": info["status"], "stop_reason": info.get("stop_reason"), "error": info.get("error"),
                   "epochs_done": info.get("epochs_done", 0), "ips": info.get("images_per_s"),
                   "final": _jsonable(final), "best": _jsonable(best), "objective": objective,
                   "device": info.get("device")})


# --- training ---------------------------------------------------------------------------------

def train_trial(search_name: str, trial_id: str, *, settings: Settings | None = None,
                images=None) -> dict:
    """Train one planned trial (resuming; skipping it if finished); never raises for a failed trial.

    Returns {"search_name", "trial_id", "status", "stop_reason", "epochs", "objective", "error"}.
    A trial that fails is recorded (status failed, traceback in trial.json and the DB) and
    reported in the return value, so the other trials of the search go on.
    """
    settings = settings or get_settings()
    folder = search_dir(search_name, settings)
    search = _read_json(folder / "search.json")
    if search is None:
        raise TrainingError(f"search {search_name!r} has not been planned ({folder / 'search.json'} missing)")
    trial_dir = folder / trial_id
    config_data = _read_json(trial_dir / "config.json")
    if config_data is None:
        raise TrainingError(f"trial {trial_id} is not part of search {search_name!r} ({trial_dir} has no config.json)")
    config = GanConfig.from_dict(config_data)
    from metgan.gan.trial import run_trial, summary_from_files

    recorder = DbRecorder(search_name, trial_id, settings)
    error = None
    try:
        summary = run_trial(trial_dir, config, search["subset_dir"], search_name=search_name, trial_id=trial_id,
                            recorder=recorder, images=images, objective=search.get("objective", "swd"))
    except Exception as exc:  # recorded by run_trial; the search goes on
        log.error("trial %s of search %s failed: %s", trial_id, search_name, exc,
                  exc_info=not isinstance(exc, MetganError))
        summary = summary_from_files(trial_dir, search.get("objective", "swd"))
        error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return {"search_name": search_name, "trial_id": trial_id, "status": summary["status"],
            "stop_reason": summary["stop_reason"], "epochs": summary["epochs"],
            "objective": summary["objective"], "error": error}


def run_search(search_name: str, grid: dict | list[dict], *, subset: str, base: dict | None = None,
               objective: str = "swd", direction: str = "min", settings: Settings | None = None,
               progress=None) -> list[dict]:
    """Plan the grid, then train every trial in order (finished ones are skipped)."""
    settings = settings or get_settings()
    plan = plan_trials(search_name, grid, subset=subset, base=base, objective=objective, direction=direction,
                       settings=settings)
    if progress is not None:
        progress.start(len(plan))
    results = []
    for item in plan:
        results.append(train_trial(search_name, item["trial_id"], settings=settings))
        if progress is not None:
            progress.advance()
    if progress is not None:
        progress.finish()
    return results


# --- leaderboard ------------------------------------------------------------------------------

def leaderboard(search_name: str, *, settings: Settings | None = None) -> list[dict]:
    """Trials ordered by the search's objective (best first; trials without a value last)."""
    from sqlalchemy import text

    settings = settings or get_settings()
    with _engine(settings).connect() as conn:
        search = conn.execute(text("SELECT objective, direction FROM searches WHERE name = :name"),
                              {"name": search_name}).mappings().first()
        if search is None:
            raise GanConfigError(f"no search named {search_name!r} in the database")
        order = "ASC" if search["direction"] == "min" else "DESC"
        rows = conn.execute(text(
            "SELECT trial_id, status, stop_reason, epochs_done, objective, images_per_s, device, config, "
            "final_metrics, best_metrics, path FROM trials WHERE search_name = :name "
            f"ORDER BY objective {order} NULLS LAST, trial_id"), {"name": search_name}).mappings().all()
    board = []
    for rank, row in enumerate(rows, start=1):
        config = GanConfig.from_dict(row["config"])
        board.append({"rank": rank, "trial_id": row["trial_id"], "label": config.label(), "status": row["status"],
                      "stop_reason": row["stop_reason"], "epochs_done": row["epochs_done"],
                      "epochs": config.epochs, "objective": row["objective"], "objective_name": search["objective"],
                      "swd_real": (row["final_metrics"] or {}).get("swd_real"),
                      "images_per_s": row["images_per_s"], "device": row["device"], "path": row["path"]})
    return board
