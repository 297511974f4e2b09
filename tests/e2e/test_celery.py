"""Distributed: the CeleryExecutor with Redis at 127.0.0.1:6379 and PostgreSQL metadata, one
worker for the default queue and one for queue `gpu`. The pipeline runs as a user runs it
(met_ingest, then vase_subset, then gan_search, each triggered through the REST API), and each
step's outcome is checked: the subset a Celery worker built has images, and train_trial ran on
the gpu worker only."""

import csv
import json
import random
import socket
from types import SimpleNamespace

import psycopg2
import pytest

from tests.conftest import create_database, drop_database
from tests.e2e.cluster import Deployment
from tests.e2e.conftest import POOLS

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

TINY_BASE = {"height": 40, "width": 32, "g_blocks": 2, "g_filters": 32, "g_seed_filters": 32, "d_blocks": 2,
             "d_filters": 16, "batch_size": 16, "noise_dim": 32}


def redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="module")
def celery_cluster(metgan_store, tmp_path_factory, pg_admin_url):
    if not redis_answers():
        pytest.fail("Redis does not answer at 127.0.0.1:6379 (.ci/run starts it)")
    metadata = create_database(pg_admin_url, prefix="airflow_celery")
    sqlalchemy_url = metadata.replace("postgresql://", "postgresql+psycopg2://", 1)
    redis_db = random.randint(1, 15)
    deployment = Deployment.create(tmp_path_factory.mktemp("celery"), {
        **metgan_store.env,
        # vase_subset stays paused until its step: see test_airflow_standalone.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlalchemy_url,
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{redis_db}",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata,
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.e2e.cluster.worker_name",
    })
    deployment.prepare(POOLS)
    deployment.start("api-server", "api-server", "--port", str(deployment.port))
    deployment.start("scheduler", "scheduler")
    deployment.start("dag-processor", "dag-processor")
    deployment.start("worker-default", "celery", "worker", "--queues", "default", "--concurrency", "2",
                     "--celery-hostname", "default@%h", "--skip-serve-logs",
                     env={"E2E_WORKER_NAME": "worker-default"})
    deployment.start("worker-gpu", "celery", "worker", "--queues", "gpu", "--concurrency", "1",
                     "--celery-hostname", "gpu@%h", "--skip-serve-logs", env={"E2E_WORKER_NAME": "worker-gpu"})
    try:
        deployment.wait_healthy()
        for dag_id in ("met_ingest", "vase_subset", "gan_search"):
            deployment.wait_for_dag(dag_id)
        for dag_id in ("met_ingest", "gan_search"):
            deployment.set_paused(dag_id, False)
        yield deployment
    finally:
        deployment.stop()
        drop_database(pg_admin_url, metadata)


@pytest.fixture(scope="module")
def session():
    return SimpleNamespace()


def placement(cluster, dag_id: str, run_id: str) -> dict:
    """(task_id, map_index) -> (worker hostname, queue) of every task instance of the run."""
    return {(ti["task_id"], ti["map_index"]): (ti["hostname"], ti["queue"])
            for ti in cluster.task_instances(dag_id, run_id)}


def test_a_celery_worker_scrapes_and_builds_a_subset_with_images(celery_cluster, metgan_store, session):
    celery_cluster.trigger("met_ingest", {"mode": "search", "query": "vase", "limit": 40}, "celery_ingest")
    assert celery_cluster.wait_for_run("met_ingest", "celery_ingest", timeout=300) == "success", (
        celery_cluster.log("worker-default")[-3000:])
    with psycopg2.connect(metgan_store.url) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM met_images WHERE status = 'ok'")
        [(images,)] = cursor.fetchall()
    conn.close()
    assert images > 0

    celery_cluster.set_paused("vase_subset", False)
    try:
        celery_cluster.trigger("vase_subset", {"size": "32x40"}, "celery_subset")
        state = celery_cluster.wait_for_run("vase_subset", "celery_subset", timeout=300)
    finally:
        celery_cluster.set_paused("vase_subset", True)
    folder = metgan_store.data_dir / "subsets" / "vases"
    manifest = folder / "manifest.csv"
    rows = list(csv.DictReader(manifest.open())) if manifest.exists() else []
    assert len(rows) > 0, f"the subset a Celery worker built has no images (run {state})"
    assert all((folder / row["file"]).stat().st_size > 0 for row in rows)
    assert state == "success"
    assert placement(celery_cluster, "vase_subset", "celery_subset") == {
        ("build_subset", -1): ("worker-default", "default")}
    session.subset_images = len(rows)


def test_training_runs_on_the_gpu_queue_worker_and_the_rest_on_the_default_one(celery_cluster, metgan_store,
                                                                                session):
    assert getattr(session, "subset_images", 0) > 0, "needs the subset (the test before)"
    run_id = "celery_search"
    celery_cluster.trigger("gan_search", {"search_name": "celery-search", "subset": "vases",
                                          "grid": {"loss": ["non-saturating", "hinge"]}, "base": TINY_BASE,
                                          "epochs": 1, "budget_s": 600}, run_id)
    assert celery_cluster.wait_for_run("gan_search", run_id, timeout=600) == "success", (
        celery_cluster.log("worker-gpu")[-3000:])
    where = placement(celery_cluster, "gan_search", run_id)
    assert where[("train_trial", 0)] == ("worker-gpu", "gpu")
    assert where[("train_trial", 1)] == ("worker-gpu", "gpu")
    ran = {key: value for key, value in where.items() if value[0]}  # skipped halving stages reach no worker
    others = {key: value for key, value in ran.items() if not key[0].startswith("train_")}
    assert len(others) == 5  # plan_trials, halving.promote_rung_1 (a grid has one rung), render_gifs x2, publish_report
    assert set(others.values()) == {("worker-default", "default")}
    search_dir = metgan_store.results_dir / "celery-search"
    trials = [json.loads(path.read_text()) for path in sorted(search_dir.glob("*/trial.json"))]
    assert len(trials) == 2 and {trial["status"] for trial in trials} == {"completed"}, trials
