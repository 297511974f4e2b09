"""``metgan ingest``: scrape records and images from the Met API (the met_ingest DAG's steps in
one process, through :func:`metgan.pipeline.run_ingest`)."""

from __future__ import annotations

import json
import sys

import click

__all__ = ["ingest"]


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
    from metgan import pipeline

    result = pipeline.run_ingest(
        mode, query=query, department_ids=department_ids, limit=limit, batch_size=batch_size,
        metadata_date=metadata_date, additional_images=additional_images, images=not no_images, new_run=new_run,
        bar=sys.stderr.isatty() if bar is None else bar, report=lambda line: click.echo(line, err=True))
    click.echo(json.dumps(result, default=str))
