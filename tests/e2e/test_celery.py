"""Distributed: the CeleryExecutor with Redis at 127.0.0.1:6379 and PostgreSQL metadata, one
worker for the default queue and one for queue `gpu`. train_trial runs on the gpu worker only."""

import random
import socket

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
def celery_cluster(e2e, tmp_path_factory, pg_admin_url):
    if not redis_answers():
        pytest.fail("Redis does not answer at 127.0.0.1:6379 (.ci/run starts it)")
    metadata = create_database(pg_admin_url, prefix="airflow_celery")
    sqlalchemy_url = metadata.replace("postgresql://", "postgresql+psycopg2://", 1)
    redis_db = random.randint(1, 15)
    deployment = Deployment.create(tmp_path_factory.mktemp("celery"), {
        **e2e.env,
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
        deployment.wait_for_dag("gan_search")
        yield deployment
    finally:
        deployment.stop()
        drop_database(pg_admin_url, metadata)


def test_training_runs_on_the_gpu_queue_worker_and_the_rest_on_the_default_one(celery_cluster):
    run_id = "celery_1"
    celery_cluster.trigger("gan_search", {"search_name": "celery-search", "subset": "vases",
                                          "grid": {"loss": ["non-saturating", "hinge"]}, "base": TINY_BASE,
                                          "epochs": 1, "time_budget_s": 300}, run_id)
    assert celery_cluster.wait_for_run("gan_search", run_id, timeout=600) == "success", (
        celery_cluster.log("worker-gpu")[-3000:])
    instances = celery_cluster.task_instances("gan_search", run_id)
    where = {(ti["task_id"], ti["map_index"]): (ti["hostname"], ti["queue"]) for ti in instances}
    assert where[("train_trial", 0)] == ("worker-gpu", "gpu")
    assert where[("train_trial", 1)] == ("worker-gpu", "gpu")
    others = {key: value for key, value in where.items() if key[0] != "train_trial"}
    assert len(others) == 4  # plan_trials, render_gifs x2, publish_report
    assert set(others.values()) == {("worker-default", "default")}
