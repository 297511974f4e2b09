"""The best snapshot, its export, ``metgan generate`` and ``metgan walk`` on a tiny trained trial."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from metgan import trialdir
from metgan.gan.metrics import PRDC_LINE_KEYS
from tests.gan_support import TINY, vase_images


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    """One tiny trial with EMA, trained once for the module (SWD measured every epoch)."""
    from metgan.gan.config import GanConfig
    from metgan.gan.trial import run_trial

    folder = tmp_path_factory.mktemp("generate") / "trial"
    config = GanConfig.from_dict({**TINY, "epochs": 3, "ema_decay": 0.99})
    run_trial(folder, config, folder.parent / "vases", images=vase_images(48), search_name="s", trial_id="t1")
    return folder


def metgan(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "metgan", "-q", *map(str, args)], capture_output=True, text=True)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_the_trial_keeps_the_generator_of_its_best_swd_epoch(trial):
    lines = trialdir.read_metrics(trial)
    best_line = min(lines, key=lambda line: (line["swd"], line["epoch"]))
    record = trialdir.read_model_record(trial)
    assert record["epoch"] == best_line["epoch"] and record["objective"] == "swd"
    assert record["objective_value"] == pytest.approx(best_line["swd"])
    assert record["metrics"]["swd"] == pytest.approx(best_line["swd"])
    # precision, recall, density, coverage and KID of that epoch, each with the data's own
    for key in PRDC_LINE_KEYS:
        assert record["metrics"][key] is not None and record["metrics"][key] == pytest.approx(best_line[key]), key
    assert record["ema"] is True and record["subset"] == "vases" and record["trial_id"] == "t1"
    assert (record["noise_dim"], record["height"], record["width"], record["channels"]) == (16, 40, 32, 3)
    assert record["value_range"] == [-1.0, 1.0] and record["latent"] == "gaussian"
    from metgan.gan.trial import summary_from_files

    assert summary_from_files(trial)["objective"] == pytest.approx(best_line["swd"])


def test_a_worse_swd_after_epoch_k_keeps_epoch_k_and_its_weights(tmp_path):
    from metgan.gan import callbacks as cb
    from metgan.gan.config import GanConfig
    from metgan.gan.export import load_generator
    from metgan.gan.model import build_gan

    config = GanConfig.from_dict({**TINY, "ema_decay": 0.0})
    gan = build_gan(config)
    state = cb.TrialState(trial_dir=tmp_path, config=config, latents=np.zeros((1, 16), np.float32),
                          reals=vase_images(4), steps_per_epoch=1)
    snapshot = cb.BestSnapshot(state)
    snapshot.set_model(gan)
    probe = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    outputs = {}
    for epoch, swd in enumerate([5.0, 3.0, None, 4.0, 3.0, 6.0]):  # best at epoch 2; a tie later does not win
        for weight in gan.generator.weights:
            weight.assign(weight + 0.01 * (epoch + 1))
        outputs[epoch + 1] = np.asarray(gan.generator(probe, training=False))
        snapshot.on_epoch_end(epoch, {"swd": swd, "d_loss": 1.0})
    record = trialdir.read_model_record(tmp_path)
    assert record["epoch"] == 2 and record["objective_value"] == 3.0 and record["ema"] is False
    saved = np.asarray(load_generator(tmp_path)(probe, training=False))
    np.testing.assert_allclose(saved, outputs[2], atol=1e-6)
    assert not np.allclose(saved, outputs[6], atol=1e-3)


def test_a_max_objective_keeps_the_highest_value(tmp_path):
    from metgan.gan import callbacks as cb
    from metgan.gan.config import GanConfig
    from metgan.gan.model import build_gan

    config = GanConfig.from_dict(TINY)
    state = cb.TrialState(trial_dir=tmp_path, config=config, latents=np.zeros((1, 16), np.float32),
                          reals=vase_images(4), steps_per_epoch=1, objective="diversity", direction="max")
    snapshot = cb.BestSnapshot(state)
    snapshot.set_model(build_gan(config))
    for epoch, value in enumerate([0.1, 0.4, float("nan"), 0.2]):
        snapshot.on_epoch_end(epoch, {"diversity": value})
    assert trialdir.read_model_record(tmp_path)["epoch"] == 2


def test_generate_gives_identical_png_bytes_for_a_seed_twice_named_by_seed(trial, tmp_path):
    metgan("generate", trial, "--seeds", "3,17,42", "--out", tmp_path / "a")
    metgan("generate", trial, "--n", "2", "--seed", "17", "--out", tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "a").glob("seed_*.png")) == [
        "seed_0003.png", "seed_0017.png", "seed_0042.png"]
    # seed 17 in a different company, a different run: the same bytes
    assert (tmp_path / "a" / "seed_0017.png").read_bytes() == (tmp_path / "b" / "seed_0017.png").read_bytes()
    assert (tmp_path / "a" / "seed_0003.png").read_bytes() != (tmp_path / "a" / "seed_0017.png").read_bytes()
    with Image.open(tmp_path / "a" / "seed_0042.png") as image:
        assert image.size == (32, 40)
    with Image.open(tmp_path / "a" / "contact_sheet.png") as sheet:
        assert sheet.width > 32 * 2
    record = json.loads((tmp_path / "a" / "generation.json").read_text())
    assert record["seeds"] == [3, 17, 42] and record["epoch"] == trialdir.read_model_record(trial)["epoch"]


def test_truncation_zero_gives_one_image_for_every_seed_and_upscale_enlarges(trial, tmp_path):
    from metgan.gan.generate import generate

    generate(trial, [1, 2, 3], tmp_path / "zero", truncation=0.0, upscale=3)
    images = [np.asarray(Image.open(tmp_path / "zero" / trialdir.seed_image_name(s))) for s in (1, 2, 3)]
    assert images[0].shape == (120, 96, 3)
    assert np.array_equal(images[0], images[1]) and np.array_equal(images[1], images[2])
    generate(trial, [1, 2], tmp_path / "full")
    full = [np.asarray(Image.open(tmp_path / "full" / trialdir.seed_image_name(s))) for s in (1, 2)]
    assert not np.array_equal(full[0], full[1])


def test_the_exported_model_loads_in_a_fresh_interpreter_without_the_trial_folder(trial, tmp_path):
    from metgan.gan.generate import generate

    alone = tmp_path / "elsewhere" / "generator.keras"
    alone.parent.mkdir()
    shutil.copyfile(trialdir.best_generator_path(trial), alone)
    generate(trial, [5], tmp_path / "ref")
    code = ("import sys, numpy as np; import metgan.gan.export; import keras;"
            "m = keras.saving.load_model(sys.argv[1]);"
            "z = np.random.default_rng(5).standard_normal((1, 16)).astype('float32');"
            "x = np.asarray(m(z, training=False));"
            "print(m.input_shape, m.output_shape, float(x.min()) >= -1, float(x.max()) <= 1);"
            "np.save(sys.argv[2], np.clip(np.round((x + 1) * 127.5), 0, 255).astype('uint8')[0])")
    result = subprocess.run([sys.executable, "-c", code, str(alone), str(tmp_path / "out.npy")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "(None, 16) (None, 40, 32, 3) True True"
    reference = np.asarray(Image.open(tmp_path / "ref" / "seed_0005.png"))
    assert np.array_equal(np.load(tmp_path / "out.npy"), reference)


def test_a_walk_starts_and_ends_on_the_first_seed_and_passes_the_others(trial, tmp_path):
    from metgan.gan.generate import generate, walk_images

    frames = walk_images(trial, [3, 17, 42], 31)
    generate(trial, [3, 17, 42], tmp_path / "seeds")
    seed = {s: np.asarray(Image.open(tmp_path / "seeds" / trialdir.seed_image_name(s))) for s in (3, 17, 42)}
    assert frames.shape == (31, 40, 32, 3)
    assert np.array_equal(frames[0], seed[3]) and np.array_equal(frames[-1], seed[3])
    assert np.array_equal(frames[10], seed[17]) and np.array_equal(frames[20], seed[42])
    assert not np.array_equal(frames[5], seed[3])


def test_walk_command_writes_a_looping_gif_and_the_frame_grid(trial, tmp_path):
    from metgan.viz.walk import mp4_available

    metgan("walk", trial, "--seeds", "3,17,42", "--frames", "30", "--out", tmp_path / "walk.gif",
           "--grid", tmp_path / "frames.png")
    with Image.open(tmp_path / "walk.gif") as gif:
        assert gif.n_frames == 30 and gif.info.get("loop") == 0 and gif.size == (32, 40)
    with Image.open(tmp_path / "frames.png") as grid:
        assert grid.size == (3 * 34 + 2, 44)  # frames 0, 10, 20
    result = metgan("walk", trial, "--seeds", "1,2", "--frames", "6", "--out", tmp_path / "walk.mp4")
    written = tmp_path / ("walk.mp4" if mp4_available() else "walk.gif")
    assert written.exists() and str(written) in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--seeds", "5-2"], "runs backwards"),
    (["--seeds", "a,b"], "is not a seed"),
    (["--truncation", "-1"], "truncation must be"),
    (["--n", "0"], "n must be"),
    (["--upscale", "99"], "upscale must be"),
])
def test_bad_generate_options_fail_with_one_clear_line(trial, tmp_path, args, message):
    result = metgan("generate", trial, *args, "--out", tmp_path / "x", check=False)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


def test_a_folder_without_a_best_snapshot_is_one_clear_line(tmp_path):
    result = metgan("generate", tmp_path, "--out", tmp_path / "x", check=False)
    assert result.returncode != 0 and "has no best snapshot" in result.stderr and "Traceback" not in result.stderr


def test_a_resume_keeps_a_best_snapshot_from_before_its_checkpoint_and_drops_one_from_after(trial, tmp_path):
    from metgan.gan import callbacks as cb
    from metgan.gan.config import GanConfig
    from metgan.gan.trial import _resume_best

    folder = tmp_path / "t"
    shutil.copytree(trial / trialdir.BEST, folder / trialdir.BEST)
    record = trialdir.read_model_record(folder)
    state = cb.TrialState(trial_dir=folder, config=GanConfig.from_dict(TINY), latents=np.zeros((1, 16)),
                          reals=vase_images(4), steps_per_epoch=1)
    _resume_best(folder, state, first_epoch=record["epoch"])
    assert (state.best_epoch, state.best_value) == (record["epoch"], record["objective_value"])
    _resume_best(folder, state, first_epoch=record["epoch"] - 1)  # that epoch is trained again
    assert not trialdir.has_best_snapshot(folder) and not trialdir.best_generator_path(folder).exists()


def test_generate_from_a_copied_best_folder_reads_its_record(trial, tmp_path):
    shutil.copytree(trial / trialdir.BEST, tmp_path / "copy")
    result = metgan("generate", tmp_path / "copy" / "generator.keras", "--n", "2", "--out", tmp_path / "out")
    epoch = trialdir.read_model_record(trial)["epoch"]
    assert f"(best at epoch {epoch})" in result.stdout
    assert json.loads((tmp_path / "out" / "generation.json").read_text())["trial_id"] == "t1"
