"""``make demo`` and ``make up``: the pipeline through Airflow on embedded defaults.

``make demo`` starts the fake Met server (unless ``METGAN_MET_API_URL`` points elsewhere, e.g. at
the real Met), then runs each DAG with ``airflow dags test``, in order: ``met_ingest`` (a search
for vases), ``vase_subset`` (a small subset), ``gan_search`` (a tiny grid), and prints where the
GIFs and the report are. With the fake Met, data, results and Airflow's home live under
``.demo/`` so the fake collection never mixes with a real one.

``make up`` runs ``airflow standalone`` with the project's DAGs and plugin, the pools created and
metgan's migrations applied, unpauses the DAGs a first session uses (not met_ingest: see
``KEPT_PAUSED``), prints the URL, login and a first-session guide, and stops the whole process
group on Ctrl-C.

What a command starts, it stops: both stop the embedded PostgreSQL at the end (and on failure or
Ctrl-C) when they started it, and leave it running, saying so, when it was running before.

This module drives Airflow through its command line only: importing it imports no Airflow.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
POOLS = {"met_api": ("METGAN_MET_WORKERS", 4, "Met API: slots x (METGAN_MET_RATE / METGAN_MET_WORKERS) bounds the rate"),
         "gpu": (None, 1, "one slot per GPU")}

# The demo runs the first session's defaults (met_ingest's search for vases, vase_subset and
# gan_search as their forms come), with one difference: half the search's default time budget, so
# the whole demo ends in about 5 minutes.
DEMO_SEARCH_BUDGET_S = 240
FIRST_SESSION_SCRAPE = {"mode": "search", "query": "vase"}

# Unpausing starts no run for these: vase_subset waits for the images asset, gan_search has no
# schedule, gan_generate waits for a search's model asset. met_ingest stays paused until the user
# triggers it (the form unpauses it): then its daily incremental scrape starts at the next 03:00 UTC.
FIRST_SESSION_DAGS = ("vase_subset", "gan_search", "gan_generate")
KEPT_PAUSED = "met_ingest"


def interrupt_on_termination() -> None:
    """Make SIGTERM and SIGHUP (a `kill`, a closed terminal) unwind like Ctrl-C, so the cleanup in
    ``finally`` still stops what this command started."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)


def _say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def airflow_env(home: Path) -> dict:
    env = dict(os.environ)
    env.update({
        "PATH": f"{BIN}:{env.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    })
    # Airflow's default of 32 LocalExecutor worker processes took 5.5 GB on a 2-core machine; two
    # per core keeps the met_api pool's four slots busy. A value the user exported wins.
    env.setdefault("AIRFLOW__CORE__PARALLELISM", str(local_parallelism()))
    return env


def local_parallelism() -> int:
    """Task slots for ``make up``'s LocalExecutor on this machine: two per core, at least four."""
    return max(4, 2 * (os.cpu_count() or 1))


def run(args: list[str], env: dict, **kwargs) -> subprocess.CompletedProcess:
    print("$", " ".join(args), flush=True)
    return subprocess.run(args, env=env, check=True, cwd=REPO, **kwargs)


def prepare(env: dict) -> None:
    """metgan's migrations, Airflow's metadata database and the pools the DAGs use."""
    run([str(BIN / "metgan"), "db", "migrate"], env)
    run([str(BIN / "airflow"), "db", "migrate"], env, stdout=subprocess.DEVNULL)
    for pool, (variable, default, description) in POOLS.items():
        slots = str(env.get(variable, default)) if variable else str(default)
        run([str(BIN / "airflow"), "pools", "set", pool, slots, description], env, stdout=subprocess.DEVNULL)


@dataclass(frozen=True)
class EmbeddedServer:
    """Whether the pipeline uses the embedded PostgreSQL, and whether it ran before we began."""

    data_dir: Path | None  # None: METGAN_DATABASE_URL names another server
    was_running: bool


def embedded_before(env: dict) -> EmbeddedServer:
    """Note, before a command starts anything, whether its embedded server is already running."""
    from metgan.config import Settings
    from metgan.db import embedded

    settings = Settings.from_env(env)
    if settings.database_url:
        return EmbeddedServer(None, False)
    return EmbeddedServer(settings.data_dir, embedded.is_running(settings.data_dir))


def release(server: EmbeddedServer) -> str:
    """Stop the embedded server if this command started it; say what happened either way."""
    from metgan.db import embedded

    if server.data_dir is None:
        return "database: METGAN_DATABASE_URL's server (not started or stopped by this command)"
    if server.was_running:
        return ("database: the embedded PostgreSQL was running before and is left running "
                "(`metgan db stop` stops it)")
    if embedded.stop_server(server.data_dir):
        return (f"database: stopped the embedded PostgreSQL this command started (data kept in "
                f"{embedded.pgdata_dir(server.data_dir)}; any metgan command starts it again)")
    return "database: the embedded PostgreSQL is not running"


def task_results(output: str, width: int = 300) -> str:
    """What each task of an ``airflow dags test`` returned, one line each, from its output: the
    rest is Airflow's own bookkeeping (and, for assets an alias creates, its "AssetModel ... not
    found"/"inactive" warnings, which apache/airflow#48565 made harmless)."""
    lines, task = [], None
    for line in output.splitlines():
        if "[DAG TEST] starting task_id=" in line:
            task = line.split("task_id=", 1)[1].split()[0]
            index = line.split("map_index=", 1)[1].split()[0] if "map_index=" in line else "-1"
            task += f"[{index}]" if index != "-1" else ""
        elif "Returned value was:" in line and task:
            value = line.split("Returned value was:", 1)[1].split(" [airflow.", 1)[0].strip()
            lines.append(f"  {task}: {value[:width]}{'...' if len(value) > width else ''}")
    return "\n".join(lines)


def dag_test(dag_id: str, conf: dict, env: dict) -> None:
    _say(f"airflow dags test {dag_id}")
    started = time.monotonic()
    result = subprocess.run([str(BIN / "airflow"), "dags", "test", dag_id, "-c", json.dumps(conf)],
                            env=env, cwd=REPO, capture_output=True, text=True)
    output = result.stdout + result.stderr
    failed = result.returncode != 0 or "state=failed" in output or "DagRunState.FAILED" in output
    print("\n".join(output.splitlines()[-30:]) if failed else task_results(output))
    log = Path(env["AIRFLOW_HOME"]) / f"{dag_id}.demo.log"
    log.write_text(output)
    if failed:
        raise SystemExit(f"{dag_id} failed; its full output is in {log}")
    print(f"{dag_id}: done in {time.monotonic() - started:.0f} s (full output: {log})", flush=True)


def demo(args: argparse.Namespace) -> int:
    fake = None
    if "METGAN_MET_API_URL" not in os.environ:
        from metgan.testing.fakemet import run_in_thread

        os.environ.setdefault("METGAN_DATA_DIR", str(REPO / ".demo" / "data"))
        os.environ.setdefault("METGAN_RESULTS_DIR", str(REPO / ".demo" / "results"))
        fake = run_in_thread(seed=args.seed, objects=args.objects)
        os.environ["METGAN_MET_API_URL"] = fake.url
        os.environ["METGAN_IMAGE_HOSTS"] = fake.image_host
        _say(f"fake Met serving {args.objects} objects at {fake.url}")
    from metgan.config import get_settings

    settings = get_settings()
    env = airflow_env(REPO / ".demo" / "airflow")
    server = embedded_before(env)
    started = time.monotonic()
    try:
        prepare(env)
        first_session(env, objects=args.objects, search={"search_name": "demo", "budget_s": args.budget_s})
        dag_test("gan_generate", {"search_name": "demo", "n": 16}, env)
    finally:
        if fake is not None:
            fake.stop()
        stopped = release(server)
        print(stopped, flush=True)
    search = settings.results_dir / "demo"
    _say(f"the pipeline ran end to end in {time.monotonic() - started:.0f} s")
    print(f"report and gallery: {search / 'report.html'}")
    for gif in sorted(search.glob("*/progress.gif")):
        print(f"progress GIF:       {gif}")
    print(f"subset:             {settings.subsets_dir / 'vases'}")
    print_best_model(search)
    return 0


def first_session(env: dict, *, objects: int, search: dict) -> dict[str, float]:
    """README's first session through Airflow: scrape the vases, build the subset and search, every
    form at its defaults except ``search``'s keys. Returns each DAG's wall time in seconds."""
    timings = {}
    for dag_id, conf in (("met_ingest", {**FIRST_SESSION_SCRAPE, "limit": objects}), ("vase_subset", {}),
                         ("gan_search", search)):
        started = time.monotonic()
        dag_test(dag_id, conf, env)
        timings[dag_id] = time.monotonic() - started
    return timings


def print_best_model(search: Path) -> None:
    """The best trial's score against the data's floor, its exported model, the newest generated
    contact sheet, and its latent walk."""
    from metgan import trialdir
    from metgan.gan import search_record

    best = search_record.best_trial(search)
    if best is None:
        print("no trial has a best snapshot: nothing exported")
        return
    trial_id, record = best
    ranked = {trial.trial_id: trial for trial in search_record.ranked_trials(search)}
    if trial_id in ranked:
        trial = ranked[trial_id]
        fitted = trial.info.get("fitted")
        size = f", trained at {fitted['width']}x{fitted['height']}" if fitted else ""
        print(f"best trial:         {trial.label} (epoch {trial.score_epoch}{size}): {trial.describe()}")
    print(f"best model:         {trialdir.best_generator_path(search / trial_id)} "
          f"(trial {trial_id}, best at epoch {record.get('epoch')})")
    for folder in reversed(trialdir.generation_folders(search)):
        print(f"contact sheet:      {folder / trialdir.CONTACT_SHEET}")
        break
    for name in (trialdir.WALK_GIF, trialdir.WALK_FRAMES):
        if (search / trial_id / name).exists():
            print(f"{'walk:' if name == trialdir.WALK_GIF else 'walk frames:':<20}{search / trial_id / name}")


def met_line(url: str, *, fake: bool, timeout: float = 5.0) -> str:
    """Which Met ``make up`` scrapes and, for a real one, whether it answers from here: offline,
    met_ingest's discovery would fail only after its retries."""
    if fake:
        return f"scraping the fake Met at {url} (a local collection for a first session)"
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/departments", timeout=timeout):
            return f"scraping the Met at {url}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return (f"scraping the Met at {url}, which does not answer from here ({reason}): met_ingest will fail. "
                "For a first session without it: make up FAKE_MET=1")


def up(args: argparse.Namespace) -> int:
    home = REPO / ".airflow"
    fake = None
    if args.fake_met:
        from metgan.testing.fakemet import run_in_thread

        fake = run_in_thread(seed=args.seed, objects=args.objects)
        os.environ["METGAN_MET_API_URL"] = fake.url
        os.environ["METGAN_IMAGE_HOSTS"] = fake.image_host
    env = airflow_env(home)
    env.setdefault("AIRFLOW__API__PORT", str(args.port))
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = "admin:admin"
    server = embedded_before(env)
    try:
        prepare(env)
    except BaseException:
        print(release(server), flush=True)
        raise
    from metgan.config import Settings

    _say(met_line(Settings.from_env(env).met_api_url, fake=fake is not None))
    log_path = home / "standalone.log"
    _say(f"starting airflow standalone (log: {log_path})")
    with open(log_path, "w") as log:
        process = subprocess.Popen([str(BIN / "airflow"), "standalone"], env=env, cwd=REPO, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://localhost:{env['AIRFLOW__API__PORT']}"
        while not _healthy(url):
            if process.poll() is not None:
                raise SystemExit(f"airflow standalone exited; see {log_path}")
            time.sleep(1)
        passwords = home / "simple_auth_manager_passwords.json.generated"
        password = json.loads(passwords.read_text())["admin"] if passwords.exists() else "(see the log)"
        unpaused = unpause_first_session_dags(env)
        _say(f"Airflow is up: {url}  user admin, password {password}")
        print(first_session_guide(url, unpaused), flush=True)
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_process_groups([process])
        if fake is not None:
            fake.stop()
        print(release(server), flush=True)
    return 0


def unpause_first_session_dags(env: dict, timeout: float = 180) -> list[str]:
    """Unpause FIRST_SESSION_DAGS once the dag processor has registered them; return those unpaused.

    A DAG exists for ``airflow dags unpause`` only after its file was parsed, so each is polled
    with ``airflow dags details`` first. KEPT_PAUSED is never touched."""
    deadline = time.monotonic() + timeout
    unpaused = []
    for dag_id in FIRST_SESSION_DAGS:
        while True:
            details = subprocess.run([str(BIN / "airflow"), "dags", "details", dag_id, "-o", "json"], env=env,
                                     cwd=REPO, capture_output=True, text=True)
            if details.returncode == 0:
                break
            if time.monotonic() > deadline:
                print(f"{dag_id} is not parsed yet: switch it on with its toggle in the UI", flush=True)
                break
            time.sleep(3)
        if details.returncode != 0:
            continue
        if _is_paused(details.stdout):
            subprocess.run([str(BIN / "airflow"), "dags", "unpause", dag_id], env=env, cwd=REPO, check=True,
                           stdout=subprocess.DEVNULL)
        unpaused.append(dag_id)
    return unpaused


def _is_paused(details_output: str) -> bool:
    """``is_paused`` from ``airflow dags details -o json``, whose stdout may begin with log lines
    and which prints the flag as the string "True" or "False"."""
    for line in reversed(details_output.splitlines()):
        if line.startswith("[{"):
            rows = json.loads(line)
            return str(rows[0].get("is_paused")).lower() == "true"
    raise SystemExit(f"cannot read `airflow dags details` output: {details_output[-200:]!r}")


def first_session_guide(url: str, unpaused: list[str]) -> str:
    """What to click in a first session, in order."""
    on = ", ".join(unpaused) if unpaused else "none yet"
    return f"""
First session ({url}, user admin and the password above):
  1. Dags -> {KEPT_PAUSED} -> Trigger. Set Mode "search", Search query "vase" and a small Limit
     (e.g. 200), keep "Unpause {KEPT_PAUSED} on trigger" ticked (a paused DAG's runs never start), Trigger.
     Unpausing queues no scheduled run: the daily incremental scrape starts at the next 03:00 UTC;
     pause {KEPT_PAUSED} again afterwards if you do not want it.
  2. vase_subset starts by itself when {KEPT_PAUSED}'s images are stored (unpaused: {on}).
  3. Dags -> gan_search -> Trigger with its defaults (subset "vases"): one mapped task per trial.
  4. gan_generate starts by itself when the search publishes its best model: 16 new images from
     the best trial (trigger it by hand for other seeds, a truncation or another trial).
  5. Browse -> metgan gallery ({url}/metgan/): each search's trials, scores, report, walks,
     "Download model" links and generated images.
Ctrl-C here stops Airflow and the embedded PostgreSQL it started."""


def stop_process_groups(processes: list[subprocess.Popen], timeout: float = 30) -> None:
    """SIGTERM each process's group, wait for the whole group, SIGKILL what is left.

    The whole group, not only its leader: `airflow standalone` can exit while its scheduler child
    hangs on idle LocalExecutor workers."""
    groups = [process.pid for process in processes]
    for group in groups:
        _signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_signal_group(group, 0) for group in groups):
        for process in processes:
            process.poll()
        time.sleep(0.5)
    for group in groups:
        _signal_group(group, signal.SIGKILL)
    for process in processes:
        process.wait()


def _signal_group(group: int, sig: int) -> bool:
    """Send ``sig`` to a process group; False when the group no longer exists."""
    try:
        os.killpg(group, sig)
        return True
    except ProcessLookupError:
        return False


def _healthy(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=3) as response:
            health = json.loads(response.read())
        return all(health.get(c, {}).get("status") == "healthy" for c in ("metadatabase", "scheduler"))
    except (OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m metgan.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--up", action="store_true", help="run airflow standalone instead of the demo")
    parser.add_argument("--fake-met", action="store_true",
                        help="--up: serve the fake Met (--objects, --seed) and scrape it instead of the real one")
    parser.add_argument("--port", type=int, default=8080, help="api-server port for --up")
    parser.add_argument("--objects", type=int, default=400, help="objects in the fake collection")
    parser.add_argument("--budget-s", type=int, default=DEMO_SEARCH_BUDGET_S,
                        help="time budget of the demo's search in seconds")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fake collection")
    args = parser.parse_args(argv)
    interrupt_on_termination()
    return up(args) if args.up else demo(args)


if __name__ == "__main__":
    sys.exit(main())
