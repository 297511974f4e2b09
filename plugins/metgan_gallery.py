"""The metgan gallery inside the Airflow UI.

A FastAPI app mounted in the api-server at ``/metgan`` lists every grid search found in
``METGAN_RESULTS_DIR``, newest first, with each trial's status, best score, error line and a small
thumbnail, and a link to the Airflow run that made the search. It serves each search's
self-contained report folder (``report.html``, GIFs, gallery) from ``/metgan/files/`` and
downscaled thumbnails from ``/metgan/thumbs/``. A nav link ("metgan gallery") shows the page inside
the UI. Plugin apps are not protected by Airflow itself, so every route here checks the caller's
Airflow token (the UI's ``_token`` cookie or a bearer token) and sends anonymous browsers to
Airflow's login page.

The files are served on the Airflow origin, next to the user's session, so only an allow-list of
types is served (images, mp4, csv, json/jsonl, html), always with ``X-Content-Type-Options: nosniff``; HTML gets a Content-Security-Policy
that runs no script but the report's own sorting script (by its hash), and SVG is never served.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

log = logging.getLogger(__name__)

app = FastAPI(title="metgan gallery", docs_url=None, redoc_url=None, openapi_url=None)

# what /files/ serves, by suffix, with the type it is served as (never guessed from the content)
SERVED_TYPES = {
    ".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
    ".webp": "image/webp", ".mp4": "video/mp4", ".csv": "text/csv; charset=utf-8",
    ".json": "application/json", ".jsonl": "application/x-ndjson", ".html": "text/html; charset=utf-8",
    ".keras": "application/octet-stream",  # an exported generator, always sent as a download
}
DOWNLOADED = {".keras"}
THUMBNAIL_TYPES = {".png", ".gif", ".jpg", ".jpeg", ".webp"}
THUMBNAIL_WIDTH = 220
THUMBNAIL_MAX_PIXELS = 50_000_000  # a results image is a few megapixels; more is not a sample grid
MAX_PATH_LENGTH = 1024
THUMBS_DIR = ".thumbs"  # the gallery's own cache under the results folder; nothing else reads it


def results_store():
    """The results as this server reads them. On an object store (METGAN_RESULTS_DIR=s3://...)
    the gallery keeps a mirror of its own under the cache (``<cache>/gallery/...``), not the
    workers': in compose every container on a host shares one cache volume, and a pull into the
    mirror a training worker writes in would replace its files written since its last checkpoint
    push with the older stored copies. The gallery only reads, so its mirror is never pushed."""
    from metgan.config import get_settings
    from metgan.storage import Store, mirror_for

    settings = get_settings()
    store = settings.results_store
    if not store.is_remote:
        return store
    mirror = mirror_for(store.location, "gallery", {"METGAN_CACHE_DIR": str(settings.cache_dir)})
    return Store(store.location, mirror, store.options)


def results_dir() -> Path:
    return results_store().mirror


def _refresh_from_store(path: str = "") -> None:
    """On an object store, bring the gallery's mirror of the results up to date before reading
    it: one file (``path``) or every search's records and pictures (no checkpoints, and the
    gallery's own thumbnails stay). On a local folder: nothing to do."""
    from metgan.errors import MetganError
    from metgan.gan.search_record import HEAVY_PARTS

    store = results_store()
    if not store.is_remote:
        return
    try:
        if path:
            store.fetch(path, refresh=True)
        else:
            store.pull("", exclude=(*HEAVY_PARTS, f"/{THUMBS_DIR}/"))
    except MetganError as exc:  # a missing file is a 404 below; an unreachable store is logged
        log.warning("gallery: %s", exc)


@app.middleware("http")
async def nosniff(request: Request, call_next):
    response = await call_next(request)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


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


def report_csp() -> str:
    """The policy for served HTML: no script but the report's own (by hash), nothing from elsewhere.

    Not ``sandbox``: a sandboxed page has an opaque origin, so the browser would leave out
    Airflow's SameSite=Lax session cookie on the report's own images and GIFs, and they would fail."""
    from metgan.viz.report import SCRIPT

    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
    return ("default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; "
            f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'")


def _target(path: str, allowed: set[str] | dict) -> Path:
    """The file ``path`` names inside the results folder, or a 404: outside it, not a file, a type
    not served, or a name the filesystem refuses (NUL bytes, too long)."""
    if "\x00" in path or len(path) > MAX_PATH_LENGTH or Path(path).suffix.lower() not in allowed:
        raise HTTPException(status_code=404, detail="not found")
    root = results_dir().resolve()
    try:
        target = (root / path).resolve()
        if target.is_relative_to(root) and not target.is_file() and THUMBS_DIR not in Path(path).parts:
            _refresh_from_store(target.relative_to(root).as_posix())
        if not target.is_relative_to(root) or not target.is_file():
            raise HTTPException(status_code=404, detail="not found")
    except (OSError, ValueError):
        raise HTTPException(status_code=404, detail="not found") from None
    if THUMBS_DIR in target.relative_to(root).parts:
        raise HTTPException(status_code=404, detail="not found")
    return target


@app.get("/files/{path:path}")
async def files(path: str, user=Depends(require_user)) -> FileResponse:
    target = _target(path, SERVED_TYPES)
    suffix = target.suffix.lower()
    headers = {"Content-Security-Policy": report_csp()} if suffix == ".html" else {}
    if suffix in DOWNLOADED:  # Content-Disposition: attachment, named after the trial
        return FileResponse(target, media_type=SERVED_TYPES[suffix], headers=headers,
                            filename=f"{target.parent.parent.name}-{target.name}")
    return FileResponse(target, media_type=SERVED_TYPES[suffix], headers=headers)


@app.get("/thumbs/{path:path}")
async def thumbs(path: str, user=Depends(require_user)) -> Response:
    """A PNG at most THUMBNAIL_WIDTH wide, made with Pillow on first request and cached."""
    target = _target(path, THUMBNAIL_TYPES)
    root = results_dir().resolve()
    # one cache file per source path, remade when the source is newer (a re-rendered final grid)
    cached = root / THUMBS_DIR / f"{hashlib.sha256(str(target.relative_to(root)).encode()).hexdigest()}.png"
    if cached.is_file() and cached.stat().st_mtime_ns >= target.stat().st_mtime_ns:
        return FileResponse(cached, media_type="image/png")
    data = _thumbnail(target)
    try:
        cached.parent.mkdir(exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(data)
        partial.replace(cached)
    except OSError as exc:  # a read-only results volume: serve it uncached
        log.warning("cannot cache the thumbnail of %s: %s", target, exc)
    return Response(data, media_type="image/png")


def _thumbnail(source: Path) -> bytes:
    import io

    from PIL import Image

    try:
        with Image.open(source) as image:
            if image.width * image.height > THUMBNAIL_MAX_PIXELS:
                raise HTTPException(status_code=404, detail="not found")
            image = image.convert("RGB")
            if image.width > THUMBNAIL_WIDTH:
                height = max(1, round(image.height * THUMBNAIL_WIDTH / image.width))
                image = image.resize((THUMBNAIL_WIDTH, height), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            image.save(buffer, "PNG", optimize=True)
            return buffer.getvalue()
    except (OSError, ValueError, Image.DecompressionBombError):
        raise HTTPException(status_code=404, detail="not found") from None


# -- the page ------------------------------------------------------------------------------------

def _picture(trial) -> str | None:
    """The trial's final grid, else its latest sample grid, relative to the trial folder."""
    from metgan import trialdir

    if (trial.path / trialdir.FINAL_GRID).is_file():
        return trialdir.FINAL_GRID
    if trial.samples:
        latest = trial.samples[max(trial.samples)]
        return latest.relative_to(trial.path).as_posix()
    return None


def _trial_card(search_dir: Path, record) -> dict:
    """One trial's card; its status, label, score and best snapshot are the search record's
    (:class:`metgan.gan.search_record.TrialRecord`)."""
    from metgan.errors import RenderError
    from metgan.viz.trial import load_trial

    trial_dir = record.path
    base = f"{quote(search_dir.name)}/{quote(trial_dir.name)}"
    try:
        trial = load_trial(trial_dir)
    except RenderError as exc:
        log.warning("gallery: skipped trial %s: %s", trial_dir, exc)
        return {"label": trial_dir.name, "status": "unreadable", "note": "its trial.json is not a trial record"}
    from metgan import trialdir
    from metgan.gan.metrics import describe_prdc

    trial.info["status"] = record.status  # a running trial nobody trains reads interrupted
    picture = _picture(trial)
    walk = trial_dir / trialdir.WALK_GIF
    status = record.status
    note = None
    if status == "failed":
        # viz.trial owns "the error on one line" (error_summary, else the traceback's last line)
        note = trial.error_summary.splitlines()[0][:300] if trial.error_summary else None
    elif status == "stopped":
        note = str(trial.info.get("stop_reason") or "") or None
    elif status in ("pruned", "paused", "interrupted"):
        note = trial.stop_message()  # the rung and score halving stopped it at, or where it was cut off
    elif record.holder:
        note = f"trained now by {record.holder}"
    return {
        "label": record.label, "status": status, "note": note,
        "epochs": f"{record.epochs_done}/{record.epochs}" if record.epochs else str(record.epochs_done),
        "best": f"{record.describe()} at epoch {record.score_epoch}" if record.score is not None else None,
        # the best snapshot's precision, recall, density, coverage and KID, each beside the data's own
        "prdc": describe_prdc(record.best.get("metrics")) if record.best else None,
        "trained_at": record.trained_size,
        "thumb": f"thumbs/{base}/{quote(picture)}" if picture else None,
        "full": f"files/{base}/{quote(picture)}" if picture else None,
        "walk": f"files/{base}/{quote(trialdir.WALK_GIF)}" if walk.is_file() else None,
        "model": f"files/{base}/{trialdir.BEST}/{trialdir.BEST_GENERATOR}" if record.best else None,
    }


def _generations(search_dir: Path) -> list[dict]:
    """The search's generation folders (gan_generate runs), newest first, with their contact sheets."""
    from metgan import trialdir
    from metgan.errors import TrialFolderError

    found = []
    for folder in reversed(trialdir.generation_folders(search_dir)):
        try:
            record = trialdir.read_generation_record(folder) or {}
        except TrialFolderError as exc:
            log.warning("gallery: skipped generation %s: %s", folder, exc)
            continue
        sheet = folder / trialdir.CONTACT_SHEET
        if not sheet.is_file():
            continue
        link = f"{quote(search_dir.name)}/{trialdir.GENERATIONS}/{quote(folder.name)}/{trialdir.CONTACT_SHEET}"
        seeds = record.get("seeds") if isinstance(record.get("seeds"), list) else []
        found.append({"name": folder.name, "trial_id": str(record.get("trial_id") or "?"),
                      "epoch": record.get("epoch"), "count": len(seeds),
                      "truncation": record.get("truncation"),
                      "thumb": f"thumbs/{link}", "full": f"files/{link}"})
    return found


def _created(search: dict, search_file: Path) -> datetime:
    created = search.get("created_at")
    if isinstance(created, str):
        try:
            parsed = datetime.fromisoformat(created.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime.fromtimestamp(search_file.stat().st_mtime, UTC)


def _airflow_run(search: dict, ui_root: str) -> str | None:
    airflow = search.get("airflow")
    if not isinstance(airflow, dict):
        return None
    dag_id, run_id = airflow.get("dag_id"), airflow.get("run_id")
    if not (isinstance(dag_id, str) and isinstance(run_id, str) and dag_id and run_id):
        return None
    return f"{ui_root}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def searches(root: Path, ui_root: str = "") -> list[dict]:
    """Every readable search under ``root``, newest first, each with its trials best first
    (:func:`metgan.gan.search_record.ranked_trials`), ready for the page."""
    from metgan import trialdir
    from metgan.errors import TrialFolderError
    from metgan.gan import search_record

    found = []
    for search_file in trialdir.search_files(root):
        search_dir = search_file.parent
        try:
            search = search_record.read_search(search_dir)
        except TrialFolderError as exc:
            log.warning("gallery: skipped search %s: %s", search_dir, exc)
            continue
        if search is None:  # removed since it was listed
            continue
        objective = str(search.get("objective") or "swd")
        direction = "max" if search.get("direction") == "max" else "min"
        trials = [_trial_card(search_dir, record) for record in search_record.ranked_trials(search_dir, search)
                  if record.path.is_dir()]
        created = _created(search, search_file)
        found.append({
            "name": str(search.get("name") or search_dir.name), "subset": str(search.get("subset") or "?"),
            "created": created, "created_text": created.strftime("%Y-%m-%d %H:%M UTC"),
            "objective": objective, "direction": direction, "trials": trials,
            "report": f"files/{quote(search_dir.name)}/report.html" if (search_dir / "report.html").is_file() else None,
            "run": _airflow_run(search, ui_root),
            "generations": _generations(search_dir),
        })
    found.sort(key=lambda s: s["created"], reverse=True)
    return found


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>metgan gallery</title>
<style>body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
.trials{display:flex;flex-wrap:wrap;gap:1rem} figure.trial{margin:0;width:220px}
figure.trial img{width:220px;image-rendering:pixelated;border:1px solid #ccc}
figure.trial img.walk{width:auto;max-width:220px;margin-top:.3rem}
.empty{width:220px;height:120px;background:#eee;display:flex;align-items:center;justify-content:center}
figcaption{font-size:.85rem} .failed{color:#a00} .note{display:block;overflow-wrap:anywhere}
.prdc{font-size:.75rem;color:#555}</style></head>
<body><h1>metgan gallery</h1>
{% for search in searches %}<section class="search">
<h2>{{ search.name }}</h2>
<p>subset <b>{{ search.subset }}</b> · created {{ search.created_text }} · {{ search.trials|length }} trials
· best {{ search.objective }} ({{ "lower" if search.direction == "min" else "higher" }} is better)
{% if search.report %} · <a href="{{ search.report }}">report and gallery</a>{% endif %}
{% if search.run %} · <a href="{{ search.run }}" target="_top">Airflow run</a>{% endif %}</p>
<div class="trials">{% for trial in search.trials %}<figure class="trial">
{% if trial.thumb %}<a href="{{ trial.full }}"><img src="{{ trial.thumb }}" alt="samples of {{ trial.label }}" loading="lazy"></a>
{% else %}<div class="empty">no images yet</div>{% endif %}
<figcaption><b>{{ trial.label }}</b><br><span class="status {{ trial.status }}">{{ trial.status }}</span>
{% if trial.epochs %} · {{ trial.epochs }} epochs{% endif %}
{% if trial.best %}<br>best {{ trial.best }}{% endif %}
{% if trial.prdc %}<br><span class="prdc">{{ trial.prdc }}</span>{% endif %}
{% if trial.trained_at %}<br>{{ trial.trained_at }}{% endif %}
{% if trial.model %}<br><a href="{{ trial.model }}" download>Download model</a>{% endif %}
{% if trial.walk %}<br><a href="{{ trial.walk }}"><img class="walk" src="{{ trial.walk }}" alt="latent walk of {{ trial.label }}" loading="lazy"></a>{% endif %}
{% if trial.note %}<span class="note">{{ trial.note }}</span>{% endif %}</figcaption></figure>
{% endfor %}</div>
{% if search.generations %}<h3>Generated</h3><div class="trials">{% for generation in search.generations %}<figure class="trial">
<a href="{{ generation.full }}"><img src="{{ generation.thumb }}" alt="contact sheet {{ generation.name }}" loading="lazy"></a>
<figcaption><b>{{ generation.name }}</b><br>{{ generation.count }} images from {{ generation.trial_id }}
{% if generation.epoch %} (epoch {{ generation.epoch }}){% endif %} · truncation {{ generation.truncation }}</figcaption></figure>
{% endfor %}</div>{% endif %}</section>
{% else %}<p>No grid search has run yet: trigger the gan_search DAG.</p>{% endfor %}
</body></html>"""


def _template():
    import jinja2

    return jinja2.Environment(autoescape=True).from_string(PAGE)


# the page itself runs no script and loads only its own thumbnails
PAGE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'self'"


@app.get("/", response_class=HTMLResponse)
async def index(request: Request, user=Depends(require_user)) -> HTMLResponse:
    # the app is mounted at <ui root>/metgan: the Airflow UI's own routes start at <ui root>
    ui_root = request.scope.get("root_path", "").removesuffix("/metgan")
    _refresh_from_store()
    page = _template().render(searches=searches(results_dir(), ui_root))
    return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_CSP})


class MetganGalleryPlugin(AirflowPlugin):
    name = "metgan_gallery"
    fastapi_apps = [{"app": app, "url_prefix": "/metgan", "name": "metgan gallery"}]
    external_views = [{"name": "metgan gallery", "href": "metgan/", "destination": "nav",
                       "url_route": "metgan", "category": "browse"}]
