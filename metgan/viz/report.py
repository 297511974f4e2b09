"""The search report: ``report.html``, ``leaderboard.csv`` and ``gallery/`` inside a search folder.

Built from files alone (``search.json`` and the trial folders). Every link is relative, so the
folder opens from disk in a browser and serves as-is under any URL prefix (the Airflow plugin
mounts the results folder). The page has no external resource: inline CSS and a few lines of
JavaScript that sort the leaderboard by the clicked column.
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np
from PIL import Image

from metgan import names, trialdir
from metgan.config import Settings, get_settings
from metgan.errors import ConfigError, RenderError, TrialFolderError
from metgan.viz.trial import SCORE_LABELS, TrialRun, format_value, load_trial

log = logging.getLogger(__name__)

GALLERY = trialdir.GALLERY
# Pixel distance (RMS over a downscaled RGB image, 0..1) under which a new image is flagged as a
# near copy of its nearest training image.
NEAR_COPY = 0.03
NEIGHBOUR_SIZE = 16  # width of the downscaled images compared by the nearest-neighbour search
GRAPH_FILES = {trialdir.graph_gif_name("expanding"): "Expanding",
               trialdir.graph_gif_name("rolling"): "Rolling window",
               trialdir.graph_gif_name("static"): "Whole run",
               trialdir.SCORES_PNG: "Scores (still)"}

# Leaderboard columns: (key, heading, kind); "number" columns sort numerically.
COLUMNS = (
    ("rank", "#", "number"),
    ("label", "Trial", "text"),
    ("status", "Status", "text"),
    ("stop", "Why it ended", "text"),
    ("epochs_done", "Epochs", "number"),
    ("objective", "Objective", "number"),
    ("swd_best", "Best SWD", "number"),
    ("d_loss", "D loss", "number"),
    ("g_loss", "G loss", "number"),
    ("diversity", "Diversity", "number"),
    ("images_per_s", "Images/s", "number"),
    ("wall_s", "Wall s", "number"),
)


@dataclass
class Entry:
    """One trial's row in the leaderboard, and what its card and gallery need."""

    trial_id: str
    trial: TrialRun | None
    values: dict = field(default_factory=dict)
    problem: str | None = None


def _last(trial: TrialRun, name: str) -> float | None:
    known = trial.last_known(name, max(trial.metrics, default=0))
    return known[1] if known else None


def _best(trial: TrialRun, name: str, direction: str) -> float | None:
    values = [v for v in trial.series(name)[1] if v is not None]
    if not values:
        return None
    return min(values) if direction == "min" else max(values)


def _entry(search_dir: Path, trial_id: str, objective: str, direction: str) -> Entry:
    try:
        trial = load_trial(search_dir / trial_id)
    except RenderError as exc:
        return Entry(trial_id, None, {"label": trial_id, "status": "missing", "stop": str(exc)},
                     problem=str(exc))
    recorded = trial.info.get("objective")
    objective_value = recorded if isinstance(recorded, (int, float)) else _last(trial, objective)
    per_s = trial.info.get("images_per_s")
    values = {
        "trial_id": trial.trial_id,
        "label": trial.label,
        "status": trial.status,
        "stop": trial.stop_message() or "",
        "stop_reason": trial.info.get("stop_reason") or "",
        "error": trial.error_summary or "",
        "epochs_done": trial.epochs_done,
        "epochs": trial.epochs_planned,
        "objective": objective_value,
        "swd_best": _best(trial, "swd", "min"),
        "d_loss": _last(trial, "d_loss"),
        "g_loss": _last(trial, "g_loss"),
        "diversity": _last(trial, "diversity"),
        "images_per_s": per_s if isinstance(per_s, (int, float)) else _last(trial, "images_per_s"),
        "wall_s": trial.info.get("wall_s") if isinstance(trial.info.get("wall_s"), (int, float))
        else _last(trial, "wall_s"),
        "settings": trial.settings(),
    }
    return Entry(trial.trial_id, trial, values)


def _trial_ids(search_dir: Path, search: dict) -> list[str]:
    listed = [str(t) for t in search.get("trials") or []]
    found = sorted(child.name for child in search_dir.iterdir()
                   if child.is_dir() and child.name != GALLERY
                   and trialdir.has_trial_files(child))
    return list(dict.fromkeys(listed + found))


def _ranked(entries: list[Entry], direction: str) -> list[Entry]:
    def key(entry: Entry):
        value = entry.values.get("objective")
        if value is None:
            return (1, 0.0, entry.trial_id)
        return (0, value if direction == "min" else -value, entry.trial_id)

    ranked = sorted(entries, key=key)
    for rank, entry in enumerate(ranked, 1):
        entry.values["rank"] = rank
    return ranked


# ---------------------------------------------------------------------------------------------
# Gallery: new images beside their nearest training image

def _subset_files(subset_dir: Path) -> list[Path]:
    """The subset's images; a manifest line naming a file outside the subset folder is left out."""
    manifest = subset_dir / "manifest.csv"
    if manifest.exists():
        root = subset_dir.resolve()
        with open(manifest, newline="") as handle:
            files = [subset_dir / row["file"] for row in csv.DictReader(handle) if row.get("file")]
        return [path for path in files if path.resolve().is_relative_to(root)]
    return sorted((subset_dir / "images").glob("*.png"))


def _features(paths: list[Path], size: tuple[int, int]) -> np.ndarray:
    rows = np.zeros((len(paths), size[0] * size[1] * 3), np.float32)
    for index, path in enumerate(paths):
        with Image.open(path) as image:
            small = image.convert("RGB").resize(size, Image.Resampling.BOX)
        rows[index] = np.asarray(small, np.float32).reshape(-1) / 255.0
    return rows


def _find_subset(search: dict, settings: Settings | None) -> tuple[Path | None, str]:
    """The training subset folder, or None and the reason it is not there.

    Only ever ``<data_dir>/subsets/<subset>`` for a valid subset name: the gallery copies training
    images into the served results folder, so a path recorded in search.json (``subset_dir``,
    which a hand edit or an old version may have pointed anywhere) is never followed.
    """
    name = search.get("subset")
    if not name:
        return None, "search.json names no training subset"
    try:
        names.check_name(name, "subset name")
    except ConfigError as exc:
        return None, f"search.json's {exc}"
    folder = (settings or get_settings()).subsets_dir / name
    if not folder.is_dir():
        return None, f"the training subset folder {folder} was not found"
    return folder, ""


@dataclass
class Pair:
    generated: str
    nearest: str | None
    distance: float | None


def _gallery(search_dir: Path, best: list[Entry], images_per_trial: int, subset_dir: Path | None,
             written: set[str]) -> dict[str, list[Pair]]:
    gallery_dir = search_dir / GALLERY
    gallery_dir.mkdir(exist_ok=True)
    chosen = {e.trial_id: sorted((e.trial.path / trialdir.GENERATED).glob("*.png"))[:images_per_trial] for e in best}
    chosen = {k: v for k, v in chosen.items() if v}
    if not chosen:
        return {}
    first = next(iter(chosen.values()))[0]
    with Image.open(first) as image:
        width, height = image.size
    size = (NEIGHBOUR_SIZE, max(1, round(NEIGHBOUR_SIZE * height / width)))
    train_paths = _subset_files(subset_dir) if subset_dir else []
    train_paths = [p for p in train_paths if p.exists()]
    train = _features(train_paths, size) if train_paths else None
    pairs: dict[str, list[Pair]] = {}
    for trial_id, paths in chosen.items():
        generated = _features(paths, size)
        nearest = distances = None
        if train is not None:
            squared = ((generated ** 2).sum(1)[:, None] + (train ** 2).sum(1)[None, :]
                       - 2 * generated @ train.T)
            nearest = squared.argmin(axis=1)
            distances = np.sqrt(np.maximum(squared[np.arange(len(paths)), nearest], 0) / generated.shape[1])
        pairs[trial_id] = []
        for index, path in enumerate(paths):
            name = f"{trial_id}-{path.stem}.png"
            shutil.copyfile(path, gallery_dir / name)
            written.add(name)
            match = None
            if nearest is not None:
                source = train_paths[int(nearest[index])]
                match = f"train-{source.stem}{source.suffix or '.png'}"
                if match not in written:
                    shutil.copyfile(source, gallery_dir / match)
                    written.add(match)
            pairs[trial_id].append(Pair(name, match, None if distances is None else float(distances[index])))
    return pairs


# ---------------------------------------------------------------------------------------------
# HTML

def _cell(key: str, kind: str, values: dict) -> str:
    value = values.get(key)
    if key == "label":
        shown = (f'<a href="#trial-{html.escape(values.get("trial_id", ""))}">{html.escape(str(value))}</a>'
                 f'<span class="id">{html.escape(values.get("trial_id", ""))}</span>')
        return f'<td data-value="{html.escape(str(value))}">{shown}</td>'
    if key == "status":
        status = html.escape(str(value))
        return f'<td data-value="{status}"><span class="pill {status}">{status}</span></td>'
    if key == "epochs_done":
        planned = values.get("epochs")
        text = f"{value}/{planned}" if planned else str(value)
        return f'<td class="num" data-value="{value}">{html.escape(text)}</td>'
    if kind == "number":
        data = "" if value is None else repr(float(value))
        return f'<td class="num" data-value="{data}">{html.escape(format_value(value))}</td>'
    return f'<td data-value="{html.escape(str(value or ""))}">{html.escape(str(value or ""))}</td>'


def _link(trial_id: str, name: str) -> str:
    return f"{quote(trial_id)}/{quote(name)}"


def _figure(trial_id: str, name: str, hidden: bool = False) -> str:
    link = _link(trial_id, name)
    return (f'<figure{" hidden" if hidden else ""}><a href="{link}"><img src="{link}" '
            f'alt="{html.escape(name)} of {html.escape(trial_id)}"></a>'
            f"<figcaption>{html.escape(name)}</figcaption></figure>")


def _card(entry: Entry, search_dir: Path) -> str:
    values = entry.values
    trial_id = html.escape(entry.trial_id)
    status = html.escape(str(values.get("status")))
    parts = [f'<section class="card" id="trial-{trial_id}">',
             f'<h3>{html.escape(str(values.get("label")))} <span class="id">{trial_id}</span> '
             f'<span class="pill {status}">{status}</span></h3>']
    if values.get("stop") and status != "completed":
        parts.append(f'<p class="banner {status}">{html.escape(values["stop"])}</p>')
    if entry.trial is None:
        parts.append("</section>")
        return "\n".join(parts)
    settings = values.get("settings") or {}
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(format_value(v))}</td></tr>"
                   for k, v in sorted(settings.items())) or '<tr><td colspan="2">default settings</td></tr>'
    parts.append(f'<div class="card-body"><table class="settings"><caption>Settings that differ from the '
                 f'defaults</caption>{rows}</table>')
    folder = search_dir / entry.trial_id
    for name in (trialdir.FINAL_GRID, trialdir.PROGRESS_GIF):
        if (folder / name).exists():
            parts.append(_figure(entry.trial_id, name))
    parts.append("</div>")
    graphs = [name for name in GRAPH_FILES if (folder / name).exists()]
    if graphs:
        tabs = "".join(f'<button type="button" role="tab" aria-selected="{str(i == 0).lower()}" '
                       f'data-show="{i}">{html.escape(GRAPH_FILES[name])}</button>' for i, name in enumerate(graphs))
        parts.append(f'<div class="graphs"><div class="tabs" role="tablist">{tabs}</div>')
        for index, name in enumerate(graphs):
            parts.append(_figure(entry.trial_id, name, hidden=index > 0))
        parts.append("</div>")
    if not (folder / trialdir.PROGRESS_GIF).exists():
        parts.append('<p class="note">No GIFs rendered yet (run <code>metgan render</code>).</p>')
    files = [n for n in trialdir.RECORD_FILES if (folder / n).exists()]
    links = " · ".join(f'<a href="{_link(entry.trial_id, n)}">{n}</a>' for n in files)
    parts.append(f'<p class="files">{links}</p></section>')
    return "\n".join(parts)


def _gallery_html(pairs: dict[str, list[Pair]], entries: dict[str, Entry], subset_note: str) -> str:
    parts = ['<section id="gallery"><h2>New images and their nearest training image</h2>',
             '<p class="lede">Each new image from the best trials sits beside the training image closest '
             'to it in pixels (downscaled, RMS distance 0–1). A distance near 0 means the model copied '
             'a training image rather than making a new one.</p>']
    if subset_note:
        parts.append(f'<p class="warning">Nearest training images are not shown: {html.escape(subset_note)}.</p>')
    if not pairs:
        parts.append('<p class="note">No trial has generated images yet.</p>')
    for trial_id, trial_pairs in pairs.items():
        label = html.escape(str(entries[trial_id].values.get("label")))
        parts.append(f'<h3>{label} <span class="id">{html.escape(trial_id)}</span></h3><div class="pairs">')
        for pair in trial_pairs:
            new = f'<img src="{GALLERY}/{quote(pair.generated)}" alt="new image {html.escape(pair.generated)}">'
            if pair.nearest:
                near = f'<img src="{GALLERY}/{quote(pair.nearest)}" alt="nearest training image">'
                flag = " copy" if pair.distance is not None and pair.distance < NEAR_COPY else ""
                caption = f'<figcaption class="{flag.strip()}">distance {pair.distance:.3f}' + \
                          (" · near copy" if flag else "") + "</figcaption>"
            else:
                near, caption = '<span class="missing">—</span>', "<figcaption>no training image</figcaption>"
            parts.append(f'<figure class="pair"><div>{new}{near}</div>{caption}</figure>')
        parts.append("</div>")
    parts.append("</section>")
    return "\n".join(parts)


STYLE = """
:root{--ink:#222226;--muted:#6e7078;--paper:#fff;--mat:#f1efea;--rule:#dedcd6;--accent:#3b6fb6;
--completed:#2e7d32;--stopped:#bf6e00;--failed:#b71c1c;--running:#1565c0;--pending:#6e7078;--missing:#6e7078}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);background:var(--mat)}
header{background:var(--ink);color:#fff;padding:24px 32px}
header h1{margin:0 0 4px;font-size:24px;font-weight:650}
header p{margin:0;color:#c9c7c2}
main{max-width:1240px;margin:0 auto;padding:24px 32px 48px}
h2{font-size:19px;margin:32px 0 12px}
h3{font-size:16px;margin:0 0 8px}
.id{font:12px ui-monospace,"DejaVu Sans Mono",monospace;color:var(--muted);margin-left:6px}
table.board{width:100%;border-collapse:collapse;background:var(--paper);border-radius:8px;overflow:hidden;box-shadow:0 1px 2px #0001}
.board th,.board td{padding:8px 10px;border-bottom:1px solid var(--rule);text-align:left;vertical-align:top}
.board td.num{text-align:right;font-variant-numeric:tabular-nums}
.board th{background:#f8f7f4;font-size:13px;white-space:nowrap;padding:0}
.board th button{all:unset;cursor:pointer;display:block;padding:9px 10px;width:100%;box-sizing:border-box}
.board th button:hover{background:#eceae4}
.board th button:focus-visible{outline:2px solid var(--accent)}
.board th[aria-sort=ascending] button::after{content:" ▲";color:var(--accent)}
.board th[aria-sort=descending] button::after{content:" ▼";color:var(--accent)}
.board td:nth-child(4){max-width:320px;color:var(--muted);font-size:13px}
.board td:nth-child(2){white-space:nowrap}
.board td a{color:var(--ink);font-weight:600;text-decoration:none}
.board td a:hover{text-decoration:underline}
.board .id{display:block;margin:0}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;background:var(--pending)}
.pill.completed{background:var(--completed)}.pill.stopped{background:var(--stopped)}
.pill.failed{background:var(--failed)}.pill.running{background:var(--running)}
.card{background:var(--paper);border-radius:8px;padding:16px 20px;margin:0 0 16px;box-shadow:0 1px 2px #0001}
.card h3 .pill{margin-left:8px;vertical-align:2px}
.banner{margin:0 0 12px;padding:8px 12px;border-radius:6px;color:#fff;background:var(--pending)}
.banner.stopped{background:var(--stopped)}.banner.failed{background:var(--failed)}.banner.running{background:var(--running)}
.card-body{display:flex;gap:20px;align-items:flex-start;flex-wrap:wrap}
.card figure{margin:0}
.card img{display:block;max-width:100%;height:auto;border:1px solid var(--rule);border-radius:4px;image-rendering:pixelated}
.card-body figure:first-of-type img{height:300px;width:auto}
.graphs{margin-top:16px}
.tabs{display:flex;gap:4px;margin-bottom:8px}
.tabs button{font:inherit;font-size:13px;padding:4px 12px;border:1px solid var(--rule);border-radius:14px;background:var(--paper);color:var(--ink);cursor:pointer}
.tabs button[aria-selected=true]{background:var(--ink);color:#fff;border-color:var(--ink)}
table.settings{border-collapse:collapse;font-size:13px;min-width:220px}
.settings caption{text-align:left;color:var(--muted);font-size:12px;padding-bottom:4px}
.settings th{font-weight:500;color:var(--muted);text-align:left;padding:2px 14px 2px 0}
.settings td{font-family:ui-monospace,"DejaVu Sans Mono",monospace}
figcaption{font-size:12px;color:var(--muted);margin-top:3px}
.files{font-size:13px;margin:10px 0 0}.files a{color:var(--accent)}
.pairs{display:flex;flex-wrap:wrap;gap:14px;margin-bottom:20px}
.pair{margin:0;background:var(--paper);padding:8px;border-radius:6px;box-shadow:0 1px 2px #0001}
.pair div{display:flex;gap:4px}
.pair img{width:72px;image-rendering:pixelated;display:block}
.pair figcaption.copy{color:var(--failed);font-weight:600}
.missing{display:flex;width:72px;align-items:center;justify-content:center;color:var(--muted)}
.lede{color:var(--muted);max-width:780px}
.warning{background:#fff4e0;border-left:4px solid var(--stopped);padding:8px 12px}
.note{color:var(--muted)}
"""

SCRIPT = """
(function(){
  var table=document.getElementById('leaderboard');
  var headers=table.querySelectorAll('thead th');
  headers.forEach(function(th,column){
    th.querySelector('button').addEventListener('click',function(){
      var numeric=th.dataset.kind==='number';
      var ascending=th.getAttribute('aria-sort')!=='ascending';
      headers.forEach(function(other){other.removeAttribute('aria-sort');});
      th.setAttribute('aria-sort',ascending?'ascending':'descending');
      var body=table.tBodies[0];
      var rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){
        var x=a.cells[column].dataset.value,y=b.cells[column].dataset.value;
        if(x===''&&y==='')return 0;
        if(x==='')return 1;
        if(y==='')return -1;
        var order=numeric?parseFloat(x)-parseFloat(y):x.localeCompare(y);
        return ascending?order:-order;
      });
      rows.forEach(function(row){body.appendChild(row);});
    });
  });
  document.querySelectorAll('.graphs').forEach(function(box){
    var tabs=box.querySelectorAll('[role=tab]'),figures=box.querySelectorAll('figure');
    tabs.forEach(function(tab){
      tab.addEventListener('click',function(){
        tabs.forEach(function(other){other.setAttribute('aria-selected',String(other===tab));});
        figures.forEach(function(figure,index){figure.hidden=String(index)!==tab.dataset.show;});
      });
    });
  });
})();
"""


def _page(search: dict, search_dir: Path, ranked: list[Entry], gallery: str) -> str:
    name = html.escape(str(search.get("name") or search_dir.name))
    objective = str(search.get("objective") or "swd")
    direction = str(search.get("direction") or "min")
    counts: dict[str, int] = {}
    for entry in ranked:
        counts[str(entry.values.get("status"))] = counts.get(str(entry.values.get("status")), 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    objective_label = SCORE_LABELS.get(objective, objective)
    heads = []
    for key, heading, kind in COLUMNS:
        if key == "objective":
            heading = f"{objective_label} ({'lower' if direction == 'min' else 'higher'} is better)"
        sort = ' aria-sort="ascending"' if key == "rank" else ""
        heads.append(f'<th data-kind="{kind}" data-key="{key}"{sort}><button type="button">'
                     f"{html.escape(heading)}</button></th>")
    rows = []
    for entry in ranked:
        cells = "".join(_cell(key, kind, entry.values) for key, _, kind in COLUMNS)
        rows.append(f'<tr data-trial="{html.escape(entry.trial_id)}">{cells}</tr>')
    cards = "\n".join(_card(entry, search_dir) for entry in ranked)
    created = html.escape(str(search.get("created_at") or ""))
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name} · metgan search report</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>{name}</h1>
<p>Subset <strong>{html.escape(str(search.get("subset") or "?"))}</strong> · objective
{html.escape(objective_label)} ({html.escape(direction)}) · {len(ranked)} trials: {html.escape(summary)}
· search created {created}</p>
</header>
<main>
<h2>Leaderboard</h2>
<p class="lede">Click a column heading to sort by it; click again to reverse. Data:
<a href="leaderboard.csv">leaderboard.csv</a>.</p>
<table class="board" id="leaderboard">
<thead><tr>{"".join(heads)}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
{gallery}
<h2>Trials</h2>
{cards}
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""


def _write_text(path: Path, text: str) -> Path:
    return trialdir.write_text_atomic(path, text)


def _leaderboard_csv(ranked: list[Entry]) -> str:
    fields = ["rank", "trial_id", "label", "status", "stop_reason", "error", "epochs_done", "epochs",
              "objective", "swd_best", "d_loss", "g_loss", "diversity", "images_per_s", "wall_s", "settings"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for entry in ranked:
        row = {k: ("" if entry.values.get(k) is None else entry.values.get(k)) for k in fields}
        row["trial_id"] = entry.trial_id
        row["settings"] = json.dumps(entry.values.get("settings") or {}, sort_keys=True)
        writer.writerow(row)
    return buffer.getvalue()


def publish_report(search_dir: str | Path, *, top_k: int = 3, images_per_trial: int = 8,
                   render_missing: bool = False, settings: Settings | None = None) -> dict:
    """Write ``report.html``, ``leaderboard.csv`` and ``gallery/`` in a search folder.

    The gallery shows up to ``images_per_trial`` new images of each of the ``top_k`` best trials
    (by the search's objective) beside their nearest training image. ``render_missing`` first
    renders the GIFs of trials that have none. Returns the paths written and the trial count.
    """
    search_dir = Path(search_dir)
    if not search_dir.is_dir():
        raise RenderError(f"search folder {search_dir} does not exist")
    if top_k < 0 or images_per_trial < 0:
        raise RenderError("top_k and images_per_trial must be 0 or more")
    try:
        search = trialdir.read_search(search_dir) or {}
    except TrialFolderError as exc:
        raise RenderError(str(exc)) from None
    trial_ids = _trial_ids(search_dir, search)
    if not trial_ids:
        raise RenderError(f"{search_dir} has no search.json trials and no trial folders")
    objective = str(search.get("objective") or "swd")
    direction = str(search.get("direction") or "min")
    if direction not in ("min", "max"):
        raise RenderError(f"search.json direction {direction!r} is not 'min' or 'max'")

    if render_missing:
        from metgan.viz.render import render_trial

        for trial_id in trial_ids:
            trial_dir = search_dir / trial_id
            if trial_dir.is_dir() and not (trial_dir / trialdir.PROGRESS_GIF).exists():
                try:
                    render_trial(trial_dir)
                except RenderError as exc:
                    log.warning("could not render %s: %s", trial_id, exc)

    ranked = _ranked([_entry(search_dir, t, objective, direction) for t in trial_ids], direction)
    best = [e for e in ranked if e.trial is not None and (e.trial.path / trialdir.GENERATED).is_dir()][:top_k]
    subset_dir, subset_note = _find_subset(search, settings)
    written_gallery: set[str] = set()
    pairs = _gallery(search_dir, best, images_per_trial, subset_dir, written_gallery)
    gallery_dir = search_dir / GALLERY
    if gallery_dir.is_dir():
        for stale in gallery_dir.iterdir():
            if stale.is_file() and stale.name not in written_gallery:
                stale.unlink()
    if subset_note and pairs:
        log.warning("report for %s: %s", search_dir.name, subset_note)

    entries = {e.trial_id: e for e in ranked}
    page = _page(search, search_dir, ranked, _gallery_html(pairs, entries, subset_note))
    report = _write_text(search_dir / trialdir.REPORT, page)
    leaderboard = _write_text(search_dir / trialdir.LEADERBOARD, _leaderboard_csv(ranked))
    log.info("report for %s: %d trials, %d gallery images", search_dir.name, len(ranked), len(written_gallery))
    return {"report": str(report), "leaderboard": str(leaderboard), "gallery": str(gallery_dir),
            "trials": len(ranked), "gallery_images": len(written_gallery)}
