"""All three DAGs end to end with dag.test(): the fake Met over HTTP, a real PostgreSQL."""

import csv
import json

import pytest
from sqlalchemy import text

from metgan.gan.strategy import MAX_RUNGS
from tests.conftest import REPO, SHARED

pytestmark = pytest.mark.slow

TINY_GAN = {"height": 40, "width": 32, "g_blocks": 2, "g_filters": 32, "g_seed_filters": 32, "d_blocks": 2,
            "d_filters": 16, "batch_size": 16, "noise_dim": 32, "swd_every": 1}


@pytest.fixture
def fake_met_options():
    return {"objects": 160, "image_width": 160}


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags")).dags


def _run(dag, conf, failed=(), skipped=()):
    """Run ``dag`` with dag.test(); every task must succeed except the ``failed`` ones, which must
    fail, and the ``skipped`` ones, which must be skipped."""
    run = dag.test(run_conf=conf)
    states = {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}
    assert {key for key, state in states.items() if state != "success"} == {*failed, *skipped}, states
    assert all(states[key] == "failed" for key in failed), states
    assert all(states[key] == "skipped" for key in skipped), states
    return {(ti.task_id, ti.map_index): ti for ti in run.get_task_instances()}


def test_an_ingest_that_discovers_nothing_skips_its_csv_import_and_batches_and_closes_its_run(
        airflow_db, db, fake_met, dags):
    run = dags["met_ingest"].test(run_conf={"mode": "search", "query": "no object is called this"})
    states = {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}
    assert states == {("import_csv", -1): "skipped", ("discover_object_ids", -1): "success",
                      ("fetch_records", -1): "skipped", ("download_images", -1): "skipped",
                      ("summarize", -1): "skipped"}, states
    with db.connect() as conn:
        assert conn.execute(text("SELECT status, discovered FROM scrape_runs")).one() == ("success", 0)


def test_a_csv_bootstrap_then_a_targeted_scrape_of_its_vases(airflow_db, db, fake_met, settings):
    from airflow.dag_processing.dagbag import DagBag

    # a DAG of its own: dag.test() keeps a run's conf in the DAG's params, and this csv_source
    # must not reach the other tests' runs
    dag = DagBag(dag_folder=str(REPO / "dags" / "met_ingest.py")).dags["met_ingest"]
    sample = SHARED / "met-samples" / "csv" / "MetObjects_vase_rows_UTF8_CONVERTED.csv"
    if not sample.exists():
        pytest.skip(f"sample CSV {sample} is absent (../shared/met-samples not available)")
    with open(sample, encoding="utf-8-sig", newline="") as handle:
        header = next(csv.reader(handle))
    objects = fake_met.fake.collection.objects
    settings.import_dirs[0].mkdir(parents=True, exist_ok=True)
    with open(settings.import_dirs[0] / "MetObjects.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for object_id, item in objects.items():
            values = {"Object ID": str(object_id), "Object Name": item.record["objectName"],
                      "Title": item.record["title"], "Is Public Domain": str(item.record["isPublicDomain"])}
            writer.writerow([values.get(name, "") for name in header])

    tis = _run(dag, {"mode": "targeted", "csv_source": "MetObjects.csv", "batch_size": 10})
    assert tis[("import_csv", -1)].xcom_pull(task_ids="import_csv")["objects"] == len(objects)
    with db.connect() as conn:
        run = conn.execute(text("SELECT mode, status, discovered FROM scrape_runs")).one()
        targeted = conn.execute(text("SELECT object_id FROM scrape_run_items ORDER BY 1")).scalars().all()
        fetched = conn.execute(text("SELECT object_id FROM met_objects WHERE fetched_at IS NOT NULL "
                                    "ORDER BY 1")).scalars().all()
    assert tuple(run) == ("targeted", "success", len(targeted))
    assert 0 < len(targeted) < len(objects)
    assert all("vase" in objects[i].record["objectName"].lower() for i in targeted), "the vase selection"
    assert fetched == targeted, "only the subset's candidates were asked of the API"


def test_ingest_subset_and_search_end_to_end(airflow_db, db, fake_met, settings, dags, monkeypatch):
    truth = fake_met.fake.truth()

    # no csv_source: the import shows as skipped, and the scrape after it runs all the same
    tis = _run(dags["met_ingest"], {"mode": "search", "query": "vase", "limit": 60, "batch_size": 20},
               skipped=[("import_csv", -1)])
    assert sorted(map_index for task, map_index in tis if task == "fetch_records") == [0, 1, 2]
    assert tis[("fetch_records", 0)].rendered_map_index.startswith("objects ")
    with db.connect() as conn:
        objects = conn.execute(text("SELECT count(*) FROM met_objects")).scalar_one()
        images = conn.execute(text("SELECT object_id, seq, path FROM met_images WHERE status = 'ok'")).all()
        run = conn.execute(text("SELECT status, discovered FROM scrape_runs")).one()
    assert objects == 60 and run == ("success", 60)
    assert images and all((settings.images_dir / path).is_file() for _, _, path in images)
    assert len(truth) > 60

    tis = _run(dags["vase_subset"], {"name": "vases", "size": "32x40"})
    manifest = (settings.subsets_dir / "vases" / "manifest.csv").read_text().splitlines()
    assert manifest[0].startswith("file,sha256,object_id") and len(manifest) > 10
    with db.connect() as conn:
        built = conn.execute(text("SELECT count(*) FROM subset_images WHERE subset_name = 'vases' "
                                  "AND status = 'ok'")).scalar_one()
    assert built == len(manifest) - 1

    # Two trials that train, and one valid config that runs out of memory once training starts.
    from metgan.errors import TrainingError
    from metgan.gan import data

    real_dataset = data.training_dataset

    def out_of_memory_at_8(images, *, batch_size, **kwargs):
        if batch_size == 8:
            raise TrainingError("batch_size 8 ran out of memory (injected)")
        return real_dataset(images, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(data, "training_dataset", out_of_memory_at_8)
    grid = [{"loss": ["non-saturating", "hinge"]}, {"batch_size": [8]}]
    tis = _run(dags["gan_search"], {"search_name": "e2e", "subset": "vases", "grid": grid, "base": TINY_GAN,
                                    "epochs": 2, "budget_s": 600}, failed=[("train_trial", 2)],
               # a grid trains in one rung: halving's later stages have nothing to do and are skipped
               skipped=[(f"halving.train_rung_{r}", -1) for r in range(1, MAX_RUNGS)]
               + [(f"halving.promote_rung_{r}", -1) for r in range(2, MAX_RUNGS)])
    assert [tis[("train_trial", m)].rendered_map_index for m in (0, 1, 2)] == [
        "loss=non-saturating", "loss=hinge", "batch_size=8"]
    assert tis[("train_trial", 2)].try_number == 1  # a training failure is not retried
    with db.connect() as conn:
        trials = dict(conn.execute(text("SELECT trial_id, status FROM trials WHERE search_name = 'e2e'")).all())
        epochs = conn.execute(text("SELECT count(*) FROM trial_epochs WHERE search_name = 'e2e'")).scalar_one()
    assert sorted(trials.values()) == ["completed", "completed", "failed"]
    assert epochs == 4
    search = settings.results_dir / "e2e"
    for trial_id, status in trials.items():
        folder = search / trial_id
        info = json.loads((folder / "trial.json").read_text())
        assert info["status"] == status
        assert info["label"] in ("loss=non-saturating", "loss=hinge", "batch_size=8")  # the varying keys only
        assert (folder / "progress.gif").is_file()  # rendered whatever the outcome
        if status == "completed":
            for name in ("graph_expanding.gif", "graph_rolling.gif", "graph_static.gif",
                         "final_grid.png", "metrics.jsonl", "latents.npy"):
                assert (folder / name).is_file(), name
        else:
            assert info["error"]
    report = (search / "report.html").read_text()
    assert all(trial_id in report for trial_id in trials) and "failed" in report
    assert (search / "leaderboard.csv").is_file()
