"""The ``metgan`` command line: a thin click layer over the same functions the DAGs call.

Subcommands live beside the code they drive (``metgan/<package>/commands.py``) and are imported
only when used, so ``metgan --help`` and ``metgan db ...`` never import TensorFlow.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys

import click

from metgan.errors import MetganError

# name -> (module:attribute, one-line help shown by `metgan --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "db": ("metgan.db.commands:db", "Manage the PostgreSQL store (migrate, status, url, stop)."),
    "fake-met": ("metgan.testing.fakemet.commands:fake_met", "Run the fake Met API server (tests and demo)."),
    "ingest": ("metgan.pipeline_commands:ingest", "Scrape object records and images from the Met API."),
    "import-csv": ("metgan.met.csv_commands:import_csv", "Import the Met's Open Access MetObjects.csv."),
    "subset": ("metgan.images.commands:subset", "Build and inspect training subsets (e.g. vases)."),
    "train": ("metgan.gan.commands:train", "Train one GAN trial from a config file."),
    "search": ("metgan.gan.commands:search", "Run and inspect grid searches over GAN settings."),
    "generate": ("metgan.gan.commands:generate", "Generate images from a trial's best snapshot, one per seed."),
    "walk": ("metgan.viz.commands:walk", "Render a looping latent walk of a trial's best snapshot (GIF/MP4)."),
    "render": ("metgan.viz.commands:render", "Render a trial's progress GIFs, grid and score plot."),
    "report": ("metgan.viz.commands:report", "Write a search's HTML report and gallery."),
    "storage": ("metgan.storage_commands:storage", "Check that this host can use the data and results stores."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._available(name))

    def _available(self, name: str) -> bool:
        module = COMMANDS[name][0].split(":")[0]
        return importlib.util.find_spec(module) is not None

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not self._available(name):
            return None
        module_name, attribute = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module_name), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MetganError as exc:
            raise click.ClickException(str(exc).strip().splitlines()[0] if str(exc).strip() else
                                       type(exc).__name__) from exc


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.version_option(package_name="metgan")
def cli(verbose: int, quiet: bool) -> None:
    """metgan: scrape the Met's open-access collection and train GANs on it."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("pgserver", "urllib3", "aiohttp.access"):
        # set either way: metgan.db.embedded quiets pgserver only when nobody chose a level
        logging.getLogger(noisy).setLevel(logging.WARNING if verbose < 2 else logging.DEBUG)


def main() -> None:
    cli(prog_name="metgan")
