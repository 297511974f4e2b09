"""Planning refuses what cannot work before anything trains: huge grids, names that are paths,
missing or empty subsets, an image size that is not the subset's; and the CLI says so in one line."""

import json
import os
import subprocess
import sys
import time
import tracemalloc

import pytest

from metgan.errors import GanConfigError
from metgan.gan import param_grid, search
from tests.conftest import REPO
from tests.gan_support import MANIFEST_HEADER, make_subset


def test_a_billion_combination_grid_is_refused_at_once_without_building_it():
    grid = {f"key{i}": list(range(10)) for i in range(9)}
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(GanConfigError, match=r"1,000,000,000 combinations, more than the limit of 1,024"):
        param_grid.expand_grid(grid)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert time.perf_counter() - started < 1 and peak < 1_000_000


def test_the_count_sums_the_products_of_each_part_and_the_limit_is_inclusive():
    assert param_grid.count_grid([{"a": [1, 2], "b": [1, 2, 3]}, {"c": [1, 2]}, {}]) == 9
    assert param_grid.count_grid({"g_lr": list(range(1024))}) == 1024
    with pytest.raises(GanConfigError, match="1,025 combinations"):
        param_grid.count_grid([{"g_lr": list(range(1024))}, {"loss": "hinge"}])


def test_plan_refuses_a_grid_over_the_limit_before_looking_at_anything_else(settings):
    with pytest.raises(GanConfigError, match="10,000 combinations"):
        search.plan_trials("big", {"seed": list(range(10_000))}, subset="nosuch", dry_run=True)


@pytest.mark.parametrize("name", ["../x", "../../outside/private", "/etc", "a/b", ".hidden", "a" * 300, ""])
def test_a_subset_name_that_is_not_one_plain_folder_name_is_refused(settings, name):
    outside = settings.data_dir / "outside"
    make_subset(outside / "private", count=4)
    with pytest.raises(GanConfigError, match="subset name") as error:
        search.plan_trials("escape", {}, subset=name, dry_run=True)
    assert len(str(error.value).splitlines()) == 1 and len(str(error.value)) < 250
    with pytest.raises(GanConfigError, match="subset name"):
        search.subset_folder(name)


def test_train_trial_trusts_the_subset_name_in_search_json_not_a_recorded_path(settings):
    make_subset(settings.subsets_dir / "vases", count=16, height=80, width=64)
    folder = settings.results_dir / "s"
    trial_dir = folder / "t1"
    trial_dir.mkdir(parents=True)
    (trial_dir / "config.json").write_text("{}")
    (folder / "search.json").write_text(json.dumps({"subset": "../outside", "subset_dir": "/etc"}))
    with pytest.raises(GanConfigError, match="subset name '../outside'"):
        search.train_trial("s", "t1", settings=settings)


def test_a_missing_subset_lists_the_subsets_that_exist(settings):
    make_subset(settings.subsets_dir / "vases", count=4)
    make_subset(settings.subsets_dir / "jars", count=4)
    with pytest.raises(GanConfigError, match=r"subset 'vase' does not exist .*existing subsets: jars, vases"):
        search.plan_trials("s", {}, subset="vase", dry_run=True)


def test_an_empty_subset_is_refused(settings):
    empty = settings.subsets_dir / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "manifest.csv").write_text(",".join(MANIFEST_HEADER) + "\n")  # a build that kept no image
    with pytest.raises(GanConfigError, match="subset 'empty' cannot be trained on: no training images"):
        search.plan_trials("s", {}, subset="empty", dry_run=True)


def test_the_image_size_comes_from_the_subset_unless_it_is_set_and_then_it_must_match(settings):
    make_subset(settings.subsets_dir / "tall", count=20, height=160, width=128)
    [trial] = search.plan_trials("s", {}, subset="tall", dry_run=True)
    config = dict(search.resolve_grid({}, {"height": 160, "width": 128})[0][1].to_dict())
    assert trial["trial_id"] == search.GanConfig.from_dict(config).trial_id()

    with pytest.raises(GanConfigError, match=r"trains at height 80, width 64 but subset 'tall' holds images "
                                             r"of height 160, width 128"):
        search.plan_trials("s", {"loss": ["hinge"]}, subset="tall", base={"height": 80, "width": 64}, dry_run=True)
    with pytest.raises(GanConfigError, match="trains at height 80"):
        search.plan_trials("s", {"height": [160, 80], "width": 128}, subset="tall", dry_run=True)
    assert len(search.plan_trials("s", {"height": [160]}, subset="tall", base={"width": 128}, dry_run=True)) == 1


def test_a_subset_smaller_than_one_batch_is_refused_when_planned_not_when_trained(settings):
    make_subset(settings.subsets_dir / "few", count=4, height=80, width=64)
    with pytest.raises(GanConfigError, match=r"trains batches of 16 but subset 'few' has 4 training images"):
        search.plan_trials("s", {"loss": ["hinge"]}, subset="few", dry_run=True)
    assert len(search.plan_trials("s", {}, subset="few", base={"batch_size": 4}, dry_run=True)) == 1


def _metgan(*args, tmp_path):
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "HOME": str(tmp_path),
           "METGAN_DATA_DIR": str(tmp_path / "data"), "METGAN_RESULTS_DIR": str(tmp_path / "results")}
    return subprocess.run([sys.executable, "-m", "metgan", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.fixture
def user_files(tmp_path):
    make_subset(tmp_path / "data" / "subsets" / "vases", count=4)
    (tmp_path / "config.yaml").write_text("epochs: 1\n")
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "base-list.yaml").write_text("grid: {loss: [hinge]}\nbase: [1, 2]\n")
    (tmp_path / "not-yaml.yaml").write_text("grid: [hinge\n")
    (tmp_path / "scalars.yaml").write_text("[1, 2]\n")
    (tmp_path / "unknown.yaml").write_text("grid: {loss: [hinge]}\nbasis: {}\n")
    return tmp_path


@pytest.mark.parametrize("args, words", [
    (["train", "--config", "{tmp}/config.yaml", "--subset", "vases", "--set", "epochs=[1"], "not a YAML scalar"),
    (["train", "--config", "{tmp}", "--subset", "vases"], "is a folder"),
    (["train", "--config", "{tmp}/binary.yaml", "--subset", "vases"], "is not a text file"),
    (["train", "--config", "{tmp}/config.yaml", "--subset", "../../outside/private"], "subset name"),
    (["train", "--config", "{tmp}/config.yaml", "--subset", "nosuch"], "existing subsets: vases"),
    (["search", "run", "--grid", "{tmp}/base-list.yaml", "--subset", "vases", "--name", "s", "--dry-run"],
     "'base' must be a mapping"),
    (["search", "run", "--grid", "{tmp}/not-yaml.yaml", "--subset", "vases", "--name", "s", "--dry-run"],
     "is not valid YAML/JSON"),
    (["search", "run", "--grid", "{tmp}/binary.yaml", "--subset", "vases", "--name", "s", "--dry-run"],
     "is not a text file"),
    (["search", "run", "--grid", "{tmp}/scalars.yaml", "--subset", "vases", "--name", "s", "--dry-run"],
     "a grid must be a dict of lists"),
    (["search", "run", "--grid", "{tmp}/unknown.yaml", "--subset", "vases", "--name", "s", "--dry-run"],
     "unknown top-level key 'basis'"),
    (["search", "run", "--subset", "../../outside/private", "--name", "s", "--dry-run"], "subset name"),
    (["search", "run", "--subset", "vases", "--name", "a" * 300, "--dry-run"], "search name"),
    (["search", "status", "a" * 300], "search name"),
    (["search", "run", "--subset", "vases", "--name", "s", "--dry-run", "--param", "seed=" + ",".join(
        map(str, range(2000)))], "2,000 combinations"),
])
def test_user_mistakes_exit_1_with_one_line_and_no_traceback(user_files, args, words):
    result = _metgan(*[a.replace("{tmp}", str(user_files)) for a in args], tmp_path=user_files)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and words in lines[0], result.stderr
    assert len(lines[0]) < 300
