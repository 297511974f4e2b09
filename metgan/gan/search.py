"""Grid searches: plan a grid's trials, train them, promote halving's survivors, rank the results.

The grid itself (parsing, expansion, labels) is :mod:`metgan.gan.param_grid`, the strategies'
arithmetic :mod:`metgan.gan.strategy`, and the search's record (status, ranking, best snapshot,
the database index and the object-store sync) :mod:`metgan.gan.search_record`. A trial's id is the
hash of its resolved config (plus the schema version), so a rerun skips finished trials and a
changed grid never shifts results into the wrong folder.

Planning imports no TensorFlow: Airflow parses the DAG and plans cheaply; ``train_trial``
imports it when it trains.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from metgan import names, trialdir
from metgan.config import Settings, get_settings
from metgan.errors import (
    GanConfigError,
    MetganError,
    SubsetError,
    TrainingError,
    TrialFolderError,
)
from metgan.gan import search_record
from metgan.gan.config import GanConfig
from metgan.gan.param_grid import candidates, grid_labels, grid_parts, parse_grid_text, resolve_grid
from metgan.gan.request import SearchRequest
from metgan.gan.strategy import (
    epochs_trained,
    plan_rungs,
)

log = logging.getLogger(__name__)


# --- folders ----------------------------------------------------------------------------------

def search_dir(search_name: str, settings: Settings | None = None) -> Path:
    return search_record.search_folder(search_name, settings)


def _checked(name: object, kind: str) -> str:
    """``name`` as a folder name (:func:`metgan.names.check_name`), as a GanConfigError."""
    return search_record.checked_name(name, kind)


def subset_folder(subset: str, settings: Settings | None = None) -> Path:
    """``<data_dir>/subsets/<subset>`` for a valid subset name (never a path outside that folder);
    on an object store, the worker's staged copy of it (:mod:`metgan.images.staging`)."""
    settings = settings or get_settings()
    name = _checked(subset, "subset name")
    store = settings.data_store
    if store.is_remote and store.exists(f"subsets/{name}/manifest.csv"):
        from metgan.images.staging import stage_subset

        try:
            return stage_subset(name, settings)
        except SubsetError as exc:
            raise GanConfigError(str(exc)) from None
    return settings.subsets_dir / name  # on a store without the subset: check_subset says which exist


def existing_subsets(settings: Settings | None = None) -> list[str]:
    """The names of the subset folders under ``<data_dir>/subsets`` that hold a manifest or images
    (on an object store: the subsets whose manifest is there)."""
    settings = settings or get_settings()
    if settings.data_store.is_remote:
        keys = settings.data_store.list("subsets")
        return sorted({key.split("/")[1] for key in keys if key.count("/") == 2 and key.endswith("/manifest.csv")})
    if not settings.subsets_dir.is_dir():
        return []
    found = []
    for child in sorted(settings.subsets_dir.iterdir()):
        if child.is_dir() and re.fullmatch(names.NAME_PATTERN, child.name) and (
                (child / "manifest.csv").exists() or (child / "images").is_dir()):
            found.append(child.name)
    return found


def check_subset(subset: str, settings: Settings | None = None) -> dict:
    """The subset's folder, image count and image size; one line naming the problem when it has none.

    Returns {"path", "images", "height", "width"}. A missing subset lists the ones that exist.
    """
    from metgan.gan.data import subset_images

    settings = settings or get_settings()
    folder = subset_folder(subset, settings)
    if not folder.is_dir():
        known = existing_subsets(settings)
        raise GanConfigError(f"subset {subset!r} does not exist in {settings.subsets_dir}; existing subsets: "
                             f"{', '.join(known) if known else 'none'} (build one with the vase_subset DAG "
                             "or `metgan subset build`)")
    try:
        count, height, width = subset_images(folder)
    except TrainingError as exc:
        raise GanConfigError(f"subset {subset!r} cannot be trained on: {exc}") from None
    return {"path": folder, "images": count, "height": height, "width": width}


# --- planning ---------------------------------------------------------------------------------

def plan_request(request: SearchRequest, *, settings: Settings | None = None, dry_run: bool = False) -> dict:
    """:func:`_plan` on the search folder, synced with the results store around it."""
    settings = settings or get_settings()
    with search_record.synced(request.search_name, settings=settings):
        return _plan(request, settings=settings, dry_run=dry_run)


def plan_search(search_name: str, grid: dict | list[dict] | str, *, subset: str, settings: Settings | None = None,
                dry_run: bool = False, **request) -> dict:
    """:func:`plan_request` from keywords: ``request`` holds :class:`SearchRequest`'s other fields."""
    return plan_request(SearchRequest(search_name=search_name, subset=subset, grid=grid, **request),
                        settings=settings, dry_run=dry_run)


def plan_trials(search_name: str, grid: dict | list[dict] | str, *, subset: str, settings: Settings | None = None,
                **request) -> list[dict]:
    """:func:`plan_search`'s trials."""
    return plan_search(search_name, grid, subset=subset, settings=settings, **request)["trials"]


def _plan(request: SearchRequest, *, settings: Settings, dry_run: bool) -> dict:
    """Validate the whole grid and the subset, then write the search folder, trial folders and DB rows.

    ``budget_s`` (seconds for the whole search) decides the training when neither the base nor the
    grid sets ``epochs`` and the strategy is not halving: it is split over the trials
    (:mod:`metgan.gan.budget`), each trains as many epochs as its share (``time_budget_s``) affords,
    and, when neither sets ``height``/``width``, at the largest halving of the subset's size it
    affords. Otherwise the budget is unused (``budget_unused`` in the overview).

    The subset must exist and hold images; the trials train at its image size: when neither
    ``base`` nor the grid sets ``height``/``width`` they are taken from the subset, and a size
    that differs from it is refused (training would silently resize every image).
    ``airflow_dag_id``/``airflow_run_id`` (the run that planned it) go into search.json's
    ``"airflow"`` entry, which the gallery links to.

    ``strategy`` (:class:`~metgan.gan.strategy.Strategy` or its keys) picks the candidates (the
    grid, or seeded draws) and, for successive halving, the rungs; halving trains every trial to
    the last rung's epochs at most (``max_epochs``, default the base's ``epochs``), so the grid
    may not vary ``epochs``.

    Returns {"trials": [{"search_name", "trial_id", "label", "rung", "until_epoch"}] in plan
    order, "strategy", "rungs": [{"rung", "trials", "epochs"}], "epochs_total",
    "full_grid_epochs", "planned_images", "full_grid_images"}. Idempotent: planning the same grid
    again changes nothing; planning a grown grid adds the new trials. ``dry_run`` validates and
    returns the plan without writing anything.
    """
    search_name, subset, strategy, budget_s = request.search_name, request.subset, request.strategy, request.budget_s
    folder = search_dir(search_name, settings)
    grid = parse_grid_text(request.grid) if isinstance(request.grid, str) else request.grid
    combos = candidates(grid, strategy)
    found = check_subset(subset, settings)
    base = dict(request.base)
    grid_keys = {key for keys, _ in grid_parts(grid) for key in keys}
    # The budget decides what the user left to it: the epochs (and, unless set, the size). Set
    # epochs, or successive halving's rungs, decide the training themselves and the budget is unused.
    budgeted = bool(budget_s) and strategy.strategy != "halving" and "epochs" not in set(base) | grid_keys
    overview_budget: dict = {"budget_s": None, "budget_unused": bool(budget_s) and not budgeted}
    if not {"height", "width"} & (set(base) | grid_keys):
        base.update(height=found["height"], width=found["width"])
        base["size_by_budget"] = budgeted
    if budgeted:
        from metgan.gan import budget

        per_trial = budget.trial_budget(float(budget_s), len(combos))
        if "time_budget_s" not in set(base) | grid_keys:
            base["time_budget_s"] = per_trial
        base["epochs"] = 0
        fitted = ["epochs"] + ["size"] * bool(base.get("size_by_budget"))
        overview_budget = {"budget_s": float(budget_s), "trial_budget_s": per_trial, "fitted": fitted}
    if strategy.strategy == "halving":
        if "epochs" in grid_keys:
            raise GanConfigError("successive halving decides how many epochs each trial trains: the grid may "
                                 "not set 'epochs' (set max_epochs, or the base's epochs)")
        base["epochs"] = strategy.max_epochs or base.get("epochs") or GanConfig().epochs
    resolved = resolve_grid(grid, base, combos)
    max_epochs = max((config.epochs for _, config in resolved), default=0)
    rungs = plan_rungs(strategy, len(resolved), max_epochs)
    if strategy.strategy == "halving" and rungs and rungs[-1].epochs != base["epochs"]:
        # every rung trains the same config: its epochs are where the last rung ends
        base["epochs"] = rungs[-1].epochs
        resolved = resolve_grid(grid, base, combos)
    for combo, config in resolved:
        training = found["images"] - round(found["images"] * config.holdout)
        if training < config.batch_size:
            raise GanConfigError(
                f"grid combination {json.dumps(combo, sort_keys=True)} trains batches of {config.batch_size} but "
                f"subset {subset!r} has {training} training images; scrape more, or set a smaller batch_size")
        if (config.height, config.width) != (found["height"], found["width"]):
            raise GanConfigError(
                f"grid combination {json.dumps(combo, sort_keys=True)} trains at height {config.height}, "
                f"width {config.width} but subset {subset!r} holds images of height {found['height']}, "
                f"width {found['width']}; set height/width to match, or leave both out to use the subset's")
    labels = grid_labels([combo for combo, _ in resolved])
    until = rungs[0].epochs if strategy.strategy == "halving" and rungs else None
    plan = [{"search_name": search_name, "trial_id": config.trial_id(), "label": label or config.label(),
             "rung": 0, "until_epoch": until}
            for (_, config), label in zip(resolved, labels, strict=True)]
    per_epoch = [(found["images"] // config.batch_size) * config.batch_size for _, config in resolved]
    mean_per_epoch = sum(per_epoch) / len(per_epoch) if per_epoch else 0
    if strategy.strategy == "halving":
        epochs_total, planned_images = epochs_trained(rungs), round(epochs_trained(rungs) * mean_per_epoch)
    else:
        epochs_total = sum(config.epochs for _, config in resolved)
        planned_images = sum(n * config.epochs for n, (_, config) in zip(per_epoch, resolved, strict=True))
    overview = {"trials": plan, "strategy": strategy.to_dict(),
                "rungs": [{"rung": r.rung, "trials": r.trials, "epochs": r.epochs} for r in rungs],
                "epochs_total": epochs_total, "full_grid_epochs": len(resolved) * max_epochs,
                "planned_images": planned_images, "full_grid_images": sum(per_epoch) * max_epochs,
                **overview_budget}
    if dry_run:
        return overview
    folder.mkdir(parents=True, exist_ok=True)
    previous = trialdir.read_search(folder) or {}
    trial_ids = list(dict.fromkeys(list(previous.get("trials", [])) + [p["trial_id"] for p in plan]))
    record = trialdir.SearchRecord(name=search_name, subset=subset, subset_dir=str(found["path"]), grid=grid,
                                   base=base, objective=request.objective, direction=request.direction,
                                   created_at=previous.get("created_at", trialdir.utc_now()), trials=trial_ids,
                                   strategy=overview["strategy"], rungs=overview["rungs"],
                                   candidates=[p["trial_id"] for p in plan], max_epochs=max_epochs,
                                   planned_images=planned_images, full_grid_images=overview["full_grid_images"],
                                   budget_s=overview["budget_s"])
    if request.airflow_dag_id or request.airflow_run_id:
        record["airflow"] = trialdir.AirflowLink(dag_id=request.airflow_dag_id, run_id=request.airflow_run_id)
    elif previous.get("airflow"):
        record["airflow"] = previous["airflow"]  # a CLI replan keeps the link to the run that made it
    trialdir.write_search(folder, record)
    for (_, config), item in zip(resolved, plan, strict=True):
        trial_dir = folder / item["trial_id"]
        trial_dir.mkdir(exist_ok=True)
        if trialdir.read_config(trial_dir) is None:
            trialdir.write_config(trial_dir, config.to_dict())
        if trialdir.read_trial_info(trial_dir) is None:
            trialdir.write_trial_info(trial_dir, trialdir.pending_trial_info(
                search_name=search_name, trial_id=item["trial_id"], epochs=config.epochs,
                overrides=config.overrides(), label=item["label"]))
    _db_plan(search_name, record, folder, resolved, settings)
    log.info("search %s (%s): %d trials planned in %d rung(s) on subset %s (%d images, height %d, width %d)",
             search_name, strategy.strategy, len(plan), len(rungs), subset, found["images"], found["height"],
             found["width"])
    return overview


def _db_plan(search_name: str, record: dict, folder: Path, resolved, settings: Settings) -> None:
    trials = [(config.trial_id(), config.to_dict(), str(folder / config.trial_id())) for _, config in resolved]
    search_record.index_plan(search_name, record, folder, trials, settings)


# --- training ---------------------------------------------------------------------------------

def train_trial(search_name: str, trial_id: str, *, settings: Settings | None = None, **options) -> dict:
    """:func:`_train_trial` while holding the trial's lock, on the trial's folder synced with the
    results store: pulled (with its checkpoints, so a retry on another worker resumes) and pushed
    back, also when it fails.

    One process trains a trial at a time, across every host that shares the database: when
    another holds the trial (a second ``metgan search run`` of the search, or a DAG run of it),
    this one trains nothing and returns status ``skipped`` with ``held_by`` ("host pid N").
    A SIGTERM while training records the trial ``interrupted`` and then ends the process as the
    signal would have (:func:`metgan.gan.trial.redeliver`), after the lock is let go.
    """
    from metgan.gan.trial import TrialInterrupted, redeliver

    settings = settings or get_settings()
    _checked(search_name, "search name")
    _checked(trial_id, "trial id")
    try:
        with search_record.trial_lock(search_name, trial_id, settings) as holder:
            if holder is not None:
                log.warning("trial %s of search %s skipped: %s is training it", trial_id, search_name, holder)
                return {"search_name": search_name, "trial_id": trial_id, "status": "skipped", "stop_reason": None,
                        "epochs": None, "objective": None, "error": None, "held_by": holder}
            with search_record.synced(search_name, trial_id, settings=settings, weights=True) as sync:
                return _train_trial(search_name, trial_id, settings=settings, sync=sync, **options)
    except TrialInterrupted as interrupted:
        redeliver(interrupted)  # returns only when SIGTERM was ignored before the trial began
        return {"search_name": search_name, "trial_id": trial_id, "status": search_record.INTERRUPTED,
                "stop_reason": search_record.INTERRUPTED, "epochs": interrupted.epochs_done, "objective": None,
                "error": None}


def _train_trial(search_name: str, trial_id: str, *, settings: Settings | None = None,
                 images=None, rung: int | None = None, until_epoch: int | None = None, sync=None) -> dict:
    """Train one planned trial (resuming; skipping it if finished); never raises for a failed trial.

    ``rung``/``until_epoch`` (successive halving) train it only up to the rung's epochs and record
    its score there in its rung history.
    Returns {"search_name", "trial_id", "status", "stop_reason", "epochs", "objective", "error"}.
    A trial that fails is recorded (status failed, traceback in trial.json and the DB) and
    reported in the return value, so the other trials of the search go on.
    """
    settings = settings or get_settings()
    folder = search_dir(search_name, settings)
    search = _planned_search(search_name, folder)
    trial_dir = folder / trial_id
    config_data = trialdir.read_config(trial_dir)
    if config_data is None:
        raise TrainingError(f"trial {trial_id} is not part of search {search_name!r} ({trial_dir} has no config.json)")
    config = GanConfig.from_dict(config_data)
    # The folder comes from the subset's name, checked, never from a path in search.json: a
    # hand-edited search.json must not make a trial (and the report's gallery) read outside the subsets.
    subset_dir = subset_folder(search.get("subset"), settings)
    from metgan.gan.trial import error_summary, run_trial, summary_from_files

    recorder = search_record.index_recorder(search_name, trial_id, settings)
    error = None
    try:
        summary = run_trial(trial_dir, config, subset_dir, search_name=search_name, trial_id=trial_id,
                            recorder=recorder, images=images, objective=search.get("objective", "swd"),
                            until_epoch=until_epoch, direction=search.get("direction", "min"),
                            subset_name=search.get("subset"), sync=sync)
    except Exception as exc:  # recorded by run_trial; the search goes on
        log.error("trial %s of search %s failed: %s", trial_id, search_name, exc,
                  exc_info=not isinstance(exc, MetganError))
        summary = summary_from_files(trial_dir, search.get("objective", "swd"))
        error = error_summary(exc)
    if rung is not None:
        _record_rung(search_name, search, trial_dir, rung, until_epoch or config.epochs, settings)
    record = search_record.read_trial(trial_dir, search.get("objective", "swd"))
    if record.score is not None:
        log.info("trial %s (%s) %s: best %s at epoch %s%s", trial_id, record.label, summary["status"],
                 record.describe(), record.score_epoch, f"; {record.trained_at}" if record.trained_at else "")
    return {"search_name": search_name, "trial_id": trial_id, "status": summary["status"],
            "stop_reason": summary["stop_reason"], "epochs": summary["epochs"],
            "objective": summary["objective"], "error": error,
            "verdict": record.describe() if record.score is not None else None, "trained_at": record.trained_at}


def score_at(trial_dir: Path, epoch: int, objective: str) -> float | None:
    """The objective's last value measured at or before ``epoch`` (a rung's score)."""
    values = [line.get(objective) for line in trialdir.read_metrics(trial_dir)
              if line["epoch"] <= epoch and line.get(objective) is not None]
    return values[-1] if values else None


def _record_rung(search_name: str, search: dict, trial_dir: Path, rung: int, epochs: int,
                 settings: Settings) -> None:
    """Put the trial's result at ``rung`` in its rung history (trial.json, then its DB row)."""
    info = trialdir.read_trial_info(trial_dir) or {}
    done = info.get("epochs_done") or 0
    status = info.get("status")
    recorded = any(entry.get("rung") == rung for entry in info.get("rungs") or [])
    if recorded and (done > epochs or status == "pruned"):
        return  # a rerun of a rung the trial has left (trained on, or pruned after): keep what it recorded
    result = trialdir.RungResult(rung=rung, epochs=epochs, epochs_done=min(done, epochs), status=status,
                                 score=score_at(trial_dir, epochs, search.get("objective", "swd"))
                                 if done >= epochs else None)
    info = trialdir.record_rung(trial_dir, result)
    search_record.index_rungs(search_name, trial_dir.name, info, settings)


# --- successive halving -----------------------------------------------------------------------

# The statuses a trial may end a rung with and still be promoted: it reached the rung's epochs
# and can train on (a stopped trial, collapsed or out of time, cannot).
PROMOTABLE = ("paused", "completed")


def _rung_result(trial_dir: Path, rung: int) -> dict | None:
    info = _readable_info(trial_dir) or {}
    return next((entry for entry in info.get("rungs") or [] if entry.get("rung") == rung), None)


def _ranked_at(folder: Path, search: dict, rung: int, members: list[str]) -> list[tuple[str, float]]:
    """The members that can be promoted from ``rung`` with their score there, best first by
    :func:`metgan.gan.search_record.rank` (ties keep the plan order)."""
    scored = []
    for trial_id in members:
        result = _rung_result(folder / trial_id, rung)
        if (result and result.get("status") in PROMOTABLE and result.get("score") is not None
                and result.get("epochs_done", 0) >= result.get("epochs", 0)):
            scored.append((trial_id, result["score"]))
    return search_record.rank(scored, search.get("direction", "min"), score=lambda item: item[1],
                              rung=lambda item: rung)


def rung_members(search_name: str, rung: int, *, settings: Settings | None = None) -> list[str]:
    """The trials rung ``rung`` trains, by the rungs before it (recomputed from the trial folders)."""
    folder = search_dir(search_name, settings or get_settings())
    search = _planned_search(search_name, folder)
    rungs = search.get("rungs") or []
    members = list(search.get("candidates") or search.get("trials") or [])
    if rung >= len(rungs):
        return []
    for previous in range(rung):
        members = [trial_id for trial_id, _ in _ranked_at(folder, search, previous, members)]
        members = members[: rungs[previous + 1]["trials"]]
    return members


def promote(search_name: str, rung: int, *, settings: Settings | None = None) -> list[dict]:
    """:func:`_promote`, synced with the results store (it rewrites the rung's trial records)."""
    settings = settings or get_settings()
    with search_record.synced(search_name, settings=settings):
        return _promote(search_name, rung, settings=settings)


def _promote(search_name: str, rung: int, *, settings: Settings | None = None) -> list[dict]:
    """Successive halving's decision before ``rung``: keep the best of rung ``rung - 1``, prune the rest.

    The survivors get "promoted" in their rung history; the others that finished the rung get
    status ``pruned`` with the rung and the score (failed or stopped trials keep their status).
    Returns the trials rung ``rung`` trains ([] when the plan has no such rung), each with
    ``until_epoch``; running it again decides the same.
    """
    settings = settings or get_settings()
    folder = search_dir(search_name, settings)
    search = _planned_search(search_name, folder)
    rungs = search.get("rungs") or []
    if rung < 1 or rung >= len(rungs):
        return []
    previous = rung_members(search_name, rung - 1, settings=settings)
    ranked = _ranked_at(folder, search, rung - 1, previous)
    keep = rungs[rung]["trials"]
    survivors = [trial_id for trial_id, _ in ranked[:keep]]
    for position, (trial_id, _) in enumerate(ranked):
        outcome = "promoted" if position < keep else "pruned"
        info = trialdir.record_rung_outcome(folder / trial_id, rung - 1, outcome)
        search_record.index_rungs(search_name, trial_id, info, settings)
    log.info("search %s: rung %d keeps %d of %d trials (%d finished rung %d): %s", search_name, rung,
             len(survivors), len(previous), len(ranked), rung - 1, ", ".join(survivors) or "none")
    until = rungs[rung]["epochs"]
    items = []
    for trial_id in survivors:
        info = _readable_info(folder / trial_id) or {}
        items.append({"search_name": search_name, "trial_id": trial_id, "label": info.get("label") or trial_id,
                      "rung": rung, "until_epoch": until})
    return items


def _readable_info(trial_dir: Path) -> trialdir.TrialInfo | None:
    """trial.json, or None (with a warning) when it is missing or not a trial record: one broken
    file must not hide the whole leaderboard or the search's outcome."""
    try:
        return trialdir.read_trial_info(trial_dir)
    except TrialFolderError as exc:
        log.warning("%s", exc)
        return None


def _planned_search(search_name: str, folder: Path) -> trialdir.SearchRecord:
    return search_record.planned_search(search_name, folder)


def train_planned(search_name: str, plan: list[dict], *, settings: Settings | None = None,
                  progress=None) -> list[dict]:
    """Train the trials of ``plan`` (what :func:`plan_trials` returned) in order, then, for successive
    halving, each later rung's survivors (:func:`promote`); finished work is skipped.

    Returns each trial's result from the last rung it trained in, in plan order.
    """
    settings = settings or get_settings()
    rungs = (trialdir.read_search(search_dir(search_name, settings)) or {}).get("rungs") or []
    if progress is not None:
        progress.start(sum(rung["trials"] for rung in rungs) or len(plan))
    results: dict[str, dict] = {}
    items, rung = plan, 0
    while items:
        for item in items:
            results[item["trial_id"]] = train_trial(search_name, item["trial_id"], settings=settings,
                                                    rung=item.get("rung") if item.get("until_epoch") else None,
                                                    until_epoch=item.get("until_epoch"))
            if progress is not None:
                progress.advance()
        rung += 1
        items = promote(search_name, rung, settings=settings) if any(i.get("until_epoch") for i in items) else []
    if progress is not None:
        progress.finish()
    return [results[item["trial_id"]] for item in plan]


# --- leaderboard ------------------------------------------------------------------------------

def search_summary(search_name: str, *, settings: Settings | None = None) -> dict:
    """The search's strategy, its planned rungs and the training images its trials spent, beside
    what training every candidate to the end (the full grid) would have spent."""
    settings = settings or get_settings()
    with search_record.synced(search_name, settings=settings):
        folder = search_dir(search_name, settings)
    search = _planned_search(search_name, folder)
    trial_ids = list(search.get("candidates") or search.get("trials") or [])
    spent = sum(int((_readable_info(folder / t) or {}).get("images_seen") or 0) for t in trial_ids)
    full = search.get("full_grid_images")
    return {"strategy": (search.get("strategy") or {}).get("strategy", "grid"),
            "strategy_settings": search.get("strategy") or {"strategy": "grid"},
            "rungs": search.get("rungs") or [], "max_epochs": search.get("max_epochs"),
            "images_spent": spent, "planned_images": search.get("planned_images"), "full_grid_images": full,
            "fraction_of_full_grid": spent / full if full else None}


def leaderboard(search_name: str, *, settings: Settings | None = None) -> list[dict]:
    """The search's trials best first (:func:`metgan.gan.search_record.rank`), from its folder.

    A trial that reads ``running`` while nobody holds its lock is first recorded ``interrupted``
    (:func:`metgan.gan.search_record.settle`), so the board never shows a dead trainer at work.
    """
    settings = settings or get_settings()
    _checked(search_name, "search name")
    with search_record.synced(search_name, settings=settings):
        folder = search_dir(search_name, settings)
        search = trialdir.read_search(folder)
        if search is None:
            raise GanConfigError(f"no search named {search_name!r} in {settings.results_dir}")
        search_record.settle(folder, settings)
        ids = search_record.trial_ids(folder, search)
        holders = search_record.lock_holders(search_name, ids, settings, start_embedded=True)
        trials = search_record.ranked_trials(folder, search, holders=holders or {})
    strategy = (search.get("strategy") or {}).get("strategy", "grid")
    return [{"rank": rank, "trial_id": trial.trial_id, "label": trial.label, "status": trial.status,
             "rung": trial.rung, "rungs": trial.rungs, "images_seen": trial.info.get("images_seen"),
             "strategy": strategy, "stop_reason": trial.info.get("stop_reason"), "epochs_done": trial.epochs_done,
             "epochs": trial.epochs, "objective": trial.score, "objective_name": search.get("objective", "swd"),
             "swd_real": trial.floor, "verdict": trial.describe(), "trained_at": trial.trained_at, "images_per_s": trial.info.get("images_per_s"),
             "device": trial.info.get("device"), "path": str(trial.path), "held_by": trial.holder,
             "error_summary": trial.error_summary if trial.status == "failed" else None}
            for rank, trial in enumerate(trials, start=1)]
