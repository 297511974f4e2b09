"""Two hosts that share nothing but PostgreSQL, Redis and an S3 server: the CeleryExecutor with
METGAN_DATA_DIR and METGAN_RESULTS_DIR on moto's S3 server (a real HTTP endpoint).

Each Celery worker runs in a mount namespace of its own (``unshare -m``) with a private tmpfs over
the cache folder every metgan process uses, so a file one worker writes reaches another only
through the object store, as on separate machines. The pipeline runs as a user runs it
(met_ingest, vase_subset, gan_search through the REST API): the subset is built by the default
queue's worker and trained on by a gpu worker; that gpu worker is killed (SIGKILL, the whole host)
after its trial's second checkpoint, and a second gpu worker on another "host" resumes the retry
from the last synced checkpoint; the gallery shows the result.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from metgan.storage import Store
from tests.conftest import create_database, drop_database
from tests.e2e.cluster import Deployment
from tests.e2e.conftest import POOLS
from tests.e2e.test_celery import TINY_BASE, redis_answers

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

HOST_CACHE = "/tmp/metgan-e2e-host-cache"  # every worker's METGAN_CACHE_DIR: a private tmpfs per worker
# ~26 vases, 3 steps an epoch: a fraction of a second each, so enough of them to kill the host mid-way
EPOCHS = 400


def own_host() -> list[str]:
    """The command prefix that runs a process as a host of its own: a new mount namespace where
    the cache folder is an empty tmpfs nobody else sees."""
    return ["unshare", "-m", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs metgan-host "$0" && exec "$@"', HOST_CACHE]


def namespaces_work() -> bool:
    try:
        return subprocess.run([*own_host(), "true"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def s3():
    pytest.importorskip("moto")
    from metgan.testing.s3server import s3_server

    with s3_server(bucket="two-hosts") as server:
        yield server


@pytest.fixture(scope="module")
def cluster(metgan_store, s3, tmp_path_factory, pg_admin_url):
    if not redis_answers():
        pytest.fail("Redis does not answer at 127.0.0.1:6379 (.ci/run starts it)")
    shutil.rmtree(HOST_CACHE, ignore_errors=True)
    os_cache = tmp_path_factory.mktemp("host-cache")  # the mount point must exist on the host
    subprocess.run(["mkdir", "-p", HOST_CACHE], check=True)
    if not namespaces_work():
        pytest.fail("unshare -m with a tmpfs mount does not work here (needs root or user namespaces)")
    metadata = create_database(pg_admin_url, prefix="airflow_hosts")
    redis_db = random.randint(1, 15)
    storage = {**metgan_store.env, **s3.env("e2e/data", "e2e/results"), "METGAN_CACHE_DIR": HOST_CACHE}
    deployment = Deployment.create(tmp_path_factory.mktemp("hosts"), {
        **storage,
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata.replace("postgresql://", "postgresql+psycopg2://", 1),
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{redis_db}",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata,
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.e2e.cluster.worker_name",
        # a host that dies stops heartbeating: its task is failed and retried within seconds
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "45",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    })
    deployment.prepare(POOLS)
    # the api-server (the gallery) is a third host with a cache of its own
    deployment.start("api-server", "api-server", "--port", str(deployment.port),
                     env={"METGAN_CACHE_DIR": str(os_cache)})
    deployment.start("scheduler", "scheduler")
    deployment.start("dag-processor", "dag-processor")
    worker = ["celery", "worker", "--skip-serve-logs"]
    deployment.start("host-a", *worker, "--queues", "default", "--concurrency", "2", "--celery-hostname",
                     "default@host-a", env={"E2E_WORKER_NAME": "host-a"}, wrap=own_host())
    deployment.start("host-b", *worker, "--queues", "gpu", "--concurrency", "1", "--celery-hostname",
                     "gpu@host-b", env={"E2E_WORKER_NAME": "host-b"}, wrap=own_host())
    try:
        deployment.wait_healthy()
        for dag_id in ("met_ingest", "vase_subset", "gan_search"):
            deployment.wait_for_dag(dag_id)
            deployment.set_paused(dag_id, False)
        yield deployment
    finally:
        deployment.stop()
        drop_database(pg_admin_url, metadata)


def store(s3, tmp_path, prefix: str) -> Store:
    """The test's own view of the store (a mirror of its own)."""
    return Store(f"s3://{s3.bucket}/e2e/{prefix}", tmp_path / f"view-{prefix}", dict(s3.options))


def tries(cluster, dag_id: str, run_id: str, task_id: str, map_index: int) -> list[tuple[int, str, str]]:
    body = cluster.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/"
                                  f"{map_index}/tries")
    return sorted((t["try_number"], t.get("hostname") or "", t["state"]) for t in body["task_instances"])


def test_two_hosts_share_the_pipeline_through_the_object_store(cluster, metgan_store, s3, tmp_path):
    # scrape and build on host A (the default queue)
    cluster.trigger("met_ingest", {"mode": "search", "query": "vase", "limit": 40}, "hosts_ingest")
    assert cluster.wait_for_run("met_ingest", "hosts_ingest", timeout=300) == "success", cluster.log("host-a")[-3000:]
    data = store(s3, tmp_path, "data")
    assert any(key.startswith("images/") for key in data.list("images")), "no image reached the store"
    cluster.trigger("vase_subset", {"size": "32x40"}, "hosts_subset")
    assert cluster.wait_for_run("vase_subset", "hosts_subset", timeout=300) == "success", cluster.log("host-a")[-3000:]
    manifest = list(csv.DictReader(io.StringIO(data.read_bytes("subsets/vases/manifest.csv").decode())))
    assert manifest and set(data.list("subsets/vases/images")) == {f"subsets/vases/{r['file']}" for r in manifest}
    assert {ti["hostname"] for ti in cluster.task_instances("vase_subset", "hosts_subset")} == {"host-a"}

    # train on host B; kill host B after the trial's second checkpoint
    base = {**TINY_BASE, "batch_size": 8, "checkpoint_every": 10, "swd_every": 100, "n_generated": 4}
    cluster.trigger("gan_search", {"search_name": "hosts", "subset": "vases", "grid": {"loss": ["hinge"]},
                                   "base": base, "epochs": EPOCHS, "budget_s": 1800}, "hosts_search")
    results = store(s3, tmp_path, "results")
    deadline = time.monotonic() + 400
    trial_key = None
    while time.monotonic() < deadline:
        keys = results.list("hosts")
        # any checkpoint from epoch 20 on (only the newest two are kept)
        checkpoints = [k for k in keys if re.search(r"/checkpoints/ckpt_(\d+)\.json$", k)
                       and int(re.search(r"ckpt_(\d+)", k)[1]) >= 20]
        if checkpoints:
            trial_key = checkpoints[0].split("/checkpoints/")[0]
            break
        time.sleep(0.5)
    assert trial_key, "host B never synced a second checkpoint:\n" + cluster.log("host-b")[-3000:]
    cluster.kill("host-b")
    synced = max(int(k.rsplit("_", 1)[1].split(".")[0]) for k in results.list(f"{trial_key}/checkpoints")
                 if k.endswith(".json"))
    before = [json.loads(line) for line in results.read_bytes(f"{trial_key}/metrics.jsonl").decode().splitlines()]
    assert synced < EPOCHS, "the trial finished before host B could be killed"
    cluster.start("host-c", "celery", "worker", "--skip-serve-logs", "--queues", "gpu", "--concurrency", "1",
                  "--celery-hostname", "gpu@host-c", env={"E2E_WORKER_NAME": "host-c"}, wrap=own_host())

    assert cluster.wait_for_run("gan_search", "hosts_search", timeout=900) == "success", (
        cluster.log("host-c")[-4000:])
    placed = tries(cluster, "gan_search", "hosts_search", "train_trial", 0)
    assert [host for _, host, _ in placed][0] == "host-b" and placed[-1][1:] == ("host-c", "success"), placed

    lines = [json.loads(line) for line in results.read_bytes(f"{trial_key}/metrics.jsonl").decode().splitlines()]
    assert [line["epoch"] for line in lines] == list(range(1, EPOCHS + 1)), "an epoch was lost or trained twice"
    kept = [line for line in lines if line["epoch"] <= synced]
    assert kept == [line for line in before if line["epoch"] <= synced], "epochs before the checkpoint were retrained"
    info = json.loads(results.read_bytes(f"{trial_key}/trial.json"))
    assert info["status"] == "completed" and info["epochs_done"] == EPOCHS
    log = cluster.task_log("gan_search", "hosts_search", "train_trial", 0, try_number=placed[-1][0])
    resumed = re.search(r"epochs (\d+)\.\.(\d+) of", log)
    assert resumed and int(resumed[1]) == synced + 1, log[-3000:]
    assert results.exists("hosts/report.html") and results.exists(f"{trial_key}/best/generator.keras")

    # the gallery (the api-server, a host of its own) shows the trial from the store
    page = gallery_page(cluster)
    assert f"hosts/{trial_key.split('/')[1]}/" in page, page[:2000]

    # nothing reached the host's own folder: every worker wrote into its private tmpfs
    assert list(Path(HOST_CACHE).rglob("*")) == []


def gallery_page(cluster) -> str:
    if cluster.token is None:
        cluster.token = cluster._login()
    request = urllib.request.Request(f"{cluster.url}/metgan/", headers={"Authorization": f"Bearer {cluster.token}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read().decode()
