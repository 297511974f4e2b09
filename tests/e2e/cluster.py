"""Real Airflow deployments for end-to-end tests: processes in their own session, a REST client.

``Deployment`` starts Airflow components as subprocesses (``airflow standalone``, or api-server,
scheduler, dag-processor and Celery workers separately), waits for the health endpoint, talks
to the public REST API with a JWT, and stops everything by signalling the process group.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from metgan.demo import stop_process_groups

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _namespace_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker_name() -> str:
    """Hostname callable for Celery workers: each worker in a test says which one it is."""
    return os.environ.get("E2E_WORKER_NAME", socket.getfqdn())


@dataclass
class Deployment:
    home: Path
    env: dict
    port: int
    processes: list = field(default_factory=list)
    token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def create(cls, home: Path, extra_env: dict | None = None) -> Deployment:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update({
            "PATH": f"{BIN}:{env.get('PATH', '')}",
            "PYTHONPATH": str(REPO),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": "e2e-jwt-secret-not-for-production",
            "AIRFLOW__API__SECRET_KEY": "e2e-api-secret-not-for-production",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        })
        env.update(extra_env or {})
        home.mkdir(parents=True, exist_ok=True)
        return cls(home=home, env=env, port=port)

    def prepare(self, pools: dict[str, int]) -> None:
        """Migrate Airflow's metadata database and create the pools the DAGs use (before start)."""
        self.airflow("db", "migrate")
        for pool, slots in pools.items():
            self.airflow("pools", "set", pool, str(slots), f"{pool} (e2e)")

    def airflow(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run([str(BIN / "airflow"), *args], env=self.env, capture_output=True,
                                text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result.stdout

    def start(self, name: str, *args: str, env: dict | None = None, wrap: list[str] | None = None) -> None:
        """Start ``airflow *args`` as component ``name``; ``wrap`` is a command line it runs under
        (``unshare ...``: a host of its own)."""
        log = open(self.home / f"{name}.log", "w")
        process = subprocess.Popen([*(wrap or []), str(BIN / "airflow"), *args], env={**self.env, **(env or {})},
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   cwd=str(REPO))
        self.processes.append((name, process))

    def wait_healthy(self, timeout: float = 180, components=("metadatabase", "scheduler")) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log(name)[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as response:
                    health = json.loads(response.read())
                if all(health.get(c, {}).get("status") == "healthy" for c in components):
                    return
            except (OSError, ValueError):
                pass
            time.sleep(1)
        raise TimeoutError(f"Airflow not healthy after {timeout}s:\n" +
                           "\n".join(f"--- {n}\n{self.log(n)[-2000:]}" for n, _ in self.processes))

    def log(self, name: str) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        # a component in a mount namespace of its own ("a host") goes with everything in it: a
        # Celery worker renames itself and its task runners leave its process group
        for name, process in self.processes:
            if process.poll() is None and _namespace_of(process.pid) != _namespace_of(os.getpid()):
                self.kill(name)
        stop_process_groups([process for _, process in self.processes])

    def kill(self, name: str) -> None:
        """SIGKILL component ``name`` and everything it started (a host that dies): its process
        group, and when it runs in a mount namespace of its own, every process in that namespace
        (Airflow's task runner leaves the worker's process group, so a group kill alone would
        leave the task training on)."""
        import signal

        for found, process in self.processes:
            if found != name or process.poll() is not None:
                continue
            namespace = os.readlink(f"/proc/{process.pid}/ns/mnt")
            members = [int(pid) for pid in os.listdir("/proc") if pid.isdigit()
                       and _namespace_of(int(pid)) == namespace] if namespace != _namespace_of(os.getpid()) else []
            os.killpg(process.pid, signal.SIGKILL)
            for pid in members:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            process.wait(timeout=30)

    def admin_password(self) -> str:
        generated = self.home / "simple_auth_manager_passwords.json.generated"
        deadline = time.monotonic() + 60
        while not generated.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        return json.loads(generated.read_text())["admin"]

    # --- REST API v2 -----------------------------------------------------------------------
    def request(self, method: str, path: str, body: dict | None = None, accept="application/json"):
        if self.token is None:
            self.token = self._login()
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json", "Accept": accept})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path} -> {exc.code}: {exc.read()[:2000]!r}") from exc

    def _login(self) -> str:
        body = json.dumps({"username": "admin", "password": self.admin_password()}).encode()
        request = urllib.request.Request(f"{self.url}/auth/token", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["access_token"]

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dags = self.request("GET", f"/api/v2/dags?dag_id_pattern={dag_id}")["dags"]
            if any(d["dag_id"] == dag_id for d in dags):
                return
            time.sleep(1)
        raise TimeoutError(f"DAG {dag_id} not parsed within {timeout}s")

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict, run_id: str) -> dict:
        return self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                            {"dag_run_id": run_id, "logical_date": None, "conf": conf})

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        """The run's final state (success or failed); ``run_id`` URL-quoted."""
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(2)
        raise TimeoutError(f"{dag_id}/{run_id} still {state} after {timeout}s")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")["task_instances"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int = 1) -> str:
        body = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/"
                                   f"{try_number}?map_index={map_index}&full_content=true")
        content = body["content"]
        return "\n".join(json.dumps(line) if isinstance(line, dict) else str(line) for line in content)
