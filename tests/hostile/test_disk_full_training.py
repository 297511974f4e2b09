"""A full disk while a trial trains is the disk's error, and nothing good is lost (issue #25).

The results folder is a real small tmpfs, filled to leave room for about two checkpoints: the
trial ends ``failed`` with one "disk full: <trial folder>" line in its folder and the database
index alike, every checkpoint left is complete, no temp file is left, and once space is freed
the same trial resumes and completes.
"""

from __future__ import annotations

from sqlalchemy import text

from metgan import trialdir
from metgan.gan import search, search_record
from tests.gan_support import TINY, make_subset
from tests.hostile.disk import fill, small_disk


def test_a_trial_on_a_full_disk_fails_in_one_line_keeps_its_checkpoints_and_resumes(db, settings):
    make_subset(settings.subsets_dir / "vases", count=64)
    config = {**TINY, "epochs": 6, "swd_every": 6, "checkpoint_every": 1, "keep_checkpoints": 2}
    with small_disk(settings.results_dir, "6m"):
        [item] = search.plan_trials("full", {}, subset="vases", base=config, settings=settings)
        trial_dir = settings.results_dir / "full" / item["trial_id"]
        filler = fill(settings.results_dir, leave=1_400_000)

        result = search.train_trial("full", item["trial_id"], settings=settings)

        assert result["status"] == "failed", result
        assert result["error"] == f"DiskWriteError: disk full: {trial_dir}"
        info = trialdir.read_trial_info(trial_dir)
        assert info["status"] == "failed" and info["error_summary"] == result["error"]
        done = info["epochs_done"]
        assert 1 <= done < 6
        assert [line["epoch"] for line in trialdir.read_metrics(trial_dir)] == list(range(1, done + 1))
        kept = trialdir.checkpoint_epochs(trial_dir)
        assert kept and max(kept) <= done
        for epoch in kept:  # complete: the weights and the record beside them
            weights, meta = trialdir.checkpoint_paths(trial_dir, epoch)
            assert weights.stat().st_size > 0 and trialdir.read_checkpoint_meta(trial_dir, epoch)["epoch"] == epoch
        assert [p.name for p in trial_dir.rglob("*") if ".tmp" in p.name] == []
        with db.connect() as conn:
            row = conn.execute(text("SELECT status FROM trials WHERE trial_id = :t"), {"t": item["trial_id"]}).one()
        assert row.status == "failed"
        assert search_record.read_trial(trial_dir).status == "failed"

        filler.unlink()
        again = search.train_trial("full", item["trial_id"], settings=settings)
        assert again["status"] == "completed" and again["epochs"] == 6, again
        assert [line["epoch"] for line in trialdir.read_metrics(trial_dir)] == [1, 2, 3, 4, 5, 6]
