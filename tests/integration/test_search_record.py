"""One record of a search: one trainer per trial (a PostgreSQL advisory lock across processes and
hosts), the true state after an interruption, and one ranking and label on every screen."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from metgan import trialdir
from metgan.db.searches import trial_lock
from metgan.gan import search, search_record
from tests.gan_support import TINY, make_subset
from tests.trialfolders import make_search

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def subset(settings):
    make_subset(settings.subsets_dir / "vases", count=64)
    return "vases"


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_rank_puts_a_later_rung_first_then_the_better_score_then_the_given_order():
    trials = [{"id": "none", "score": None, "rung": 2}, {"id": "low-rung", "score": 1.0, "rung": 0},
              {"id": "b", "score": 5.0, "rung": 1}, {"id": "a", "score": 3.0, "rung": 1},
              {"id": "tie", "score": 3.0, "rung": 1}]
    ranked = search_record.rank(trials, "min", score=lambda t: t["score"], rung=lambda t: t["rung"])
    assert [t["id"] for t in ranked] == ["a", "tie", "b", "low-rung", "none"]
    ranked = search_record.rank(trials, "max", score=lambda t: t["score"], rung=lambda t: t["rung"])
    assert [t["id"] for t in ranked] == ["b", "a", "tie", "low-rung", "none"]


def test_a_trial_held_by_another_process_is_skipped_and_its_holder_named(db, settings, subset):
    [item] = search.plan_trials("held", {}, subset=subset, base=TINY, settings=settings)
    trial_dir = settings.results_dir / "held" / item["trial_id"]
    with trial_lock(db, "held", item["trial_id"], "otherhost pid 4242") as got:
        assert got
        result = search.train_trial("held", item["trial_id"], settings=settings)
        assert result["status"] == "skipped" and result["held_by"] == "otherhost pid 4242"
        assert trialdir.read_trial_info(trial_dir)["status"] == "pending"
        assert not trialdir.read_metrics(trial_dir)

    from metgan.cli import cli

    args = ["search", "run", "--subset", subset, "--name", "held-cli",
            *[f"--param={key}={value}" for key, value in TINY.items()]]
    planned = CliRunner().invoke(cli, [*args, "--dry-run"])
    trial_id = planned.output.split()[0]
    with trial_lock(db, "held-cli", trial_id, "otherhost pid 4242"):
        out = CliRunner().invoke(cli, args)
        assert out.exit_code == 0, out.output
        assert f"skipped {trial_id}" in out.output and "otherhost pid 4242 is training it" in out.output
        status = CliRunner().invoke(cli, ["search", "status", "held-cli"])
        assert "pending" in status.output and "trained now by otherhost pid 4242" in status.output
    assert search_record.lock_holders("held-cli", [trial_id], settings, start_embedded=True) == {}


def test_a_running_trial_nobody_holds_reads_interrupted_and_status_records_it_in_folder_and_db(db, settings):
    folder = make_search(settings.results_dir / "killed", {
        "t1": {"epochs": 6, "epochs_done": 4, "status": "running", "label": "lr 1"},
        "t2": {"epochs": 6, "label": "lr 2"}})
    info = trialdir.read_trial_info(folder / "t1")
    trialdir.write_trial_info(folder / "t1", {**info, "epochs_done": 0, "pid": _dead_pid(),
                                              "hostname": socket.gethostname()})
    from metgan.db.searches import record_plan

    record_plan(db, "killed", subset="vases", grid={}, objective="swd", direction="min", path=str(folder),
                trials=[("t1", {}, str(folder / "t1")), ("t2", {}, str(folder / "t2"))])

    # a reader that does not write (the gallery, the report) sees it interrupted, with the epochs trained
    trial = search_record.read_trial(folder / "t1", holders={})
    assert trial.status == "interrupted" and trial.epochs_done == 4
    assert search_record.read_trial(folder / "t1").status == "interrupted"  # this host, its process gone
    with trial_lock(db, "killed", "t1", "otherhost pid 7"):
        held = search_record.read_trials(folder, holders=search_record.lock_holders(
            "killed", ["t1", "t2"], settings, start_embedded=True))
        assert held[0].status == "running" and held[0].holder == "otherhost pid 7"
        assert search_record.settle(folder, settings) == []  # held: left alone

    board = search.leaderboard("killed", settings=settings)
    assert {row["trial_id"]: row["status"] for row in board} == {"t1": "interrupted", "t2": "completed"}
    on_disk = trialdir.read_trial_info(folder / "t1")
    assert on_disk["status"] == "interrupted" and on_disk["epochs_done"] == 4
    with db.connect() as conn:
        row = conn.execute(text("SELECT status, epochs_done FROM trials WHERE trial_id = 't1'")).one()
    assert tuple(row) == ("interrupted", 4)


def test_sigterm_records_the_trial_interrupted_with_its_true_epochs_in_folder_and_db(db, settings, subset):
    config = {**TINY, "epochs": 6, "swd_every": 6, "checkpoint_every": 2}
    [item] = search.plan_trials("term", {}, subset=subset, base=config, settings=settings)
    trial_dir = settings.results_dir / "term" / item["trial_id"]
    code = f"from metgan.gan.search import train_trial; train_trial('term', {item['trial_id']!r})"
    process = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not trialdir.checkpoint_epochs(trial_dir):
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGTERM, stderr
    info = trialdir.read_trial_info(trial_dir)
    done = max(line["epoch"] for line in trialdir.read_metrics(trial_dir))
    assert info["status"] == "interrupted" and info["epochs_done"] == done >= 2, info
    assert "interrupted by SIGTERM" in info["stop_detail"]
    with db.connect() as conn:
        row = conn.execute(text("SELECT status, epochs_done FROM trials WHERE trial_id = :t"),
                           {"t": item["trial_id"]}).one()
    assert tuple(row) == ("interrupted", done)

    result = search.train_trial("term", item["trial_id"], settings=settings)
    assert result["status"] == "completed" and result["epochs"] == 6
    assert [line["epoch"] for line in trialdir.read_metrics(trial_dir)] == [1, 2, 3, 4, 5, 6]


def test_every_progress_epoch_is_in_trial_json_before_the_database(db, settings, subset):
    [item] = search.plan_trials("progress", {}, subset=subset, base=TINY, settings=settings)
    search.train_trial("progress", item["trial_id"], settings=settings)
    trial_dir = settings.results_dir / "progress" / item["trial_id"]
    info = trialdir.read_trial_info(trial_dir)
    with db.connect() as conn:
        row = conn.execute(text("SELECT status, epochs_done FROM trials WHERE trial_id = :t"),
                           {"t": item["trial_id"]}).one()
    assert tuple(row) == (info["status"], info["epochs_done"]) == ("completed", 2)
    assert info["pid"] == os.getpid() and info["images_seen"] > 0


def test_status_report_gallery_and_airflow_show_one_label_and_one_ranking(db, settings, subset, monkeypatch):
    from metgan.viz.report import publish_report

    monkeypatch.syspath_prepend(str(REPO / "plugins"))
    from metgan_gallery import searches

    grid = {"g_lr": [0.0001, 0.0002], "d_lr": [0.0002]}
    plan = search.plan_trials("same", grid, subset=subset, base=TINY, settings=settings)
    airflow_labels = {item["trial_id"]: item["label"] for item in plan}  # the DAG's map_index_template
    assert sorted(airflow_labels.values()) == ["g_lr=0.0001", "g_lr=0.0002"]
    folder = settings.results_dir / "same"
    # two trials with scores that rank the second planned first
    for swd, item in zip((30.0, 10.0), plan, strict=True):
        trial_dir = folder / item["trial_id"]
        info = trialdir.read_trial_info(trial_dir)
        trialdir.write_trial_info(trial_dir, {**info, "status": "completed", "epochs_done": 2})
        trialdir.write_metrics(trial_dir, [{"epoch": 1, "swd": swd * 2, "swd_real": 5.0},
                                           {"epoch": 2, "swd": swd, "swd_real": 5.0}])
    expected = [plan[1]["trial_id"], plan[0]["trial_id"]]

    board = search.leaderboard("same", settings=settings)
    assert [row["trial_id"] for row in board] == expected
    assert [row["label"] for row in board] == [airflow_labels[t] for t in expected]
    assert board[0]["verdict"] == "SWD 10 = 2.0x the data's floor (5): good: recognisable, softer than the data"

    from metgan.cli import cli

    status = CliRunner().invoke(cli, ["search", "status", "same"]).output
    assert status.index(expected[0]) < status.index(expected[1])
    assert f"{expected[0]}  completed" in status and airflow_labels[expected[0]] in status
    assert "SWD 10 = 2.0x the data's floor (5)" in status

    written = publish_report(folder, settings=settings)
    page = open(written["report"]).read()
    assert page.index(f'data-trial="{expected[0]}"') < page.index(f'data-trial="{expected[1]}"')
    rows = open(written["leaderboard"]).read().splitlines()[1:]
    assert [row.split(",")[1] for row in rows] == expected
    assert [row.split(",")[2] for row in rows] == [airflow_labels[t] for t in expected]

    [card_search] = searches(settings.results_dir)
    assert [card["label"] for card in card_search["trials"]] == [airflow_labels[t] for t in expected]
    assert "SWD 10 = 2.0x the data's floor (5)" in card_search["trials"][0]["best"]

    from metgan.gan.best import best_trial

    assert best_trial(folder) is None  # no trial has a best snapshot to generate from
    assert json.loads((folder / expected[0] / "trial.json").read_text())["label"] == airflow_labels[expected[0]]
