"""Random search and successive halving through the library and the CLI: the dry run's plan, a
halving search end to end, and a rung's retry resuming from the trial's checkpoint."""

import os
import subprocess
import sys

import pytest
from sqlalchemy import text

from metgan import trialdir
from metgan.db.searches import DbRecorder
from metgan.errors import GanConfigError
from metgan.gan import search
from metgan.gan.config import GanConfig
from metgan.gan.trial import run_trial
from tests.gan_support import TINY, make_subset

SMALL = {**TINY, "epochs": 3, "checkpoint_every": 1, "keep_checkpoints": 5}


@pytest.fixture
def subset(settings):
    make_subset(settings.subsets_dir / "vases", count=64)
    return "vases"


def metgan(*args):
    return subprocess.run([sys.executable, "-m", "metgan", *args], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ))


def test_the_dry_run_prints_the_halving_plan_against_the_full_grid_and_writes_nothing(settings, subset, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("strategy: halving\nfactor: 3\nmax_epochs: 9\nbase: {batch_size: 16}\n"
                    "grid: {g_lr: [0.0001, 0.0002, 0.0004], d_lr: [0.0001, 0.0002, 0.0004]}\n")
    out = metgan("search", "run", "--grid", str(grid), "--subset", subset, "--name", "plan", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "9 trial(s)" in out.stdout and "strategy halving (factor 3)" in out.stdout
    for line in ("rung 0: 9 trial(s) to epoch 1", "rung 1: 3 trial(s) to epoch 3", "rung 2: 1 trial(s) to epoch 9"):
        assert line in out.stdout, out.stdout
    # 9x1 + 3x(3-1) + 1x(9-3) = 21 epochs against 9x9; 64 images make 4 batches of 16 per epoch
    assert "total 21 epochs (26%) against 81 for the full grid; 1,344 training images against 5,184" in out.stdout
    assert not (settings.results_dir / "plan").exists()


@pytest.mark.parametrize("body, problem", [
    ("strategy: halving\ngrid: {epochs: [1, 3]}\n", "may not set 'epochs'"),
    ("strategy: random\nn_iter: 2\ngrid: {g_lr: {loguniform: [0, 1]}}\n", "loguniform needs low > 0"),
    ("grid: {g_lr: {loguniform: [1e-5, 1e-3]}}\n", "distributions are drawn from by strategy random"),
    ("strategy: halving\nfactor: 2\nmin_epochs: 1\nmax_epochs: 1024\ngrid: {seed: {randint: [0, 10000]}}\n"
     "n_iter: 200\n", "needs 8 rungs, more than the 6"),
    ("strategy: annealing\ngrid: {}\n", "strategy 'annealing' is not one of"),
])
def test_a_bad_strategy_is_refused_before_anything_trains(settings, subset, tmp_path, body, problem):
    grid = tmp_path / "grid.yaml"
    grid.write_text(body)
    out = metgan("search", "run", "--grid", str(grid), "--subset", subset, "--name", "bad")
    assert out.returncode != 0 and problem in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (settings.results_dir / "bad").exists()


def test_random_draws_plan_the_same_trials_for_the_same_seed(settings, subset):
    space = {"g_lr": {"loguniform": [1e-5, 1e-3]}, "batch_size": {"randint": [8, 32]}}
    first = search.plan_trials("r", space, subset=subset, base=SMALL, dry_run=True,
                               strategy={"strategy": "random", "n_iter": 5, "seed": 4})
    again = search.plan_trials("r", space, subset=subset, base=SMALL, dry_run=True,
                               strategy={"strategy": "random", "n_iter": 5, "seed": 4})
    other = search.plan_trials("r", space, subset=subset, base=SMALL, dry_run=True,
                               strategy={"strategy": "random", "n_iter": 5, "seed": 5})
    assert [t["trial_id"] for t in first] == [t["trial_id"] for t in again] != [t["trial_id"] for t in other]
    assert len(first) == 5 and all(t["until_epoch"] is None for t in first)
    with pytest.raises(GanConfigError, match="needs n_iter"):
        search.plan_trials("r", space, subset=subset, base=SMALL, dry_run=True, strategy={"strategy": "random"})


@pytest.mark.slow
def test_a_rungs_retry_resumes_from_the_checkpoint_and_repeats_no_epoch(db, settings, subset):
    grid = {"g_lr": [0.0002, 0.002, 0.00002]}
    plan = search.plan_search("retry", grid, subset=subset, base=SMALL, settings=settings,
                              strategy={"strategy": "halving", "factor": 3})
    assert plan["rungs"] == [{"rung": 0, "trials": 3, "epochs": 1}, {"rung": 1, "trials": 1, "epochs": 3}]
    for item in plan["trials"]:
        result = search.train_trial("retry", item["trial_id"], rung=0, until_epoch=1, settings=settings)
        assert result["status"] == "paused" and result["epochs"] == 1
    (survivor,) = search.promote("retry", 1, settings=settings)
    assert survivor["until_epoch"] == 3
    folder = settings.results_dir / "retry" / survivor["trial_id"]

    # The first try of rung 1 got through epoch 2 (checkpoint written) and its worker died.
    run_trial(folder, GanConfig.from_dict(trialdir.read_config(folder)), settings.subsets_dir / "vases",
              search_name="retry", trial_id=survivor["trial_id"], until_epoch=2,
              recorder=DbRecorder(db, "retry", survivor["trial_id"]))
    info = trialdir.read_trial_info(folder)
    trialdir.write_trial_info(folder, {**info, "status": "running"})
    before = trialdir.metrics_by_epoch(folder)
    assert sorted(before) == [1, 2] and trialdir.checkpoint_epochs(folder)[-1] == 2

    result = search.train_trial("retry", survivor["trial_id"], rung=1, until_epoch=3, settings=settings)
    assert result["status"] == "completed" and result["epochs"] == 3
    after = trialdir.metrics_by_epoch(folder)
    assert sorted(after) == [1, 2, 3] and after[1] == before[1] and after[2] == before[2]  # not retrained
    info = trialdir.read_trial_info(folder)
    assert info["images_seen"] == 3 * 64  # three epochs of 4 batches of 16: none trained twice
    assert [(r["rung"], r["epochs_done"], r["outcome"]) for r in info["rungs"]] == [(0, 1, "promoted"), (1, 3, None)]
    with db.connect() as conn:
        epochs = conn.execute(text("SELECT epoch FROM trial_epochs WHERE trial_id = :t ORDER BY epoch"),
                              {"t": survivor["trial_id"]}).scalars().all()
        statuses = conn.execute(text("SELECT status, count(*) FROM trials WHERE search_name = 'retry' "
                                     "GROUP BY status")).all()
    assert epochs == [1, 2, 3] and dict(statuses) == {"completed": 1, "pruned": 2}

    board = search.leaderboard("retry", settings=settings)
    assert board[0]["trial_id"] == survivor["trial_id"] and board[0]["strategy"] == "halving"
    assert [row["status"] for row in board] == ["completed", "pruned", "pruned"]
    summary = search.search_summary("retry", settings=settings)
    assert summary["images_spent"] == 3 * 64 + 2 * 64 and summary["full_grid_images"] == 3 * 3 * 64
    out = metgan("search", "status", "retry")
    assert out.returncode == 0, out.stderr
    assert "rungs: 1 ep: " in out.stdout and " promoted · 3 ep: " in out.stdout and "pruned" in out.stdout
    assert ("strategy halving: 3×1 epochs → 1×3 epochs; training images 320 of the full grid's 576 (56%)"
            in out.stdout), out.stdout
