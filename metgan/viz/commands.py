"""``metgan render`` and ``metgan report``: thin click commands over metgan.viz."""

from __future__ import annotations

import click

from metgan.errors import RenderError


def _names(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    if not names:
        raise RenderError("an empty list was given; name at least one, comma-separated")
    return names


@click.command()
@click.argument("trial_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--styles", default="expanding,rolling,static", show_default=True,
              help="Graph GIF styles, comma-separated: expanding, rolling, static (empty: none).")
@click.option("--duration", type=float, default=0.15, show_default=True, help="Seconds per frame.")
@click.option("--window", type=int, default=20, show_default=True, help="Epochs a rolling plot shows.")
@click.option("--scores", default=None,
              help="Scores to plot, comma-separated (default d_loss,g_loss,swd,swd_real).")
@click.option("--title", default=None, help="Title on every frame (default: the trial's label).")
def render(trial_dir: str, styles: str, duration: float, window: int, scores: str | None,
           title: str | None) -> None:
    """Render TRIAL_DIR's progress.gif, graph_<style>.gif, scores.png and final_grid.png."""
    from metgan.viz.render import render_trial

    style_names = tuple(part.strip() for part in styles.split(",") if part.strip())
    written = render_trial(trial_dir, styles=style_names, duration=duration, window=window,
                           scores=_names(scores), title=title)
    for name, path in written.items():
        click.echo(f"{name}\t{path}")


@click.command()
@click.argument("search_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--top-k", type=int, default=3, show_default=True,
              help="Best trials whose new images fill the gallery.")
@click.option("--images", type=int, default=8, show_default=True,
              help="New images shown per trial in the gallery.")
@click.option("--render/--no-render", "render_missing", default=False, show_default=True,
              help="First render the GIFs of trials that have none.")
def report(search_dir: str, top_k: int, images: int, render_missing: bool) -> None:
    """Write SEARCH_DIR's report.html, leaderboard.csv and gallery/ (relative links only)."""
    from metgan.viz.report import publish_report

    written = publish_report(search_dir, top_k=top_k, images_per_trial=images, render_missing=render_missing)
    click.echo(f"report.html\t{written['report']}")
    click.echo(f"leaderboard.csv\t{written['leaderboard']}")


@click.command()
@click.argument("trial_dir", type=click.Path(path_type=str))
@click.option("--seeds", default="3,17,42", show_default=True, help="Seeds the walk passes through, in order.")
@click.option("--frames", type=int, default=60, show_default=True, help="Frames in the whole loop.")
@click.option("--fps", type=int, default=15, show_default=True, help="Frames per second.")
@click.option("--truncation", type=float, default=1.0, show_default=True,
              help="Scale the seeds' Gaussian latents towards the mean (1 = untruncated).")
@click.option("--scale", type=int, default=1, show_default=True, help="Enlarge frames by this whole factor.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=str), required=True,
              help="walk.gif, or walk.mp4 (needs imageio-ffmpeg; a GIF is written without it).")
@click.option("--grid", "grid_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Also write every 10th frame as one PNG here.")
def walk(trial_dir: str, seeds: str, frames: int, fps: int, truncation: float, scale: int, out: str,
         grid_path: str | None) -> None:
    """A looping latent walk (spherical interpolation) through SEEDS of TRIAL_DIR's best snapshot."""
    from metgan.gan.generate import MAX_UPSCALE, parse_seeds, walk_images
    from metgan.viz.walk import frames_grid, write_walk

    if not 1 <= scale <= MAX_UPSCALE:
        raise RenderError(f"scale must be a whole number 1 to {MAX_UPSCALE}, got {scale}")
    if not 2 <= frames <= 10_000:
        raise RenderError(f"frames must be 2 to 10000, got {frames}")
    images = walk_images(trial_dir, parse_seeds(seeds), frames, truncation=truncation)
    written = write_walk(out, images, fps=fps, scale=scale)
    click.echo(f"walk\t{written}")
    if grid_path:
        click.echo(f"frames\t{frames_grid(grid_path, images, scale=scale)}")
