"""``metgan train`` and ``metgan search ...``: a thin click layer over trial.py and search.py."""

from __future__ import annotations

import json
from pathlib import Path

import click

from metgan.config import get_settings
from metgan.errors import GanConfigError
from metgan.gan.budget import DEFAULT_SEARCH_BUDGET_S


def _read_config(path: Path) -> dict:
    from metgan.files import check_input_file
    from metgan.gan.param_grid import read_yaml_file

    check_input_file(path, "config file", error=GanConfigError)  # a FIFO, a device or a huge file: refused
    data = read_yaml_file(path, "config file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise GanConfigError(f"config file {path} must hold a mapping of config keys")
    return data


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), required=True,
              help="YAML/JSON file of GAN config keys (may name a preset: default or origin).")
@click.option("--subset", required=True, help="Subset name (a folder under <data_dir>/subsets).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Trial folder (default <results_dir>/train/<trial_id>). Rerunning resumes it.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override one config key.")
def train(config_path: Path, subset: str, out: Path | None, overrides: tuple[str, ...]) -> None:
    """Train one GAN trial from a config file (files only; no database rows)."""
    from metgan.gan.config import GanConfig
    from metgan.gan.request import parse_param
    from metgan.gan.search import check_subset
    from metgan.gan.trial import run_trial

    settings = get_settings()
    data = _read_config(config_path)
    for item in overrides:
        key, values = parse_param(item)
        data[key] = values[0] if len(values) == 1 else values
    config = GanConfig.from_dict(data)
    subset_dir = check_subset(subset, settings)["path"]
    out = out or settings.results_dir / "train" / config.trial_id()
    summary = run_trial(out, config, subset_dir, trial_id=config.trial_id())
    click.echo(json.dumps(summary, indent=2))


@click.group()
def search() -> None:
    """Run and inspect grid searches over GAN settings."""


@search.command("run")
@click.option("--grid", "grid_path", type=click.Path(path_type=Path), default=None,
              help="YAML/JSON grid: a dict of lists, a list of them, or {grid, base, objective, direction}.")
@click.option("--param", "params", multiple=True, metavar="KEY=V1,V2",
              help="Add a grid axis from the command line (repeatable; diffaugment items join with '+').")
@click.option("--preset", default=None, help="Base preset for every trial (default or origin).")
@click.option("--subset", required=True, help="Subset name (a folder under <data_dir>/subsets).")
@click.option("--name", "search_name", required=True, help="Search name (its folder under <results_dir>).")
@click.option("--objective", default=None, help="Metric to rank by (default swd, or the grid file's).")
@click.option("--direction", type=click.Choice(["min", "max"]), default=None)
@click.option("--budget-s", type=click.FloatRange(min=0), default=DEFAULT_SEARCH_BUDGET_S, show_default=True,
              help="Seconds for the whole search, split over its trials; without epochs or height/width "
                   "each trial trains as long and as large as its share affords. 0: no budget.")
@click.option("--dry-run", is_flag=True,
              help="Validate and print the plan (trials, rungs, epochs against the full grid); write and train nothing.")
def run_command(grid_path, params, preset, subset, search_name, objective, direction, budget_s, dry_run) -> None:
    """Plan a search and train its trials (finished trials are skipped).

    The grid file's ``strategy`` (grid, random with n_iter and seed, halving with factor,
    min_epochs, max_epochs) decides which trials train and for how long.
    """
    from metgan.gan import search as search_lib
    from metgan.gan.request import SearchRequest
    from metgan.progress import Progress

    settings = get_settings()
    request = SearchRequest.from_command_line(search_name, subset, grid_path, params=params, preset=preset,
                                              objective=objective, direction=direction, budget_s=budget_s)
    # Planned once: a dry run stops after validating; a real run writes the plan it printed and trains it.
    overview = search_lib.plan_request(request, settings=settings, dry_run=dry_run)
    plan = overview["trials"]
    for item in plan:
        click.echo(f"{item['trial_id']}  {item['label']}")
    click.echo(f"{len(plan)} trial(s)")
    _print_plan(overview)
    if dry_run:
        return
    results = search_lib.train_planned(search_name, plan, settings=settings,
                                       progress=Progress(f"search {search_name}", interval=0))
    labels = {item["trial_id"]: item["label"] for item in plan}
    for result in results:
        if result["status"] == "skipped":
            click.echo(f"skipped {result['trial_id']}  {labels.get(result['trial_id'], '')}: "
                       f"{result['held_by']} is training it")
    failed = [r for r in results if r["status"] == "failed"]
    _print_board(search_lib.leaderboard(search_name, settings=settings))
    _print_summary(search_lib.search_summary(search_name, settings=settings))
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(results)} trial(s) failed, e.g. "
                                   f"{failed[0]['trial_id']}: {failed[0]['error']}")


@search.command("status")
@click.argument("search_name")
def status_command(search_name: str) -> None:
    """Show the leaderboard of a search (best trial first by its objective)."""
    from metgan.gan import search as search_lib

    settings = get_settings()
    _print_board(search_lib.leaderboard(search_name, settings=settings))
    _print_summary(search_lib.search_summary(search_name, settings=settings))


def _print_summary(summary: dict) -> None:
    line = f"strategy {summary['strategy']}"
    if summary["rungs"] and summary["strategy"] == "halving":
        line += ": " + " → ".join(f"{r['trials']}×{r['epochs']} epochs" for r in summary["rungs"])
    if summary["full_grid_images"]:
        line += (f"; training images {summary['images_spent']:,} of the full grid's "
                 f"{summary['full_grid_images']:,} ({summary['fraction_of_full_grid']:.0%})")
    click.echo(line)


def _print_plan(overview: dict) -> None:
    strategy = overview["strategy"]
    click.echo(f"strategy {strategy['strategy']}" + (f" (factor {strategy['factor']})"
                                                      if strategy["strategy"] == "halving" else ""))
    if overview.get("budget_s"):
        fitted = " and ".join(overview["fitted"])
        click.echo(f"budget {overview['budget_s']:.0f} s: {overview['trial_budget_s']:.0f} s of training a trial"
                   + (f"; its worker fits the {fitted} to it" if fitted else ""))
        return
    if overview.get("budget_unused"):
        click.echo("budget unused: the epochs are set" + (" by successive halving's rungs"
                                                          if strategy["strategy"] == "halving" else ""))
    for rung in overview["rungs"]:
        click.echo(f"  rung {rung['rung']}: {rung['trials']} trial(s) to epoch {rung['epochs']}")
    full = overview["full_grid_epochs"]
    share = f" ({overview['epochs_total'] / full:.0%})" if full else ""
    click.echo(f"total {overview['epochs_total']} epochs{share} against {full} for the full grid; "
               f"{overview['planned_images']:,} training images against {overview['full_grid_images']:,}")


def _print_board(board: list[dict]) -> None:
    if not board:
        click.echo("no trials")
        return
    name = board[0]["objective_name"]
    header = f"{'#':>3}  {'trial':<12}  {'status':<9}  {'epochs':>7}  {name:>10}  {'swd_real':>9}  {'img/s':>7}  label"
    click.echo(header)
    for row in board:
        objective = "-" if row["objective"] is None else f"{row['objective']:.2f}"
        real = "-" if row["swd_real"] is None else f"{row['swd_real']:.2f}"
        ips = "-" if row["images_per_s"] is None else f"{row['images_per_s']:.1f}"
        status = row["status"] if not row["stop_reason"] else f"{row['status']}:{row['stop_reason']}"
        epochs = f"{row['epochs_done']:>3}/{row['epochs'] if row['epochs'] is not None else '?':<3}"
        click.echo(f"{row['rank']:>3}  {row['trial_id']:<12}  {status:<9}  "
                   f"{epochs}  {objective:>10}  {real:>9}  {ips:>7}  {row['label']}")
        if row["objective"] is not None:
            click.echo(f"{'':>3}  {'':<12}  {row['verdict']}")
        if row.get("trained_at"):
            click.echo(f"{'':>3}  {'':<12}  {row['trained_at']}")
        if row.get("held_by"):
            click.echo(f"{'':>3}  {'':<12}  trained now by {row['held_by']}")
        if row.get("error_summary"):
            click.echo(f"{'':>3}  {'':<12}  error: {row['error_summary']}")
        if row.get("rungs"):
            history = " · ".join(f"{r.get('epochs_done')} ep: "
                                 + ("-" if r.get("score") is None else f"{r['score']:.2f}")
                                 + (f" {r['outcome']}" if r.get("outcome") else "") for r in row["rungs"])
            click.echo(f"{'':>3}  {'':<12}  rungs: {history}")


@click.command()
@click.argument("trial_dir", type=click.Path(path_type=Path))
@click.option("--n", "count", type=int, default=64, show_default=True, help="Images: seeds SEED..SEED+N-1.")
@click.option("--seed", "first_seed", type=int, default=0, show_default=True, help="First seed (with --n).")
@click.option("--seeds", default=None, metavar="LIST",
              help="Seeds instead of --n/--seed: '1-64', '3,17,42' or a mix; one PNG per seed, named by it.")
@click.option("--truncation", type=float, default=1.0, show_default=True,
              help="Scale each Gaussian latent towards the mean (0): 1 = untruncated, 0 = the mean image.")
@click.option("--upscale", type=int, default=1, show_default=True,
              help="Enlarge every image by this whole factor (Lanczos filter).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for seed_NNNN.png, contact_sheet.png and generation.json.")
def generate(trial_dir: Path, count: int, first_seed: int, seeds: str | None, truncation: float, upscale: int,
             out: Path) -> None:
    """Generate images from TRIAL_DIR's best snapshot (best/generator.keras), one per seed."""
    from metgan.gan import generate as generate_lib

    chosen = generate_lib.parse_seeds(seeds) if seeds is not None else generate_lib.seed_range(first_seed, count)
    result = generate_lib.generate(trial_dir, chosen, out, truncation=truncation, upscale=upscale)
    epoch = f" (best at epoch {result['epoch']})" if result["epoch"] is not None else ""
    click.echo(f"{len(result['images'])} images from {result['model']}{epoch} in {result['out']}")
    click.echo(f"contact sheet\t{result['contact_sheet']}")
