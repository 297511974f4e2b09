"""Render one trial folder: ``progress.gif``, ``graph_<style>.gif``, ``scores.png``, ``final_grid.png``.

Every GIF is built in one pass over the epochs: each sample grid is read and scaled once, then
drawn into the progress frame and into each style's frame. Each style keeps one matplotlib
figure for the whole GIF (see :mod:`metgan.viz.plots`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from metgan import trialdir
from metgan.errors import RenderError
from metgan.progress import Progress
from metgan.viz.gifs import to_palette, write_gif
from metgan.viz.grids import (
    INK,
    MAT,
    MUTED,
    PAPER,
    RULE,
    STATUS_COLOURS,
    display_scale,
    fit_text,
    font,
    load_grid,
    placeholder,
    scaled,
    text_width,
    wrap_text,
    write_png,
)
from metgan.viz.plots import STYLES, ScorePlot, check_scores, draw_headers, save_scores_png
from metgan.viz.trial import SCORE_LABELS, TrialRun, format_value, load_trial

log = logging.getLogger(__name__)

DEFAULT_DURATION = 0.15
DEFAULT_WINDOW = 20
PAD = 14
PANEL_WIDTH = 330
# The scores written beside every progress frame, in this order.
PANEL_SCORES = ("d_loss", "g_loss", "d_acc_real", "d_acc_fake", "swd", "swd_real", "diversity")


def final_banner(trial: TrialRun) -> tuple[str, tuple[int, int, int]]:
    """The line the last frame ends on, and its colour: why the trial stopped, or that it completed."""
    message = trial.stop_message()
    if message is None:
        return f"Completed {trial.epochs_done} epochs", STATUS_COLOURS["completed"]
    return message, STATUS_COLOURS.get(trial.status, MUTED)


def epoch_text(trial: TrialRun, epoch: int) -> str:
    planned = trial.epochs_planned
    text = f"Epoch {epoch}" + (f" of {planned}" if planned else "")
    return text + (" · untrained" if epoch == 0 else "")


def score_text(trial: TrialRun, name: str, epoch: int) -> str:
    """A score's value at ``epoch``; a sparse score (SWD) shows its last value and when it was taken."""
    value = trial.score(name, epoch)
    if value is not None:
        return format_value(value)
    known = trial.last_known(name, epoch)
    if known is None:
        return "—"
    return f"{format_value(known[1])} (ep {known[0]})"


@dataclass
class AnnotatedFrame:
    """One progress frame and the text lines drawn on it (``label: value``), for checks and logs."""

    image: Image.Image
    lines: list[str]


class ProgressFramer:
    """Draws progress frames: the sample grid on a mat, and a panel with epoch, settings and scores."""

    def __init__(self, trial: TrialRun, grid_size: tuple[int, int], title: str | None = None):
        self.trial = trial
        self.title = title or trial.label
        self.grid_size = grid_size
        self.title_font, self.body_font, self.head_font = font(17, bold=True), font(14), font(11, bold=True)
        self.settings = [(key, format_value(value)) for key, value in sorted(trial.settings().items())]
        self.inner = PANEL_WIDTH - 2 * PAD
        self.title_lines = wrap_text(self.title, self.title_font, self.inner, max_lines=2)
        banner, self.banner_colour = final_banner(trial)
        self.banner_lines = wrap_text(banner, self.body_font, self.inner - 16, max_lines=4)
        rows = max(len(self.settings), 1) + len(PANEL_SCORES)
        content = (len(self.title_lines) * 22 + 8 + 20 + 2 * (14 + 24) + rows * 20
                   + 12 + len(self.banner_lines) * 19 + 14)
        self.width = grid_size[0] + 2 * PAD + PANEL_WIDTH
        self.height = max(grid_size[1] + 2 * PAD, content + 2 * PAD)

    def _row(self, draw: ImageDraw.ImageDraw, x: int, y: int, label: str, value: str) -> str:
        value = fit_text(value, self.body_font, self.inner * 0.62)
        label = fit_text(label, self.body_font, self.inner - text_width(value, self.body_font) - 10)
        draw.text((x, y), label, font=self.body_font, fill=MUTED)
        draw.text((x + self.inner, y), value, font=self.body_font, fill=INK, anchor="ra")
        return f"{label}: {value}"

    def _heading(self, draw: ImageDraw.ImageDraw, x: int, y: int, text: str) -> int:
        draw.line((x, y + 6, x + self.inner, y + 6), fill=RULE, width=1)
        draw.text((x, y + 12), text.upper(), font=self.head_font, fill=MUTED)
        return y + 14 + 22

    def frame(self, epoch: int, grid: Image.Image, *, last: bool) -> AnnotatedFrame:
        image = Image.new("RGB", (self.width, self.height), PAPER)
        mat_width = self.grid_size[0] + 2 * PAD
        image.paste(MAT, (0, 0, mat_width, self.height))
        image.paste(grid, (PAD, (self.height - self.grid_size[1]) // 2))
        draw = ImageDraw.Draw(image)
        x, y = mat_width + PAD, PAD
        lines = []
        for line in self.title_lines:
            draw.text((x, y), line, font=self.title_font, fill=INK)
            y += 22
        lines.append(" ".join(self.title_lines))
        y += 8
        epoch_line = epoch_text(self.trial, epoch)
        draw.text((x, y), epoch_line, font=self.body_font, fill=INK)
        lines.append(epoch_line)
        y += 20
        y = self._heading(draw, x, y, "Settings")
        for key, value in self.settings or [("settings", "defaults")]:
            lines.append(self._row(draw, x, y, key, value))
            y += 20
        y = self._heading(draw, x, y, "Scores")
        for name in PANEL_SCORES:
            lines.append(self._row(draw, x, y, SCORE_LABELS[name], score_text(self.trial, name, epoch)))
            y += 20
        if last:
            top = self.height - PAD - len(self.banner_lines) * 19 - 12
            draw.rounded_rectangle((x, top, x + self.inner, self.height - PAD), radius=6,
                                   fill=self.banner_colour)
            for index, line in enumerate(self.banner_lines):
                draw.text((x + 8, top + 6 + index * 19), line, font=self.body_font, fill=PAPER)
            lines.append(" ".join(self.banner_lines))
        return AnnotatedFrame(image, lines)


class GraphFramer:
    """Draws image-and-graph frames: a title bar, the grid beside the score plot, a footer line."""

    TOP = 44
    FOOTER = 34

    def __init__(self, trial: TrialRun, grid_size: tuple[int, int], *, style: str, scores, window: int,
                 title: str | None = None):
        self.trial = trial
        self.grid_size = grid_size
        plot_height = max(grid_size[1], 300)
        self.plot_size = (max(round(plot_height * 1.35), 420), plot_height)
        self.plot = ScorePlot(trial, scores, style=style, window=window, size=self.plot_size)
        self.width = PAD + grid_size[0] + PAD + self.plot_size[0] + PAD
        self.height = self.TOP + plot_height + self.FOOTER
        self.title_font, self.epoch_font, self.small_font = font(16, bold=True), font(15, bold=True), font(12)
        title = title or trial.label
        self.title = fit_text(title, self.title_font, self.width - 2 * PAD - 190)
        settings = ", ".join(f"{k}={format_value(v)}" for k, v in sorted(trial.settings().items()))
        self.footer = fit_text(f"{trial.trial_id} · {settings or 'default settings'}", self.small_font,
                               self.width - 2 * PAD)
        banner, self.banner_colour = final_banner(trial)
        self.banner = fit_text(banner, self.small_font, self.width - 2 * PAD - 16)

    def frame(self, epoch: int, grid: Image.Image, *, last: bool) -> Image.Image:
        image = Image.new("RGB", (self.width, self.height), PAPER)
        draw = ImageDraw.Draw(image)
        draw.text((PAD, 13), self.title, font=self.title_font, fill=INK)
        draw.text((self.width - PAD, 13), epoch_text(self.trial, epoch), font=self.epoch_font, fill=INK,
                  anchor="ra")
        draw.line((PAD, self.TOP - 4, self.width - PAD, self.TOP - 4), fill=RULE)
        body = self.plot_size[1]
        image.paste(MAT, (0, self.TOP, PAD * 2 + self.grid_size[0], self.TOP + body))
        image.paste(grid, (PAD, self.TOP + (body - self.grid_size[1]) // 2))
        image.paste(Image.fromarray(self.plot.frame(epoch)), (PAD * 2 + self.grid_size[0], self.TOP))
        draw_headers(draw, self.plot, (PAD * 2 + self.grid_size[0], self.TOP))
        footer_top = self.TOP + body
        if last:
            draw.rectangle((0, footer_top, self.width, self.height), fill=self.banner_colour)
            draw.text((PAD + 8, footer_top + 9), self.banner, font=self.small_font, fill=PAPER)
        else:
            draw.text((PAD, footer_top + 9), self.footer, font=self.small_font, fill=MUTED)
        return image

    def close(self) -> None:
        self.plot.close()


def _grids(trial: TrialRun):
    """(epoch, scaled grid) for each frame; a placeholder tile when no sample grid was ever written."""
    epochs = trial.frame_epochs
    if not epochs:
        size = (256, 320)
        yield trial.epochs_done, placeholder(size, "No sample grid was written for this trial"), size
        return
    first = load_grid(trial.samples[epochs[0]])
    scale = display_scale(first.size)
    size = scaled(first, scale).size
    for epoch in epochs:
        grid = first if epoch == epochs[0] else load_grid(trial.samples[epoch])
        shown = scaled(grid, scale)
        if shown.size != size:
            log.warning("sample grid for epoch %d is %s, not %s; resized", epoch, grid.size, first.size)
            shown = shown.resize(size, Image.Resampling.NEAREST)
        yield epoch, shown, size


def write_final_grid(trial: TrialRun) -> Path | None:
    """``final_grid.png`` from the last sample grid (scaled up 2× if small), when training wrote none."""
    if not trial.samples:
        return None
    grid = load_grid(trial.samples[max(trial.samples)])
    if grid.height < 400:
        grid = scaled(grid, 2.0)
    return write_png(grid, trial.path / trialdir.FINAL_GRID)


def render_trial(trial_dir: str | Path, *, styles: Sequence[str] = STYLES, duration: float = DEFAULT_DURATION,
                 window: int = DEFAULT_WINDOW, scores: Sequence[str] | None = None,
                 title: str | None = None, walk: bool = True) -> dict[str, str]:
    """Render a trial folder's GIFs and stills; returns {file name: path} of the files written.

    With ``walk`` (the default) a trial that has a best snapshot also gets ``walk.gif`` and
    ``walk_frames.png`` (:func:`metgan.viz.walk.render_walk`; this loads its generator, so TensorFlow).

    ``styles`` picks the graph GIFs (``expanding``, ``rolling``, ``static``); ``duration`` is
    seconds per frame; ``window`` the epochs a ``rolling`` plot shows; ``scores`` the metrics
    plotted (default losses and SWD); ``title`` replaces the trial's label on every frame.
    """
    styles = tuple(dict.fromkeys(styles))
    unknown = [s for s in styles if s not in STYLES]
    if unknown:
        raise RenderError(f"unknown style {unknown[0]!r}; valid styles: {', '.join(STYLES)}")
    if not duration > 0:
        raise RenderError(f"duration must be above 0 seconds, got {duration}")
    scores = check_scores(scores)
    trial = load_trial(trial_dir)
    epochs = trial.frame_epochs or [trial.epochs_done]
    progress = Progress(f"render {trial.trial_id}", total=len(epochs), logger=log)

    framers: dict[str, ProgressFramer | GraphFramer] = {}
    frames: dict[str, list[Image.Image]] = {}
    try:
        for index, (epoch, grid, size) in enumerate(_grids(trial)):
            if not framers:
                framers[trialdir.PROGRESS_GIF] = ProgressFramer(trial, size, title)
                for style in styles:
                    framers[trialdir.graph_gif_name(style)] = GraphFramer(trial, size, style=style, scores=scores,
                                                                window=window, title=title)
                frames = {name: [] for name in framers}
            last = index == len(epochs) - 1
            for name, framer in framers.items():
                drawn = framer.frame(epoch, grid, last=last)
                frames[name].append(to_palette(drawn.image if isinstance(drawn, AnnotatedFrame) else drawn))
            progress.advance()
    finally:
        for framer in framers.values():
            if isinstance(framer, GraphFramer):
                framer.close()
    progress.finish()

    written: dict[str, str] = {}
    for name, gif_frames in frames.items():
        written[name] = str(write_gif(trial.path / name, gif_frames, duration=duration))
    if trial.metrics:
        written[trialdir.SCORES_PNG] = str(save_scores_png(trial, trial.path / trialdir.SCORES_PNG, scores, title))
    if not (trial.path / trialdir.FINAL_GRID).exists():
        final = write_final_grid(trial)
        if final is not None:
            written[trialdir.FINAL_GRID] = str(final)
    if walk and trialdir.has_best_snapshot(trial.path):
        from metgan.viz.walk import render_walk

        written.update(render_walk(trial.path))
    log.info("rendered %s: %s", trial.path, ", ".join(written))
    return written
