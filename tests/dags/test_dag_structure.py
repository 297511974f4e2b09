"""The DAG files parse fast, without import errors, and wire the tasks as designed."""

import subprocess
import sys

import pendulum
import pytest

from tests.conftest import REPO

DAGS = REPO / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS), known_pools={"default_pool", "met_api", "gpu"})


def test_no_import_errors_and_every_dag_present(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"met_ingest", "vase_subset", "gan_search", "gan_generate"}


def test_dags_folder_parses_in_under_two_seconds():
    code = ("import time, os; from airflow.dag_processing.dagbag import DagBag;"
            f"t = time.perf_counter(); bag = DagBag(dag_folder={str(DAGS)!r});"
            "assert not bag.import_errors, bag.import_errors; print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout.strip().splitlines()[-1]) < 2.0


def test_dag_files_import_neither_tensorflow_nor_the_database():
    code = ("import sys, runpy, glob;"
            f"[runpy.run_path(p) for p in glob.glob({str(DAGS)!r} + '/*.py')];"
            "print(sorted(m for m in ('tensorflow', 'keras', 'psycopg2', 'aiohttp') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def _edges(dag):
    return {(up, task.task_id) for task in dag.tasks for up in task.upstream_task_ids}


def test_met_ingest_wiring(dagbag):
    dag = dagbag.dags["met_ingest"]
    assert _edges(dag) == {
        ("import_csv", "discover_object_ids"),
        ("discover_object_ids", "fetch_records"),
        ("discover_object_ids", "download_images"),
        ("fetch_records", "download_images"),
        ("discover_object_ids", "summarize"),
        ("download_images", "summarize"),
    }
    # a skipped CSV import (no csv_source) must not skip the scrape after it
    assert dag.get_task("discover_object_ids").trigger_rule == "none_failed"
    assert dag.get_task("summarize").trigger_rule == "none_failed"
    for task_id in ("fetch_records", "download_images"):
        task = dag.get_task(task_id)
        assert task.pool == "met_api"
        assert task.retries >= 3 and task.retry_exponential_backoff == 2.0
    # unpausing it schedules the next 03:00 run, not one now that the user's own run would wait behind
    from airflow.timetables.base import TimeRestriction

    now = pendulum.now("UTC")
    first = dag.timetable.next_dagrun_info(last_automated_data_interval=None,
                                           restriction=TimeRestriction(earliest=dag.start_date, latest=None,
                                                                       catchup=False))
    assert first.run_after > now and first.run_after.hour == 3
    assert first.data_interval.end - first.data_interval.start == pendulum.duration(days=1)
    assert [o.uri for o in dag.get_task("summarize").outlets] == ["metgan://met/images"]
    assert set(dag.params.keys()) >= {"mode", "query", "department_ids", "limit", "batch_size",
                                      "additional_images"}


def test_vase_subset_runs_when_images_update(dagbag):
    dag = dagbag.dags["vase_subset"]
    assert [t.task_id for t in dag.tasks] == ["build_subset"]
    assert "metgan://met/images" in str(dag.timetable.asset_condition)


def test_gan_search_wiring(dagbag):
    from metgan.gan.strategy import MAX_RUNGS

    dag = dagbag.dags["gan_search"]
    # rung 0 is train_trial; each later rung a promotion then a mapped training of its survivors
    rungs = ["train_trial"] + [f"halving.train_rung_{rung}" for rung in range(1, MAX_RUNGS)]
    halving = {edge for rung in range(1, MAX_RUNGS)
               for edge in ((rungs[rung - 1], f"halving.promote_rung_{rung}"), (f"halving.promote_rung_{rung}", rungs[rung]))}
    assert _edges(dag) == {
        ("plan_trials", "train_trial"),
        ("plan_trials", "render_gifs"),
        (rungs[-1], "render_gifs"),
        ("render_gifs", "publish_report"),
        *halving,
    }
    for rung in range(1, MAX_RUNGS):
        # a failed trial is just not promoted; a rung with nothing trained skips the ones after it
        assert dag.get_task(f"halving.promote_rung_{rung}").trigger_rule == "all_done_min_one_success"
        task = dag.get_task(f"halving.train_rung_{rung}")
        assert task.pool == "gpu" and task.queue == "gpu" and task.retries == dag.get_task("train_trial").retries
    assert dag.params["strategy"] == "grid" and dag.params["factor"] == 3
    assert dag.get_task("render_gifs").trigger_rule == "all_done"
    # a failed plan leaves the report upstream_failed (one red task); a failed trial does not stop it
    assert dag.get_task("publish_report").trigger_rule == "all_done_min_one_success"
    train = dag.get_task("train_trial")
    assert train.pool == "gpu" and train.queue == "gpu"
    assert dag.get_task("plan_trials").queue != "gpu"
    assert dag.schedule is None


def test_gan_search_publishes_models_that_schedule_gan_generate(dagbag):
    outlets = dagbag.dags["gan_search"].get_task("publish_report").outlets
    assert [getattr(o, "name", None) for o in outlets] == ["metgan-models"]
    generate = dagbag.dags["gan_generate"]
    assert "metgan-models" in str(generate.timetable.asset_condition)
    assert [t.task_id for t in generate.tasks] == ["generate"]


def test_the_gan_search_form_defaults_are_the_command_lines(dagbag):
    # One request builder: the form left at its defaults asks what `metgan search run` asks with
    # the same grid (the form's default grid) and its default budget.
    from metgan.gan.request import SearchRequest

    form = dict(dagbag.dags["gan_search"].params.dump())
    grid = form["grid"]
    axes = tuple(f"{key}={','.join(map(str, values))}" for key, values in grid.items())
    cli = SearchRequest.from_command_line(form["search_name"], form["subset"], params=axes)
    assert SearchRequest.from_form(form) == cli


@pytest.mark.parametrize("now", ["2026-12-07T02:59:00", "2026-12-07T03:00:30", "2026-12-07T03:30:00",
                                 "2026-12-07T05:00:00", "2026-12-07T12:00:00"])
def test_unpausing_met_ingest_at_any_hour_schedules_nothing_before_the_next_3am(dagbag, monkeypatch, now):
    # A scheduled run queued on unpause would make the user's own run wait behind it
    # (max_active_runs=1); run_immediately=False did that from 03:00 to 05:24 UTC.
    import pendulum
    from airflow.timetables import trigger
    from airflow.timetables.base import TimeRestriction

    moment = pendulum.parse(now, tz="UTC")
    monkeypatch.setattr(trigger, "utcnow", lambda: moment)
    timetable = dagbag.dags["met_ingest"].timetable
    info = timetable.next_dagrun_info(last_automated_data_interval=None,
                                      restriction=TimeRestriction(earliest=None, latest=None, catchup=False))
    next_3am = moment.replace(hour=3, minute=0, second=0) if moment.hour < 3 else \
        moment.add(days=1).replace(hour=3, minute=0, second=0)
    assert info.run_after == next_3am, (now, info)
