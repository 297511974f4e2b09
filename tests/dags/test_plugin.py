"""The metgan gallery plugin, mounted in Airflow's real api-server app, behind Airflow's login."""

import json

import pytest


@pytest.fixture
def results(settings):
    trial = settings.results_dir / "demo-search" / "abc123"
    trial.mkdir(parents=True)
    (trial.parent / "search.json").write_text(json.dumps({"name": "demo-search", "subset": "vases"}))
    (trial / "trial.json").write_text(json.dumps({"status": "stopped", "stop_reason": "collapse", "label": "lr=2e-4"}))
    (trial / "final_grid.png").write_bytes(b"\x89PNG fake")
    return settings.results_dir


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
    assert client.get("/metgan/", cookies={"_token": "forged"}).status_code == 401


def test_logged_in_user_sees_searches_and_files(api_server, results):
    client, token = api_server
    page = client.get("/metgan/", cookies={"_token": token})
    assert page.status_code == 200
    assert "demo-search" in page.text and "lr=2e-4" in page.text and "collapse" in page.text
    assert 'src="files/demo-search/abc123/final_grid.png"' in page.text
    image = client.get("/metgan/files/demo-search/abc123/final_grid.png", cookies={"_token": token})
    assert image.content == b"\x89PNG fake"
    escape = client.get("/metgan/files/demo-search/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                        cookies={"_token": token})
    assert escape.status_code == 404 and "root:" not in escape.text
