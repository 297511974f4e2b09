"""The metgan gallery plugin, mounted in Airflow's real api-server app, behind Airflow's login."""

import base64
import hashlib
import io
import os
import re

import pytest
from PIL import Image

from metgan import trialdir
from tests.trialfolders import COLLAPSE_REASON, make_search


@pytest.fixture
def results(settings):
    trial = settings.results_dir / "demo-search" / "abc123"
    trial.mkdir(parents=True)
    trialdir.write_search(trial.parent, trialdir.SearchRecord(name="demo-search", subset="vases"))
    trialdir.write_trial_info(trial, trialdir.TrialInfo(status="stopped", stop_reason="collapse", label="lr=2e-4"))
    (trial / "final_grid.png").write_bytes(b"\x89PNG fake")
    return settings.results_dir


@pytest.fixture
def searches(settings):
    """Two searches written by the trainer's folder contract (metgan.testing.trialfolders): an older one,
    and a newer one with a completed, a stopped and two failed trials, and its Airflow run."""
    root = settings.results_dir
    older = make_search(root / "older-search", {"t1": {"epochs": 4, "label": "old trial"}})
    newer = make_search(root / "newer-search", {
        "a1": {"epochs": 6, "swd_every": 2, "label": "lr 2e-4", "final_grid": True},
        "b2": {"epochs": 6, "label": "lr 1e-3", "status": "stopped", "epochs_done": 4,
               "stop_reason": COLLAPSE_REASON, "collapse_from": 2},
        "c3": {"epochs": 6, "label": "lr 1e-2", "status": "failed", "epochs_done": 1, "generated": 0,
               "error": "Traceback (most recent call last):\n  File \"x.py\", line 1\nTrainingError: loss became NaN\n"},
        "d4": {"epochs": 6, "label": "lr 5e-2", "status": "failed", "epochs_done": 1, "generated": 0,
               "error": "Traceback (most recent call last):\nValueError: long story"},
    })
    for folder, created, extra in ((older, "2026-11-20T10:00:00Z", {}),
                                   (newer, "2026-11-29T10:00:00Z",
                                    {"airflow": {"dag_id": "gan_search", "run_id": "manual__2026-11-29T10:00:00+00:00"}})):
        trialdir.write_search(folder, {**trialdir.read_search(folder), "created_at": created, **extra})
    trialdir.write_trial_info(newer / "d4", {**trialdir.read_trial_info(newer / "d4"),
                                             "error_summary": "no training images in vases"})
    return root


@pytest.fixture(scope="module")
def api_server(airflow_db):
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    app = create_app("core")
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    return TestClient(app), token


def test_plugin_adds_a_nav_link_to_the_ui(api_server):
    client, token = api_server
    plugins = client.get("/api/v2/plugins", headers={"authorization": f"Bearer {token}"}).json()["plugins"]
    gallery = next(p for p in plugins if p["name"] == "metgan_gallery")
    view = gallery["external_views"][0]
    assert view["href"] == "metgan/" and view["destination"] == "nav" and view["url_route"] == "metgan"


def test_anonymous_browser_goes_to_login_and_api_callers_get_401(api_server, results):
    client, _ = api_server
    client.cookies.clear()
    page = client.get("/metgan/", headers={"accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 307 and "/auth/login" in page.headers["location"]
    assert client.get("/metgan/files/demo-search/abc123/final_grid.png").status_code == 401
    assert client.get("/metgan/thumbs/demo-search/abc123/final_grid.png").status_code == 401
    assert client.get("/metgan/", cookies={"_token": "forged"}).status_code == 401


def test_logged_in_user_sees_searches_and_files(api_server, results):
    client, token = api_server
    page = client.get("/metgan/", cookies={"_token": token})
    assert page.status_code == 200
    assert "demo-search" in page.text and "lr=2e-4" in page.text and "collapse" in page.text
    assert 'href="files/demo-search/abc123/final_grid.png"' in page.text
    assert 'src="thumbs/demo-search/abc123/final_grid.png"' in page.text
    image = client.get("/metgan/files/demo-search/abc123/final_grid.png", cookies={"_token": token})
    assert image.content == b"\x89PNG fake"
    assert image.headers["content-type"] == "image/png" and image.headers["x-content-type-options"] == "nosniff"
    escape = client.get("/metgan/files/demo-search/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                        cookies={"_token": token})
    assert escape.status_code == 404 and "root:" not in escape.text


@pytest.mark.parametrize("path", [
    "a%00b.png", "demo-search/abc123/final%00grid.png", "x" * 5000 + ".png", "a/" * 2000 + "b.png",
    "demo-search/" + "y" * 300 + ".png",
])
def test_hostile_paths_are_404_not_500(api_server, results, path):
    client, token = api_server
    for route in ("files", "thumbs"):
        response = client.get(f"/metgan/{route}/{path}", cookies={"_token": token})
        assert response.status_code == 404, (route, path[:40], response.status_code)


def test_a_trial_json_that_is_not_an_object_skips_its_card_not_the_page(api_server, results):
    client, token = api_server
    broken = results / "demo-search" / "zz9"
    broken.mkdir()
    (broken / "trial.json").write_text("[1, 2, 3]")
    (results / "not-a-search").mkdir()
    (results / "not-a-search" / "search.json").write_text('"just a string"')
    page = client.get("/metgan/", cookies={"_token": token})
    assert page.status_code == 200
    assert "lr=2e-4" in page.text and "unreadable" in page.text


def test_only_allowed_types_are_served_and_html_gets_a_script_locking_csp(api_server, results):
    from metgan.viz.report import SCRIPT

    client, token = api_server
    folder = results / "demo-search"
    (folder / "evil.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    (folder / "evil.txt").write_text("<script>alert(1)</script>")
    (folder / "secret.py").write_text("KEY = 1")
    (folder / "report.html").write_text(f"<html><script>alert(document.cookie)</script><script>{SCRIPT}</script></html>")
    (folder / "leaderboard.csv").write_text("rank,trial\n1,abc123\n")
    cookies = {"_token": token}
    for name in ("evil.svg", "evil.txt", "secret.py", "EVIL.SVG"):
        response = client.get(f"/metgan/files/demo-search/{name}", cookies=cookies)
        assert response.status_code == 404, name
        assert response.headers["x-content-type-options"] == "nosniff"
    report = client.get("/metgan/files/demo-search/report.html", cookies=cookies)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert report.headers["x-content-type-options"] == "nosniff"
    policy = report.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    assert directives["script-src"] == f"'sha256-{digest}'"  # the report's sorting script, nothing else
    assert directives["default-src"] == "'none'" and "unsafe-inline" not in directives["script-src"]
    csv = client.get("/metgan/files/demo-search/leaderboard.csv", cookies=cookies)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in csv.headers
    page = client.get("/metgan/", cookies=cookies)
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no script


def test_a_real_report_runs_its_own_script_and_loads_its_own_files(api_server, searches):
    """A report written by metgan.viz.report: each inline script is allowed by hash, each file it
    links is of a served type."""
    from metgan.viz.report import publish_report

    client, token = api_server
    publish_report(searches / "newer-search")
    report = client.get("/metgan/files/newer-search/report.html", cookies={"_token": token})
    assert report.status_code == 200
    policy = report.headers["content-security-policy"]
    scripts = re.findall(r"<script>(.*?)</script>", report.text, re.S)
    assert scripts
    for script in scripts:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    links = set(re.findall(r'(?:src|href)="([^"#:]+)"', report.text))
    assert links
    for link in links:
        served = client.get(f"/metgan/files/newer-search/{link}", cookies={"_token": token})
        assert served.status_code == 200, link


def test_gallery_page_is_newest_first_with_scores_errors_and_run_links(api_server, searches):
    client, token = api_server
    page = client.get("/metgan/", cookies={"_token": token}).text
    assert page.index("newer-search") < page.index("older-search")
    newer = page[page.index("newer-search"):page.index("older-search")]
    # the score against the data's floor, with a verdict in words (metgan.gan.verdict)
    assert re.search(r"best SWD [\d.]+ = [\d.]+x the data&#39;s floor \([\d.]+\): [^<]+ at epoch \d+", newer), newer
    assert "lr 2e-4" in newer and "completed" in newer and "stopped" in newer and COLLAPSE_REASON in newer
    assert "TrainingError: loss became NaN" in newer  # the last line of the traceback, not its first
    assert "Traceback" not in newer
    assert "no training images in vases" in newer and "long story" not in newer  # error_summary wins
    run = '/dags/gan_search/runs/manual__2026-11-29T10%3A00%3A00%2B00%3A00'
    assert f'href="{run}" target="_top"' in newer
    older = page[page.index("older-search"):]
    assert "/dags/" not in older


def test_thumbnails_are_small_pngs_cached_after_the_first_request(api_server, searches):
    client, token = api_server
    page = client.get("/metgan/", cookies={"_token": token}).text
    thumb = re.search(r'src="(thumbs/newer-search/a1/final_grid\.png)"', page).group(1)
    full = Image.open(searches / "newer-search" / "a1" / "final_grid.png")
    assert full.width > 220
    first = client.get(f"/metgan/{thumb}", cookies={"_token": token})
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(first.content))
    assert image.format == "PNG" and image.width == 220
    assert image.height == round(full.height * 220 / full.width)
    cached = list((searches / ".thumbs").glob("*.png"))
    assert len(cached) == 1
    second = client.get(f"/metgan/{thumb}", cookies={"_token": token})
    assert second.content == first.content
    made = cached[0].stat().st_mtime_ns
    Image.new("RGB", (440, 100), "red").save(searches / "newer-search" / "a1" / "final_grid.png")
    os.utime(searches / "newer-search" / "a1" / "final_grid.png", ns=(made + 10**9, made + 10**9))
    remade = Image.open(io.BytesIO(client.get(f"/metgan/{thumb}", cookies={"_token": token}).content))
    assert remade.size == (220, 50)  # a re-rendered grid gets a new thumbnail, in the same cache file
    assert list((searches / ".thumbs").glob("*.png")) == cached
    assert client.get("/metgan/files/.thumbs/" + cached[0].name, cookies={"_token": token}).status_code == 404
    small = re.search(r'src="(thumbs/newer-search/b2/samples/epoch_0004\.png)"', page)
    assert small, "a trial without a final grid shows its latest sample grid"
    assert client.get(f"/metgan/{small.group(1)}", cookies={"_token": token}).status_code == 200
    assert client.get("/metgan/thumbs/newer-search/search.json", cookies={"_token": token}).status_code == 404
