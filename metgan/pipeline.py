"""The steps that cross domains, and the one sequence that runs a scrape.

The ``met_ingest`` DAG's tasks, ``metgan ingest`` and the tests all call these, so there is one
orchestration of a scrape, whoever drives it:

    import_csv(source)                 the optional CSV bootstrap (Met metadata, no image URLs)
    discover(mode, ...)                -> {"run_id", "total", "batches"}   (a scrape run)
    fetch_records(batch)               -> counts    (records of one batch, from the Met API)
    download_images(batch)             -> counts    (images of one batch, from the Met's CDN)
    finish_run(run_id)                 -> counts    (read from the database; the watermark)
    run_ingest(mode, ...)              all of the above in one process, resumable (the CLI)
    render_trial(search_name, trial)   a trial's GIFs and plots (viz) from its folder (gan)
    publish_search(search_name)        a search's report (viz), failing when no trial (gan) finished
    best_model(search_name)            the best trial's exported generator, for gan_generate
    search_to_generate(...)            which search gan_generate generates from

It is the one module that may import both :mod:`metgan.met` (the Met API, its CDN and the
scrape-run tables) and :mod:`metgan.images` (which objects a subset can use): targeted scraping
needs both, and neither package imports the other. Likewise publishing a search reads the trials
(:mod:`metgan.gan`) and writes their report (:mod:`metgan.viz`), so it lives here and gan never
imports viz.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from metgan import trialdir
from metgan.config import Settings, get_settings
from metgan.db import get_engine
from metgan.db import met as repository
from metgan.errors import ConfigError, MetRetryableError, TrainingError
from metgan.gan import search_record
from metgan.met.ingest import (
    create_run,
    discover_object_ids,
    download_images,
    fail_run,
    fetch_records,
    find_unfinished_run,
    finish_run,
)
from metgan.progress import Progress

__all__ = ["DISCOVERY_MODES", "best_model", "discover", "discover_targeted", "download_images", "fetch_records",
           "finish_run", "import_csv", "publish_search", "render_trial", "run_ingest", "search_to_generate"]

log = logging.getLogger(__name__)

DISCOVERY_MODES = ("full", "incremental", "search", "department", "targeted")


def import_csv(source: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """The CSV bootstrap: stream the Open Access ``MetObjects.csv`` into the store; return its counts."""
    # imported here: the CSV reader is only needed by the runs that ask for a bootstrap
    from metgan.met.csv_import import import_csv as load_csv

    return load_csv(source, settings=settings)


def discover_targeted(subset_params: dict | None = None, *, batch_size: int = 1000,
                      settings: Settings | None = None) -> dict[str, Any]:
    """Create a ``targeted`` scrape run over a subset's candidate objects; return its batches.

    After a CSV import the whole collection's metadata is in ``met_objects`` but image URLs are
    only in the API: the subset's metadata selection (vases by default) picks the ids, and the
    run asks the API about those alone (about 10,000 calls for the vases instead of 490,000).
    Raises ConfigError when no object is stored yet (import the CSV first) or none matches.
    """
    from metgan.images.selection import SubsetParams, candidate_object_ids

    engine = get_engine(settings)
    # validated and canonical, so the run records exactly what was selected
    selection = SubsetParams.from_dict(subset_params).to_dict()
    object_ids = candidate_object_ids(subset_params, engine=engine)
    if not object_ids:
        stored = repository.object_count(engine)
        if not stored:
            raise ConfigError("no objects in the store to select from; import the Open Access CSV "
                              "first (metgan import-csv PATH|URL)")
        raise ConfigError(f"the subset selection matches none of the {stored} stored objects")
    params = {"subset": {k: selection[k] for k in ("include", "exclude", "regex", "classifications",
                                                   "public_domain")}}
    run = create_run("targeted", object_ids, params=params, batch_size=batch_size, settings=settings)
    log.info("targeted run %d: %d candidate objects in %d batches", run["run_id"], run["total"],
             len(run["batches"]))
    return run


def discover(mode: str, *, query: str | None = None, department_ids: list[int] | None = None,
             limit: int | None = None, batch_size: int = 1000, metadata_date: str | None = None,
             settings: Settings | None = None) -> dict[str, Any]:
    """Start a scrape run of ``mode`` (the API's own modes, or ``targeted`` at the vase subset's
    candidates); returns ``{"run_id", "total", "batches"}``, each batch labelled "objects 1–1000"."""
    if mode == "targeted":
        return discover_targeted(batch_size=batch_size, settings=settings)
    if mode not in DISCOVERY_MODES:
        raise ConfigError(f"unknown ingest mode {mode!r}; valid modes: {', '.join(DISCOVERY_MODES)}")
    return discover_object_ids(mode, query=query, department_ids=department_ids, limit=limit,
                               batch_size=batch_size, metadata_date=metadata_date, settings=settings)


def run_ingest(mode: str, *, query: str | None = None, department_ids: list[int] | None = None,
               limit: int | None = None, batch_size: int = 1000, metadata_date: str | None = None,
               additional_images: bool = False, images: bool = True, new_run: bool = False, tries: int = 2,
               bar: bool = False, report: Callable[[str], None] = log.info,
               settings: Settings | None = None) -> dict[str, Any]:
    """Run a whole scrape in this process: discover (or resume), every batch's records, then
    every batch's images, then finish; returns finish_run's summary.

    An interrupted run made for the same request is resumed (only what is missing is fetched)
    unless ``new_run``; ``targeted`` runs always start anew. A batch step that raises
    MetRetryableError is tried up to ``tries`` times in all, as the DAG's task retries would; when
    one still fails, the run is marked failed and MetRetryableError names the first problem.
    ``report`` receives the few lines a person wants to see (resuming, the run's size).
    """
    settings = settings or get_settings()
    if tries < 1:
        raise ConfigError(f"tries must be at least 1, got {tries}")
    request = dict(query=query, department_ids=department_ids, limit=limit, batch_size=batch_size,
                   metadata_date=metadata_date, settings=settings)
    discovery = None if new_run or mode == "targeted" else find_unfinished_run(mode, **request)
    if discovery is not None:
        report(f"resuming run {discovery['run_id']}")
    else:
        discovery = discover(mode, **request)
    run_id, batches = discovery["run_id"], discovery["batches"]
    report(f"run {run_id}: {discovery['total']} objects in {len(batches)} batches")

    def run_phase(name: str, total: int, step: Callable[[dict, Progress], dict]) -> list[str]:
        progress = Progress(name, total, logger=log, bar=bar)
        problems: list[str] = []
        for batch in batches:
            for attempt in range(1, tries + 1):
                try:
                    step(batch, progress)
                    break
                except MetRetryableError as exc:
                    if attempt == tries:
                        problems.append(str(exc))
                    else:
                        log.warning("%s; retrying the batch (try %d of %d)", exc, attempt + 1, tries)
        progress.finish()
        return problems

    problems = run_phase("records", discovery["total"],
                         lambda b, p: fetch_records(b, settings=settings, progress=p))
    if images:
        engine = get_engine(settings)
        total = sum(len(repository.batch_images(engine, run_id, b["batch"], additional=additional_images))
                    for b in batches)
        problems += run_phase("images", total, lambda b, p: download_images(
            b, additional_images=additional_images, settings=settings, progress=p))
    if problems:
        fail_run(run_id, problems[0], settings=settings)
        raise MetRetryableError(f"run {run_id} incomplete: {problems[0]} ({len(problems)} batch(es) affected)")
    return finish_run(run_id, settings=settings)


def render_trial(search_name: str, trial_id: str, *, settings: Settings | None = None) -> dict:
    """Render a trial's GIFs and score plots from its folder (synced with an object store around
    it); returns {"trial_id", "files"}."""
    from metgan.viz.render import render_trial as render

    settings = settings or get_settings()
    with search_record.synced(search_name, trial_id, settings=settings):
        written = render(search_record.search_folder(search_name, settings) / trial_id)
    return {"trial_id": trial_id, "files": sorted(str(path) for path in written.values())}


def publish_search(search_name: str, trial_ids: list[str] | None = None, *,
                   settings: Settings | None = None) -> dict:
    """Write the search's report, then raise when none of ``trial_ids`` finished.

    ``trial_ids`` defaults to every trial in search.json. A trial that reads ``running`` while
    nobody trains it is first recorded ``interrupted`` (:func:`metgan.gan.search_record.settle`). A
    search whose trials all failed has nothing to compare: its report says why each failed, and
    the DAG's last task, which calls this, fails with the first error instead of ending the run
    green. Returns publish_report's paths and counts plus ``"statuses"`` (status -> count).
    """
    settings = settings or get_settings()
    with search_record.synced(search_name, settings=settings):  # on an object store: pulled, then pushed
        return _publish_search(search_name, trial_ids, settings)


def _publish_search(search_name: str, trial_ids: list[str] | None, settings: Settings) -> dict:
    from metgan.gan.trial import FINISHED
    from metgan.viz.report import publish_report

    folder = search_record.search_folder(search_name, settings)
    search = search_record.planned_search(search_name, folder)
    search_record.settle(folder, settings)
    written = publish_report(folder, settings=settings)
    trial_ids = list(trial_ids if trial_ids is not None else search.get("trials") or [])
    trials = {trial.trial_id: trial for trial in search_record.read_trials(folder, search, ask_database=False)}
    statuses: dict[str, int] = {}
    for trial_id in trial_ids:
        status = trials[trial_id].status if trial_id in trials and trials[trial_id].info else "missing"
        statuses[status] = statuses.get(status, 0) + 1
    # a trial pruned by successive halving finished its rungs: it has a score, and the search a result
    finished = [t for t in trial_ids if t in trials and trials[t].status in (*FINISHED, "pruned")]
    if trial_ids and not finished:
        counts = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
        example = next(((t, trials[t].error_summary) for t in trial_ids if t in trials and trials[t].error_summary),
                       None)
        why = f"; e.g. {example[0]}: {example[1]}" if example else ""
        raise TrainingError(f"no trial of search {search_name!r} finished ({counts}){why}; "
                            f"see {written['report']}")
    return {**written, "statuses": statuses}


def best_model(search_name: str, *, settings: Settings | None = None) -> dict | None:
    """The search's best exported generator (:func:`metgan.gan.search_record.best_trial`), as an asset
    event's extra: {"search_name", "trial_id", "epoch", "model"}; None when no trial has a best snapshot."""
    folder = search_record.search_folder(search_name, settings or get_settings())
    best = search_record.best_trial(folder)
    if best is None:
        return None
    trial_id, record = best
    return {"search_name": search_name, "trial_id": trial_id, "epoch": record.get("epoch"),
            "model": str(trialdir.best_generator_path(folder / trial_id))}


def search_to_generate(search_name: str | None, event_extras: list[dict], *,
                       settings: Settings | None = None) -> str:
    """The search gan_generate generates from: the one named, else the newest asset event's
    (gan_search puts it in the event's extra), else the newest search that has a model."""
    if search_name:
        return search_name
    named = [extra["search_name"] for extra in event_extras
             if isinstance(extra, dict) and isinstance(extra.get("search_name"), str) and extra["search_name"]]
    if named:
        return named[-1]
    settings = settings or get_settings()
    search_record.pull_records(settings)  # on an object store: every search's records
    found = search_record.newest_search_with_model(settings.results_dir)
    if found is None:
        raise ConfigError("no search has a model yet: run gan_search first, or name a search")
    return found
