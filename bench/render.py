"""Benchmark: the three image-and-graph GIFs of a 100-epoch trial, ours vs a new figure per frame.

Ours (``metgan.viz.render.render_trial``) keeps one matplotlib figure per style and only moves
line data and axis limits per frame (the static style blits a moving marker). The naive baseline
builds a figure per frame (``plt.figure`` ... ``savefig`` ... ``plt.close``), as the origin's
viz_tools did. Both compose the same frames (grid beside plot) and write GIFs with the same
writer; ours also writes progress.gif and scores.png inside its time. Both run in this process on
the same hand-made trial folder.

    python bench/render.py            # 100 epochs
    python bench/render.py --quick    # 20 epochs, to check the script
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from metgan.testing.trialfolders import make_trial  # noqa: E402
from metgan.viz.gifs import to_palette, write_gif  # noqa: E402
from metgan.viz.grids import display_scale, load_grid, scaled  # noqa: E402
from metgan.viz.plots import DEFAULT_SCORES, PANELS, STYLES  # noqa: E402
from metgan.viz.render import DEFAULT_DURATION, DEFAULT_WINDOW, render_trial  # noqa: E402
from metgan.viz.trial import SCORE_LABELS, load_trial  # noqa: E402

BUDGET_S = 20.0  # the limit for the three graph GIFs of a 100-epoch trial on 2 cores


def naive_render(trial_dir: Path, out_dir: Path) -> int:
    """The three graph GIFs with a new pyplot figure for every frame; returns the frames drawn."""
    trial = load_trial(trial_dir)
    epochs = trial.frame_epochs
    first = load_grid(trial.samples[epochs[0]])
    scale = display_scale(first.size)
    grids = {e: scaled(load_grid(trial.samples[e]), scale) for e in epochs}
    grid_w, grid_h = grids[epochs[0]].size
    height = max(grid_h, 300)
    width = max(round(height * 1.35), 420)
    series = {}
    for name in DEFAULT_SCORES:
        x, y = trial.series(name)
        keep = [i for i, v in enumerate(y) if v is not None]
        series[name] = (np.array(x)[keep], np.array([y[i] for i in keep], float))
    panels = list(dict.fromkeys(PANELS[s] for s in DEFAULT_SCORES))
    last = max(trial.metrics)
    drawn = 0
    for style in STYLES:
        frames = []
        for epoch in epochs:
            fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)
            axes = fig.subplots(len(panels), 1, sharex=True)
            for panel, ax in zip(panels, axes, strict=True):
                for name in (n for n in DEFAULT_SCORES if PANELS[n] == panel):
                    x, y = series[name]
                    if style == "expanding":
                        keep = x <= epoch
                    elif style == "rolling":
                        keep = (x <= epoch) & (x >= epoch - DEFAULT_WINDOW)
                    else:
                        keep = np.ones_like(x, bool)
                    ax.plot(x[keep], y[keep], label=SCORE_LABELS[name])
                if style == "static":
                    ax.axvline(epoch, color="k")
                    ax.set_xlim(0, last)
                ax.set_title(panel, loc="left")
                ax.legend(loc="upper right")
            fig.tight_layout()
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png")
            plt.close(fig)
            buffer.seek(0)
            plot = Image.open(buffer).convert("RGB")
            frame = Image.new("RGB", (grid_w + plot.width + 42, height + 78), "white")
            frame.paste(grids[epoch], (14, 44))
            frame.paste(plot, (grid_w + 28, 44))
            frames.append(to_palette(frame))
            drawn += 1
        write_gif(out_dir / f"naive_{style}.gif", frames, duration=DEFAULT_DURATION)
    return drawn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 epochs instead of 100")
    parser.add_argument("--epochs", type=int, default=None, help="epochs in the hand-made trial")
    args = parser.parse_args()
    epochs = args.epochs or (20 if args.quick else 100)

    with tempfile.TemporaryDirectory(prefix="metgan-bench-render-") as temp:
        trial_dir = make_trial(Path(temp) / "trial", epochs=epochs, swd_every=5, generated=0)
        frames = len(load_trial(trial_dir).frame_epochs)

        started = time.perf_counter()
        written = render_trial(trial_dir, styles=STYLES)
        ours = time.perf_counter() - started

        started = time.perf_counter()
        naive_frames = naive_render(trial_dir, Path(temp))
        naive = time.perf_counter() - started

    assert {f"graph_{s}.gif" for s in STYLES} <= set(written)
    print(f"render: {epochs}-epoch hand-made trial, {frames} frames per GIF, styles {', '.join(STYLES)}")
    print(f"{'approach':<56} {'seconds':>8} {'frames':>7} {'ms/frame':>9}")
    ours_label = "ours: one figure per style (+progress.gif, scores.png)"
    print(f"{ours_label:<56} {ours:8.2f} {3 * frames:7d} {1000 * ours / (3 * frames):9.1f}")
    print(f"{'naive: new pyplot figure per frame':<56} {naive:8.2f} {naive_frames:7d} "
          f"{1000 * naive / naive_frames:9.1f}")
    if epochs == 100:
        print(f"ours within the {BUDGET_S:.0f} s budget: {'yes' if ours <= BUDGET_S else 'NO'}")
    print(f"speedup: {naive / ours:.1f}x")


if __name__ == "__main__":
    main()
