"""`airflow standalone` with the project's DAGs and plugin, driven through the public REST API
and through the web UI in headless Chromium (Playwright, Debian's chromium)."""

import json
import time
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest

from tests.conftest import create_database, drop_database
from tests.e2e.cluster import Deployment
from tests.e2e.conftest import POOLS

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TINY_GRID = {"height": [40], "width": [32], "g_blocks": [2], "g_filters": [32], "g_seed_filters": [32],
             "d_blocks": [2], "d_filters": [16], "batch_size": [16], "noise_dim": [32],
             "loss": ["non-saturating", "hinge"]}


@pytest.fixture(scope="module")
def airflow(e2e, tmp_path_factory, pg_admin_url):
    metadata = create_database(pg_admin_url, prefix="airflow_e2e")
    deployment = Deployment.create(tmp_path_factory.mktemp("standalone"), {
        **e2e.env, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata.replace("postgresql://", "postgresql+psycopg2://", 1),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor"})
    deployment.prepare(POOLS)
    deployment.start("standalone", "standalone")
    try:
        deployment.wait_healthy(components=("metadatabase", "scheduler", "dag_processor"))
        for dag_id in ("met_ingest", "gan_search"):
            deployment.wait_for_dag(dag_id)
        yield deployment
    finally:
        deployment.stop()
        drop_database(pg_admin_url, metadata)


def _wait_for_state(airflow, dag_id, run_id, task_id, map_index, states, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ti in airflow.task_instances(dag_id, run_id):
            if ti["task_id"] == task_id and ti["map_index"] == map_index and ti["state"] in states:
                return ti
        time.sleep(1)
    raise TimeoutError(f"{task_id}[{map_index}] never reached {states}")


def test_rest_api_trigger_with_conf_retry_and_mapped_task_logs(airflow, e2e):
    """A mapped fetch_records fails while the Met answers 5xx, Airflow retries it, it succeeds."""
    # Hold the mapped tasks in their pool until the faults are on, so discovery is not affected.
    airflow.request("PATCH", "/api/v2/pools/met_api", {"name": "met_api", "slots": 0, "include_deferred": False})
    run_id = "rest_retry_1"
    created = airflow.trigger("met_ingest", {"mode": "search", "query": "vase", "limit": 20,
                                             "batch_size": 10}, run_id)
    assert created["conf"]["limit"] == 20 and created["state"] == "queued"
    _wait_for_state(airflow, "met_ingest", run_id, "fetch_records", 0, {"scheduled", "queued"})
    e2e.fake.set_faults(error_5xx=1.0, max_per_path=1000)
    airflow.request("PATCH", "/api/v2/pools/met_api", {"name": "met_api", "slots": 4, "include_deferred": False})
    try:
        _wait_for_state(airflow, "met_ingest", run_id, "fetch_records", 0, {"up_for_retry"})
    finally:
        e2e.fake.set_faults(error_5xx=0.0)
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


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (.ci/run installs it)")
def test_browser_login_trigger_form_task_log_and_gallery(airflow, e2e):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{airflow.url}/")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", airflow.admin_password())
        page.click("button:has-text('Sign in')")
        page.wait_for_url(f"{airflow.url}/", timeout=30000)

        page.goto(f"{airflow.url}/dags/gan_search")
        page.get_by_role("button", name="Trigger").first.click()
        dialog = page.get_by_role("dialog")
        dialog.locator("#element_search_name").fill("browser-search")
        dialog.locator("#element_grid").fill(json.dumps(TINY_GRID))
        dialog.get_by_text("Budget", exact=True).click()
        dialog.locator("input[name=element_epochs]").fill("1")
        dialog.get_by_role("button", name="Trigger").click()
        page.wait_for_url("**/dags/gan_search/runs/**", timeout=30000)
        run_id = unquote(page.url.rsplit("/runs/", 1)[1].split("/")[0])
        run = airflow.request("GET", f"/api/v2/dags/gan_search/dagRuns/{quote(run_id)}")
        assert run["conf"]["search_name"] == "browser-search" and run["conf"]["epochs"] == 1
        assert airflow.wait_for_run("gan_search", quote(run_id)) == "success"

        page.goto(f"{airflow.url}/dags/gan_search/runs/{quote(run_id)}/tasks/train_trial/mapped/1")
        page.get_by_text("loss=hinge").first.wait_for(timeout=30000)
        page.get_by_text("Done. Returned value was").first.wait_for(timeout=30000)

        page.goto(f"{airflow.url}/plugin/metgan")
        frame = None
        deadline = time.monotonic() + 30
        while frame is None and time.monotonic() < deadline:
            frame = next((f for f in page.frames if urlsplit(f.url).path == "/metgan/"), None)
            page.wait_for_timeout(500)
        assert frame is not None, [f.url for f in page.frames]
        frame.get_by_text("browser-search").first.wait_for(timeout=30000)
        frame.wait_for_function("[...document.images].length >= 2 && [...document.images].every(i => i.complete)")
        widths = frame.evaluate("[...document.images].map(i => i.naturalWidth)")
        assert len(widths) >= 2 and all(w > 0 for w in widths), widths
        browser.close()
