"""``metgan import-csv PATH|URL``: load the Met's Open Access CSV into the store."""

from __future__ import annotations

import click

from metgan.config import get_settings
from metgan.progress import Progress


@click.command("import-csv")
@click.argument("source", metavar="PATH|URL")
@click.option("--keep-absent", is_flag=True,
              help="Do not mark objects missing from this file as removed (for partial files).")
@click.option("--chunk-rows", type=click.IntRange(min=100), default=5000, show_default=True,
              help="Rows loaded and merged at a time (memory is a few chunks).")
@click.option("--errors", "show_errors", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many of the recorded malformed rows to print.")
def import_csv(source: str, keep_absent: bool, chunk_rows: int, show_errors: int) -> None:
    """Import MetObjects.csv from a file or an https URL (streamed, never held in memory).

    A file must be in the import folder (METGAN_IMPORT_DIR, default <data_dir>/imports; a
    relative PATH is looked up there); a URL must be on METGAN_CSV_HOSTS (default: the GitHub
    hosts that serve the Open Access CSV), and so must every redirect it leads to.

    Rows land in the same tables the API ingest fills; objects the API already returned keep
    their API fields. Prints the counts of new, changed, unchanged and removed objects. The
    database must be migrated (`metgan db migrate`).
    """
    from metgan.db import csv_imports, get_engine
    from metgan.met.csv_import import import_csv as run_import

    settings = get_settings()
    engine = get_engine(settings)
    progress = Progress(f"import {source.rsplit('/', 1)[-1]} (MB)", bar=True)
    result = run_import(source, mark_removed=not keep_absent, chunk_rows=chunk_rows,
                        settings=settings, engine=engine, progress=progress)
    click.echo(f"import {result['import_id']}: {result['rows']} rows in {result['seconds']:.1f} s "
               f"({result['rows_per_s'] or 0:.0f} rows/s)")
    for key in ("new", "changed", "unchanged", "removed", "errors", "constituents", "tags"):
        click.echo(f"  {key:<13}{result[key]}")
    if result["errors"] and show_errors:
        for line_number, reason in csv_imports.import_errors(engine, result["import_id"], show_errors):
            click.echo(f"  line {line_number}: {reason}")
