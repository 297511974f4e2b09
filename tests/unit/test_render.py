"""Rendering a trial folder: GIF frames, annotations, stopped and failed trials, the CLI."""

from __future__ import annotations

import json
import shutil

import imageio.v3 as iio
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from metgan.cli import cli
from metgan.errors import RenderError
from metgan.gan.config import GanConfig
from metgan.viz.grids import STATUS_COLOURS
from metgan.viz.plots import ScorePlot
from metgan.viz.render import PAD, ProgressFramer, render_trial, score_text
from metgan.viz.trial import format_value, load_trial
from tests import trialfolders
from tests.trialfolders import make_trial

completed_trial = trialfolders.completed_trial
stopped_trial = trialfolders.stopped_trial

GIFS = ("progress.gif", "graph_expanding.gif", "graph_rolling.gif", "graph_static.gif")
DEFAULTS = GanConfig()


def decoded(path) -> np.ndarray:
    frames = iio.imread(path, index=None)
    assert frames.ndim == 4 and frames.shape[-1] in (3, 4)
    return frames[..., :3]


def test_every_gif_has_one_frame_per_recorded_epoch_all_the_same_size(completed_trial):
    written = render_trial(completed_trial)

    assert set(written) == {*GIFS, "scores.png", "final_grid.png"}
    for name in GIFS:
        frames = decoded(written[name])
        assert frames.shape[0] == 7, name  # epoch 0 (untrained) + 6 metrics lines
        with Image.open(written[name]) as gif:
            shapes = set()
            for index in range(gif.n_frames):
                gif.seek(index)
                shapes.add(gif.size)
            assert len(shapes) == 1
            assert gif.info.get("loop") == 0
    for still in ("scores.png", "final_grid.png"):
        assert iio.imread(written[still]).shape[0] > 100


def test_progress_frames_carry_settings_and_scores_in_a_drawn_margin(completed_trial):
    trial = load_trial(completed_trial)
    grid = Image.open(trial.samples[3]).convert("RGB")
    framer = ProgressFramer(trial, grid.size)
    frame = framer.frame(3, grid, last=False)
    metrics = [json.loads(line) for line in (completed_trial / "metrics.jsonl").read_text().splitlines()]

    assert "Epoch 3 of 6" in frame.lines
    assert "g_lr: 0.0005" in frame.lines
    assert "batch_size: 8" in frame.lines
    assert f"D loss: {format_value(metrics[2]['d_loss'])}" in frame.lines
    assert f"G loss: {format_value(metrics[2]['g_loss'])}" in frame.lines
    # SWD is measured every second epoch: epoch 3 shows epoch 2's value and says so.
    assert f"SWD ×10³: {format_value(metrics[1]['swd'])} (ep 2)" in frame.lines
    assert framer.frame(0, grid, last=False).lines.count("D loss: —") == 1

    render_trial(completed_trial, styles=())
    shown = decoded(completed_trial / "progress.gif")[3]
    margin = shown[:, trial_grid_width(completed_trial) + 2 * PAD:]
    dark = (margin.max(axis=2) < 120).sum()
    assert dark > 800, "the annotation margin has no text in it"
    assert margin.std() > 20


def trial_grid_width(trial_dir) -> int:
    """The grid's width as shown in a frame (small grids are scaled up by a whole factor)."""
    from metgan.viz.grids import display_scale

    size = Image.open(trial_dir / "samples" / "epoch_0000.png").size
    return round(size[0] * display_scale(size))


def test_settings_come_from_config_json_when_trial_json_has_no_overrides(completed_trial):
    info = json.loads((completed_trial / "trial.json").read_text())
    del info["overrides"]
    (completed_trial / "trial.json").write_text(json.dumps(info))
    trial = load_trial(completed_trial)

    # only what really differs from GanConfig's default preset, not all of config.json's keys
    assert trial.settings() == {"g_lr": 0.0005, "batch_size": 8, "epochs": 6, "height": 40, "width": 32,
                                "swd_every": 2}
    grid = Image.open(trial.samples[0]).convert("RGB")
    assert "g_lr: 0.0005" in ProgressFramer(trial, grid.size).frame(0, grid, last=False).lines


def test_a_collapsed_trial_renders_its_epochs_and_ends_on_why_it_stopped(stopped_trial):
    written = render_trial(stopped_trial)
    trial = load_trial(stopped_trial)
    grid = Image.open(trial.samples[5]).convert("RGB")
    framer = ProgressFramer(trial, grid.size)

    last_lines = " ".join(framer.frame(5, grid, last=True).lines)
    assert "Stopped early at epoch 5/30" in last_lines
    assert "mode collapse" in last_lines
    assert "Stopped early" not in " ".join(framer.frame(4, grid, last=False).lines)

    banner = np.array(STATUS_COLOURS["stopped"])
    for name in ("graph_expanding.gif", "graph_static.gif"):
        frames = decoded(written[name])
        assert frames.shape[0] == 6  # epochs 0..5 of a planned 30
        footer_last, footer_first = frames[-1][-12:], frames[0][-12:]
        assert (np.abs(footer_last.astype(int) - banner).sum(axis=2) < 40).mean() > 0.5
        assert (np.abs(footer_first.astype(int) - banner).sum(axis=2) < 40).mean() < 0.05


def test_a_failed_trial_without_sample_grids_still_says_why(tmp_path):
    traceback = ('Traceback (most recent call last):\n  File "trial.py", line 9, in _train\n    fit()\n'
                 "metgan.errors.TrainingError: loss became NaN\n")
    trial_dir = make_trial(tmp_path / "t-failed", epochs=10, epochs_done=2, status="failed",
                           error=traceback, swd_every=5, generated=0)
    shutil.rmtree(trial_dir / "samples")

    written = render_trial(trial_dir, styles=("rolling",))

    assert set(written) == {"progress.gif", "graph_rolling.gif", "scores.png"}
    assert decoded(written["progress.gif"]).shape[0] == 1
    trial = load_trial(trial_dir)
    # An older trial.json without error_summary: the traceback's last line, the exception, not its first.
    assert trial.stop_message() == "Failed at epoch 2/10: metgan.errors.TrainingError: loss became NaN"
    info = json.loads((trial_dir / "trial.json").read_text())
    (trial_dir / "trial.json").write_text(json.dumps({**info, "error_summary": "TrainingError: loss became NaN"}))
    assert load_trial(trial_dir).stop_message() == "Failed at epoch 2/10: TrainingError: loss became NaN"
    # SWD was never measured: the plot keeps a gap instead of failing.
    assert score_text(trial, "swd", 2) == "—"


def test_rolling_plot_shows_a_window_and_reuses_one_figure(tmp_path):
    trial = load_trial(make_trial(tmp_path / "t", epochs=30, swd_every=3, generated=0))
    plot = ScorePlot(trial, ["d_loss", "swd"], style="rolling", window=10, size=(420, 300))
    figure = plot.figure
    first = plot.frame(25)
    second = plot.frame(26)

    assert plot.figure is figure
    assert first.shape == second.shape == (300, 420, 3)
    assert not np.array_equal(first, second)
    loss_axes = plot.axes["Loss"]
    assert loss_axes.get_xlim() == (16, 26)
    shown = plot.lines["d_loss"].get_xdata()
    assert min(shown) >= 15 and max(shown) == 26


def test_bad_options_name_the_problem(completed_trial):
    with pytest.raises(RenderError, match="unknown score 'fid'.*swd"):
        render_trial(completed_trial, scores=["fid"])
    with pytest.raises(RenderError, match="unknown style 'sliding'"):
        render_trial(completed_trial, styles=["sliding"])
    with pytest.raises(RenderError, match="does not exist"):
        render_trial(completed_trial / "nope")


def test_cli_render_writes_the_chosen_styles_at_the_chosen_speed(completed_trial):
    runner = CliRunner()
    result = runner.invoke(cli, ["render", str(completed_trial), "--styles", "static",
                                 "--duration", "0.1", "--scores", "d_loss,swd", "--title", "Vases"])
    assert result.exit_code == 0, result.output
    assert (completed_trial / "graph_static.gif").exists()
    assert not (completed_trial / "graph_rolling.gif").exists()
    with Image.open(completed_trial / "graph_static.gif") as gif:
        assert gif.info["duration"] == 100

    bad = runner.invoke(cli, ["render", str(completed_trial), "--styles", "wobbly"])
    assert bad.exit_code != 0
    assert "unknown style 'wobbly'" in bad.output
    assert "Traceback" not in bad.output


def test_viz_imports_neither_tensorflow_nor_airflow():
    import subprocess
    import sys

    code = ("import json, sys, metgan.viz.render, metgan.viz.report, metgan.viz.commands;"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'airflow'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_a_folder_written_by_the_old_fixtures_still_renders_and_lists_only_what_differs(completed_trial):
    # config.json as the old trial-folder writer (viz.synthetic) wrote it: keys GanConfig does not know, no overrides in trial.json
    (completed_trial / "config.json").write_text(json.dumps({
        "preset": "default", "epochs": 6, "latent_dim": 100, "image_size": [40, 32],
        "batch_size": DEFAULTS.batch_size, "g_lr": DEFAULTS.g_lr, "loss": "ns"}))  # as preset default: not listed
    info = json.loads((completed_trial / "trial.json").read_text())
    del info["overrides"]
    (completed_trial / "trial.json").write_text(json.dumps(info))

    trial = load_trial(completed_trial)
    assert trial.settings() == {"epochs": 6, "latent_dim": 100, "image_size": [40, 32], "loss": "ns"}
    assert "progress.gif" in render_trial(completed_trial, styles=())
