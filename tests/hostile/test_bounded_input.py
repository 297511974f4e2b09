"""Bounded input (issue #25): every number the trainer accepts is checked against what it can use
when the config is built, files named on the command line are regular files under a cap, and floats
are read in every spelling Python and YAML 1.2 accept. Each refusal is one line and exit 1."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from metgan.cli import cli
from metgan.errors import GanConfigError
from metgan.files import MAX_INPUT_BYTES, load_yaml, read_bounded_file
from metgan.gan.config import UPPER_BOUNDS, GanConfig
from metgan.gan.request import parse_param


@pytest.mark.parametrize(("overrides", "named"), [
    ({"height": 100_000}, "'height' must be at most 1024"),
    ({"width": 2048, "height": 2048}, "must be at most 1024"),
    ({"noise_dim": 10**10}, "'noise_dim' must be at most 4096"),
    ({"g_filters": 10**6}, "'g_filters' must be at most 4096"),
    ({"d_filters": 10**6}, "'d_filters' must be at most 4096"),
    ({"batch_size": 10**7}, "'batch_size' must be at most 4096"),
    ({"seed": 2**32}, "'seed' must be at most 2147483647"),
    ({"g_blocks": 10**9}, "'g_blocks' must be at most 10"),
    ({"g_dense_units": 10**9}, "'g_dense_units' must be at most 8192"),
    ({"height": 1024, "width": 1024, "batch_size": 4096, "g_blocks": 5, "d_blocks": 5}, "activations"),
    ({"noise_dim": 4096, "g_seed_filters": 4096, "height": 1024, "width": 1024}, "seed layer"),
    ({"d_filters": 4096, "d_blocks": 6, "height": 512, "width": 512, "g_blocks": 6}, "discriminator"),
])
def test_a_number_the_trainer_cannot_use_is_refused_at_once(overrides, named):
    started = time.monotonic()
    with pytest.raises(GanConfigError) as caught:
        GanConfig.from_dict(overrides)
    assert named in str(caught.value) and "\n" not in str(caught.value)
    assert time.monotonic() - started < 1.0, "the check itself must not compute with the huge value"


def test_the_bounds_admit_what_trains_on_a_gpu():
    GanConfig.from_dict({"height": 256, "width": 256, "g_blocks": 5, "d_blocks": 5, "g_filters": 512,
                         "d_filters": 64, "batch_size": 64, "noise_dim": 512})
    GanConfig.from_dict({"seed": UPPER_BOUNDS["seed"], "height": 1024, "width": 1024, "g_blocks": 5, "d_blocks": 5})


def test_the_largest_seed_is_one_numpy_and_the_trainer_accept():
    # the trainer seeds numpy (keras.utils.set_random_seed) with the seed and with seed + offsets up to 11
    np.random.seed(UPPER_BOUNDS["seed"] + 11)
    np.random.default_rng(UPPER_BOUNDS["seed"] + 11)
    with pytest.raises(ValueError):
        np.random.seed(2**32)


@pytest.mark.parametrize("spelling", ["1e-3", "1E-3", "1.0e-3", "0.001", "+1e-3", "1_0e-4", " 1e-3"])
def test_a_float_is_read_in_every_spelling(spelling):
    assert GanConfig.from_dict({"g_lr": spelling}).g_lr == pytest.approx(0.001)
    key, values = parse_param(f"g_lr={spelling.strip()},2e-4")
    assert key == "g_lr" and values == [pytest.approx(0.001), pytest.approx(2e-4)]
    assert all(isinstance(v, float) for v in values)


def test_yaml_floats_follow_yaml_1_2_and_nothing_else_changes():
    assert load_yaml("g_lr: 1e-3\nd_lr: 2E+2\nepochs: 12\nname: e3\nx: 1e\n") == {
        "g_lr": 0.001, "d_lr": 200.0, "epochs": 12, "name": "e3", "x": "1e"}
    with pytest.raises(GanConfigError, match="'g_lr' must be float"):
        GanConfig.from_dict({"g_lr": "fast"})
    with pytest.raises(GanConfigError, match="'g_lr' must be float"):
        GanConfig.from_dict({"g_lr": "nan"})


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("preset: default\nepochs: 1\n")
    return path


@pytest.mark.parametrize("kind", ["device", "folder", "fifo", "huge"])
def test_a_config_or_grid_that_is_not_a_small_regular_file_is_refused_in_one_line(tmp_path, kind):
    if kind == "device":
        path, words = "/dev/zero", "is a device"
    elif kind == "folder":
        path, words = str(tmp_path), "is a folder"
    elif kind == "fifo":
        path, words = str(tmp_path / "fifo"), "is a FIFO"
        os.mkfifo(path)
    else:
        path, words = str(tmp_path / "huge.yaml"), f"over the cap of {MAX_INPUT_BYTES}"
        with open(path, "wb") as handle:
            handle.truncate(MAX_INPUT_BYTES + 1)
    env = {**os.environ, "METGAN_DATA_DIR": str(tmp_path / "data")}
    for args in (["train", "--config", path, "--subset", "vases"],
                 ["search", "run", "--grid", path, "--subset", "vases", "--name", "s", "--dry-run"]):
        # a subprocess with a timeout: a FIFO read would hang this test for ever
        done = subprocess.run([sys.executable, "-m", "metgan", *args], capture_output=True, text=True,
                              timeout=60, env=env)
        assert done.returncode == 1, done.stderr
        assert done.stderr.count("\n") == 1 and words in done.stderr and "Traceback" not in done.stderr
    with pytest.raises(GanConfigError, match=words.replace("(", r"\(")):
        read_bounded_file(path, "grid file", error=GanConfigError)


def test_read_bounded_file_reads_a_small_file(config_file):
    assert read_bounded_file(config_file, "config file") == "preset: default\nepochs: 1\n"


@pytest.mark.parametrize(("setting", "words"), [
    ("height=100000", "'height' must be at most 1024"),
    ("noise_dim=99999", "'noise_dim' must be at most 4096"),
    ("seed=99999999999", "'seed' must be at most 2147483647"),
])
def test_train_refuses_a_huge_setting_before_reading_any_image(config_file, tmp_path, monkeypatch, setting, words):
    monkeypatch.setenv("METGAN_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(cli, ["train", "--config", str(config_file), "--subset", "vases", "--set", setting])
    assert result.exit_code == 1 and words in result.output
    assert result.output.count("\n") == 1 and isinstance(result.exception, SystemExit)


def test_the_plan_refuses_what_the_trial_would_fail_on_and_takes_any_float_spelling(db, settings):
    from metgan.images.subset import build_subset
    from tests.integration.test_subset import COLLECTION, add_image, insert_objects, portrait

    insert_objects(db, COLLECTION)
    for i, oid in enumerate([1, 2, 3]):
        add_image(db, settings, oid, portrait((40 * i, 90, 120)))
    build_subset("vases", {"size": "32x40"}, settings=settings, workers=1)
    runner = CliRunner()
    refused = runner.invoke(cli, ["search", "run", "--subset", "vases", "--name", "huge", "--dry-run",
                                  "--param", "noise_dim=64,100000"])
    assert refused.exit_code == 1 and "'noise_dim' must be at most 4096" in refused.output
    assert refused.output.count("\n") == 1
    planned = runner.invoke(cli, ["search", "run", "--subset", "vases", "--name", "lr", "--dry-run",
                                  "--param", "g_lr=1e-3,2e-4", "--param", "epochs=1", "--param", "batch_size=2"])
    assert planned.exit_code == 0, planned.output
    assert "2 trial(s)" in planned.output
