"""The search report: ``report.html``, ``leaderboard.csv`` and ``gallery/`` inside a search folder.

Built from files alone (``search.json`` and the trial folders). Every link is relative, so the
folder opens from disk in a browser and serves as-is under any URL prefix (the Airflow plugin
mounts the results folder). The page has no external resource: ``templates/report.html.j2`` holds
its markup and inlines ``report.css`` and ``report.js`` (a few lines that sort the leaderboard by the
clicked column); this module does the data work and hands the template plain values.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import jinja2
import numpy as np
from PIL import Image

from metgan import names, trialdir
from metgan.config import Settings, get_settings
from metgan.errors import ConfigError, RenderError, TrialFolderError
from metgan.gan import search_record
from metgan.gan.metrics import PRDC_LINE_KEYS, describe_prdc
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

# Leaderboard columns: (key, heading, kind); "number" columns sort numerically. The score shows
# once, with its floor and verdict (sorted by its value); the losses and timings are in the CSV,
# so the table fits a 1440 px window.
COLUMNS = (
    ("rank", "#", "number"),
    ("label", "Trial", "text"),
    ("status", "Status", "text"),
    ("stop", "Why it ended", "text"),
    ("epochs_done", "Epochs", "number"),
    ("rungs", "Rungs (epochs: score)", "text"),
    ("objective", "Score", "number"),
    ("diversity", "Diversity", "number"),
    ("images_per_s", "Images/s", "number"),
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


def _min(trial: TrialRun, name: str) -> float | None:
    values = [v for v in trial.series(name)[1] if v is not None]
    return min(values) if values else None


def _entry(search_dir: Path, record: search_record.TrialRecord) -> Entry:
    """The leaderboard row and card of a trial; its status, label, score and best snapshot are
    the search record's (:mod:`metgan.gan.search_record`), the rest comes from its files."""
    trial_id = record.trial_id
    try:
        trial = load_trial(search_dir / trial_id)
    except RenderError as exc:
        return Entry(trial_id, None, {"label": trial_id, "status": "missing", "stop": str(exc)},
                     problem=str(exc))
    trial.info["status"] = record.status  # a running trial nobody trains reads interrupted
    best = record.best
    best_metrics = best.get("metrics") if best and isinstance(best.get("metrics"), dict) else {}
    per_s = trial.info.get("images_per_s")
    values = {
        "trial_id": trial.trial_id,
        "label": record.label,
        "status": record.status,
        "stop": trial.stop_message() or "",
        "stop_reason": trial.info.get("stop_reason") or "",
        "error": trial.error_summary or "",
        "epochs_done": trial.epochs_done,
        "epochs": trial.epochs_planned,
        "objective": record.score,
        "score_text": record.describe() if record.score is not None else "",
        "trained_at": record.trained_at or "",
        "floor": record.floor,
        "swd_best": _min(trial, "swd"),
        "d_loss": _last(trial, "d_loss"),
        "g_loss": _last(trial, "g_loss"),
        "diversity": _last(trial, "diversity"),
        "images_per_s": per_s if isinstance(per_s, (int, float)) else _last(trial, "images_per_s"),
        "wall_s": trial.info.get("wall_s") if isinstance(trial.info.get("wall_s"), (int, float))
        else _last(trial, "wall_s"),
        "settings": trial.settings(),
        "rung": record.rung,
        "rungs": rung_history(trial.info.get("rungs")),
        "images_seen": trial.info.get("images_seen"),
        "best_epoch": best["epoch"] if best else None,
        # the best snapshot's fidelity and diversity, each beside the data's own (real vs real)
        "prdc_text": describe_prdc(best_metrics) or "",
        **{key: _number(best_metrics.get(key)) for key in PRDC_LINE_KEYS},
    }
    return Entry(trial.trial_id, trial, values)


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def rung_history(rungs) -> str:
    """A trial's successive-halving history on one line: "1: 41.2 promoted · 3: 30.5"."""
    parts = []
    for entry in rungs if isinstance(rungs, list) else []:
        if not isinstance(entry, dict):
            continue
        score = entry.get("score")
        text = f"{entry.get('epochs_done')}: {format_value(score) if isinstance(score, (int, float)) else '-'}"
        parts.append(text + (f" {entry['outcome']}" if entry.get("outcome") else ""))
    return " · ".join(parts)


def strategy_line(search: dict, entries: list[Entry]) -> str:
    """The search's strategy, its rungs and the training images spent against the full grid's."""
    strategy = search.get("strategy") if isinstance(search.get("strategy"), dict) else {}
    name = str(strategy.get("strategy") or "grid")
    text = f"Strategy {name}"
    if name in ("random", "halving") and strategy.get("n_iter"):
        text += f", {strategy['n_iter']} draws (seed {strategy.get('seed', 0)})"
    rungs = search.get("rungs") if isinstance(search.get("rungs"), list) else []
    if name == "halving" and rungs:
        text += (f", factor {strategy.get('factor')}: rungs "
                 + " → ".join(f"{r.get('trials')} trials × {r.get('epochs')} epochs" for r in rungs))
    spent = sum(e.values.get("images_seen") or 0 for e in entries if isinstance(e.values.get("images_seen"), int))
    full = search.get("full_grid_images")
    if isinstance(full, int) and full > 0:
        text += f" · training images {spent:,} of the full grid's {full:,} ({spent / full:.0%})"
    return text


def _ranked(entries: list[Entry], direction: str) -> list[Entry]:
    """The entries in :func:`metgan.gan.search_record.rank`'s order, numbered."""
    ranked = search_record.rank(entries, direction, score=lambda entry: entry.values.get("objective"),
                                rung=lambda entry: entry.values.get("rung"))
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
# The page: plain values for templates/report.html.j2, which alone holds the markup

# Autoescaped: labels, stop messages and settings come from trial folders, which a user may edit.
# The values handed over are dicts whose keys never name a dict method: Jinja tries attributes
# first, so a key called "copy" would render as the (truthy) dict.copy.
_TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("metgan.viz", "templates"),
                                autoescape=jinja2.select_autoescape(["html", "j2"]),
                                undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                keep_trailing_newline=True)
STYLE = _TEMPLATES.loader.get_source(_TEMPLATES, "report.css")[0]
# The plugin's Content-Security-Policy allows the report's script by the sha256 of this text, and
# the template inserts it unchanged: this string is exactly the page's only inline script.
SCRIPT = _TEMPLATES.loader.get_source(_TEMPLATES, "report.js")[0]


def _cell(key: str, kind: str, values: dict) -> dict:
    """One leaderboard cell: ``data`` is what the sorting script compares, ``text`` what is shown."""
    value = values.get(key)
    if key == "epochs_done":
        # a trial whose epochs its budget fitted ends when the time is spent: its epoch cap is no plan
        planned = values.get("epochs") if not values.get("trained_at") else None
        return {"key": key, "kind": kind, "data": str(value), "text": f"{value}/{planned}" if planned else str(value)}
    if key == "objective":
        return {"key": key, "kind": kind, "data": "" if value is None else repr(float(value)),
                "text": values.get("score_text") or format_value(value)}
    if kind == "number":
        return {"key": key, "kind": kind, "data": "" if value is None else repr(float(value)),
                "text": format_value(value)}
    if key in ("label", "status"):
        return {"key": key, "kind": kind, "data": str(value), "text": str(value)}
    return {"key": key, "kind": kind, "data": str(value or ""), "text": str(value or "")}


def _link(trial_id: str, name: str) -> str:
    return f"{quote(trial_id)}/{quote(name)}"


def _figure(trial_id: str, name: str) -> dict:
    return {"trial_id": trial_id, "name": name, "link": _link(trial_id, name)}


def _card(entry: Entry, search_dir: Path) -> dict:
    values = entry.values
    status = str(values.get("status"))
    card = {"trial_id": entry.trial_id, "label": str(values.get("label")), "status": status, "best": None,
            "banner": values["stop"] if values.get("stop") and status != "completed" else "",
            "trained_at": values.get("trained_at") or "",
            "found": entry.trial is not None}
    if entry.trial is None:
        return card
    folder = search_dir / entry.trial_id
    settings = values.get("settings") or {}
    card.update(
        settings=[(str(key), format_value(value)) for key, value in sorted(settings.items())],
        figures=[_figure(entry.trial_id, name)
                 for name in (trialdir.FINAL_GRID, trialdir.PROGRESS_GIF, trialdir.WALK_GIF)
                 if (folder / name).exists()],
        best=None if values.get("best_epoch") is None else {
            "epoch": values["best_epoch"], "value": values.get("score_text") or format_value(values.get("objective")),
            "prdc": values.get("prdc_text") or "",
            "model": _link(entry.trial_id, f"{trialdir.BEST}/{trialdir.BEST_GENERATOR}"),
            "record": _link(entry.trial_id, f"{trialdir.BEST}/{trialdir.MODEL_RECORD}")},
        graphs=[{**_figure(entry.trial_id, name), "title": title} for name, title in GRAPH_FILES.items()
                if (folder / name).exists()],
        gifs=(folder / trialdir.PROGRESS_GIF).exists(),
        files=[{"name": name, "link": _link(entry.trial_id, name)} for name in trialdir.RECORD_FILES
               if (folder / name).exists()])
    return card


def _gallery_groups(pairs: dict[str, list[Pair]], entries: dict[str, Entry]) -> list[dict]:
    return [{"trial_id": trial_id, "label": str(entries[trial_id].values.get("label")),
             "pairs": [{"name": pair.generated, "generated": f"{GALLERY}/{quote(pair.generated)}",
                        "nearest": f"{GALLERY}/{quote(pair.nearest)}" if pair.nearest else None,
                        "distance": "" if pair.distance is None else f"{pair.distance:.3f}",
                        "near_copy": pair.distance is not None and pair.distance < NEAR_COPY}
                       for pair in trial_pairs]}
            for trial_id, trial_pairs in pairs.items()]


def _page(search: dict, search_dir: Path, ranked: list[Entry], pairs: dict[str, list[Pair]],
          subset_note: str) -> str:
    objective = str(search.get("objective") or "swd")
    direction = str(search.get("direction") or "min")
    counts: dict[str, int] = {}
    for entry in ranked:
        counts[str(entry.values.get("status"))] = counts.get(str(entry.values.get("status")), 0) + 1
    objective_label = SCORE_LABELS.get(objective, objective)
    strategy = search.get("strategy")
    halving = isinstance(strategy, dict) and strategy.get("strategy") == "halving"
    shown = [column for column in COLUMNS if column[0] != "rungs" or halving]  # one rung says nothing
    columns = [{"key": key, "kind": kind, "sorted": key == "rank",
                "heading": f"{objective_label} against the data's floor ({'lower' if direction == 'min' else 'higher'} "
                           "is better)" if key == "objective" else heading}
               for key, heading, kind in shown]
    rows = [{"trial_id": entry.trial_id, "cells": [_cell(key, kind, entry.values) for key, _, kind in shown]}
            for entry in ranked]
    entries = {e.trial_id: e for e in ranked}
    return _TEMPLATES.get_template("report.html.j2").render(
        name=str(search.get("name") or search_dir.name), subset=str(search.get("subset") or "?"),
        objective_label=objective_label, direction=direction,
        summary=", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
        strategy=strategy_line(search, ranked),
        created=str(search.get("created_at") or ""), columns=columns, rows=rows,
        gallery=_gallery_groups(pairs, entries), subset_note=subset_note,
        cards=[_card(entry, search_dir) for entry in ranked], style=STYLE, script=SCRIPT)


def _write_text(path: Path, text: str) -> Path:
    return trialdir.write_text_atomic(path, text)


def _leaderboard_csv(ranked: list[Entry]) -> str:
    fields = ["rank", "trial_id", "label", "status", "stop_reason", "error", "epochs_done", "epochs",
              "objective", "floor", "best_epoch", "swd_best", *PRDC_LINE_KEYS, "d_loss", "g_loss", "diversity",
              "images_per_s", "wall_s", "settings", "rung", "rungs", "images_seen"]
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
        search = search_record.read_search(search_dir) or {}
    except TrialFolderError as exc:
        raise RenderError(str(exc)) from None
    trial_ids = search_record.trial_ids(search_dir, search)
    if not trial_ids:
        raise RenderError(f"{search_dir} has no search.json trials and no trial folders")
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

    records = search_record.read_trials(search_dir, search, settings=settings)
    ranked = _ranked([_entry(search_dir, record) for record in records], direction)
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

    page = _page(search, search_dir, ranked, pairs, subset_note)
    report = _write_text(search_dir / trialdir.REPORT, page)
    leaderboard = _write_text(search_dir / trialdir.LEADERBOARD, _leaderboard_csv(ranked))
    log.info("report for %s: %d trials, %d gallery images", search_dir.name, len(ranked), len(written_gallery))
    return {"report": str(report), "leaderboard": str(leaderboard), "gallery": str(gallery_dir),
            "trials": len(ranked), "gallery_images": len(written_gallery)}
