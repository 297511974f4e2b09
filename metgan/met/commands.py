"""``metgan ingest``: scrape records and images from the Met API (the met_ingest DAG's steps in
one process)."""

from __future__ import annotations

import json
import logging
import sys

import click

from metgan.config import get_settings
from metgan.errors import MetRetryableError
from metgan.progress import Progress

__all__ = ["ingest"]

log = logging.getLogger(__name__)


def _department_ids(ctx, param, value: str | None) -> list[int] | None:
    if not value:
        return None
    try:
        ids = [int(part) for part in value.replace("|", ",").split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of department ids") from None
    if not ids or min(ids) < 1:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of department ids")
    return ids


@click.command()
@click.option("--mode", type=click.Choice(["full", "incremental", "search", "department", "targeted"]),
              default="incremental", show_default=True,
              help="full: every object; incremental: changed since the last successful run "
                   "(or --metadata-date); search: /search?q=...&hasImages=true; department: --department-ids; "
                   "targeted: only the vase subset's candidates among stored (e.g. CSV-imported) objects.")
@click.option("--q", "query", help="Search query (mode search).")
@click.option("--department-ids", callback=_department_ids, help="Comma-separated ids, e.g. 1,3 (mode department).")
@click.option("--metadata-date", help="YYYY-MM-DD: incremental from this date instead of the watermark.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N object ids.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Object ids per batch (one DAG task each).")
@click.option("--additional-images", is_flag=True, help="Also download each object's additional images.")
@click.option("--no-images", is_flag=True, help="Fetch records only.")
@click.option("--new-run", is_flag=True,
              help="Start a new run even if the last one with the same options was interrupted.")
@click.option("--bar/--no-bar", default=None,
              help="Progress bar (default: on a terminal); otherwise steady done/total, rate, ETA lines.")
def ingest(mode, query, department_ids, metadata_date, limit, batch_size, additional_images, no_images, new_run, bar):
    """Scrape object records (and images) from the Met API into PostgreSQL and the image volume.

    Resumable: run the same command again after an interruption and it continues the interrupted
    run; only what is missing is fetched or downloaded.
    """
    from metgan.met import ingest as steps
    from metgan.met import repository
    from metgan.store import get_engine

    settings = get_settings()
    bar = sys.stderr.isatty() if bar is None else bar
    request = dict(query=query, department_ids=department_ids, limit=limit, batch_size=batch_size,
                   metadata_date=metadata_date, settings=settings)
    discovery = None if new_run or mode == "targeted" else steps.find_unfinished_run(mode, **request)
    if discovery is not None:
        click.echo(f"resuming run {discovery['run_id']}", err=True)
    elif mode == "targeted":
        from metgan.met.targeted import discover_targeted

        discovery = discover_targeted(batch_size=batch_size, settings=settings)
    else:
        discovery = steps.discover_object_ids(mode, **request)
    run_id, batches = discovery["run_id"], discovery["batches"]
    click.echo(f"run {run_id}: {discovery['total']} objects in {len(batches)} batches", err=True)
    summaries: dict[int, dict] = {b["batch"]: dict(b) for b in batches}

    def run_phase(name: str, total: int, step) -> list[str]:
        progress = Progress(name, total, logger=log, bar=bar)
        problems: list[str] = []
        for batch in batches:
            for attempt in (1, 2):
                try:
                    summaries[batch["batch"]][name] = step(batch, progress)
                    break
                except MetRetryableError as exc:
                    if attempt == 2:
                        problems.append(str(exc))
                    else:
                        log.warning("%s; retrying the batch once", exc)
        progress.finish()
        return problems

    problems = run_phase("records", discovery["total"],
                         lambda b, p: steps.fetch_batch(b, settings=settings, progress=p))
    if not no_images:
        engine = get_engine(settings)
        total = sum(len(repository.batch_images(engine, run_id, b["batch"], additional=additional_images))
                    for b in batches)
        problems += run_phase("images", total, lambda b, p: steps.download_batch(
            b, additional_images=additional_images, settings=settings, progress=p))
    if problems:
        steps.fail_run(run_id, problems[0], settings=settings)
        raise click.ClickException(
            f"run {run_id} incomplete: {problems[0]} ({len(problems)} batch(es) affected)")
    result = steps.finish_run(run_id, list(summaries.values()), settings=settings)
    click.echo(json.dumps(result, default=str))
