"""A search's record: what each trial is (status, progress, label, score, best snapshot) and which is best.

The search folder is the record (``search.json`` and the trial folders, whose files
:mod:`metgan.trialdir` reads and writes). This module is the one place that answers questions
about it, so ``metgan search status``, the report, the gallery, successive halving, the DAGs and
``gan_generate`` all say the same thing:

- :func:`read_trial`: a trial's status, true progress, label, score, floor and best snapshot;
- :func:`rank`: which trial is best, and why (the one ranking);
- :func:`best_trial`: the best trial that has a generator to use;
- :func:`trial_lock`: one trainer per trial, whichever host it runs on;
- :func:`synced`: a search's (or trial's) folder synced with an object store around a step.

A trial whose folder says ``running`` while nobody trains it (its trainer was killed, or its
machine lost) reads ``interrupted``; :func:`settle` writes that into the folder and the
database index under the trial's lock, so the two never disagree.

PostgreSQL's ``searches``/``trials``/``trial_epochs`` rows are an index of the folders for SQL
queries, written by this module only (always after the folder) and rebuilt from a folder's
state; nothing reads a search's state from them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from metgan import names, trialdir
from metgan.errors import (
    ConfigError,
    GanConfigError,
    MetganError,
    StorageError,
    TrainingError,
    TrialFolderError,
)
from metgan.gan import verdict

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted"
# Statuses whose trainer may still be at work.
RUNNING = "running"

T = TypeVar("T")


# --- where a search is, and its sync with an object store --------------------------------------

# On an object store (METGAN_RESULTS_DIR=s3://...), each step works on the worker's mirror of the
# folder it touches and syncs it around the work (metgan.storage.Store.synced): a search step
# pulls the search folder without the checkpoints, a training step pulls its trial folder with
# them. On a local folder this is a no-op.
HEAVY_PARTS = ("/checkpoints/",)


def checked_name(name: object, kind: str) -> str:
    """``name`` as a folder name (:func:`metgan.names.check_name`), as a GanConfigError."""
    try:
        return names.check_name(name, kind)
    except ConfigError as exc:
        raise GanConfigError(str(exc)) from None


def search_folder(search_name: str, settings=None) -> Path:
    """``<results_dir>/<search_name>`` for a valid search name (the worker's mirror on an object store)."""
    from metgan.config import get_settings

    settings = settings or get_settings()
    return settings.results_dir / checked_name(search_name, "search name")


def planned_search(search_name: str, folder: Path) -> trialdir.SearchRecord:
    """search.json, or a TrainingError saying the search has not been planned."""
    search = trialdir.read_search(folder)
    if search is None:
        raise TrainingError(f"search {search_name!r} has not been planned ({folder / trialdir.SEARCH} missing)")
    return search


@contextlib.contextmanager
def synced(search_name: str, trial_id: str | None = None, *, settings, weights: bool = False):
    """Sync a search folder (or one trial's, ``trial_id``) with the results store around a block;
    yields the :class:`~metgan.storage.Sync` (a trainer pushes its checkpoints through it)."""
    store = settings.results_store
    key = checked_name(search_name, "search name")
    if trial_id is not None:
        key = f"{key}/{checked_name(trial_id, 'trial id')}"
        if store.is_remote:  # the trial's step reads the plan too
            with contextlib.suppress(StorageError):
                store.fetch(f"{search_name}/{trialdir.SEARCH}", refresh=True)
    with store.synced(key, exclude=() if weights else HEAVY_PARTS) as sync:
        yield sync


def pull_records(settings) -> None:
    """Bring every search's records and pictures (not the checkpoints) from an object store into
    this worker's mirror; nothing to do on a local folder."""
    settings.results_store.pull("", exclude=HEAVY_PARTS)


# --- the one ranking --------------------------------------------------------------------------

def rank(trials: Iterable[T], direction: str, *, score: Callable[[T], float | None] = lambda t: t.score,
         rung: Callable[[T], int | None] = lambda t: t.rung) -> list[T]:
    """The trials best first. Which trial is best, and why:

    1. a trial with a score beats one without (a failed or unstarted trial has none);
    2. a trial that reached a later successive-halving rung beats one stopped at an earlier rung
       (their scores were taken after different numbers of epochs, so they do not compare);
    3. then the better score by the search's ``direction`` ("min": lower is better);
    4. a tie keeps the order the trials came in (trial id, or plan order for halving).

    A trial's score is its best snapshot's value by the search's objective (the generator a
    user gets), else the last value measured (:func:`read_trial`).
    """
    def key(trial: T) -> tuple:
        value = score(trial)
        if value is None:
            return (1, 0, 0.0)
        return (0, -(rung(trial) or 0), value if direction == "min" else -value)

    return sorted(trials, key=key)


# --- a trial ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrialRecord:
    """One trial as every reader shows it."""

    trial_id: str
    path: Path
    label: str
    status: str  # trial.json's, with a running trial nobody trains read as "interrupted"
    epochs_done: int  # the epochs trained: the newer of trial.json's count and metrics.jsonl's last line
    epochs: int | None
    objective: str
    score: float | None  # what rank() compares (see there)
    score_epoch: int | None
    floor: float | None  # the data's own SWD (swd_real) beside the score
    best: trialdir.ModelRecord | None  # best/model.json by the search's objective
    rung: int | None
    rungs: list = field(default_factory=list)
    holder: str | None = None  # who trains it now ("host pid N"), when someone does
    problem: str | None = None  # why its records could not be read
    info: dict = field(default_factory=dict)

    def describe(self) -> str:
        """The score against its floor with a verdict in words (:func:`metgan.gan.verdict.describe`)."""
        if self.objective == "swd":
            return verdict.describe(self.score, self.floor)
        return verdict.describe(self.score, None, metric=self.objective)

    @property
    def trained_at(self) -> str | None:
        """What its worker fitted to the time budget and why, on one line (None: nothing was fitted)."""
        from metgan.gan.budget import describe_fit

        fitted = self.info.get("fitted")
        return describe_fit(fitted) if isinstance(fitted, dict) else None

    @property
    def trained_size(self) -> str | None:
        """"trained at WxH" when its worker trained below the requested size to fit its budget."""
        fitted = self.info.get("fitted")
        if not isinstance(fitted, dict) or not fitted.get("below_subset_size"):
            return None
        return f"trained at {fitted.get('width')}x{fitted.get('height')} to fit its time budget"

    @property
    def error_summary(self) -> str | None:
        summary = self.info.get("error_summary")
        if isinstance(summary, str) and summary.strip():
            return summary.strip()
        lines = [line.strip() for line in str(self.info.get("error") or "").splitlines() if line.strip()]
        return lines[-1] if lines else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def best_snapshot(trial_dir: Path, objective: str) -> trialdir.ModelRecord | None:
    """best/model.json when the trial has a complete best snapshot by ``objective``, else None."""
    try:
        record = trialdir.read_model_record(trial_dir) if trialdir.has_best_snapshot(trial_dir) else None
    except TrialFolderError as exc:
        log.warning("%s", exc)
        return None
    if (not record or record.get("objective") != objective or not isinstance(record.get("epoch"), int)
            or _number(record.get("objective_value")) is None):
        return None
    return record


def trainer_gone(info: dict, holders: dict[str, str] | None) -> bool:
    """Whether a ``running`` trial's trainer is gone: its lock is free (``holders``, the database's
    answer for its search; None when it was not asked), or it ran on this host as a process that
    no longer exists."""
    trial_id = str(info.get("trial_id") or "")
    if holders is not None and info.get("search_name"):
        return trial_id not in holders
    pid = info.get("pid")
    if info.get("hostname") == socket.gethostname() and isinstance(pid, int) and pid > 0:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False


def read_trial(trial_dir: Path, objective: str = "swd", holders: dict[str, str] | None = None) -> TrialRecord:
    """The trial in ``trial_dir`` as every reader shows it (see :class:`TrialRecord`)."""
    trial_dir = Path(trial_dir)
    problem = None
    try:
        info = dict(trialdir.read_trial_info(trial_dir) or {})
        config = trialdir.read_config(trial_dir) or {}
    except TrialFolderError as exc:
        log.warning("%s", exc)
        info, config, problem = {}, {}, str(exc)
    lines = trialdir.read_metrics(trial_dir)
    best = best_snapshot(trial_dir, objective)
    measured = [line for line in lines if _number(line.get(objective)) is not None]
    if best is not None:
        score, score_epoch = float(best["objective_value"]), best["epoch"]
        floor = _number((best.get("metrics") or {}).get("swd_real"))
    elif measured:
        score, score_epoch = float(measured[-1][objective]), measured[-1]["epoch"]
        floor = _number(measured[-1].get("swd_real"))
    else:
        score = score_epoch = floor = None
    if floor is None:
        floors = [line["swd_real"] for line in lines if _number(line.get("swd_real")) is not None]
        floor = float(floors[-1]) if floors else None
    done = info.get("epochs_done") if isinstance(info.get("epochs_done"), int) else 0
    epochs_done = max([done, *(line["epoch"] for line in lines)])
    status = str(info.get("status") or ("unreadable" if problem else "unknown"))
    trial_id = str(info.get("trial_id") or trial_dir.name)
    holder = (holders or {}).get(trial_id)
    if status == RUNNING and trainer_gone({**info, "trial_id": trial_id}, holders):
        status = INTERRUPTED
    planned = info.get("epochs", config.get("epochs"))
    rung = info.get("rung")
    return TrialRecord(
        trial_id=trial_id, path=trial_dir, label=label(info, config, trial_id), status=status,
        epochs_done=epochs_done, epochs=planned if isinstance(planned, int) else None, objective=objective,
        score=score, score_epoch=score_epoch, floor=floor, best=best,
        rung=rung if isinstance(rung, int) else None,
        rungs=list(info.get("rungs")) if isinstance(info.get("rungs"), list) else [],
        holder=holder, problem=problem, info=info)


def label(info: dict, config: dict, trial_id: str) -> str:
    """A trial's one label: the one its search planned it with (the grid settings that vary across
    the search, in trial.json), else its settings against the default preset, else its id."""
    if isinstance(info.get("label"), str) and info["label"]:
        return info["label"]
    if config:
        from metgan.errors import GanConfigError
        from metgan.gan.config import GanConfig

        try:
            return GanConfig.from_dict(config).label()
        except GanConfigError:
            pass
    return trial_id


# --- a search ---------------------------------------------------------------------------------

def trial_ids(search_dir: Path, search: dict | None = None) -> list[str]:
    """The search's trials: search.json's, in plan order, then any other trial folder, by name."""
    search_dir = Path(search_dir)
    if search is None:
        search = read_search(search_dir) or {}
    listed = [str(t) for t in search.get("trials") or []]
    found = sorted(child.name for child in search_dir.iterdir()
                   if child.is_dir() and child.name != trialdir.GALLERY and trialdir.has_trial_files(child)) \
        if search_dir.is_dir() else []
    return list(dict.fromkeys(listed + found))


def read_search(search_dir: Path) -> trialdir.SearchRecord | None:
    return trialdir.read_search(search_dir)


def read_trials(search_dir: Path, search: dict | None = None, *, settings=None,
                holders: dict[str, str] | None = None, ask_database: bool = True) -> list[TrialRecord]:
    """Every trial of the search, in :func:`trial_ids` order. A running trial's trainer is looked
    up in the database (``settings``' METGAN_DATABASE_URL) unless ``holders`` is given or
    ``ask_database`` is False; a trial on this host is also known dead when its process is gone."""
    search_dir = Path(search_dir)
    if search is None:
        search = read_search(search_dir) or {}
    objective = str(search.get("objective") or "swd")
    ids = trial_ids(search_dir, search)
    if holders is None and ask_database and any(_reads_running(search_dir / t) for t in ids):
        holders = lock_holders(str(search.get("name") or search_dir.name), ids, settings)
    return [read_trial(search_dir / t, objective, holders) for t in ids]


def _reads_running(trial_dir: Path) -> bool:
    try:
        return (trialdir.read_trial_info(trial_dir) or {}).get("status") == RUNNING
    except TrialFolderError:
        return False


def ranked_trials(search_dir: Path, search: dict | None = None, **options) -> list[TrialRecord]:
    """:func:`read_trials`, best first (:func:`rank`)."""
    search_dir = Path(search_dir)
    if search is None:
        search = read_search(search_dir) or {}
    direction = "max" if search.get("direction") == "max" else "min"
    return rank(read_trials(search_dir, search, **options), direction)


def best_trial(search_dir: Path | str) -> tuple[str, trialdir.ModelRecord] | None:
    """(trial id, its best/model.json) of the best-ranked trial (:func:`rank`) that has a best
    snapshot by the search's objective; None when no trial has one."""
    search_dir = Path(search_dir)
    try:
        search = read_search(search_dir) or {}
    except TrialFolderError as exc:
        log.warning("%s", exc)
        return None
    for trial in ranked_trials(search_dir, search, ask_database=False):
        if trial.best is not None:
            return trial.trial_id, trial.best
    return None


def newest_search_with_model(results_dir: Path | str) -> str | None:
    """The name of the newest search (by search.json's created_at) that has a best snapshot; None if none."""
    found = []
    for search_file in trialdir.search_files(Path(results_dir)):
        try:
            search = read_search(search_file.parent) or {}
        except TrialFolderError:
            continue
        if best_trial(search_file.parent) is not None:
            found.append((str(search.get("created_at") or ""), search_file.parent.name))
    return max(found)[1] if found else None


# --- who trains a trial -----------------------------------------------------------------------

def holder_name() -> str:
    """This process, as another process is told who holds a trial: "host pid N"."""
    return f"{socket.gethostname()[:40]} pid {os.getpid()}"


def _database(settings, *, start_embedded: bool):
    from metgan.config import get_settings
    from metgan.db import get_engine

    settings = settings or get_settings()
    if not settings.database_url and not start_embedded:
        return None
    return get_engine(settings)


def lock_holders(search_name: str, ids: Sequence[str], settings=None, *,
                 start_embedded: bool = False) -> dict[str, str] | None:
    """{trial id: "host pid N"} for the trials of ``ids`` someone trains now; None when the
    database is not configured (the embedded one is not started for this) or does not answer."""
    from sqlalchemy.exc import SQLAlchemyError

    from metgan.db.searches import trial_lock_holders

    try:
        engine = _database(settings, start_embedded=start_embedded)
        if engine is None:
            return None
        return trial_lock_holders(engine, search_name, list(ids))
    except (MetganError, SQLAlchemyError) as exc:
        log.warning("cannot ask the database who trains the trials of %s: %s", search_name, exc)
        return None


@contextlib.contextmanager
def trial_lock(search_name: str, trial_id: str, settings=None) -> Iterator[str | None]:
    """Hold the trial's lock for the block: yields None when this process holds it, else who
    does ("host pid N"), and holds nothing. Every trainer of a search's trial takes it, so one
    process trains a trial at a time across every host that shares the database."""
    from metgan.db.searches import trial_lock as database_lock
    from metgan.db.searches import trial_lock_holders

    engine = _database(settings, start_embedded=True)
    with database_lock(engine, search_name, trial_id, holder_name()) as held:
        if held:
            yield None
        else:
            yield trial_lock_holders(engine, search_name, [trial_id]).get(trial_id, "another session")


def settle(search_dir: Path, settings=None) -> list[str]:
    """Write ``interrupted`` (and the epochs done) into the folder, then the database index, of
    every trial that reads ``running`` but whose lock is free; returns their ids. Each is written
    under the trial's lock, so a trainer that starts meanwhile is never overwritten."""
    search_dir = Path(search_dir)
    search = read_search(search_dir) or {}
    name = str(search.get("name") or search_dir.name)
    settled = []
    for trial_id in trial_ids(search_dir, search):
        if not _reads_running(search_dir / trial_id):
            continue
        with trial_lock(name, trial_id, settings) as holder:
            if holder is not None:
                continue
            info = trialdir.read_trial_info(search_dir / trial_id) or {}
            if info.get("status") != RUNNING:
                continue
            trial = read_trial(search_dir / trial_id, str(search.get("objective") or "swd"), holders={})
            record_interrupted(search_dir / trial_id, info, trial.epochs_done,
                               "its trainer ended without recording an outcome (killed, or its machine lost)")
            index_trial(name, trial_id, info, settings)
            settled.append(trial_id)
    if settled:
        log.info("search %s: %d trial(s) read running with nobody training them: recorded interrupted (%s)",
                 name, len(settled), ", ".join(settled))
    return settled


def record_interrupted(trial_dir: Path, info: dict, epochs_done: int, why: str) -> dict:
    """Put ``interrupted`` into trial.json with the true epochs done and why (the caller holds the lock)."""
    info.update(status=INTERRUPTED, epochs_done=epochs_done, stop_reason=INTERRUPTED,
                stop_detail=f"interrupted after epoch {epochs_done}: {why}; it resumes from its newest "
                            "checkpoint when trained again", finished_at=trialdir.utc_now())
    trialdir.write_trial_info(trial_dir, info)  # type: ignore[arg-type]
    return info


def index_plan(search_name: str, record: trialdir.SearchRecord, folder: Path, trials: list[tuple[str, dict, str]],
               settings=None) -> None:
    """Index a search.json just written and its planned trials ``(trial_id, config, path)``."""
    from metgan.db.searches import record_plan

    record_plan(_database(settings, start_embedded=True), search_name, subset=record["subset"], grid=record["grid"],
                objective=record["objective"], direction=record["direction"], path=str(folder),
                strategy=record.get("strategy"), rungs=record.get("rungs"), trials=trials)


def index_rungs(search_name: str, trial_id: str, info: dict, settings=None) -> None:
    """Index a trial's rung history (and a halving decision's status and score) just written to trial.json."""
    from metgan.db.searches import record_rungs

    record_rungs(_database(settings, start_embedded=True), search_name, trial_id, status=info.get("status"),
                 rung=info.get("rung"), rungs=list(info.get("rungs") or []), objective=info.get("pruned_score"))


def index_recorder(search_name: str, trial_id: str, settings=None):
    """What the trainer tells after it has written trial.json and metrics.jsonl: the trial's index rows
    (:class:`metgan.db.searches.DbRecorder`)."""
    from metgan.db.searches import DbRecorder

    return DbRecorder(_database(settings, start_embedded=True), search_name, trial_id)


def index_trial(search_name: str, trial_id: str, info: dict, settings=None) -> None:
    """Bring the trial's database row to its folder's status and progress."""
    from metgan.db.searches import index_trial as write_row

    engine = _database(settings, start_embedded=True)
    write_row(engine, search_name, trial_id, status=str(info.get("status")),
              epochs_done=int(info.get("epochs_done") or 0), stop_reason=info.get("stop_reason"),
              error=info.get("error"))
