"""vase_subset in a real Airflow worker (`airflow standalone`, LocalExecutor), through the REST API.

dag.test() runs the task in the test process; here it runs where users run it: a task process
under Airflow's supervisor, whose main script is .venv/bin/airflow and whose metadata database
access is blocked. The resize workers must come up there, and a build of nothing must be red.
"""

import csv

import pytest

from tests.conftest import create_database, drop_database
from tests.e2e.cluster import Deployment
from tests.e2e.conftest import POOLS

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def airflow(e2e, tmp_path_factory, pg_admin_url):
    metadata = create_database(pg_admin_url, prefix="airflow_e2e")
    deployment = Deployment.create(tmp_path_factory.mktemp("standalone-subset"), {
        **e2e.env, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata.replace("postgresql://", "postgresql+psycopg2://", 1),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor"})
    deployment.prepare(POOLS)
    deployment.start("standalone", "standalone")
    try:
        deployment.wait_healthy(components=("metadatabase", "scheduler", "dag_processor"))
        deployment.wait_for_dag("vase_subset")
        yield deployment
    finally:
        deployment.stop()
        drop_database(pg_admin_url, metadata)


def asset_events(airflow, run_id: str) -> list[dict]:
    body = airflow.request("GET", f"/api/v2/assets/events?source_dag_id=vase_subset&source_run_id={run_id}")
    return body["asset_events"]


def test_the_subset_is_built_in_a_worker_and_a_build_of_nothing_is_red(airflow, e2e):
    built = airflow.trigger("vase_subset", {"name": "worker-vases", "size": "32x40"}, "subset_in_worker")
    assert built["state"] == "queued"
    assert airflow.wait_for_run("vase_subset", "subset_in_worker") == "success"
    log = airflow.task_log("vase_subset", "subset_in_worker", "build_subset", -1)
    assert "images ready" in log and "Traceback" not in log and "could not start" not in log
    with open(e2e.settings.subsets_dir / "worker-vases" / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(e2e.settings.subsets_dir / "vases" / "manifest.csv", newline="") as handle:
        from_the_cli = list(csv.DictReader(handle))
    assert len(rows) == len(from_the_cli) >= 20           # the same images as the library build
    assert all((e2e.settings.subsets_dir / "worker-vases" / row["file"]).is_file() for row in rows)
    assert [e["uri"] for e in asset_events(airflow, "subset_in_worker")] == ["metgan://subsets/worker-vases"]

    airflow.trigger("vase_subset", {"name": "teapots", "include": ["teapot"]}, "subset_of_nothing")
    assert airflow.wait_for_run("vase_subset", "subset_of_nothing") == "failed"
    log = airflow.task_log("vase_subset", "subset_of_nothing", "build_subset", -1)
    assert "subset 'teapots': no object matches (include 'teapot'" in log
    assert asset_events(airflow, "subset_of_nothing") == []
