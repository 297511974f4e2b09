"""Which trial of a search has the best snapshot (files only: no TensorFlow, no database)."""

from __future__ import annotations

from pathlib import Path

from metgan import trialdir
from metgan.errors import TrialFolderError


def best_trial(search_dir: Path | str) -> tuple[str, trialdir.ModelRecord] | None:
    """(trial id, its best/model.json) of the trial whose best snapshot scores best by the search's
    objective and direction; None when no trial has a snapshot. Ties go to the first trial id."""
    search_dir = Path(search_dir)
    search = trialdir.read_search(search_dir) or {}
    objective, direction = search.get("objective", "swd"), search.get("direction", "min")
    scored = []
    for trial_dir in trialdir.trial_folders(search_dir):
        if not trialdir.has_best_snapshot(trial_dir):
            continue
        try:
            record = trialdir.read_model_record(trial_dir) or {}
        except TrialFolderError:
            continue
        value = record.get("objective_value")
        if record.get("objective") == objective and isinstance(value, (int, float)):
            scored.append((value if direction == "min" else -value, trial_dir.name, record))
    if not scored:
        return None
    _, trial_id, record = min(scored, key=lambda item: (item[0], item[1]))
    return trial_id, record


def newest_search_with_model(results_dir: Path | str) -> str | None:
    """The name of the newest search (by search.json's created_at) that has a best snapshot; None if none."""
    found = []
    for search_file in trialdir.search_files(Path(results_dir)):
        try:
            search = trialdir.read_search(search_file.parent) or {}
        except TrialFolderError:
            continue
        if best_trial(search_file.parent) is not None:
            found.append((str(search.get("created_at") or ""), search_file.parent.name))
    return max(found)[1] if found else None
