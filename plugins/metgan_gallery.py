"""The metgan gallery inside the Airflow UI.

A FastAPI app mounted in the api-server at ``/metgan`` lists every grid search found in
``METGAN_RESULTS_DIR`` with its trials' final grids, and serves each search's self-contained
report folder (``report.html``, GIFs, gallery) from ``/metgan/files/``. A nav link ("metgan
gallery") shows the page inside the UI. Plugin apps are not protected by Airflow itself, so
every route here checks the caller's Airflow token (the UI's ``_token`` cookie or a bearer
token) and sends anonymous browsers to Airflow's login page.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from urllib.parse import quote

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse

app = FastAPI(title="metgan gallery", docs_url=None, redoc_url=None, openapi_url=None)


def results_dir() -> Path:
    from metgan.config import get_settings

    return get_settings().results_dir


async def require_user(request: Request):
    """The logged-in Airflow user; anonymous callers go to the login page (or get 401 for APIs)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    try:
        if token:
            return await resolve_user_from_token(token)
    except HTTPException:
        pass
    if "text/html" in request.headers.get("accept", ""):
        login = get_auth_manager().get_url_login(next_url=str(request.url))
        raise HTTPException(status_code=307, headers={"Location": login})
    raise HTTPException(status_code=401, detail="log in to Airflow first")


def _searches(root: Path) -> list[dict]:
    searches = []
    for search_file in sorted(root.glob("*/search.json")):
        try:
            search = json.loads(search_file.read_text())
        except (OSError, ValueError):
            continue
        trials = []
        for trial_file in sorted(search_file.parent.glob("*/trial.json")):
            try:
                trial = json.loads(trial_file.read_text())
            except (OSError, ValueError):
                continue
            trial["dir"] = trial_file.parent.name
            trials.append(trial)
        search["dir"] = search_file.parent.name
        search["trial_list"] = trials
        searches.append(search)
    return searches


def _trial_card(search_dir: str, trial: dict, root: Path) -> str:
    base = f"files/{quote(search_dir)}/{quote(trial['dir'])}"
    folder = root / search_dir / trial["dir"]
    image = next((name for name in ("final_grid.png", "progress.gif") if (folder / name).exists()), None)
    picture = (f'<img src="{base}/{image}" alt="samples of {html.escape(trial["dir"])}">'
               if image else '<div class="empty">no images yet</div>')
    status = html.escape(str(trial.get("status", "?")))
    reason = trial.get("stop_reason")
    label = html.escape(str(trial.get("label") or trial["dir"]))
    return (f'<figure class="trial">{picture}<figcaption><b>{label}</b><br>{status}'
            f'{" — " + html.escape(str(reason)) if reason else ""}</figcaption></figure>')


@app.get("/", response_class=HTMLResponse)
async def index(user=Depends(require_user)) -> str:
    root = results_dir()
    sections = []
    for search in _searches(root):
        report = root / search["dir"] / "report.html"
        link = (f' · <a href="files/{quote(search["dir"])}/report.html">report and gallery</a>'
                if report.exists() else "")
        cards = "".join(_trial_card(search["dir"], t, root) for t in search["trial_list"])
        sections.append(
            f'<section><h2>{html.escape(search.get("name", search["dir"]))}</h2>'
            f'<p>subset <b>{html.escape(str(search.get("subset", "?")))}</b> · '
            f'{len(search["trial_list"])} trials{link}</p><div class="trials">{cards}</div></section>')
    body = "".join(sections) or "<p>No grid search has run yet: trigger the gan_search DAG.</p>"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>metgan gallery</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}}
.trials{{display:flex;flex-wrap:wrap;gap:1rem}} figure.trial{{margin:0;width:220px}}
figure.trial img{{width:220px;image-rendering:pixelated;border:1px solid #ccc}}
.empty{{width:220px;height:120px;background:#eee;display:flex;align-items:center;justify-content:center}}
figcaption{{font-size:.85rem}}</style></head>
<body><h1>metgan gallery</h1>{body}</body></html>"""


@app.get("/files/{path:path}")
async def files(path: str, user=Depends(require_user)) -> FileResponse:
    root = results_dir().resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise HTTPException(status_code=404, detail="not found")
    return FileResponse(target)


class MetganGalleryPlugin(AirflowPlugin):
    name = "metgan_gallery"
    fastapi_apps = [{"app": app, "url_prefix": "/metgan", "name": "metgan gallery"}]
    external_views = [{"name": "metgan gallery", "href": "metgan/", "destination": "nav",
                       "url_route": "metgan", "category": "browse"}]
