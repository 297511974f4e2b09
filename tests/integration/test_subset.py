"""Training subsets against real PostgreSQL: selection SQL, build, rebuild, dedupe, manifest, CLI.

Fixture objects and images are inserted with plain SQL and the source files written here, so
these tests do not depend on the ingest code.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil

import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import text

from metgan.errors import SubsetError
from metgan.images.selection import DEFAULT_EXCLUDE, candidate_object_ids
from metgan.images.subset import build_subset

# object_id -> (object_name, classification, public domain, status)
COLLECTION = {
    1: ("Vase", "Ceramics", True, "ok"),
    2: ("Vases", "Glass", True, "ok"),
    3: ("VASE", "Porcelain", True, "ok"),
    4: ("Vase fragment", "Ceramics", True, "ok"),
    5: ("Fragments of a vase", "Ceramics", True, "ok"),
    6: ("Bottle vase", "Porcelain", True, "ok"),
    7: ("Vaseline jar", "Glass", True, "ok"),
    8: ("Plate", "Ceramics", True, "ok"),
    9: ("Vase with cover", "Porcelain", True, "ok"),
    10: ("Vase", "Ceramics", False, "ok"),            # not public domain
    11: ("Vase", "Ceramics", True, "gone"),           # withdrawn by the Met
    12: ("Terracotta lekythos (oil flask)", "Vases", True, "ok"),
    13: ("Fragment of a terracotta kylix", "Vases", True, "ok"),
    14: (None, "Vases", True, "ok"),
    15: ("O'Brien's 100% vase; \\m", "Glass", True, "ok"),
    16: ("Plates", "Ceramics", True, "pending"),        # known from the CSV only
    17: ("Vase, fragmentary", "Ceramics", True, "ok"),
}
VASES = [1, 2, 3, 6, 9, 15]


def insert_objects(engine, objects: dict) -> None:
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO met_objects (object_id, object_name, classification, is_public_domain, status) "
            "VALUES (:id, :name, :classification, :pd, :status)"),
            [{"id": i, "name": n, "classification": c, "pd": pd, "status": s}
             for i, (n, c, pd, s) in objects.items()])


def add_image(engine, settings, object_id: int, image: Image.Image | bytes, *, seq: int = 0,
              fmt: str = "JPEG", status: str = "ok") -> str:
    """Write the source file where ingest would, and its met_images row; returns its sha256."""
    relative = f"{object_id}/{seq}.jpg"
    path = settings.images_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        data = buffer.getvalue()
        width, height = image.size
    else:
        data, width, height = image, None, None
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO met_images (object_id, seq, url, status, path, width, height, bytes, sha256) "
            "VALUES (:id, :seq, :url, :status, :path, :w, :h, :bytes, :sha)"),
            {"id": object_id, "seq": seq, "url": f"https://images.example/{object_id}/{seq}.jpg",
             "status": status, "path": relative, "w": width, "h": height, "bytes": len(data), "sha": sha})
    return sha


def portrait(colour, size=(200, 250)) -> Image.Image:
    image = Image.new("RGB", size, (240, 240, 235))
    image.paste(colour, (40, 40, size[0] - 40, size[1] - 40))
    return image


def manifest_rows(settings, name):
    with open(settings.subsets_dir / name / "manifest.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def pngs(settings, name):
    """Every image file under the subset's images/ folder, whatever its generation."""
    return sorted((settings.subsets_dir / name / "images").rglob("*.png"))


def test_vase_selection_takes_exactly_the_vases(db):
    insert_objects(db, COLLECTION)
    assert candidate_object_ids(engine=db) == VASES
    assert candidate_object_ids({"classifications": ["Vases"]}, engine=db) == sorted(VASES + [12, 14])
    assert candidate_object_ids({"include": ["plate"]}, engine=db) == [8, 16]
    assert candidate_object_ids({"include": ["bottle vase"]}, engine=db) == [6]
    assert candidate_object_ids({"include": ["vase"], "exclude": []}, engine=db) == [1, 2, 3, 4, 5, 6, 9, 15, 17]
    assert candidate_object_ids({"public_domain": False}, engine=db) == sorted(VASES + [10])
    # Regex mode: a bare prefix catches "Vaseline" too, which is why plain words are the default.
    assert candidate_object_ids({"include": [r"\mvase"], "regex": True}, engine=db) == [1, 2, 3, 6, 7, 9, 15]


def test_user_patterns_are_data_never_sql(db):
    insert_objects(db, COLLECTION)
    hostile = [
        "'); DROP TABLE met_objects; --",
        "x\n; DROP TABLE met_objects; --",
        "%(include)s", "%s", "\\", "'' OR 1=1 --", "vase') OR ('1'='1",
    ]
    for pattern in hostile:
        assert candidate_object_ids({"include": [pattern]}, engine=db) == [], pattern
        assert candidate_object_ids({"exclude": [pattern, *DEFAULT_EXCLUDE]}, engine=db) == VASES, pattern
    assert candidate_object_ids({"include": ["'; DROP TABLE met_objects; --"], "regex": True}, engine=db) == []
    # Quotes, % and backslashes in a plain pattern are matched literally.
    assert candidate_object_ids({"include": ["O'Brien's 100% vase; \\m"]}, engine=db) == [15]
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM met_objects")).scalar_one() == len(COLLECTION)


def test_an_invalid_regex_is_a_clear_error(db):
    insert_objects(db, COLLECTION)
    with pytest.raises(SubsetError, match="regular expression"):
        candidate_object_ids({"include": ["vase("], "regex": True}, engine=db)


def test_build_records_every_image_built_or_skipped_with_a_reason(db, settings):
    insert_objects(db, COLLECTION)
    good = {oid: add_image(db, settings, oid, portrait((30 * i, 90, 120)))
            for i, oid in enumerate([1, 2, 3])}
    cmyk = add_image(db, settings, 6, Image.new("CMYK", (200, 250), (0, 255, 255, 0)))
    rgba = add_image(db, settings, 9, Image.new("RGBA", (200, 250), (10, 20, 30, 0)), fmt="PNG")
    wide = add_image(db, settings, 15, portrait((1, 2, 3), size=(300, 200)))
    whole = (settings.images_dir / "1/0.jpg").read_bytes()
    truncated = add_image(db, settings, 10, whole[:300])          # not public domain: never selected
    add_image(db, settings, 4, portrait((9, 9, 9)))                # fragment: never selected
    add_image(db, settings, 2, portrait((5, 5, 5)), seq=1)         # additional image: primary only
    add_image(db, settings, 3, portrait((7, 7, 7)), seq=1, status="failed")

    summary = build_subset("vases", {"size": "32x40", "mode": "grayscale"}, settings=settings, workers=2)

    assert (summary["objects"], summary["images"], summary["duplicates"]) == (6, 6, 0)
    assert (summary["ok"], summary["skipped"], summary["processed"]) == (5, 1, 6)
    assert summary["skipped_by_reason"] == {"ratio": 1}
    rows = manifest_rows(settings, "vases")
    assert sorted(r["sha256"] for r in rows) == sorted([*good.values(), cmyk, rgba])
    assert truncated not in {r["sha256"] for r in rows}
    for row in rows:
        with Image.open(settings.subsets_dir / "vases" / row["file"]) as image:
            assert image.size == (32, 40) and image.mode == "L"
        assert (row["width"], row["height"], row["mode"]) == ("32", "40", "L")
    with db.connect() as conn:
        skipped = conn.execute(text(
            "SELECT sha256, reason FROM subset_images WHERE status = 'skipped'")).all()
        subset = conn.execute(text("SELECT params, counts FROM subsets WHERE name = 'vases'")).one()
    assert [s.sha256 for s in skipped] == [wide] and skipped[0].reason.startswith("ratio:")
    assert subset.params["size"] == "32x40" and subset.counts["ok"] == 5
    stored = json.loads((settings.subsets_dir / "vases" / "subset.json").read_text())
    assert stored["counts"]["ok"] == 5


def test_a_bad_file_is_skipped_with_its_reason_and_the_build_goes_on(db, settings):
    insert_objects(db, COLLECTION)
    ok = add_image(db, settings, 1, portrait((200, 10, 10)))
    whole = (settings.images_dir / "1/0.jpg").read_bytes()
    truncated = add_image(db, settings, 2, whole[: len(whole) // 2])
    garbage = add_image(db, settings, 3, b"<html>Access denied</html>")
    missing = add_image(db, settings, 6, portrait((10, 200, 10)))
    (settings.images_dir / "6/0.jpg").unlink()

    summary = build_subset("vases", {"size": "32x40"}, settings=settings, workers=1)

    assert summary["ok"] == 1 and summary["skipped"] == 3
    assert summary["skipped_by_reason"] == {"missing": 1, "truncated": 1, "unreadable": 1}
    assert [r["sha256"] for r in manifest_rows(settings, "vases")] == [ok]
    with db.connect() as conn:
        reasons = dict(conn.execute(text("SELECT sha256, reason FROM subset_images WHERE status = 'skipped'")).all())
    assert reasons[truncated].startswith("truncated:")
    assert reasons[garbage].startswith("unreadable:")
    assert reasons[missing].startswith("missing:")

    # The missing file arrives: the next build retries it, and only it.
    portrait((10, 200, 10)).save(settings.images_dir / "6/0.jpg", format="JPEG")
    with db.begin() as conn:
        conn.execute(text("UPDATE met_images SET sha256 = :sha WHERE object_id = 6"),
                     {"sha": hashlib.sha256((settings.images_dir / "6/0.jpg").read_bytes()).hexdigest()})
    again = build_subset("vases", settings=settings, workers=1)
    assert again["processed"] == 1 and again["built"] == 1 and again["ok"] == 2


def test_rebuild_converts_only_new_images_and_duplicates_appear_once(db, settings):
    insert_objects(db, COLLECTION)
    first = {oid: add_image(db, settings, oid, portrait((40 * oid, 50, 60))) for oid in (1, 2, 3)}
    summary = build_subset("vases", {"size": "32x40"}, settings=settings, workers=2)
    assert (summary["processed"], summary["ok"]) == (3, 3)

    # Built outputs are not even opened again: their sources can vanish without a rebuild noticing.
    (settings.images_dir / "2/0.jpg").unlink()
    source_1 = (settings.images_dir / "1/0.jpg").read_bytes()
    new = add_image(db, settings, 6, portrait((1, 200, 1)))
    duplicate = add_image(db, settings, 9, source_1)           # same file as object 1's image
    assert duplicate == first[1]

    again = build_subset("vases", settings=settings, workers=2)
    assert again["processed"] == 1 and again["built"] == 1
    assert (again["images"], again["duplicates"], again["ok"], again["up_to_date"]) == (4, 1, 4, 3)
    rows = manifest_rows(settings, "vases")
    assert sorted(r["sha256"] for r in rows) == sorted([*first.values(), new])
    assert len({r["sha256"] for r in rows}) == len(rows) == 4
    assert {r["object_id"] for r in rows if r["sha256"] == first[1]} == {"1"}
    assert len(pngs(settings, "vases")) == 4

    # Nothing new: nothing converted, same manifest.
    assert build_subset("vases", settings=settings)["processed"] == 0
    assert manifest_rows(settings, "vases") == rows

    # New shape parameters: every image is converted again (object 2's source is gone now).
    resized = build_subset("vases", {"size": "16x20"}, settings=settings, workers=2)
    assert resized["processed"] == 4 and resized["skipped_by_reason"] == {"missing": 1}
    files = {r["sha256"]: r["file"] for r in manifest_rows(settings, "vases")}
    with Image.open(settings.subsets_dir / "vases" / files[first[1]]) as image:
        assert image.size == (16, 20)
    assert len(pngs(settings, "vases")) == 3         # the 32x40 generation is gone

    # A narrower selection drops images and their files.
    narrow = build_subset("vases", {"include": ["bottle vase"]}, settings=settings)
    assert narrow["removed"] == 3 and narrow["ok"] == 1
    assert [r["sha256"] for r in manifest_rows(settings, "vases")] == [new]
    assert len(pngs(settings, "vases")) == 1


def test_cli_build_list_show(db, settings):
    from metgan.cli import cli

    insert_objects(db, COLLECTION)
    add_image(db, settings, 8, portrait((200, 200, 10)))
    add_image(db, settings, 1, portrait((10, 10, 200)))
    runner = CliRunner()
    built = runner.invoke(cli, ["subset", "build", "plates", "--include", "plate", "--size", "32x40",
                                "--policy", "crop", "--workers", "1"])
    assert built.exit_code == 0, built.output
    assert "1 images ready" in built.output
    listed = runner.invoke(cli, ["subset", "list"])
    assert listed.exit_code == 0 and "plates" in listed.output and "32x40" in listed.output
    shown = runner.invoke(cli, ["subset", "show", "plates"])
    assert shown.exit_code == 0, shown.output
    assert "ready 1" in shown.output and "1.20-1.30" in shown.output
    unknown = runner.invoke(cli, ["subset", "show", "teapots"])
    assert unknown.exit_code != 0 and "no subset named 'teapots'" in unknown.output
    bad = runner.invoke(cli, ["subset", "build", "plates", "--size", "big"])
    assert bad.exit_code != 0 and "size 'big'" in bad.output


def test_two_builds_of_one_subset_never_run_at_once(db, settings):
    from metgan.db.subsets import _LOCK_CLASS

    insert_objects(db, COLLECTION)
    add_image(db, settings, 1, portrait((200, 10, 10)))
    key = {"cls": _LOCK_CLASS, "name": "vases"}
    with db.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:cls, hashtext(:name))"), key)
        try:
            with pytest.raises(SubsetError, match="being built by another process"):
                build_subset("vases", {"size": "32x40"}, settings=settings)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:cls, hashtext(:name))"), key)
    assert build_subset("vases", {"size": "32x40"}, settings=settings, workers=1)["ok"] == 1


def test_a_failed_selection_leaves_no_subset_behind(db, settings):
    insert_objects(db, COLLECTION)
    with pytest.raises(SubsetError, match="regular expression"):
        build_subset("broken", {"include": ["vase("], "regex": True}, settings=settings)
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM subsets")).scalar_one() == 0
    assert not (settings.subsets_dir / "broken").exists()


def test_selection_on_real_open_access_rows_matches_a_python_oracle(db):
    import re

    from tests.conftest import SHARED

    sample = SHARED / "met-samples" / "csv" / "MetObjects_wellformed_rows_utf8_comma_CONVERTED.csv"
    if not sample.exists():
        pytest.skip(f"{sample} is absent")
    with open(sample, encoding="utf-8-sig", newline="") as handle:
        rows = {int(r["Object ID"]): r for r in csv.DictReader(handle)}
    insert_objects(db, {oid: (r["Object Name"] or None, r["Classification"] or None,
                              r["Is Public Domain"] == "True", "ok") for oid, r in rows.items()})
    vase, fragment = re.compile(r"\bvases?\b", re.I), re.compile(r"\b(fragment(s|ary)?|sherds?)\b", re.I)
    expected = sorted(oid for oid, r in rows.items() if r["Is Public Domain"] == "True"
                      and vase.search(r["Object Name"]) and not fragment.search(r["Object Name"]))
    assert expected, "the sample holds public-domain vases"
    assert candidate_object_ids(engine=db) == expected


def test_a_build_that_selects_nothing_fails_with_one_line_naming_the_patterns(db, settings):
    from metgan.cli import cli

    insert_objects(db, COLLECTION)
    add_image(db, settings, 1, portrait((200, 10, 10)))
    with pytest.raises(SubsetError) as raised:
        build_subset("teapots", {"include": ["teapot"]}, settings=settings, workers=1)
    message = str(raised.value)
    assert "\n" not in message and "no object matches" in message and "'teapot'" in message
    # Plates match, but none has a downloaded image.
    with pytest.raises(SubsetError, match="2 objects match but none has a downloaded image"):
        build_subset("plates", {"include": ["plate"]}, settings=settings, workers=1)
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM subsets")).scalar_one() == 0

    result = CliRunner().invoke(cli, ["subset", "build", "teapots", "--include", "teapot", "--workers", "1"])
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [f"Error: {message}"]
    assert "Traceback" not in result.output


def test_a_build_whose_every_image_is_skipped_fails_and_keeps_the_last_good_subset(db, settings):
    insert_objects(db, COLLECTION)
    for oid in (1, 2, 3):
        add_image(db, settings, oid, portrait((40 * oid, 50, 60)))
    good = build_subset("vases", {"size": "32x40"}, settings=settings, workers=1)
    manifest = (settings.subsets_dir / "vases" / "manifest.csv").read_text()
    stored = (settings.subsets_dir / "vases" / "subset.json").read_text()

    # 1:1 at tolerance 0.01: every 5:4 source is skipped for its ratio.
    with pytest.raises(SubsetError) as raised:
        build_subset("vases", {"size": "32x32", "tolerance": 0.01}, settings=settings, workers=1)
    assert str(raised.value) == "subset 'vases': all 3 candidate images were skipped (ratio 3); nothing was built"
    folder = settings.subsets_dir / "vases"
    assert (folder / "manifest.csv").read_text() == manifest
    assert (folder / "subset.json").read_text() == stored
    assert all((folder / row["file"]).is_file() for row in manifest_rows(settings, "vases"))
    with db.connect() as conn:
        params, counts = conn.execute(text("SELECT params, counts FROM subsets WHERE name = 'vases'")).one()
    assert params["size"] == "32x40" and counts["ok"] == good["ok"] == 3
    # Its parameters were not stored: a plain rebuild is the last good one again.
    assert build_subset("vases", settings=settings, workers=1)["ok"] == 3


class ManifestReader:
    """A Progress that, at every converted image, reads the subset the way a trainer does."""

    def __init__(self, folder):
        self.folder, self.seen = folder, []

    def start(self, total):
        self.total = total

    def advance(self, count=1):
        with open(self.folder / "manifest.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        sizes = set()
        for row in rows:
            with Image.open(self.folder / row["file"]) as image:
                sizes.add(image.size)
            sizes.add((int(row["width"]), int(row["height"])))
        self.seen.append(sizes)

    def finish(self):
        pass


def test_a_rebuild_at_a_new_size_never_shows_a_reader_a_mixed_subset(db, settings):
    insert_objects(db, COLLECTION)
    for oid in (1, 2, 3, 6, 9):
        add_image(db, settings, oid, portrait((40 * oid, 50, 60)))
    build_subset("vases", {"size": "32x40"}, settings=settings, workers=1)
    folder = settings.subsets_dir / "vases"

    reader = ManifestReader(folder)
    summary = build_subset("vases", {"size": "16x20"}, settings=settings, workers=1, progress=reader)

    assert summary["processed"] == 5 and len(reader.seen) == 5
    assert reader.seen == [{(32, 40)}] * 5      # while converting, the manifest is the old subset, whole
    rows = manifest_rows(settings, "vases")
    assert len(rows) == 5
    for row in rows:
        with Image.open(folder / row["file"]) as image:
            assert image.size == (16, 20)
    assert json.loads((folder / "subset.json").read_text())["params_hash"] == summary["params_hash"]
    assert {p.parent.name for p in pngs(settings, "vases")} == {summary["params_hash"]}


def test_the_selection_rule_is_read_from_one_named_query_by_both_uses(db, tmp_path, monkeypatch):
    """Editing subset_candidates.sql alone changes both the targeted scrape's ids and the images a
    subset is built from (no migration, no second copy of the rule)."""
    from metgan.db import subsets as subsets_store
    from metgan.images import selection

    insert_objects(db, {1: ("Vase", "Vases", True, "ok"), 2: ("Bowl", "Bowls", True, "ok")})
    with db.begin() as conn:
        for oid in (1, 2):
            conn.execute(text("INSERT INTO met_images (object_id, seq, url, status, path, sha256) "
                              "VALUES (:o, 0, :u, 'ok', :p, :s)"),
                         {"o": oid, "u": f"https://x/{oid}.jpg", "p": f"{oid}.png", "s": f"{oid:064x}"})
    assert selection.candidate_object_ids(engine=db) == [1]
    assert [i.object_id for i in selection.candidate_images(selection.Selection(), engine=db)[0]] == [1]

    queries = tmp_path / "queries"
    shutil.copytree(subsets_store.QUERIES_DIR, queries)
    rule = queries / "subset_candidates.sql"
    rule.write_text(rule.read_text().replace("~* ANY (%(include)s::text[])", "!~* ANY (%(include)s::text[])"))
    monkeypatch.setattr(subsets_store, "QUERIES_DIR", queries)
    assert selection.candidate_object_ids(engine=db) == [2]
    assert [i.object_id for i in selection.candidate_images(selection.Selection(), engine=db)[0]] == [2]
