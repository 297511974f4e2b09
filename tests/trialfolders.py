"""Hand-made trial and search folders for the viz tests (no training: see metgan.testing.trialfolders, which
writes them through metgan.trialdir with the trainer's keys; settings are real GanConfig keys).

Import the fixtures into a test module (``from tests.trialfolders import completed_trial``).
"""

from __future__ import annotations

import pytest

from metgan.testing.trialfolders import make_search, make_subset, make_trial

__all__ = ["make_search", "make_subset", "make_trial", "completed_trial", "stopped_trial", "search_folder"]

COLLAPSE_REASON = "mode collapse: diversity 0.05 below 0.1 for 3 epochs"


@pytest.fixture
def completed_trial(tmp_path):
    """Six epochs, SWD every second epoch, two settings changed from the defaults."""
    return make_trial(tmp_path / "search" / "t-complete", epochs=6, swd_every=2,
                      overrides={"g_lr": 0.0005, "batch_size": 8}, label="lr 5e-4, batch 8")


@pytest.fixture
def stopped_trial(tmp_path):
    """Planned for 30 epochs, stopped by the collapse check after 5."""
    return make_trial(tmp_path / "search" / "t-collapsed", epochs=30, epochs_done=5, status="stopped",
                      stop_reason=COLLAPSE_REASON, collapse_from=3, swd_every=1)


@pytest.fixture
def search_folder(tmp_path):
    """A search of three trials (one collapsed, one failed) and the training subset it used."""
    subset = make_subset(tmp_path / "data" / "subsets" / "vases", count=12)
    return make_search(tmp_path / "results" / "vase-search", {
        "a1b2c3": {"epochs": 6, "overrides": {"g_lr": 0.0001}, "label": "lr 1e-4"},
        "d4e5f6": {"epochs": 6, "overrides": {"g_lr": 0.001}, "label": "lr 1e-3",
                   "status": "stopped", "epochs_done": 4, "stop_reason": COLLAPSE_REASON, "collapse_from": 2},
        "0789ab": {"epochs": 6, "overrides": {"g_lr": 0.01}, "label": "lr 1e-2",
                   "status": "failed", "epochs_done": 1, "error": "TrainingError: loss became NaN",
                   "generated": 0},
    }, subset_dir=subset)
