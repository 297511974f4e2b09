"""``metgan fake-met``: run the fake Met server from the command line (demo, DAG tests, benchmarks)."""

from __future__ import annotations

import click

from metgan.errors import ConfigError


def _parse_faults(pairs: tuple[str, ...], seed: int):
    from metgan.testing.fakemet.faults import Faults

    changes = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--fault {pair!r} is not KEY=VALUE (e.g. --fault error_5xx=0.1)")
        changes[name.strip().replace("-", "_")] = value.strip()
    try:
        return Faults(seed=seed).updated(**changes)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


@click.group(name="fake-met")
def fake_met() -> None:
    """Run the fake Met Collection API (a generated collection with fault injection)."""


@fake_met.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port (0: any free port).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the collection and faults.")
@click.option("--scale", type=click.Choice(["default", "real"]), default="default", show_default=True,
              help="real: a 490,000-id listing, 1 MB records, image redirects and hostile bodies.")
@click.option("--objects", type=click.IntRange(min=0),
              help="Objects generated up front (default 300; 400 at --scale real).")
@click.option("--listing", type=click.IntRange(min=0),
              help="Ids the unfiltered /objects lists (default: the objects; 490000 at --scale real).")
@click.option("--hostile/--no-hostile", default=None,
              help="Serve the hostile bodies (bad image URLs, deep nesting, NaN, surrogates, NUL).")
@click.option("--image-width", default=400, show_default=True, type=click.IntRange(min=8),
              help="Nominal width of an original image in pixels (vases are about 5:4 portrait).")
@click.option("--image-variants", default=0, show_default=True, type=click.IntRange(min=0),
              help="0: every image drawn anew; N: images repeat N scenes (cheap for benchmarks).")
@click.option("--fault", "faults", multiple=True, metavar="KEY=VALUE",
              help="A fault knob, repeatable: error_5xx=0.1, rate_429=0.05, latency=0.02, block_threshold=30, ...")
@click.option("--url-file", type=click.Path(dir_okay=False), help="Also write the API URL to this file.")
def serve(host: str, port: int, seed: int, scale: str, objects: int | None, listing: int | None,
          hostile: bool | None, image_width: int, image_variants: int, faults: tuple[str, ...],
          url_file: str | None) -> None:
    """Serve until SIGTERM or SIGINT; prints the API URL (METGAN_MET_API_URL) first."""
    from metgan.testing.fakemet.running import collection_config, serve_forever
    from metgan.testing.fakemet.server import FakeMet

    fault_config = _parse_faults(faults, seed)
    given = {"objects": objects, "listing": listing, "hostile": hostile}
    try:
        config = collection_config(scale, seed=seed, image_width=image_width, image_variants=image_variants,
                                   **{k: v for k, v in given.items() if v is not None})
        fake = FakeMet(config, fault_config)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    def ready(url: str) -> None:
        if url_file:
            with open(url_file, "w", encoding="utf-8") as out:
                out.write(url + "\n")
        click.echo(url)
        click.echo(f"METGAN_MET_API_URL={url} METGAN_IMAGE_HOSTS={host}", err=True)

    try:
        serve_forever(fake, host, port, on_ready=ready)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
