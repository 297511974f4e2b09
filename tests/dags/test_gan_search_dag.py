"""gan_search with dag.test(): a run whose plan fails, or whose trials all fail, is red, and red once."""

import json

import pytest

from tests.conftest import REPO
from tests.gan_support import make_subset

TINY_GAN = {"g_blocks": 2, "g_filters": 16, "g_seed_filters": 8, "d_blocks": 2, "d_filters": 8,
            "noise_dim": 16, "batch_size": 16, "swd_every": 1}


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags")).dags["gan_search"]


def _states(run) -> dict:
    return {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}


@pytest.mark.slow
def test_a_missing_subset_fails_plan_trials_and_nothing_else(airflow_db, db, settings, dag):
    make_subset(settings.subsets_dir / "vases", count=20)
    run = dag.test(run_conf={"search_name": "no-subset", "subset": "nosuch", "epochs": 1})
    states = _states(run)
    assert run.state == "failed"
    assert [key for key, state in states.items() if state == "failed"] == [("plan_trials", -1)], states
    assert states[("publish_report", -1)] == "upstream_failed", states
    assert not (settings.results_dir / "no-subset").exists()


@pytest.mark.slow
def test_a_search_whose_trials_all_failed_fails_its_run_after_writing_the_report(airflow_db, db, settings, dag,
                                                                                 monkeypatch):
    from metgan.errors import TrainingError
    from metgan.gan import data

    def out_of_memory(images, *, batch_size, **kwargs):  # valid configs that fail once training starts
        raise TrainingError(f"batch_size {batch_size} ran out of memory (injected)")

    monkeypatch.setattr(data, "training_dataset", out_of_memory)
    make_subset(settings.subsets_dir / "vases", count=20)
    run = dag.test(run_conf={"search_name": "all-fail", "subset": "vases", "grid": {"batch_size": [8, 16]},
                             "base": TINY_GAN, "epochs": 1, "budget_s": 600})
    states = _states(run)
    assert run.state == "failed"
    assert states[("train_trial", 0)] == states[("train_trial", 1)] == "failed", states
    assert states[("render_gifs", 0)] == states[("render_gifs", 1)] == "success", states
    assert states[("publish_report", -1)] == "failed", states

    search = settings.results_dir / "all-fail"
    record = json.loads((search / "search.json").read_text())
    assert record["airflow"] == {"dag_id": "gan_search", "run_id": run.run_id}
    assert record["base"]["height"] == 40 and record["base"]["width"] == 32  # the subset's size
    page = (search / "report.html").read_text()
    for trial_id in record["trials"]:
        info = json.loads((search / trial_id / "trial.json").read_text())
        assert info["status"] == "failed" and info["error_summary"].startswith("TrainingError: batch_size")
        assert info["error_summary"] in page
    assert "Traceback (most recent call last)" not in page


def test_every_param_is_submittable_with_its_default_and_names_use_the_one_pattern(dag):
    from metgan.names import NAME_PATTERN

    dag.params.validate()  # the defaults pass their own schemas
    for name, param in dag.params.items():
        schema = param.schema
        types = schema.get("type") if isinstance(schema.get("type"), list) else [schema.get("type")]
        # Airflow 3's form treats "" as a missing value and null as invalid unless the type allows it
        assert param.value != "", name
        assert param.value is not None or "null" in types, name
    assert dag.params.get_param("subset").schema["pattern"] == NAME_PATTERN
    assert dag.params.get_param("search_name").schema["pattern"] == NAME_PATTERN
    hint = dag.params.get_param("base").description
    assert '"height"' in hint and '"width"' in hint and "budget" in hint
