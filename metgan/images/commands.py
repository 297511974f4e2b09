"""``metgan subset ...``: build, list, show."""

from __future__ import annotations

import json

import click

from metgan.images.subset import DEFAULT_NAME, build_subset, list_subsets, ratio_histogram, subset_info
from metgan.progress import Progress


@click.group()
def subset() -> None:
    """Build and inspect training subsets (e.g. vases)."""


def _size(bytes_: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if bytes_ < 1024 or unit == "GB":
            return f"{bytes_:.0f} {unit}" if unit == "B" else f"{bytes_:.1f} {unit}"
        bytes_ /= 1024
    return f"{bytes_} B"


@subset.command()
@click.argument("name", default=DEFAULT_NAME)
@click.option("--include", multiple=True, metavar="WORDS",
              help="Object-name pattern to select (repeatable); default: vase.")
@click.option("--exclude", multiple=True, metavar="WORDS",
              help="Object-name pattern to leave out (repeatable); default: fragment, fragmentary, sherd; --exclude '' for none.")
@click.option("--regex/--words", default=None,
              help="Patterns are PostgreSQL regexes (\\m, \\M word edges) instead of plain words (default).")
@click.option("--classification", "classifications", multiple=True, metavar="NAME",
              help="Classification selected whatever the name, e.g. Vases (repeatable).")
@click.option("--all-images/--primary-only", "all_images", default=None,
              help="Also use each object's additional images (default: primary image only).")
@click.option("--public-domain/--any-rights", "public_domain", default=None,
              help="Require public-domain objects (default) or take any.")
@click.option("--size", metavar="WxH", help="Output width x height, e.g. 64x80, 128x160 (default), 384x480.")
@click.option("--policy", type=click.Choice(["pad", "crop", "stretch"]), help="How to fit the shape (default pad).")
@click.option("--mode", type=click.Choice(["rgb", "grayscale"], case_sensitive=False), help="Colour mode (default rgb).")
@click.option("--ratio", type=float, help="Target height/width (default: that of --size; 5:4 portrait is 1.25).")
@click.option("--tolerance", type=float, help="Largest accepted |height/width - ratio| (default 0.15).")
@click.option("--workers", type=click.IntRange(min=1), help="Processes converting images (default: every core).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def build(name, include, exclude, regex, classifications, all_images, public_domain, size, policy, mode, ratio,
          tolerance, workers, as_json) -> None:
    """Build subset NAME (default vases), or bring it up to date: only new images are converted.

    Options not given keep the subset's stored parameters (or the vase defaults for a new one).
    Plain-word patterns match whole words, case-insensitively, with an optional plural:
    'vase' matches "Vase", "Vases", "Bottle vase", not "Vaseline jar".
    """
    given = {
        "include": list(include) or None, "exclude": list(exclude) if exclude else None, "regex": regex,
        "classifications": list(classifications) or None,
        "primary_only": None if all_images is None else not all_images,
        "public_domain": public_domain,
        "size": size, "policy": policy, "mode": mode and mode.lower(), "ratio": ratio, "tolerance": tolerance,
    }
    params = {key: value for key, value in given.items() if value is not None}
    summary = build_subset(name, params, progress=Progress(f"subset {name}", bar=True), workers=workers)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"subset {summary['name']}: {summary['ok']} images ready in {summary['path']}")
    click.echo(f"  objects selected {summary['objects']}, distinct images {summary['images']} "
               f"(duplicates dropped {summary['duplicates']})")
    click.echo(f"  converted now {summary['processed']} (built {summary['built']}, skipped "
               f"{summary['newly_skipped']}), already up to date {summary['up_to_date']}, "
               f"removed {summary['removed']}")
    if summary["skipped"]:
        reasons = ", ".join(f"{k} {v}" for k, v in summary["skipped_by_reason"].items())
        click.echo(f"  skipped {summary['skipped']}: {reasons}")


@subset.command(name="list")
def list_() -> None:
    """List the subsets with their size, policy and image counts."""
    rows = list_subsets()
    if not rows:
        click.echo("no subsets yet: metgan subset build [NAME]")
        return
    click.echo(f"{'name':<20} {'size':>9} {'mode':<9} {'policy':<7} {'images':>7} {'skipped':>7}  updated")
    for row in rows:
        params, counts = row["params"], row["counts"] or {}
        click.echo(f"{row['name']:<20} {params.get('size', '?'):>9} {params.get('mode', '?'):<9} "
                   f"{params.get('policy', '?'):<7} {counts.get('ok', 0):>7} {counts.get('skipped', 0):>7}  "
                   f"{row['updated_at']:%Y-%m-%d %H:%M}")


@subset.command()
@click.argument("name")
def show(name) -> None:
    """Show subset NAME: parameters, counts, disk size and the height/width ratio histogram."""
    info = subset_info(name)
    params, counts = info["params"], info["counts"] or {}
    click.echo(f"subset {info['name']}  ({info['path']})")
    click.echo(f"  include {params['include']}  exclude {params['exclude']}  "
               f"{'regex' if params['regex'] else 'words'}  classifications {params['classifications']}")
    click.echo(f"  size {params['size']}  mode {params['mode']}  policy {params['policy']}  "
               f"ratio {params['ratio']} ± {params['tolerance']}")
    click.echo(f"  objects {counts.get('objects', 0)}  distinct images {counts.get('images', 0)}  "
               f"duplicates {counts.get('duplicates', 0)}")
    click.echo(f"  ready {counts.get('ok', 0)}  skipped {counts.get('skipped', 0)}"
               + "".join(f"  ({k} {v})" for k, v in (counts.get("skipped_by_reason") or {}).items()))
    click.echo(f"  on disk {_size(info['disk_bytes'])}  updated {info['updated_at']:%Y-%m-%d %H:%M:%S %Z}")
    lines = ratio_histogram(info["ratios"])
    if lines:
        click.echo("  source height/width ratios ('#' used, '.' skipped):")
        for line in lines:
            click.echo(f"  {line}")
