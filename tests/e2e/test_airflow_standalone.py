"""The user's path through `airflow standalone` (LocalExecutor: every task in a real worker
process) with the fake Met behind it, walked as one ordered session in headless Chromium.

A new user logs in, opens each DAG's trigger form, scrapes vases with met_ingest, builds the
subset with vase_subset, grid-searches tiny GANs with gan_search and looks at the results in the
metgan gallery. Every step is triggered from its form, and each test checks the step's outcome
itself (rows in the deployment's metgan database, files on disk, trial folders, the report), not
only the run's colour. The tests depend on each other's results and run in file order; the
REST-API retry test comes last, so the data the session checks is the session's own.

Screenshots go to the test's tmp folder, and to $E2E_SCREENSHOTS (e.g. docs/screenshots) when set.
"""

import csv
import json
import time
from types import SimpleNamespace
from urllib.parse import quote, urlsplit

import psycopg2
import pytest
from PIL import Image

from tests.conftest import create_database, drop_database
from tests.e2e.cluster import Deployment
from tests.e2e.conftest import POOLS
from tests.e2e.ui import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, AirflowUI, Screenshots, needs_chromium

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

DAG_IDS = ("met_ingest", "vase_subset", "gan_search")
INGEST_LIMIT = 40
SUBSET_SIZE = (32, 40)  # width x height, what the tiny GANs train on
# Tiny models at the subset's size: every trial trains in seconds on two cores.
TINY_GRID = {"height": [40], "width": [32], "g_blocks": [2], "g_filters": [32], "g_seed_filters": [32],
             "d_blocks": [2], "d_filters": [16], "batch_size": [16], "noise_dim": [32],
             "loss": ["non-saturating", "hinge"]}
TRIAL_LABELS = {"loss=non-saturating", "loss=hinge"}
MISSING_SUBSET = "no-such-subset"


@pytest.fixture(scope="module")
def airflow(metgan_store, tmp_path_factory, pg_admin_url):
    metadata = create_database(pg_admin_url, prefix="airflow_e2e")
    deployment = Deployment.create(tmp_path_factory.mktemp("standalone"), {
        **metgan_store.env,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata.replace("postgresql://", "postgresql+psycopg2://", 1),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # As a new user's: the DAGs start paused. vase_subset stays paused until its step, so
        # that met_ingest's images asset does not start a build with the defaults (128x160)
        # that the form's run (32x40) would queue behind.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"})
    deployment.prepare(POOLS)
    deployment.start("standalone", "standalone")
    try:
        deployment.wait_healthy(components=("metadatabase", "scheduler", "dag_processor"))
        for dag_id in DAG_IDS:
            deployment.wait_for_dag(dag_id)
        for dag_id in ("met_ingest", "gan_search"):
            deployment.set_paused(dag_id, False)
        yield deployment
    finally:
        deployment.stop()
        drop_database(pg_admin_url, metadata)


@pytest.fixture(scope="module")
def session():
    """What one step of the session leaves for the next (run ids, the search's name)."""
    return SimpleNamespace()


@pytest.fixture(scope="module")
def ui(airflow, tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api")
    screenshots = Screenshots.from_env(tmp_path_factory.mktemp("screenshots"))
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(30000)
        browser_ui = AirflowUI(page, airflow.url, screenshots)
        browser_ui.log_in("admin", airflow.admin_password())
        yield browser_ui
        browser.close()


def query(metgan_store, sql: str, *args) -> list[tuple]:
    with psycopg2.connect(metgan_store.url) as conn, conn.cursor() as cursor:
        cursor.execute(sql, args)
        rows = cursor.fetchall()
    conn.close()
    return rows


def manifest_rows(metgan_store, name: str = "vases") -> list[dict]:
    """The subset's manifest (one row per built image; its ``file`` is relative to the subset's folder)."""
    manifest = metgan_store.data_dir / "subsets" / name / "manifest.csv"
    return list(csv.DictReader(manifest.open())) if manifest.exists() else []


def task_states(airflow, dag_id: str, run_id: str) -> dict:
    return {(ti["task_id"], ti["map_index"]): ti["state"] for ti in airflow.task_instances(dag_id, quote(run_id))}


def failed_tasks_report(airflow, dag_id: str, run_id: str) -> str:
    """The failed tasks' log tails: what an assertion on a run's state shows when it is wrong."""
    lines = []
    for ti in airflow.task_instances(dag_id, quote(run_id)):
        if ti["state"] == "failed":  # the others (upstream_failed, ...) have no log of their own
            log = airflow.task_log(dag_id, quote(run_id), ti["task_id"], ti["map_index"], ti["try_number"])
            lines.append(f"--- {ti['task_id']}[{ti['map_index']}] failed\n{log[-1500:]}")
        elif ti["state"] not in ("success", "skipped"):
            lines.append(f"--- {ti['task_id']}[{ti['map_index']}] {ti['state']}")
    return "\n".join(lines)


@needs_chromium
def test_every_trigger_form_is_submittable_with_its_defaults(ui):
    for dag_id in DAG_IDS:
        dialog = ui.open_trigger_form(dag_id)
        ui.submit_button(dialog).scroll_into_view_if_needed()
        ui.screenshots.take(ui.page, f"trigger-form-{dag_id}")
        assert ui.submit_button(dialog).is_enabled(), (
            f"{dag_id}: Trigger disabled with the defaults; the form says: {ui.form_errors(dialog)}")
        ui.page.keyboard.press("Escape")
        dialog.wait_for(state="hidden")


@needs_chromium
def test_met_ingest_from_its_form_stores_records_and_images(ui, airflow, metgan_store, session):
    dialog = ui.open_trigger_form("met_ingest")
    ui.choose(dialog, "mode", "search")
    ui.fill(dialog, "query", "vase")
    ui.fill(dialog, "limit", str(INGEST_LIMIT))
    run_id = ui.trigger(dialog)
    conf = airflow.request("GET", f"/api/v2/dags/met_ingest/dagRuns/{quote(run_id)}")["conf"]
    assert conf["mode"] == "search" and conf["query"] == "vase" and conf["limit"] == INGEST_LIMIT
    assert conf["csv_source"] is None  # the untouched optional field, as the form sends it
    state = airflow.wait_for_run("met_ingest", quote(run_id), timeout=300)
    assert state == "success", failed_tasks_report(airflow, "met_ingest", run_id)

    [(objects,)] = query(metgan_store, "SELECT count(*) FROM met_objects WHERE status = 'ok'")
    assert objects == INGEST_LIMIT
    images = query(metgan_store, "SELECT path, bytes FROM met_images WHERE status = 'ok'")
    assert len(images) >= INGEST_LIMIT // 2, images
    images_dir = metgan_store.data_dir / "images"
    for path, size in images:
        assert (images_dir / path).stat().st_size == size, path
    # The form unpaused met_ingest, and that queued no scheduled run for the user's run to wait
    # behind: the daily incremental scrape waits for the next 03:00 UTC.
    assert query(metgan_store, "SELECT mode, status FROM scrape_runs ORDER BY run_id") == [("search", "success")]
    runs = airflow.request("GET", "/api/v2/dags/met_ingest/dagRuns")["dag_runs"]
    assert [run["run_type"] for run in runs] == ["manual"], runs
    session.ingest_run = run_id


@needs_chromium
def test_vase_subset_from_its_form_builds_images_in_a_worker(ui, airflow, metgan_store, session):
    assert getattr(session, "ingest_run", None), "needs met_ingest's images (the test before)"
    airflow.set_paused("vase_subset", False)
    try:
        dialog = ui.open_trigger_form("vase_subset")
        ui.fill(dialog, "size", "{}x{}".format(*SUBSET_SIZE))
        run_id = ui.trigger(dialog)
        state = airflow.wait_for_run("vase_subset", quote(run_id), timeout=300)
    finally:
        airflow.set_paused("vase_subset", True)  # the REST test's ingest must not rebuild it

    rows = manifest_rows(metgan_store)
    summary = airflow.request("GET", f"/api/v2/dags/vase_subset/dagRuns/{quote(run_id)}/taskInstances/"
                                     "build_subset/xcomEntries/return_value")["value"] if state == "success" else None
    assert len(rows) > 0, f"the subset built in a worker has no images (run {state}, summary {summary})"
    assert state == "success", failed_tasks_report(airflow, "vase_subset", run_id)
    for row in rows:
        with Image.open(metgan_store.data_dir / "subsets" / "vases" / row["file"]) as image:
            assert image.size == SUBSET_SIZE, row
    [(counts,)] = query(metgan_store, "SELECT counts FROM subsets WHERE name = 'vases'")
    assert counts["ok"] == len(rows)
    session.subset_images = len(rows)


@needs_chromium
def test_gan_search_from_its_form_trains_reports_and_labels_its_mapped_tasks(ui, airflow, metgan_store, session):
    assert getattr(session, "subset_images", 0) > 0, "needs the subset (the test before)"
    dialog = ui.open_trigger_form("gan_search")
    ui.fill(dialog, "search_name", "first-search")
    ui.fill(dialog, "grid", json.dumps(TINY_GRID))
    ui.open_section(dialog, "Budget")
    ui.fill(dialog, "epochs", "1")
    run_id = ui.trigger(dialog)
    conf = airflow.request("GET", f"/api/v2/dags/gan_search/dagRuns/{quote(run_id)}")["conf"]
    assert conf["search_name"] == "first-search" and conf["epochs"] == 1 and conf["subset"] == "vases"

    # A mapped task is labelled while it runs, not only once it has finished: the label comes
    # from its argument, which the task process renders before the task's code starts (a moment
    # after the task turns running).
    labelled_while_running = set()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not labelled_while_running:
        trials = [ti for ti in airflow.task_instances("gan_search", quote(run_id)) if ti["task_id"] == "train_trial"]
        labelled_while_running = {ti["rendered_map_index"] for ti in trials
                                  if ti["state"] == "running" and ti["rendered_map_index"] in TRIAL_LABELS}
        if trials and all(ti["state"] in ("success", "failed", "upstream_failed") for ti in trials):
            break
        time.sleep(0.5)
    assert labelled_while_running, "no train_trial was labelled while running: " + str(
        [(ti["map_index"], ti["state"], ti["rendered_map_index"]) for ti in trials])

    state = airflow.wait_for_run("gan_search", quote(run_id), timeout=600)
    assert state == "success", failed_tasks_report(airflow, "gan_search", run_id)
    search_dir = metgan_store.results_dir / "first-search"
    trials = [json.loads(path.read_text()) for path in sorted(search_dir.glob("*/trial.json"))]
    assert len(trials) == 2 and {trial["status"] for trial in trials} == {"completed"}, trials
    assert (search_dir / "report.html").stat().st_size > 0

    mapped = airflow.request("GET", f"/api/v2/dags/gan_search/dagRuns/{quote(run_id)}/taskInstances/"
                                    "train_trial/listMapped")["task_instances"]
    assert {ti["rendered_map_index"] for ti in mapped} == TRIAL_LABELS
    ui.page.goto(ui.run_page("gan_search", run_id, "/tasks/train_trial/mapped"))
    for label in TRIAL_LABELS:
        ui.page.get_by_text(label, exact=True).first.wait_for()
    ui.screenshots.take(ui.page, "gan-search-mapped-trials")
    ui.page.goto(ui.run_page("gan_search", run_id))  # the grid beside the run's task instances
    for label in TRIAL_LABELS:
        ui.page.get_by_text(label, exact=True).first.wait_for()
    ui.screenshots.take(ui.page, "gan-search-grid")
    session.search_run = run_id


@needs_chromium
def test_gan_search_on_a_missing_subset_is_red_with_the_reason_in_plan_trials_log(ui, airflow):
    dialog = ui.open_trigger_form("gan_search")
    ui.fill(dialog, "search_name", "missing-subset-search")
    ui.fill(dialog, "subset", MISSING_SUBSET)
    ui.fill(dialog, "grid", json.dumps(TINY_GRID))
    ui.open_section(dialog, "Budget")
    ui.fill(dialog, "epochs", "1")
    run_id = ui.trigger(dialog)
    assert airflow.wait_for_run("gan_search", quote(run_id), timeout=600) == "failed"
    states = task_states(airflow, "gan_search", run_id)
    assert states[("plan_trials", -1)] == "failed", states
    log = airflow.task_log("gan_search", quote(run_id), "plan_trials", -1)
    assert MISSING_SUBSET in log and "vases" in log, log[-3000:]

    ui.page.goto(ui.run_page("gan_search", run_id, "/tasks/plan_trials"))
    ui.page.get_by_text(MISSING_SUBSET).first.wait_for(state="attached")
    ui.screenshots.take(ui.page, "gan-search-missing-subset-log")


@needs_chromium
def test_the_gallery_lists_the_search_with_its_images(ui, session):
    assert getattr(session, "search_run", None), "needs the finished search (the test before)"
    ui.page.goto(f"{ui.url}/")
    ui.page.get_by_role("button", name="Browse").click()
    ui.page.get_by_role("menuitem", name="metgan gallery").click()
    frame = None
    deadline = time.monotonic() + 30
    while frame is None and time.monotonic() < deadline:
        frame = next((f for f in ui.page.frames if urlsplit(f.url).path == "/metgan/"), None)
        ui.page.wait_for_timeout(500)
    assert frame is not None, [f.url for f in ui.page.frames]
    frame.get_by_text("first-search").first.wait_for()
    # Polled from here: the gallery's CSP forbids eval, which wait_for_function's predicate needs.
    loaded = "[...document.images].map(i => i.complete ? i.naturalWidth : -1)"
    deadline = time.monotonic() + 30
    widths = frame.evaluate(loaded)
    while (len(widths) < 2 or -1 in widths) and time.monotonic() < deadline:
        ui.page.wait_for_timeout(500)
        widths = frame.evaluate(loaded)
    assert len(widths) >= 2 and all(w > 0 for w in widths), widths
    # every scored trial says its score against the data's floor, and a verdict in words
    captions = frame.locator("figcaption").all_inner_texts()
    scored = [text for text in captions if "SWD" in text]
    assert scored and all("x the data's floor" in text for text in scored), captions
    assert all(any(word in text for word in ("close to the data", "good", "rough", "far from the data"))
               for text in scored), captions
    ui.screenshots.take(ui.page, "metgan-gallery")


def _wait_for_state(airflow, dag_id, run_id, task_id, map_index, states, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ti in airflow.task_instances(dag_id, run_id):
            if ti["task_id"] == task_id and ti["map_index"] == map_index and ti["state"] in states:
                return ti
        time.sleep(1)
    raise TimeoutError(f"{task_id}[{map_index}] never reached {states}")


def test_rest_api_trigger_with_conf_retry_and_mapped_task_logs(airflow, metgan_store):
    """A mapped fetch_records fails while the Met answers 5xx, Airflow retries it, it succeeds."""
    fake = metgan_store.fake
    # Hold the mapped tasks in their pool until the faults are on, so discovery is not affected.
    airflow.request("PATCH", "/api/v2/pools/met_api", {"name": "met_api", "slots": 0, "include_deferred": False})
    run_id = "rest_retry_1"
    created = airflow.trigger("met_ingest", {"mode": "search", "query": "vase", "limit": 20,
                                             "batch_size": 10}, run_id)
    assert created["conf"]["limit"] == 20 and created["state"] == "queued"
    _wait_for_state(airflow, "met_ingest", run_id, "fetch_records", 0, {"scheduled", "queued"})
    fake.set_faults(error_5xx=1.0, max_per_path=1000)
    airflow.request("PATCH", "/api/v2/pools/met_api", {"name": "met_api", "slots": 4, "include_deferred": False})
    try:
        _wait_for_state(airflow, "met_ingest", run_id, "fetch_records", 0, {"up_for_retry"})
    finally:
        fake.set_faults(error_5xx=0.0)
    assert airflow.wait_for_run("met_ingest", run_id) == "success"

    tries = airflow.request("GET", f"/api/v2/dags/met_ingest/dagRuns/{run_id}/taskInstances/fetch_records/0/tries")
    states = [t["state"] for t in sorted(tries["task_instances"], key=lambda t: t["try_number"])]
    assert states[0] == "failed" and states[-1] == "success"
    first = airflow.task_log("met_ingest", run_id, "fetch_records", 0, try_number=1)
    last = airflow.task_log("met_ingest", run_id, "fetch_records", 0, try_number=len(states))
    assert "failed transiently" in first and "MetRetryableError" in first
    assert "records objects" in last and "failed transiently" not in last
    mapped = airflow.request("GET", f"/api/v2/dags/met_ingest/dagRuns/{run_id}/taskInstances/fetch_records/listMapped")
    assert {ti["rendered_map_index"] for ti in mapped["task_instances"]} == {
        f"objects {i * 10 + 1}–{i * 10 + 10}" for i in range(2)}
