"""A full disk during a subset build is the build's error, never an image's (issue #25).

The subsets folder is a real small tmpfs; the source images stay on the ordinary disk. A write
the disk refuses stops the build with one DiskWriteError line naming the folder; no image is
recorded as skipped for it, no temp file is left, and the rerun once space is freed builds exactly
what a build with space builds.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from metgan.errors import DiskWriteError
from metgan.images.subset import build_subset
from tests.hostile.disk import files_under, fill, small_disk
from tests.integration.test_subset import COLLECTION, add_image, insert_objects, manifest_rows, portrait

PARAMS = {"size": "32x40", "include": ["vase", "plate"]}


def _collection(db, settings) -> set[str]:
    insert_objects(db, COLLECTION)
    shas = set()
    for i, oid in enumerate([1, 2, 3, 6, 8, 9, 15]):
        shas.add(add_image(db, settings, oid, portrait((30 * i, 90, 120), size=(200, 250))))
    return shas


def _subset_rows(db) -> list:
    with db.connect() as conn:
        return conn.execute(text("SELECT sha256, status, reason FROM subset_images ORDER BY sha256")).all()


@pytest.mark.parametrize("workers", [1, 2], ids=["in-process", "worker-pool"])
def test_a_full_disk_stops_the_build_and_the_rerun_converts_what_it_could_not(db, settings, workers):
    shas = _collection(db, settings)
    subsets = settings.subsets_dir
    with small_disk(subsets, "256k"):
        filler = fill(subsets, leave=8192)      # room for a couple of PNGs, not all seven

        with pytest.raises(DiskWriteError) as caught:
            build_subset("vases", PARAMS, settings=settings, workers=workers)

        message = str(caught.value)
        assert "\n" not in message and str(subsets / "vases") in message and "disk is full" in message
        assert all(row.status == "ok" for row in _subset_rows(db)), "a write error was blamed on an image"
        assert not [name for name in files_under(subsets) if name.endswith(".tmp")]
        assert not (subsets / "vases" / "subset.json").exists()

        filler.unlink()
        summary = build_subset("vases", PARAMS, settings=settings, workers=workers)
        built = {row["sha256"] for row in manifest_rows(settings, "vases")}

    assert (summary["ok"], summary["skipped"]) == (7, 0)
    rows = _subset_rows(db)
    assert {row.sha256 for row in rows if row.status == "ok"} == built
    assert not [row for row in rows if "Errno" in (row.reason or "")]
    assert built == shas


def test_the_rerun_builds_what_a_build_with_space_builds(db, settings):
    _collection(db, settings)
    with small_disk(settings.subsets_dir, "256k"):
        filler = fill(settings.subsets_dir, leave=4096)
        with pytest.raises(DiskWriteError):
            build_subset("vases", PARAMS, settings=settings, workers=1)
        filler.unlink()
        resumed = build_subset("vases", PARAMS, settings=settings, workers=1)
        resumed_files = files_under(settings.subsets_dir / "vases" / "images")
        resumed_manifest = sorted(r["sha256"] for r in manifest_rows(settings, "vases"))

        spacious = build_subset("spacious", PARAMS, settings=settings, workers=1)
        spacious_files = files_under(settings.subsets_dir / "spacious" / "images")
        spacious_manifest = sorted(r["sha256"] for r in manifest_rows(settings, "spacious"))
    assert resumed_files == spacious_files
    assert (resumed["ok"], resumed["skipped"]) == (spacious["ok"], spacious["skipped"])
    assert resumed_manifest == spacious_manifest
    assert len(resumed_files) == spacious["ok"]


def test_a_manifest_the_disk_refuses_is_one_line_and_leaves_no_temp_file(db, settings):
    _collection(db, settings)
    runner = CliRunner()
    from metgan.cli import cli

    with small_disk(settings.subsets_dir, "256k"):
        first = build_subset("vases", PARAMS, settings=settings, workers=1)
        before = (settings.subsets_dir / "vases" / "subset.json").read_text()
        filler = fill(settings.subsets_dir)     # nothing to convert on the rerun: only the manifest is written

        result = runner.invoke(cli, ["subset", "build", "vases", "--workers", "1"])

        assert result.exit_code == 1, result.output
        assert result.output.count("\n") == 1 and "Traceback" not in result.output
        assert "cannot write to" in result.output and "disk is full (ENOSPC)" in result.output
        assert not [n for n in files_under(settings.subsets_dir) if n.endswith(".tmp")]
        assert (settings.subsets_dir / "vases" / "subset.json").read_text() == before
        filler.unlink()
        again = runner.invoke(cli, ["subset", "build", "vases", "--workers", "1"])
        assert again.exit_code == 0, again.output
        assert len(manifest_rows(settings, "vases")) == first["ok"]
