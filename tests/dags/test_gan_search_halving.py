"""gan_search's successive halving through dag.test(): each rung a mapped train stage, the best
promoted, the rest pruned (with their GIFs and place in the report), empty stages skipped, and a
rerun that trains nothing."""

import html
import json

import pytest
from sqlalchemy import text

from metgan.gan.strategy import MAX_RUNGS
from tests.conftest import REPO
from tests.gan_support import make_subset

TINY_GAN = {"g_blocks": 2, "g_filters": 16, "g_seed_filters": 8, "d_blocks": 2, "d_filters": 8,
            "noise_dim": 16, "batch_size": 16, "swd_every": 1, "n_samples": 4, "n_generated": 4}


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags")).dags["gan_search"]


def _states(run) -> dict:
    return {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}


def _files(folder) -> dict:
    """Every trained file's bytes (metrics, checkpoints, samples): a retrain would change them."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and (p.name == "metrics.jsonl" or "checkpoints" in p.parts or "samples" in p.parts)}


@pytest.mark.slow
def test_a_halving_search_promotes_the_best_prunes_the_rest_and_a_rerun_trains_nothing(
        airflow_db, db, settings, dag):
    make_subset(settings.subsets_dir / "vases", count=20)
    conf = {"search_name": "halve", "subset": "vases", "grid": {"g_lr": [0.0002, 0.002, 0.00002]},
            "base": TINY_GAN, "epochs": 3, "budget_s": 1200, "strategy": "halving", "factor": 3}
    run = dag.test(run_conf=conf)
    states = _states(run)
    assert run.state == "success", states
    assert [states[("train_trial", i)] for i in range(3)] == ["success"] * 3
    assert states[("halving.promote_rung_1", -1)] == "success" and states[("halving.train_rung_1", 0)] == "success"
    assert ("halving.train_rung_1", 1) not in states
    # rung 2 has nothing to train: its mapped stage over an empty list is skipped, not failed
    assert states[("halving.promote_rung_2", -1)] == "success"
    for rung in range(2, MAX_RUNGS):
        assert states[(f"halving.train_rung_{rung}", -1)] == "skipped", states
    assert all(states[(f"halving.promote_rung_{rung}", -1)] == "skipped" for rung in range(3, MAX_RUNGS)), states
    assert states[("publish_report", -1)] == "success"

    folder = settings.results_dir / "halve"
    search = json.loads((folder / "search.json").read_text())
    assert search["strategy"]["strategy"] == "halving"
    assert search["rungs"] == [{"rung": 0, "trials": 3, "epochs": 1}, {"rung": 1, "trials": 1, "epochs": 3}]
    infos = {t: json.loads((folder / t / "trial.json").read_text()) for t in search["trials"]}
    scores = {t: info["rungs"][0]["score"] for t, info in infos.items()}
    best = min(scores, key=scores.get)
    assert infos[best]["status"] == "completed" and infos[best]["epochs_done"] == 3
    assert [(r["rung"], r["epochs_done"], r["outcome"]) for r in infos[best]["rungs"]] == [
        (0, 1, "promoted"), (1, 3, None)]
    lines = [json.loads(line) for line in (folder / best / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3]  # resumed after epoch 1, not retrained
    for trial_id in set(infos) - {best}:
        info = infos[trial_id]
        assert info["status"] == "pruned" and info["rung"] == 0 and info["epochs_done"] == 1
        assert info["pruned_score"] == scores[trial_id] > scores[best]
        assert (folder / trial_id / "progress.gif").stat().st_size > 0  # keeps its GIFs
    with db.connect() as conn:
        rows = dict(conn.execute(text("SELECT trial_id, status FROM trials WHERE search_name = 'halve'")).all())
        strategy = conn.execute(text("SELECT strategy->>'strategy' FROM searches WHERE name = 'halve'")).scalar()
    assert rows == {t: info["status"] for t, info in infos.items()} and strategy == "halving"
    page = (folder / "report.html").read_text()
    assert "Strategy halving" in page and page.count("Pruned at rung 0") >= 2 and all(t in page for t in infos)
    spent = sum(info["images_seen"] for info in infos.values())
    assert spent == (3 * 1 + 1 * 2) * 16  # 20 vases make one batch of 16 an epoch; the survivor resumed
    assert f"training images {spent:,} of the full grid's {3 * 3 * 16:,} (56%)" in html.unescape(page)
    board = (folder / "leaderboard.csv").read_text().splitlines()
    assert board[0].endswith(",rung,rungs,images_seen") and board[1].split(",")[1] == best
    assert "1: " in page and "promoted" in page  # the rung history column

    before = _files(folder)
    rerun = dag.test(run_conf=conf)
    assert rerun.state == "success"
    assert _files(folder) == before  # nothing retrained: same metrics, checkpoints and samples
    again = {t: json.loads((folder / t / "trial.json").read_text()) for t in infos}
    assert {t: (i["status"], i["rungs"]) for t, i in again.items()} == {
        t: (i["status"], i["rungs"]) for t, i in infos.items()}  # the same decisions, the same history
