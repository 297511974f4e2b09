"""``metgan db ...``: migrate, status, url, stop."""

from __future__ import annotations

import click

from metgan.config import get_settings
from metgan.db import embedded, engine, migrations


@click.group()
def db() -> None:
    """Manage the PostgreSQL store."""


@db.command()
@click.option("--create-database", is_flag=True,
              help="Create the database METGAN_DATABASE_URL names if it does not exist.")
def migrate(create_database: bool) -> None:
    """Apply pending migrations (sql/, safe to run from several processes at once)."""
    if create_database and engine.create_database_if_missing(engine.database_url()):
        click.echo("created the database")
    applied = migrations.migrate(engine.get_engine())
    if applied:
        for name in applied:
            click.echo(f"applied {name}")
    else:
        click.echo("database is up to date")


@db.command()
def status() -> None:
    """Show the server, and each migration with whether it is applied."""
    eng = engine.get_engine()
    click.echo(f"server: {engine.check(eng).split(',')[0]}")
    click.echo(f"url: {eng.url.render_as_string(hide_password=True)}")
    for state in migrations.status(eng):
        mark = "changed!" if state.changed else ("applied" if state.applied else "pending")
        click.echo(f"{state.migration.path.name:<40} {mark}")


@db.command()
def url() -> None:
    """Print the database URL (starting the embedded server if it is the one in use)."""
    click.echo(engine.database_url())


@db.command()
def stop() -> None:
    """Stop the embedded PostgreSQL server cleanly (no-op with METGAN_DATABASE_URL set)."""
    settings = get_settings()
    if settings.database_url:
        click.echo("METGAN_DATABASE_URL is set: the embedded server is not in use")
        return
    stopped = embedded.stop_server(settings.data_dir)
    click.echo("stopped the embedded server" if stopped else "the embedded server was not running")
