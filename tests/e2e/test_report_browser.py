"""The search report in headless Chromium (Debian's, driven by Playwright): opened from disk and
served under a URL prefix, every trial listed, no broken image, sorting reorders the rows."""

from __future__ import annotations

import csv
import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from metgan.viz.report import publish_report
from tests import trialfolders
from tests.e2e.ui import CHROMIUM, CHROMIUM_ARGS, needs_chromium

pytestmark = [pytest.mark.e2e, needs_chromium]
search_folder = trialfolders.search_folder


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def served(search_folder, tmp_path):
    """The results folder on a local web server, the search under /metgan/files/ like the plugin mounts it."""
    root = tmp_path / "www"
    (root / "metgan" / "files").mkdir(parents=True)
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root / "metgan" / "files", f"http://127.0.0.1:{server.server_address[1]}/metgan/files"
    server.shutdown()
    server.server_close()


def check_page(page, search_folder: Path) -> None:
    page.wait_for_load_state("load")
    trial_ids = page.eval_on_selector_all("#leaderboard tbody tr", "rows => rows.map(r => r.dataset.trial)")
    assert sorted(trial_ids) == sorted(["a1b2c3", "d4e5f6", "0789ab"])
    assert "mode collapse" in page.inner_text("#leaderboard")

    images = page.eval_on_selector_all(
        "img", "imgs => imgs.map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0}))")
    assert len(images) > 20
    broken = [i["src"] for i in images if not i["ok"]]
    assert broken == [], f"broken images: {broken}"
    for link in page.eval_on_selector_all("a[href]", "as => as.map(a => a.getAttribute('href'))"):
        if not link.startswith("#"):
            assert (search_folder / link).is_file(), f"broken link: {link}"

    with open(search_folder / "leaderboard.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # a numeric column of the table whose order differs from the ranking, so a click must reorder
    shown_keys = page.eval_on_selector_all("#leaderboard th[data-key]", "ths => ths.map(t => t.dataset.key)")
    orders = {key: [r["trial_id"] for r in sorted(rows, key=lambda r: float(r[key]))]
              for key in ("diversity", "images_per_s", "epochs_done") if key in shown_keys
              and all(r.get(key) not in (None, "") for r in rows)}
    key, by_key = next((k, order) for k, order in orders.items() if order != trial_ids)
    page.click(f"th[data-key={key}] button")
    shown = page.eval_on_selector_all("#leaderboard tbody tr", "rows => rows.map(r => r.dataset.trial)")
    assert shown == by_key
    assert page.get_attribute(f"th[data-key={key}]", "aria-sort") == "ascending"
    page.click(f"th[data-key={key}] button")
    shown = page.eval_on_selector_all("#leaderboard tbody tr", "rows => rows.map(r => r.dataset.trial)")
    assert shown == list(reversed(by_key))


def test_report_opened_from_disk(browser, search_folder):
    publish_report(search_folder, render_missing=True)
    page = browser.new_page()
    page.goto((search_folder / "report.html").as_uri())
    check_page(page, search_folder)
    page.close()


def test_report_served_under_a_url_prefix(browser, search_folder, served):
    publish_report(search_folder, render_missing=True)
    mount, base = served
    shutil.copytree(search_folder, mount / search_folder.name)
    page = browser.new_page()
    failed = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on("response", lambda response: response.status >= 400 and not response.url.endswith("/favicon.ico")
            and failed.append(response.url))
    page.goto(f"{base}/{search_folder.name}/report.html")
    check_page(page, mount / search_folder.name)
    page.click("#trial-a1b2c3 .graphs [role=tab][data-show='1']")
    visible = page.eval_on_selector_all("#trial-a1b2c3 .graphs figure",
                                        "figs => figs.map(f => !f.hidden)")
    assert visible == [False, True, False, False]
    assert failed == []
    page.close()
