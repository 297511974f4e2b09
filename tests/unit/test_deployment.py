"""docker-compose.yml, Dockerfile and .env.example checked statically (no Docker engine here):
valid YAML, and every command, env var, pool, queue and path consistent with the code."""

import re
import tomllib

import pytest
import yaml

from metgan.config import VARIABLES
from tests.conftest import REPO

AIRFLOW_SERVICES = {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker", "airflow-worker-gpu"}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def _command(service) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def test_services_and_health_checks(compose):
    services = compose["services"]
    assert AIRFLOW_SERVICES | {"postgres", "redis"} <= set(services)
    for name in ("postgres", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-worker",
                 "airflow-worker-gpu"):
        assert "healthcheck" in services[name], name
    assert _command(services["airflow-apiserver"]) == "api-server"
    assert _command(services["airflow-scheduler"]) == "scheduler"
    assert _command(services["airflow-dag-processor"]) == "dag-processor"
    assert _command(services["airflow-triggerer"]) == "triggerer"


def test_env_vars_are_the_ones_metgan_and_airflow_read(compose):
    known = {v.name for v in VARIABLES}
    for name in AIRFLOW_SERVICES:
        env = compose["services"][name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379")
        metgan_vars = {k for k in env if k.startswith("METGAN_")}
        assert metgan_vars <= known, metgan_vars - known
        assert env["METGAN_DATABASE_URL"].startswith("postgresql://") and env["METGAN_DATABASE_URL"].endswith("/metgan")


def test_pools_and_queues_match_the_dags(compose, dagbag):
    init = _command(compose["services"]["airflow-init"])
    pools_created = set(re.findall(r"airflow pools set (\w+)", init))
    pools_used = {t.pool for d in dagbag.dags.values() for t in d.tasks} - {"default_pool"}
    assert pools_used == pools_created == {"met_api", "gpu"}
    assert "airflow db migrate" in init and "metgan db migrate" in init

    gpu_queues = {t.queue for d in dagbag.dags.values() for t in d.tasks if t.pool == "gpu"}
    other_queues = {t.queue for d in dagbag.dags.values() for t in d.tasks if t.pool != "gpu"}
    gpu_worker = _command(compose["services"]["airflow-worker-gpu"])
    cpu_worker = _command(compose["services"]["airflow-worker"])
    assert gpu_queues == {"gpu"} and "--queues gpu" in gpu_worker
    assert other_queues == {"default"} and "--queues default" in cpu_worker
    reservation = compose["services"]["airflow-worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert reservation["driver"] == "nvidia" and "gpu" in reservation["capabilities"]


def test_files_live_on_the_object_store_and_each_container_keeps_only_a_cache(compose):
    import json

    from metgan.config import Settings

    minio = compose["services"]["minio"]
    assert "healthcheck" in minio and minio["command"].startswith("server /data")
    assert "metgan storage check --create-bucket" in _command(compose["services"]["airflow-init"])
    for name in AIRFLOW_SERVICES:
        service = compose["services"][name]
        mounts = dict(v.split(":", 1)[::-1] for v in service["volumes"])
        env = service["environment"]
        settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("METGAN_") and "${" not in v})
        assert settings.data_store.is_remote and settings.results_store.is_remote, name
        assert settings.data_location.startswith("s3://metgan/") and settings.results_location.startswith("s3://metgan/")
        assert json.loads(env["METGAN_STORAGE_OPTIONS"])["endpoint_url"] == "http://minio:9000"
        assert env["AWS_ACCESS_KEY_ID"] == "${MINIO_ROOT_USER}" and env["AWS_SECRET_ACCESS_KEY"] == "${MINIO_ROOT_PASSWORD}"
        assert mounts[env["METGAN_CACHE_DIR"]] == "metgan-cache"
        assert mounts["/opt/airflow/dags"] == "./dags" and mounts["/opt/airflow/plugins"] == "./plugins"
        assert service["depends_on"]["minio"]["condition"] == "service_healthy"
    assert {"metgan-cache", "minio-data", "postgres-db"} <= set(compose["volumes"])


def test_every_interpolated_secret_is_in_env_example_without_a_real_value(compose):
    text = (REPO / "docker-compose.yml").read_text()
    required = set(re.findall(r"(?<!\$)\$\{(\w+)\}", text))
    example = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert required <= set(example), required - set(example)
    for secret in ("POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY",
                   "MINIO_ROOT_PASSWORD"):
        assert example[secret] == "change-me"


def test_dockerfile_matches_the_pinned_airflow_and_installs_metgan():
    dockerfile = (REPO / "Dockerfile").read_text()
    pyproject = (REPO / "pyproject.toml").read_text()
    airflow_pin = re.search(r'apache-airflow\[[^\]]*\]==([\d.]+)', pyproject).group(1)
    assert f"ARG AIRFLOW_VERSION={airflow_pin}" in dockerfile
    assert "FROM apache/airflow:${AIRFLOW_VERSION}-python3.11" in dockerfile
    # A regular install: the SQL installs as metgan.sql, so no source tree is needed at run time;
    # the build needs every folder a package comes from (pyproject's package-dir: sql/).
    assert re.search(r"-c requirements\.lock \. ", dockerfile) and " -e " not in dockerfile
    folders = set(tomllib.loads(pyproject)["tool"]["setuptools"]["package-dir"].values())
    assert "sql" in folders
    for copied in ("metgan", *sorted(folders), "requirements.lock", "pyproject.toml"):
        assert re.search(rf"COPY .*\b{re.escape(copied)}\b", dockerfile), copied
    assert 'TENSORFLOW}" = "cuda"' in dockerfile
