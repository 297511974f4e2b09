"""Score plots: one matplotlib figure (Agg, no pyplot) reused for every frame of a GIF.

A frame only moves line data and axis limits (``set_data``, ``set_xlim``, ``set_ylim``) and
redraws; the ``static`` style draws the whole plot once and blits a moving epoch marker over a
saved background, which is cheaper still. Building a new figure per frame costs several times
more (``bench/render.py`` measures it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw

from metgan.errors import RenderError
from metgan.viz.grids import INK, MUTED, SCORE_COLOURS, font, write_png
from metgan.viz.trial import SCORE_LABELS, SCORE_NAMES, TrialRun

STYLES = ("expanding", "rolling", "static")
DEFAULT_SCORES = ("d_loss", "g_loss", "swd", "swd_real")
PANELS = {
    "d_loss": "Loss", "g_loss": "Loss", "d_acc_real": "D accuracy", "d_acc_fake": "D accuracy",
    "swd": "SWD ×10³ (↓ better)", "swd_real": "SWD ×10³ (↓ better)",
    "diversity": "Diversity", "images_per_s": "Images / s", "wall_s": "Wall time (s)",
}
BASELINES = {"swd_real"}
# Legend names, shorter than SCORE_LABELS where the panel title already says what they measure.
LEGEND_LABELS = {**SCORE_LABELS, "swd": "generated", "swd_real": "real vs real"}
HEADER_HEIGHT = 22


def check_scores(scores: Sequence[str] | None) -> tuple[str, ...]:
    """The scores to plot, validated; unknown names raise RenderError listing the valid ones."""
    if not scores:
        return DEFAULT_SCORES
    unknown = [s for s in scores if s not in SCORE_NAMES]
    if unknown:
        raise RenderError(f"unknown score {unknown[0]!r}; valid scores: {', '.join(SCORE_NAMES)}")
    return tuple(dict.fromkeys(scores))


def _limits(values: list[np.ndarray], pad: float = 0.08) -> tuple[float, float]:
    finite = [v[np.isfinite(v)] for v in values]
    finite = [v for v in finite if v.size]
    if not finite:
        return 0.0, 1.0
    low = float(min(v.min() for v in finite))
    high = float(max(v.max() for v in finite))
    span = high - low
    if span <= 1e-12:
        span = max(abs(high) * 0.1, 0.5)
    return low - span * pad, high + span * pad


class ScorePlot:
    """A stack of score panels (losses, SWD, ...) for one trial, drawn frame by frame."""

    def __init__(self, trial: TrialRun, scores: Sequence[str] | None = None, *, style: str = "expanding",
                 window: int = 20, size: tuple[int, int] = (480, 360), dpi: int = 100):
        if style not in STYLES:
            raise RenderError(f"unknown style {style!r}; valid styles: {', '.join(STYLES)}")
        if window < 1:
            raise RenderError(f"window must be at least 1 epoch, got {window}")
        self.style = style
        self.window = window
        self.scores = check_scores(scores)
        self.figure = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi, facecolor="white")
        self.canvas = FigureCanvasAgg(self.figure)
        self.last_epoch = max(max(trial.metrics, default=0), 1)

        panels = list(dict.fromkeys(PANELS[s] for s in self.scores))
        axes = self.figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
        self.axes = dict(zip(panels, axes, strict=True))
        self.series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.lines = {}
        self.heads = {}
        self.markers = []
        self.veils = []
        for name in self.scores:
            epochs, values = trial.series(name)
            x = np.array(epochs, dtype=float)
            y = np.array([np.nan if v is None else v for v in values], dtype=float)
            sparse = bool(np.isnan(y).any())
            keep = np.isfinite(y)
            self.series[name] = (x[keep], y[keep])
            ax = self.axes[PANELS[name]]
            colour = SCORE_COLOURS[name]
            (self.lines[name],) = ax.plot([], [], color=colour, linewidth=1.7,
                                          linestyle="--" if name in BASELINES else "-",
                                          marker="o" if sparse else None, markersize=3.2,
                                          label=LEGEND_LABELS[name], solid_capstyle="round")
            (self.heads[name],) = ax.plot([], [], "o", color=colour, markersize=6,
                                          markeredgecolor="white", markeredgewidth=1.2, zorder=5)
        for title, ax in self.axes.items():
            if not any(self.series[n][0].size for n in self.scores if PANELS[n] == title):
                ax.text(0.5, 0.5, "no values recorded", transform=ax.transAxes, ha="center", va="center",
                        fontsize=9, color="#8a8a8a")
            ax.grid(True, color="#e6e4df", linewidth=0.8)
            ax.set_axisbelow(True)
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
            for side in ("left", "bottom"):
                ax.spines[side].set_color("#b5b3ad")
            ax.tick_params(labelsize=8, colors="#555", length=3)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
            ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
        axes[-1].set_xlabel("epoch", fontsize=8.5, color="#555", labelpad=1)
        # Panel titles and legends are drawn with PIL above each panel (see draw_headers): text
        # layout is most of what a matplotlib redraw costs, and these never change.
        top, bottom, gap = HEADER_HEIGHT, 34, HEADER_HEIGHT + 8
        panel_height = (size[1] - top - bottom - gap * (len(panels) - 1)) / len(panels)
        self.figure.subplots_adjust(left=52 / size[0], right=1 - 14 / size[0], top=1 - top / size[1],
                                    bottom=bottom / size[1], hspace=gap / panel_height)
        self.headers = []
        for title, ax in self.axes.items():
            box = ax.get_position()
            entries = [(LEGEND_LABELS[n], SCORE_COLOURS[n], n in BASELINES)
                       for n in self.scores if PANELS[n] == title]
            self.headers.append((round(box.x0 * size[0]), round((1 - box.y1) * size[1]) - HEADER_HEIGHT,
                                 title, entries))
        self._background = None
        if style == "static":
            self._draw_all()
            # Epochs still to come are veiled, so the eye follows the marker across the run.
            self.veils = [ax.axvspan(0, self.last_epoch, facecolor="white", alpha=0.6, linewidth=0,
                                     animated=True) for ax in axes]
            self.markers = [ax.axvline(0, color="#222", linewidth=1.1, alpha=0.55, animated=True)
                            for ax in axes]
            for head in self.heads.values():
                head.set_animated(True)
            self.canvas.draw()
            self._background = self.canvas.copy_from_bbox(self.figure.bbox)

    def _visible(self, name: str, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.series[name]
        keep = (x >= low) & (x <= high)
        return x[keep], y[keep]

    def _draw_all(self) -> None:
        for name, line in self.lines.items():
            line.set_data(*self.series[name])
        for ax in self.axes.values():
            ax.set_xlim(0, self.last_epoch)
        self._fit_y(0, self.last_epoch)

    def _fit_y(self, low: float, high: float) -> None:
        for title, ax in self.axes.items():
            shown = [self._visible(n, low, high)[1] for n in self.scores if PANELS[n] == title]
            ax.set_ylim(*_limits(shown))

    def _place_heads(self, epoch: int) -> None:
        for name, head in self.heads.items():
            x, y = self._visible(name, -math.inf, epoch)
            head.set_data(x[-1:], y[-1:])

    def frame(self, epoch: int) -> np.ndarray:
        """The plot at ``epoch`` as an H×W×3 uint8 array (a view copied out of the one figure)."""
        if self.style == "static":
            self.canvas.restore_region(self._background)
            self._place_heads(epoch)
            for ax, veil, marker in zip(self.axes.values(), self.veils, self.markers, strict=True):
                veil.set_x(epoch)
                veil.set_width(self.last_epoch + 1 - epoch)
                ax.draw_artist(veil)
                marker.set_xdata([epoch, epoch])
                ax.draw_artist(marker)
            for name, head in self.heads.items():
                self.axes[PANELS[name]].draw_artist(head)
        else:
            if self.style == "expanding":
                low, high = 0, max(epoch, 2)
            else:
                low, high = max(0, epoch - self.window), max(epoch, self.window)
            for name, line in self.lines.items():
                line.set_data(*self._visible(name, low - 1, epoch))
            for ax in self.axes.values():
                ax.set_xlim(low, high)
            self._fit_y(low, epoch)
            self._place_heads(epoch)
            self.canvas.draw()
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()

    def close(self) -> None:
        self.figure.clear()


def draw_headers(draw: ImageDraw.ImageDraw, plot: ScorePlot, offset: tuple[int, int]) -> None:
    """Each panel's title and its legend (a line sample and name per score) in one row above it."""
    title_font, entry_font = font(12, bold=True), font(11)
    for x, y, title, entries in plot.headers:
        x, y = x + offset[0], y + offset[1] + 4
        draw.text((x, y), title, font=title_font, fill=INK)
        x += title_font.getlength(title) + 14
        for label, colour, dashed in entries:
            middle = y + 8
            if dashed:
                for start in (x, x + 10):
                    draw.line((start, middle, start + 6, middle), fill=colour, width=2)
            else:
                draw.line((x, middle, x + 16, middle), fill=colour, width=2)
            draw.text((x + 21, y + 1), label, font=entry_font, fill=MUTED)
            x += 21 + entry_font.getlength(label) + 12


def save_scores_png(trial: TrialRun, path: Path, scores: Sequence[str] | None = None,
                    title: str | None = None) -> Path:
    """All scores of a trial as one still plot (``scores.png``), written atomically."""
    size, top = (900, 520), 40
    plot = ScorePlot(trial, scores, style="expanding", size=(size[0], size[1] - top), dpi=100)
    image = Image.new("RGB", size, "white")
    image.paste(Image.fromarray(plot.frame(plot.last_epoch)), (0, top))
    plot.close()
    draw = ImageDraw.Draw(image)
    draw.text((plot.headers[0][0], 12), title or trial.label, font=font(15, bold=True), fill=INK)
    draw_headers(draw, plot, (0, top))
    return write_png(image, path)
