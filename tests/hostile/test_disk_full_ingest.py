"""A full disk during ingest's image downloads (issue #25): the step stops with one line naming the
folder, no image is blamed or retried for it, no temp file is left, no traceback is logged per
image, and the resumed run once space is freed stores every image."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from metgan import pipeline
from metgan.config import get_settings
from metgan.errors import DiskWriteError
from tests.hostile.disk import files_under, fill, small_disk
from tests.integration.test_ingest import assert_complete

pytest_plugins = ["tests.fakemet"]


@pytest.fixture
def fake_met_options() -> dict:
    return {"objects": 24, "seed": 11, "image_width": 48}


@pytest.fixture
def met_env(monkeypatch, db, settings, fake_met):
    monkeypatch.setenv("METGAN_MET_RATE", "200")
    monkeypatch.setenv("METGAN_MET_WORKERS", "1")
    monkeypatch.setenv("METGAN_MET_TIMEOUT", "1.5")
    return get_settings()


def _image_rows(db) -> list:
    with db.connect() as conn:
        return conn.execute(text("SELECT object_id, status, error FROM met_images ORDER BY 1")).all()


def test_a_full_disk_stops_the_downloads_with_one_line_and_the_rerun_completes(met_env, db, fake_met, caplog):
    images = met_env.images_dir
    with small_disk(images, "512k"):
        filler = fill(images, leave=16384)
        with caplog.at_level(logging.WARNING), pytest.raises(DiskWriteError) as caught:
            pipeline.run_ingest("full", batch_size=16, tries=2)

        message = str(caught.value)
        assert "\n" not in message and str(images) in message and "disk is full (ENOSPC)" in message
        assert not [r for r in caplog.records if r.exc_info], "a traceback was logged for a write error"
        assert fake_met.counts().get("image", 0) < 24, "the batch went on downloading into a full disk"
        rows = _image_rows(db)
        assert not [r for r in rows if r.status in ("rejected", "gone", "failed")], rows
        assert not [name for name in files_under(images) if name.endswith(".part")]

        filler.unlink()
        finished = pipeline.run_ingest("full", batch_size=16, tries=2)
        assert finished["status"] == "success"
        assert_complete(db, images, fake_met.fake.truth())


def test_the_ingest_command_on_a_full_disk_is_one_line_and_exit_1(met_env, db, fake_met):
    from metgan.cli import cli

    images = met_env.images_dir
    with small_disk(images, "256k"):
        fill(images)
        result = CliRunner().invoke(cli, ["ingest", "--mode", "full", "--batch-size", "16"])
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: cannot write to") and "(ENOSPC)" in last
    assert "Traceback" not in result.output
