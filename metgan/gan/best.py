"""Which search has a model to generate from (files only: no TensorFlow, no database).

Which trial of a search is best is :func:`metgan.search_record.best_trial`'s answer (one ranking).
"""

from __future__ import annotations

from pathlib import Path

from metgan import trialdir
from metgan.errors import TrialFolderError
from metgan.search_record import best_trial

__all__ = ["best_trial", "newest_search_with_model"]


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
