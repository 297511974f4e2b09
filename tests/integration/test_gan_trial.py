"""A tiny GAN trial end to end: trial folder contract, database rows, failure isolation, resume."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import text

from metgan import trialdir
from metgan.errors import GanConfigError
from metgan.gan import search
from tests.gan_support import TINY, make_subset

LINE_KEYS = {"epoch", "d_loss", "g_loss", "d_acc_real", "d_acc_fake", "swd", "swd_real", "swd_levels",
             "diversity", "images_per_s", "wall_s", "precision", "precision_real", "recall", "recall_real",
             "density", "density_real", "coverage", "coverage_real", "kid", "kid_real"}
TRIAL_KEYS = {"search_name", "trial_id", "status", "stop_reason", "error", "error_summary", "epochs_done",
              "epochs", "started_at", "finished_at", "wall_s", "device", "hostname", "images_per_s", "overrides", "label"}


@pytest.fixture
def subset(settings):
    make_subset(settings.subsets_dir / "vases", count=64)
    return "vases"


def _lines(trial_dir):
    return [json.loads(line) for line in (trial_dir / "metrics.jsonl").read_text().splitlines()]


def test_tiny_search_writes_trial_folders_and_rows_and_isolates_a_failing_trial(db, settings, subset, monkeypatch):
    from metgan.errors import TrainingError
    from metgan.gan import data

    real_dataset = data.training_dataset

    def out_of_memory_at_32(images, *, batch_size, **kwargs):  # a valid config that fails once training starts
        if batch_size == 32:
            raise TrainingError("batch_size 32 ran out of memory (injected)")
        return real_dataset(images, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(data, "training_dataset", out_of_memory_at_32)
    grid = {"batch_size": [16, 32]}
    results = search.train_planned("tiny", search.plan_trials("tiny", grid, subset=subset, base=TINY, settings=settings),
                                   settings=settings)
    by_status = {r["status"]: r for r in results}
    assert set(by_status) == {"completed", "failed"}
    good, bad = by_status["completed"], by_status["failed"]
    assert good["epochs"] == 2 and good["objective"] is not None and "batch_size 32" in bad["error"]

    folder = settings.results_dir / "tiny"
    search_json = json.loads((folder / "search.json").read_text())
    assert search_json["subset"] == "vases" and set(search_json["trials"]) == {good["trial_id"], bad["trial_id"]}
    trial_dir = folder / good["trial_id"]
    config = json.loads((trial_dir / "config.json").read_text())
    assert config["height"] == 40 and config["batch_size"] == 16
    info = json.loads((trial_dir / "trial.json").read_text())
    assert TRIAL_KEYS <= set(info)
    assert info["status"] == "completed" and info["epochs_done"] == info["epochs"] == 2
    assert info["overrides"]["noise_dim"] == 16 and "g_lr" not in info["overrides"]
    assert info["label"] and info["images_per_s"] > 0
    lines = _lines(trial_dir)
    assert [line["epoch"] for line in lines] == [1, 2]
    assert all(LINE_KEYS <= set(line) for line in lines)
    assert lines[-1]["swd"] > 0 and lines[-1]["swd_real"] > 0 and set(lines[-1]["swd_levels"]) == {"32x40", "16x20"}
    assert len(lines[-1]["color"]["mean"]) == 3 and lines[-1]["fid"] is None
    assert 0 <= lines[-1]["precision"] <= 1 and 0 < lines[-1]["coverage_real"] <= 1
    assert isinstance(lines[-1]["kid"], float) and isinstance(lines[-1]["kid_real"], float)
    assert np.load(trial_dir / "latents.npy").shape == (9, 16)
    sizes = {Image.open(trial_dir / "samples" / f"epoch_{e:04d}.png").size for e in range(3)}
    assert len(sizes) == 1
    assert (trial_dir / "final_grid.png").exists()
    assert sorted(p.name for p in (trial_dir / "generated").iterdir()) == ["000.png", "001.png", "002.png", "003.png"]
    assert trialdir.checkpoint_epochs(trial_dir) == [1, 2]  # every epoch, the newest keep_checkpoints (2)
    failed_info = json.loads((folder / bad["trial_id"] / "trial.json").read_text())
    assert failed_info["status"] == "failed" and "Traceback" in failed_info["error"]
    assert failed_info["error_summary"].startswith("TrainingError: batch_size 32 ran out of memory")
    assert info["error_summary"] is None

    with db.connect() as conn:
        assert conn.execute(text("SELECT objective, direction, subset_name FROM searches WHERE name = 'tiny'")).one() \
            == ("swd", "min", "vases")
        rows = {r.trial_id: r for r in conn.execute(text("SELECT * FROM trials WHERE search_name = 'tiny'"))}
        assert rows[good["trial_id"]].status == "completed" and rows[good["trial_id"]].epochs_done == 2
        assert rows[good["trial_id"]].objective == pytest.approx(good["objective"])
        assert rows[good["trial_id"]].final_metrics["swd_real"] > 0
        assert rows[bad["trial_id"]].status == "failed" and "Traceback" in rows[bad["trial_id"]].error
        epochs = conn.execute(text("SELECT epoch, metrics FROM trial_epochs WHERE trial_id = :t ORDER BY epoch"),
                              {"t": good["trial_id"]}).all()
        assert [e.epoch for e in epochs] == [1, 2] and epochs[1].metrics["swd"] == lines[1]["swd"]

    # Rerun: the completed trial is skipped (nothing rewritten), the failed one is retried.
    before = (trial_dir / "metrics.jsonl").read_text()
    again = search.train_planned("tiny", search.plan_trials("tiny", grid, subset=subset, base=TINY, settings=settings),
                                 settings=settings)
    assert (trial_dir / "metrics.jsonl").read_text() == before
    assert {r["trial_id"]: r["status"] for r in again} == {good["trial_id"]: "completed", bad["trial_id"]: "failed"}

    board = search.leaderboard("tiny", settings=settings)
    assert [row["trial_id"] for row in board] == [good["trial_id"], bad["trial_id"]]

    from metgan.cli import cli

    status = CliRunner().invoke(cli, ["search", "status", "tiny"])
    assert status.exit_code == 0 and good["trial_id"] in status.output and "failed" in status.output
    assert f"error: {failed_info['error_summary']}" in status.output


def test_grid_with_an_invalid_combination_fails_before_anything_is_written(db, settings, subset, tmp_path):
    grid = [{"loss": ["non-saturating", "hinge"]}, {"loss": "wgan-gp", "d_norm": ["none", "batch"]}]
    with pytest.raises(GanConfigError) as error:
        search.plan_trials("bad", grid, subset=subset, base=TINY, settings=settings)
    assert '"d_norm": "batch"' in str(error.value) and '"loss": "wgan-gp"' in str(error.value)
    assert not (settings.results_dir / "bad").exists()
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM searches")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM trials")).scalar() == 0

    from metgan.cli import cli

    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text("grid:\n  loss: [hinge, wgan-gp]\n  d_norm: [batch]\nbase:\n  epochs: 1\n")
    result = CliRunner().invoke(cli, ["search", "run", "--grid", str(grid_file), "--subset", subset,
                                      "--name", "bad", "--dry-run"])
    assert result.exit_code != 0 and "wgan-gp" in result.output and "Traceback" not in result.output
    grid_file.write_text("grid:\n  loss: [hinge, non-saturating]\nbase:\n  epochs: 1\n")
    result = CliRunner().invoke(cli, ["search", "run", "--grid", str(grid_file), "--subset", subset,
                                      "--name", "dry", "--dry-run"])
    assert result.exit_code == 0 and "2 trial(s)" in result.output
    assert not (settings.results_dir / "dry").exists()
    missing = CliRunner().invoke(cli, ["search", "status", "dry"])
    assert missing.exit_code != 0 and "no search named 'dry'" in missing.output


def kill_at_first_checkpoint(search_name: str, trial_id: str, trial_dir) -> int:
    """Train the trial in a child process, SIGKILL it once a checkpoint is written; the newest
    checkpoint's epoch."""
    code = f"from metgan.gan.search import train_trial; train_trial({search_name!r}, {trial_id!r})"
    process = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not trialdir.checkpoint_epochs(trial_dir):
            assert process.poll() is None, "the trial process ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    return max(trialdir.checkpoint_epochs(trial_dir))


def test_killed_trial_resumes_from_its_checkpoint_not_from_zero(db, settings, subset, caplog):
    config = {**TINY, "epochs": 3, "swd_every": 3}
    [item] = search.plan_trials("resume", {}, subset=subset, base=config, settings=settings)
    trial_dir = settings.results_dir / "resume" / item["trial_id"]
    checkpoint = kill_at_first_checkpoint("resume", item["trial_id"], trial_dir)
    assert 1 <= checkpoint < 3
    kept_lines = _lines(trial_dir)[:checkpoint]
    kept_sample = (trial_dir / "samples" / f"epoch_{checkpoint:04d}.png").read_bytes()
    assert json.loads((trial_dir / "trial.json").read_text())["status"] == "running"

    caplog.set_level("INFO", logger="metgan.gan.trial")
    result = search.train_trial("resume", item["trial_id"], settings=settings)
    assert result["status"] == "completed" and result["epochs"] == 3
    assert f"resumes after epoch {checkpoint}" in caplog.text
    lines = _lines(trial_dir)
    assert [line["epoch"] for line in lines] == [1, 2, 3]
    assert lines[:checkpoint] == kept_lines
    assert (trial_dir / "samples" / f"epoch_{checkpoint:04d}.png").read_bytes() == kept_sample
    with db.connect() as conn:
        epochs = conn.execute(text("SELECT epoch FROM trial_epochs WHERE trial_id = :t ORDER BY epoch"),
                              {"t": item["trial_id"]}).scalars().all()
    assert epochs == [1, 2, 3]


def test_train_command_writes_a_trial_folder(settings, subset, tmp_path):
    from metgan.cli import cli

    config_file = tmp_path / "cfg.yaml"
    config_file.write_text(json.dumps({**TINY, "epochs": 1, "preset": "origin"}))
    out = tmp_path / "trial"
    result = CliRunner().invoke(cli, ["train", "--config", str(config_file), "--subset", subset, "--out", str(out)])
    assert result.exit_code == 0, result.output
    info = json.loads((out / "trial.json").read_text())
    assert info["status"] == "completed" and info["label"].startswith("origin")
    assert (out / "samples" / "epoch_0001.png").exists() and (out / "final_grid.png").exists()


def test_time_budget_stops_a_trial_mid_epoch_and_marks_it_stopped(tmp_path):
    from metgan.gan.config import GanConfig
    from metgan.gan.trial import run_trial
    from metgan.trialdir import read_metrics
    from tests.gan_support import vase_images

    config = GanConfig.from_dict({**TINY, "epochs": 50, "time_budget_s": 1.0, "swd_every": 50})
    summary = run_trial(tmp_path / "t", config, tmp_path / "unused", images=vase_images(64))
    assert summary["status"] == "stopped" and summary["stop_reason"] == "time_budget"
    assert 1 <= summary["epochs"] < 50
    lines = read_metrics(tmp_path / "t")
    assert lines[-1]["swd"] is not None  # the last epoch is always scored
    info = json.loads((tmp_path / "t" / "trial.json").read_text())
    assert "time budget" in info["stop_detail"] and info["images_seen"] >= 16
    rerun = run_trial(tmp_path / "t", config, tmp_path / "unused", images=vase_images(64))
    assert rerun["epochs"] == summary["epochs"]  # a stopped trial is finished: not trained again


def test_a_healthy_short_run_completes_instead_of_reading_collapsed(tmp_path, caplog):
    from metgan.gan.config import GanConfig
    from metgan.gan.trial import run_trial
    from tests.gan_support import vase_images

    # Two steps an epoch: the batch-norm statistics still warm up for all five epochs, and the
    # breaker used to read that as a collapse and stop at epoch 4.
    config = GanConfig.from_dict({**TINY, "epochs": 5, "swd_every": 5, "batch_size": 32})
    caplog.set_level("INFO", logger="metgan.gan.callbacks")
    summary = run_trial(tmp_path / "t", config, tmp_path / "unused", images=vase_images(64))
    info = json.loads((tmp_path / "t" / "trial.json").read_text())
    assert (summary["status"], summary["stop_reason"], summary["epochs"]) == ("completed", None, 5), info
    epoch_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(epoch_lines) == 5 and not any("null" in line for line in epoch_lines)
    assert ["SWD" in line for line in epoch_lines] == [False, False, False, False, True]  # scored at epoch 5 only


class _ConstantGan:
    """A model whose generator draws one flat grey image for every latent: a true collapse."""

    stop_training = False

    def __init__(self, height, width):
        self.shape = (height, width, 3)

    def generator(self, latents, training=False):
        return np.zeros((len(latents), *self.shape), np.float32)


def test_a_truly_collapsed_generator_is_stopped_once_warm_up_and_patience_have_passed(tmp_path):
    from metgan.gan import callbacks as cb
    from metgan.gan.config import GanConfig
    from tests.gan_support import vase_images

    config = GanConfig.from_dict({**TINY, "epochs": 30, "collapse_patience": 2})
    state = cb.TrialState(trial_dir=tmp_path, config=config, latents=np.zeros((9, 16), np.float32),
                          reals=vase_images(8), steps_per_epoch=4)
    breaker = cb.trial_callbacks(state)[[type(c) for c in cb.trial_callbacks(state)].index(cb.CollapseBreaker)]
    model = _ConstantGan(config.height, config.width)
    breaker.set_model(model)
    assert breaker.warmup == cb.collapse_warmup(30) == 5
    stopped_after = None
    for epoch in range(30):
        breaker.on_epoch_end(epoch)
        if model.stop_training:
            stopped_after = epoch + 1
            break
    assert stopped_after == 5 + 2 and state.stop_reason == "collapsed"
    assert "collapsed for 2 epochs" in state.stop_detail
    assert cb.collapse_warmup(500) == 50  # a long run waits a tenth of its epochs


def test_importing_tensorflow_writes_nothing_labelled_error_and_quiets_absl():
    code = ("import os, absl.logging; from metgan.gan._tf import tensorflow; tensorflow();"
            "print(os.environ['TF_CPP_MIN_LOG_LEVEL'], absl.logging.get_verbosity() == absl.logging.ERROR)")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "True"]
    assert not [line for line in out.stderr.splitlines() if "ERROR" in line or line.startswith("E0")], out.stderr


def test_search_json_links_the_airflow_run_that_planned_it(db, settings, subset):
    search.plan_trials("linked", {}, subset=subset, base=TINY, settings=settings,
                       airflow_dag_id="gan_search", airflow_run_id="manual__2026-12-01T09:00:00+00:00")
    path = settings.results_dir / "linked" / "search.json"
    link = {"dag_id": "gan_search", "run_id": "manual__2026-12-01T09:00:00+00:00"}
    assert json.loads(path.read_text())["airflow"] == link
    search.plan_trials("linked", {}, subset=subset, base=TINY, settings=settings)  # a CLI replan
    assert json.loads(path.read_text())["airflow"] == link
    search.plan_trials("plain", {}, subset=subset, base=TINY, settings=settings)
    assert "airflow" not in json.loads((settings.results_dir / "plain" / "search.json").read_text())


def test_a_checkpoint_is_keras_weights_by_name_plus_a_json_of_epoch_and_rng(tmp_path):
    import h5py

    from metgan.gan.config import GanConfig
    from metgan.gan.trial import run_trial
    from tests.gan_support import vase_images

    config = GanConfig.from_dict({**TINY, "epochs": 1, "ema_decay": 0.99})
    run_trial(tmp_path / "t", config, tmp_path / "unused", images=vase_images(32))
    weights, meta_path = trialdir.checkpoint_paths(tmp_path / "t", 1)
    with h5py.File(weights) as handle:
        top = set(handle.keys())
    assert {"generator", "discriminator", "ema_generator", "g_optimizer", "d_optimizer"} <= top
    meta = trialdir.read_checkpoint_meta(tmp_path / "t", 1)
    assert meta["epoch"] == 1 and len(meta["rng_state"]) >= 2 and meta == json.loads(meta_path.read_text())
    assert not list((tmp_path / "t" / "checkpoints").glob("*.npz"))


def test_an_old_npz_checkpoint_is_ignored_and_the_trial_starts_fresh(tmp_path, caplog):
    from metgan.gan.config import GanConfig
    from metgan.gan.trial import run_trial
    from tests.gan_support import vase_images

    config = GanConfig.from_dict({**TINY, "epochs": 1})
    old = tmp_path / "t" / "checkpoints"
    old.mkdir(parents=True)
    np.savez(old / "ckpt_0005.npz", g_0000=np.zeros(3))
    caplog.set_level("WARNING", logger="metgan.gan.callbacks")
    summary = run_trial(tmp_path / "t", config, tmp_path / "unused", images=vase_images(32))
    assert summary["status"] == "completed" and summary["epochs"] == 1
    assert "old-format .npz checkpoint(s) ignored" in caplog.text
    assert [line["epoch"] for line in trialdir.read_metrics(tmp_path / "t")] == [1]


def test_search_run_plans_the_grid_once(db, settings, subset, monkeypatch, tmp_path):
    from metgan.cli import cli

    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(json.dumps({"grid": {}, "base": {**TINY, "epochs": 1}}))
    calls = []
    real = search.resolve_grid
    monkeypatch.setattr(search, "resolve_grid", lambda *a, **k: calls.append(1) or real(*a, **k))
    result = CliRunner().invoke(cli, ["search", "run", "--grid", str(grid_file), "--subset", subset,
                                      "--name", "once"])
    assert result.exit_code == 0, result.output
    assert len(calls) == 1 and "1 trial(s)" in result.output
    assert trialdir.read_search(settings.results_dir / "once")["trials"]


def test_the_fid_network_is_built_once_per_trial_not_per_evaluation(tmp_path, caplog):
    from metgan.gan.config import GanConfig
    from metgan.gan.trial import run_trial
    from tests.gan_support import vase_images

    # A weights path that does not exist: each attempt to build the network warns, so the count of
    # warnings is the count of builds (a real InceptionV3 file is not available offline).
    config = GanConfig.from_dict({**TINY, "epochs": 3, "swd_every": 1, "inception_weights": str(tmp_path / "no.h5")})
    caplog.set_level("WARNING", logger="metgan.gan.metrics")
    run_trial(tmp_path / "t", config, tmp_path / "unused", images=vase_images(32))
    assert [line["fid"] for line in trialdir.read_metrics(tmp_path / "t")] == [None, None, None]
    assert caplog.text.count("no Inception weights file") == 1


FASTGAN_TINY = {**TINY, "preset": "fastgan", "g_blocks": 3, "d_blocks": 3, "g_filters": 16, "g_seed_filters": 16,
                "d_filters": 8}
R3GAN_TINY = {**TINY, "preset": "r3gan", "g_filters": 16, "g_seed_filters": 16, "d_filters": 8, "group_size": 8,
              "ada_images": 64}


@pytest.mark.parametrize("base", [TINY, FASTGAN_TINY], ids=["dcgan", "fastgan"])
def test_the_collapse_breaker_lets_a_healthy_run_of_either_architecture_finish(tmp_path, base):
    from metgan.gan.callbacks import collapse_warmup
    from metgan.gan.config import GanConfig
    from metgan.gan.trial import run_trial
    from tests.gan_support import vase_images

    # Patience 1 and three epochs past the warm-up: a single epoch read as collapsed would stop it.
    epochs = collapse_warmup(8) + 3
    config = GanConfig.from_dict({**base, "epochs": epochs, "swd_every": epochs, "collapse_patience": 1})
    summary = run_trial(tmp_path / "t", config, tmp_path / "unused", images=vase_images(64))
    lines = _lines(tmp_path / "t")
    assert (summary["status"], summary["stop_reason"], summary["epochs"]) == ("completed", None, epochs), lines[-1]
    assert all(line["within_std"] >= config.collapse_within_std for line in lines[-3:])


def test_a_killed_fastgan_trial_resumes_at_the_next_epoch_with_the_full_folder(db, settings, subset):
    from metgan.gan.config import GanConfig

    config = {**FASTGAN_TINY, "epochs": 3, "swd_every": 3}
    [item] = search.plan_trials("fast", {}, subset=subset, base=config, settings=settings)
    trial_dir = settings.results_dir / "fast" / item["trial_id"]
    checkpoint = kill_at_first_checkpoint("fast", item["trial_id"], trial_dir)
    assert 1 <= checkpoint < 3
    kept_lines = _lines(trial_dir)[:checkpoint]
    result = search.train_trial("fast", item["trial_id"], settings=settings)
    assert result["status"] == "completed" and result["epochs"] == 3
    lines = _lines(trial_dir)
    assert [line["epoch"] for line in lines] == [1, 2, 3] and lines[:checkpoint] == kept_lines
    assert all(LINE_KEYS | {"recon_loss", "swd_count", "chroma", "chroma_real"} <= set(line) for line in lines)
    assert lines[-1]["swd_count"] == 32 and lines[-1]["recon_loss"] > 0  # 64 images: halves of 32
    info = json.loads((trial_dir / "trial.json").read_text())
    assert TRIAL_KEYS <= set(info) and info["label"].startswith("fastgan")
    for name in ("config.json", "final_grid.png", "latents.npy", "samples/epoch_0003.png"):
        assert (trial_dir / name).exists(), name
    assert len(list((trial_dir / "generated").glob("*.png"))) == FASTGAN_TINY["n_generated"]
    exported = json.loads((trial_dir / "config.json").read_text())
    assert GanConfig.from_dict(exported).trial_id() == item["trial_id"]


def test_a_holdout_scores_against_images_never_trained_on(tmp_path):
    from metgan.gan.config import GanConfig
    from metgan.gan.trial import run_trial, split_holdout
    from tests.gan_support import vase_images

    images = vase_images(80)
    config = GanConfig.from_dict({**TINY, "epochs": 1, "holdout": 0.25})
    train, held = split_holdout(images, config)
    assert (len(train), len(held)) == (60, 20)
    trained = {image.tobytes() for image in train}
    assert not any(image.tobytes() in trained for image in held)
    run_trial(tmp_path / "t", config, tmp_path / "unused", images=images)
    info = json.loads((tmp_path / "t" / "trial.json").read_text())
    assert (info["train_images"], info["eval_images"], info["eval_held_out"]) == (60, 20, True)
    assert _lines(tmp_path / "t")[-1]["swd_count"] == 10


@pytest.mark.parametrize(("base", "precision"), [(FASTGAN_TINY, "off"), (TINY, "on"), (FASTGAN_TINY, "on"),
                                                (R3GAN_TINY, "off")],
                         ids=["fastgan", "dcgan-bf16", "fastgan-bf16", "r3gan"])
def test_a_trials_best_snapshot_loads_in_a_fresh_process(tmp_path, base, precision):
    """fastgan's and r3gan's custom layers, and a generator trained in bfloat16 (mixed_precision: on,
    on a CPU), load in a process that has never built them, and give float32 images."""
    from metgan.gan.config import GanConfig
    from metgan.gan.trial import run_trial
    from tests.gan_support import vase_images

    config = GanConfig.from_dict({**base, "epochs": 2, "mixed_precision": precision})
    run_trial(tmp_path / "t", config, tmp_path / "unused", images=vase_images(32))
    info = trialdir.read_trial_info(tmp_path / "t")
    assert info["status"] == "completed"
    assert info["dtype_policy"] == ("mixed_bfloat16" if precision == "on" else "float32")
    assert all(line["swd"] is None or np.isfinite(line["swd"]) for line in trialdir.read_metrics(tmp_path / "t"))
    code = ("import sys, numpy as np; from metgan.gan.export import load_generator;"
            "g = load_generator(sys.argv[1]); x = np.asarray(g(np.zeros((2, 16), np.float32)));"
            "print(x.dtype, tuple(x.shape))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "t")], capture_output=True, text=True,
                            env=dict(os.environ), check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "float32 (2, 40, 32, 3)"


def test_a_trial_asked_for_no_gallery_images_completes_with_its_best_snapshot(tmp_path):
    """n_generated 0 (bench/quality.py asks for none): the trial ends, keeps its snapshot, writes no
    generated/ image (it used to crash generating an empty batch after the whole training)."""
    from metgan.gan.config import GanConfig
    from metgan.gan.trial import run_trial
    from tests.gan_support import vase_images

    config = GanConfig.from_dict({**TINY, "epochs": 1, "n_generated": 0})
    summary = run_trial(tmp_path / "t", config, tmp_path / "unused", images=vase_images(32))
    assert summary["status"] == "completed"
    assert trialdir.has_best_snapshot(tmp_path / "t")
    assert (tmp_path / "t" / trialdir.FINAL_GRID).is_file()
    assert not list((tmp_path / "t" / trialdir.GENERATED).glob("*.png"))


def test_an_adaptive_augmentation_trial_records_p_per_epoch_and_checkpoints_it(tmp_path):
    """ada_p is in every metrics line and moves while training; the checkpoint keeps it, so a
    resumed trial starts from the strength it had (not from 0)."""
    from metgan.gan.config import GanConfig
    from metgan.gan.trial import run_trial
    from tests.gan_support import vase_images

    images = vase_images(64)
    config = GanConfig.from_dict({**R3GAN_TINY, "epochs": 3, "swd_every": 3})
    run_trial(tmp_path / "t", config, tmp_path / "unused", images=images)
    first = [line["ada_p"] for line in _lines(tmp_path / "t")]
    assert len(first) == 3 and all(p is not None and 0.0 <= p <= 1.0 for p in first)
    assert any(p > 0 for p in first), first  # 4 steps an epoch, 64 images per unit of p: it moves
    assert json.loads((tmp_path / "t" / "config.json").read_text())["ada_target"] == 0.6
    from metgan.gan.callbacks import load_latest_checkpoint
    from metgan.gan.model import build_gan

    gan = build_gan(config)
    meta = load_latest_checkpoint(tmp_path / "t", gan)
    assert meta is not None and meta["epoch"] == 3
    assert float(gan.ada_p.numpy()) == pytest.approx(first[-1], abs=1e-6)
