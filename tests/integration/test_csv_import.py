"""The Open Access CSV import against real PostgreSQL, with the real sample files."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import pytest
from sqlalchemy import text

from metgan.met.csv_import import CSV_HEADER, import_csv
from tests.conftest import SHARED

pytest_plugins = ["tests.fakemet"]

SAMPLES = SHARED / "met-samples" / "csv"
WELLFORMED = SAMPLES / "MetObjects_wellformed_rows_utf8_comma_CONVERTED.csv"
VASES = SAMPLES / "MetObjects_vase_rows_UTF8_CONVERTED.csv"


def sample_rows(path: Path = WELLFORMED) -> list[list[str]]:
    if not path.exists():
        pytest.skip(f"sample CSV {path} is absent (../shared/met-samples not available)")
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == list(CSV_HEADER)
        return list(reader)


def write_csv(path: Path, rows: list[list[str]], *, header=CSV_HEADER, bom: bool = True) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode("utf-8"))
    return path


def column(name: str) -> int:
    return CSV_HEADER.index(name)


def field(raw: str, name: str) -> str:
    """A field of a stored csv_raw (the record's text)."""
    return next(csv.reader([raw]))[column(name)]


def one(db, sql: str, **params):
    with db.connect() as conn:
        return conn.execute(text(sql), params).one()


def rows_of(db, sql: str, **params) -> list:
    with db.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params).all()]


@pytest.mark.parametrize("path", [WELLFORMED, VASES], ids=lambda p: p.name)
def test_sample_files_import_every_row(db, settings, path):
    rows = sample_rows(path)
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")

    result = import_csv(path, settings=settings)

    assert result["rows"] == result["objects"] == result["new"] == len(rows)
    assert result["errors"] == 0
    ids = {int(r[column("Object ID")]) for r in rows}
    assert set(s for (s,) in rows_of(db, "SELECT object_id FROM met_objects")) == ids
    # The BOM is not part of the first column's name: Object Number lands in accession_number.
    first = rows[0]
    number, raw = one(db, "SELECT accession_number, csv_raw FROM met_objects WHERE object_id = :id",
                      id=int(first[column("Object ID")]))
    assert number == first[column("Object Number")].strip()
    # csv_raw is the record as it stands in the file (here the line after the header)
    with open(path, encoding="utf-8-sig", newline="") as handle:
        handle.readline()
        assert raw == handle.readline().rstrip("\r\n")
    status = one(db, "SELECT status, counts->>'new' FROM csv_imports WHERE import_id = :id",
                 id=result["import_id"])
    assert status == ("success", str(len(rows)))


def test_sample_constituents_and_tags_split_in_matching_order(db, settings):
    sample_rows()
    result = import_csv(WELLFORMED, settings=settings, chunk_rows=100)  # several chunks

    # the counts reported are the rows written
    assert (result["constituents"], result["tags"]) == one(
        db, "SELECT (SELECT count(*) FROM met_constituents), (SELECT count(*) FROM met_tags)")
    assert result["constituents"] > 0 and result["tags"] > 0

    # Object 120 (the sample's Tiffany vase): two constituents, dates space-padded in the file.
    constituents = rows_of(db, """
        SELECT seq, role, prefix, name, display_bio, suffix, alpha_sort, nationality, begin_date,
               end_date, gender, ulan_url, wikidata_url
        FROM met_constituents WHERE object_id = 120 ORDER BY seq""")
    assert constituents == [
        (0, "Designer", "Designed by", "Louis Comfort Tiffany", "American, New York 1848–1933 New York",
         None, "Tiffany, Louis Comfort", "American", "1848", "1933", None,
         "http://vocab.getty.edu/page/ulan/500030415", "https://www.wikidata.org/wiki/Q312950"),
        (1, "Maker", None, "Tiffany Glass and Decorating Company", "American, 1892–1902",
         None, "Tiffany Glass and Decorating Company", None, "1892", "1902", None,
         "http://vocab.getty.edu/page/ulan/500331512", None),
    ]
    tags = rows_of(db, "SELECT seq, term, aat_url, wikidata_url FROM met_tags WHERE object_id = 7 ORDER BY seq")
    assert tags == [
        (0, "Birds", "http://vocab.getty.edu/page/aat/300266506", "https://www.wikidata.org/wiki/Q5113"),
        (1, "Coins", "http://vocab.getty.edu/page/aat/300037222", "https://www.wikidata.org/wiki/Q41207"),
    ]
    # Object 1: one constituent whose id is a plain number; typed columns filled.
    assert rows_of(db, "SELECT constituent_id, name FROM met_constituents WHERE object_id = 1") == [
        (16429, "James Barton Longacre")]
    assert one(db, """SELECT title, object_begin_date, object_end_date, is_public_domain, source, status
                      FROM met_objects WHERE object_id = 1""") == (
        "One-dollar Liberty Head Coin", 1853, 1853, False, "csv", "ok")


def test_reimport_changes_nothing(db, settings):
    rows = sample_rows()
    import_csv(WELLFORMED, settings=settings)
    before = rows_of(db, "SELECT object_id, updated_at, csv_imported_at FROM met_objects ORDER BY 1")

    again = import_csv(WELLFORMED, settings=settings)

    assert (again["new"], again["changed"], again["unchanged"], again["removed"]) == (0, 0, len(rows), 0)
    assert rows_of(db, "SELECT object_id, updated_at, csv_imported_at FROM met_objects ORDER BY 1") == before


def test_broken_rows_are_recorded_with_line_numbers_and_skipped(db, settings, tmp_path):
    good = sample_rows()[:4]
    multiline = list(good[3])
    multiline[column("Object ID")] = "9001"
    multiline[column("Title")] = "Two\nline title, with \"quotes\""
    short = good[0][:10]
    bad_id = list(good[1])
    bad_id[column("Object ID")] = "abc"
    bad_date = list(good[2])
    bad_date[column("Object ID")] = "9002"
    bad_date[column("Object Begin Date")] = "x"
    bad_bool = list(good[2])
    bad_bool[column("Object ID")] = "9003"
    bad_bool[column("Is Public Domain")] = "maybe"
    # line 1 is the header; the multi-line record takes lines 4-5
    path = write_csv(tmp_path / "broken.csv",
                     [good[0], good[1], multiline, short, bad_id, good[2], bad_date, bad_bool, good[3]])

    result = import_csv(path, settings=settings)

    assert result["rows"] == 9 and result["objects"] == 5 and result["errors"] == 4
    landed = {r for (r,) in rows_of(db, "SELECT object_id FROM met_objects")}
    assert landed == {int(r[column("Object ID")]) for r in good} | {9001}
    assert one(db, "SELECT title FROM met_objects WHERE object_id = 9001") == ('Two\nline title, with "quotes"',)
    errors = rows_of(db, "SELECT line_number, reason FROM csv_import_errors WHERE import_id = :id "
                         "ORDER BY line_number", id=result["import_id"])
    assert [line for line, _ in errors] == [6, 7, 9, 10]
    assert "expected 54 columns, found 10" in errors[0][1]
    assert "Object ID 'abc'" in errors[1][1]
    assert "Object Begin Date 'x'" in errors[2][1]
    assert "Is Public Domain 'maybe'" in errors[3][1]
    raw_line = one(db, "SELECT raw_line FROM csv_import_errors WHERE line_number = 7")[0]
    assert raw_line.split(",")[column("Object ID")] == "abc"


def test_each_record_is_kept_as_it_stands_in_the_file(db, settings, tmp_path, monkeypatch):
    from metgan.met import csv_read

    rows = [list(r) for r in sample_rows()[:60]]
    rows[7][column("Title")] = 'Three\r\nline\ntitle, "quoted"'
    rows[8][column("Medium")] = "tab\there, back\\slash"
    path = write_csv(tmp_path / "records.csv", rows)
    # reads of 97 bytes: line breaks, records and the BOM fall across reads
    monkeypatch.setattr(csv_read.CountingReader, "BLOCK", 97)

    result = import_csv(path, settings=settings, chunk_rows=7)

    assert (result["objects"], result["errors"], result["bytes"]) == (60, 0, path.stat().st_size)
    stored = dict(rows_of(db, "SELECT object_id, csv_raw FROM met_objects"))
    for row in rows:
        text_of_record = io.StringIO()
        csv.writer(text_of_record, lineterminator="").writerow(row)
        assert stored[int(row[column("Object ID")])] == text_of_record.getvalue()
    assert one(db, "SELECT title, medium FROM met_objects WHERE object_id = :id",
               id=int(rows[8][column("Object ID")]))[1] == "tab\there, back\\slash"
    assert one(db, "SELECT title FROM met_objects WHERE object_id = :id",
               id=int(rows[7][column("Object ID")])) == ('Three\r\nline\ntitle, "quoted"',)


def test_bytes_that_are_not_utf8_do_not_stop_the_import(db, settings, tmp_path):
    row = sample_rows()[0]
    path = write_csv(tmp_path / "latin1.csv", [row])
    path.write_bytes(path.read_bytes().replace(row[column("Title")].encode(), b"Caf\xe9 coin"))

    result = import_csv(path, settings=settings)

    assert (result["new"], result["errors"]) == (1, 0)
    title, raw = one(db, "SELECT title, csv_raw FROM met_objects")
    assert title == "Caf\ufffd coin" and field(raw, "Title") == title


@pytest.mark.parametrize("chunk_rows", [5000, 1], ids=["same chunk", "chunk per row"])
def test_duplicate_object_id_keeps_the_last_row(db, settings, tmp_path, chunk_rows):
    first = sample_rows()[0]
    later = list(first)
    later[column("Title")] = "Later title"
    path = write_csv(tmp_path / "dup.csv", [first, later], bom=False)

    result = import_csv(path, settings=settings, chunk_rows=chunk_rows)

    assert (result["objects"], result["errors"], result["new"]) == (1, 1, 1)
    assert one(db, "SELECT title FROM met_objects WHERE object_id = 1") == ("Later title",)
    assert rows_of(db, "SELECT line_number FROM csv_import_errors") == [(2,)]


def test_newer_csv_reports_new_changed_unchanged_removed(db, settings, tmp_path):
    rows = sample_rows()
    first = import_csv(WELLFORMED, settings=settings)
    assert first["new"] == len(rows)

    newer = [list(r) for r in rows]
    removed_ids = {int(newer[i][column("Object ID")]) for i in (5, 6, 7)}
    for i in (10, 11, 12, 13, 14):
        newer[i][column("Title")] += " (retitled)"
    tiffany = next(r for r in newer if r[column("Object ID")] == "120")
    tiffany[column("Artist Display Name")] = "Louis C. Tiffany|Tiffany Studios"
    tiffany[column("Tags")], tiffany[column("Tags AAT URL")], tiffany[column("Tags Wikidata URL")] = (
        "Flowers", "http://vocab.getty.edu/page/aat/300132399", "")
    added = [list(rows[0]), list(rows[1])]
    added[0][column("Object ID")], added[1][column("Object ID")] = "700001", "700002"
    newer = [r for r in newer if int(r[column("Object ID")]) not in removed_ids] + added
    path = write_csv(tmp_path / "MetObjects-newer.csv", newer)

    result = import_csv(path, settings=settings, chunk_rows=100)  # merged in 9 chunks

    assert (result["new"], result["changed"], result["unchanged"], result["removed"]) == (
        2, 6, len(rows) - 3 - 6, 3)
    retitled = int(rows[10][column("Object ID")])
    assert one(db, "SELECT title FROM met_objects WHERE object_id = :id", id=retitled)[0].endswith("(retitled)")
    assert rows_of(db, "SELECT name FROM met_constituents WHERE object_id = 120 ORDER BY seq") == [
        ("Louis C. Tiffany",), ("Tiffany Studios",)]
    assert rows_of(db, "SELECT term FROM met_tags WHERE object_id = 120") == [("Flowers",)]
    today = datetime.now(UTC).date().isoformat()
    gone = rows_of(db, "SELECT object_id, status, status_reason FROM met_objects WHERE status = 'gone'")
    assert sorted(gone) == sorted((i, "gone", f"absent from CSV {today}") for i in removed_ids)
    assert one(db, "SELECT count(*) FROM met_objects")[0] == len(rows) + 2  # nothing deleted

    # The same newer file again: all unchanged, nothing removed twice.
    again = import_csv(path, settings=settings)
    assert (again["new"], again["changed"], again["unchanged"], again["removed"]) == (0, 0, len(newer), 0)

    # A removed object that comes back is new again, and no longer gone.
    back = import_csv(WELLFORMED, settings=settings)
    assert (back["new"], back["changed"], back["removed"]) == (3, 6, 2)
    assert one(db, "SELECT count(*) FROM met_objects WHERE status = 'gone'")[0] == 2


def test_lfs_pointer_and_missing_file_are_one_line_errors(db, settings, tmp_path):
    from metgan.errors import ConfigError

    pointer = tmp_path / "MetObjects.csv"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 317650992\n")
    with pytest.raises(ConfigError, match="Git LFS pointer"):
        import_csv(pointer, settings=settings)
    with pytest.raises(ConfigError, match="does not exist"):
        import_csv(tmp_path / "nope.csv", settings=settings)
    assert rows_of(db, "SELECT status FROM csv_imports") == [("failed",)]


# --- the CSV and the API ingest writing the same objects -----------------------------------------

API_SAMPLE = SHARED / "met-samples" / "objects" / "object_436535.json"


def store_api_record(db, record: dict) -> None:
    """Write one API record through the API ingest's own upsert (as fetch_records does)."""
    from metgan.db import met as repository
    from metgan.met.parse import parse_record

    parsed = parse_record(record)
    repository.store_fetch_outcomes(db, 0, [repository.FetchOutcome(parsed.object_id, "ok", 1, parsed)])


def csv_row_for(object_id: int, title: str) -> list[str]:
    row = list(sample_rows()[0])  # a coin by James Barton Longacre, no tags
    row[column("Object ID")] = str(object_id)
    row[column("Title")] = title
    row[column("Tags")], row[column("Tags AAT URL")] = "Coins", "http://vocab.getty.edu/page/aat/300037222"
    return row


def api_record() -> dict:
    import json

    if not API_SAMPLE.exists():
        pytest.skip(f"sample API record {API_SAMPLE} is absent")
    return json.loads(API_SAMPLE.read_text(encoding="utf-8"))


def test_import_then_api_fetch_then_reimport(db, settings, tmp_path):
    record = api_record()
    object_id = record["objectID"]
    path = write_csv(tmp_path / "one.csv", [csv_row_for(object_id, "Title from the CSV")])
    assert import_csv(path, settings=settings)["new"] == 1
    assert one(db, "SELECT source, title FROM met_objects WHERE object_id = :id", id=object_id) == (
        "csv", "Title from the CSV")

    store_api_record(db, record)

    # one row; the API's fields, constituents and tags replaced the CSV's; the CSV row is kept
    row = one(db, """SELECT count(*) OVER (), source, title, object_name, department, csv_raw,
                            raw->>'title' FROM met_objects""")
    assert row[:5] + row[6:] == (1, "api", record["title"], record["objectName"], record["department"],
                                 record["title"])
    assert field(row[5], "Title") == "Title from the CSV"
    api_lists = (rows_of(db, "SELECT seq, name FROM met_constituents ORDER BY seq"),
                 rows_of(db, "SELECT seq, term FROM met_tags ORDER BY seq"))
    assert api_lists == ([(0, "Vincent van Gogh")], [(i, t["term"]) for i, t in enumerate(record["tags"])])
    before = rows_of(db, "SELECT updated_at, csv_imported_at FROM met_objects")

    again = import_csv(path, settings=settings)
    assert (again["new"], again["changed"], again["unchanged"], again["removed"]) == (0, 0, 1, 0)
    assert rows_of(db, "SELECT updated_at, csv_imported_at FROM met_objects") == before

    # a newer CSV row of an API object: only the CSV columns move
    newer = write_csv(tmp_path / "newer.csv", [csv_row_for(object_id, "Retitled in the CSV")])
    assert import_csv(newer, settings=settings)["changed"] == 1
    source, title, raw = one(db, "SELECT source, title, csv_raw FROM met_objects")
    assert (source, title, field(raw, "Title")) == ("api", record["title"], "Retitled in the CSV")
    assert (rows_of(db, "SELECT seq, name FROM met_constituents ORDER BY seq"),
            rows_of(db, "SELECT seq, term FROM met_tags ORDER BY seq")) == api_lists


def test_api_fetch_then_import_keeps_api_fields(db, settings, tmp_path):
    record = api_record()
    store_api_record(db, record)
    path = write_csv(tmp_path / "one.csv", [csv_row_for(record["objectID"], "Title from the CSV")])

    result = import_csv(path, settings=settings)

    assert (result["new"], result["constituents"], result["tags"]) == (1, 0, 0)
    source, status, title, raw, hashed = one(
        db, "SELECT source, status, title, csv_raw, csv_hash IS NOT NULL FROM met_objects")
    assert (source, status, title, field(raw, "Title"), hashed) == (
        "api", "ok", record["title"], "Title from the CSV", True)
    assert rows_of(db, "SELECT name FROM met_constituents") == [("Vincent van Gogh",)]
    # absent from a later CSV: counted as removed, but an API object is not marked gone
    other = write_csv(tmp_path / "other.csv", [csv_row_for(1, "Another object")])
    assert import_csv(other, settings=settings)["removed"] == 1
    assert one(db, "SELECT status, csv_hash FROM met_objects WHERE object_id = :id",
               id=record["objectID"]) == ("ok", None)


# --- a URL source and the command line -----------------------------------------------------------


@pytest.fixture
def http_folder(tmp_path):
    """A real HTTP server over a temp folder (what a URL import streams from)."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    folder = tmp_path / "www"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_import_from_a_url_streams_the_body(db, settings, http_folder):
    rows = sample_rows()
    folder, base = http_folder
    (folder / "MetObjects.csv").write_bytes(WELLFORMED.read_bytes())

    result = import_csv(f"{base}/MetObjects.csv", settings=settings)

    assert (result["new"], result["errors"], result["bytes"]) == (len(rows), 0, WELLFORMED.stat().st_size)
    assert result["source"] == f"{base}/MetObjects.csv"
    import hashlib

    assert result["sha256"] == hashlib.sha256(WELLFORMED.read_bytes()).hexdigest()
    from metgan.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot download"):
        import_csv(f"{base}/missing.csv", settings=settings)


def test_cli_import_csv_prints_counts_and_errors(db, settings, tmp_path):
    from click.testing import CliRunner

    from metgan.cli import cli

    good = sample_rows()[:3]
    bad = list(good[0])
    bad[column("Object ID")] = "abc"
    path = write_csv(tmp_path / "cli.csv", [*good, bad])

    result = CliRunner().invoke(cli, ["import-csv", str(path)])

    assert result.exit_code == 0, result.output
    assert "new          3" in result.output
    assert "errors       1" in result.output
    assert "line 5: Object ID 'abc' is not a positive whole number" in result.output
    missing = CliRunner().invoke(cli, ["import-csv", str(tmp_path / "nope.csv")])
    assert missing.exit_code != 0 and "does not exist" in missing.output


# --- targeted scraping: the API is asked only about the subset's candidates -----------------------

def csv_row(**fields: str) -> list[str]:
    values = {name: "" for name in CSV_HEADER}
    values.update({name.replace("_", " "): value for name, value in fields.items()})
    return [values[name] for name in CSV_HEADER]


def test_targeted_run_asks_the_fake_met_only_about_selected_objects(fake_met, db, tmp_path, monkeypatch):
    from metgan.config import get_settings
    from metgan.met import ingest
    from metgan.pipeline import discover_targeted

    monkeypatch.setenv("METGAN_MET_RATE", "200")
    monkeypatch.setenv("METGAN_MET_WORKERS", "1")
    settings = get_settings()
    objects = fake_met.fake.collection.objects
    # The CSV knows every object of the fake collection (as the real CSV knows the Met's), plus
    # some the API does not serve.
    rows = [csv_row(Object_ID=str(i), Object_Name=o.record["objectName"], Title=f"CSV title {i}",
                    Is_Public_Domain=str(o.record["isPublicDomain"]), Department=o.record["department"])
            for i, o in objects.items()]
    rows += [csv_row(Object_ID=str(i), Object_Name="Vase", Is_Public_Domain="False") for i in (1, 2)]
    rows += [csv_row(Object_ID="3", Object_Name="Coin", Is_Public_Domain="True")]
    import_csv(write_csv(tmp_path / "MetObjects.csv", rows), settings=settings)
    # the default vase selection, spelled out: the name is a vase (fragments are not), public domain
    expected = sorted(i for i, o in objects.items()
                      if o.record["objectName"] in ("Vase", "Vases", "Vase with cover")
                      and o.record["isPublicDomain"])
    assert 0 < len(expected) < len(objects)
    fake_met.reset()

    run = discover_targeted(batch_size=16, settings=settings)
    for batch in run["batches"]:
        ingest.fetch_records(batch, settings=settings)
        ingest.download_images(batch, settings=settings)
    ingest.finish_run(run["run_id"], settings=settings)

    assert run["total"] == len(expected) and sum(b["count"] for b in run["batches"]) == len(expected)
    log = fake_met.fake.log.snapshot()
    assert {entry.endpoint for entry in log} == {"object", "image"}  # no /objects listing, no search
    asked = [int(entry.path.rsplit("/", 1)[1]) for entry in log if entry.endpoint == "object"]
    assert sorted(asked) == expected  # each selected object once, nothing else
    truth = fake_met.fake.truth()
    selected_files = {unquote(img["url"].rsplit("/", 1)[1]) for i in expected for img in truth[str(i)]["images"]}
    other_files = {unquote(img["url"].rsplit("/", 1)[1]) for i in objects if i not in expected
                   for img in truth[str(i)]["images"]}
    requested_files = {entry.path.rsplit("/", 1)[1] for entry in log if entry.endpoint == "image"}
    assert requested_files and requested_files <= selected_files and not requested_files & other_files
    with db.connect() as conn:
        sources = dict(conn.execute(text("SELECT source, count(*) FROM met_objects GROUP BY source")).all())
        titles = dict(conn.execute(text(
            "SELECT object_id, title FROM met_objects WHERE object_id = ANY(:ids)"), {"ids": expected}).all())
        mode = conn.execute(text("SELECT mode, status FROM scrape_runs WHERE run_id = :id"),
                            {"id": run["run_id"]}).one()
    assert sources == {"api": len(expected), "csv": len(rows) - len(expected)}
    assert titles == {i: objects[i].record["title"] or None for i in expected}  # the API's fields won
    assert tuple(mode) == ("targeted", "success")


def test_targeted_run_needs_imported_metadata(db, settings):
    from metgan.errors import ConfigError
    from metgan.pipeline import discover_targeted

    with pytest.raises(ConfigError, match="import the Open Access CSV first"):
        discover_targeted(settings=settings)


def test_a_stray_quote_costs_only_the_rows_it_swallows(db, settings, tmp_path):
    good = sample_rows()[:3]
    path = write_csv(tmp_path / "quote.csv", good)
    # a record whose Title opens a quote that is never closed: it runs to the end of the file
    broken = ",".join(f'"{v}' if i == column("Title") else v.replace(",", " ").replace('"', "")
                      for i, v in enumerate(good[0])).replace("1979.486.1", "x")
    with open(path, "a", encoding="utf-8", newline="") as handle:
        handle.write(broken.replace(",1,", ",777,", 1) + "\r\n" + "tail,line\r\n")

    result = import_csv(path, settings=settings)

    assert result["objects"] == 3 and result["errors"] == 1
    assert rows_of(db, "SELECT line_number FROM csv_import_errors") == [(5,)]


def test_a_download_that_breaks_off_fails_the_import_and_leaves_nothing(db, settings):
    import socket
    import threading

    from metgan.errors import MetRetryableError

    sample_rows()
    body = WELLFORMED.read_bytes()
    listener = socket.create_server(("127.0.0.1", 0))

    def serve_half() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\n"
                           b"Content-Length: %d\r\n\r\n" % len(body) + body[: len(body) // 2])
        connection.close()

    thread = threading.Thread(target=serve_half, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/MetObjects.csv"

    with pytest.raises(MetRetryableError, match="broke off"):
        import_csv(url, settings=settings)

    thread.join(5)
    listener.close()
    assert one(db, "SELECT count(*) FROM met_objects") == (0,)
    assert rows_of(db, "SELECT status FROM csv_imports") == [("failed",)]


# --- where a CSV may come from (issue #12): the import folder, METGAN_CSV_HOSTS, no echo ---------


@pytest.fixture(autouse=True)
def _sources_in_tmp_path(tmp_path, monkeypatch):
    """This module's tests import the shared samples and files they write under tmp_path, and
    serve URLs on 127.0.0.1: those are their import folders (METGAN_IMPORT_DIR) and their CSV
    host list (METGAN_CSV_HOSTS)."""
    monkeypatch.setenv("METGAN_IMPORT_DIR", f"{tmp_path}:{SAMPLES}")
    monkeypatch.setenv("METGAN_CSV_HOSTS", "127.0.0.1")


FAKE_SECRET = "sk-live-0123456789abcdefFAKESECRET"


@pytest.fixture
def import_dir(tmp_path, monkeypatch):
    """A separate import folder inside tmp_path, so that tmp_path itself is outside it."""
    from metgan.config import get_settings

    folder = tmp_path / "imports"
    folder.mkdir()
    monkeypatch.setenv("METGAN_IMPORT_DIR", str(folder))
    return folder, get_settings()


def assert_no_secret_anywhere(db, *texts: str) -> None:
    for text_ in texts:
        assert FAKE_SECRET not in text_
    with db.connect() as conn:
        stored = conn.execute(text("SELECT source, counts::text FROM csv_imports")).all()
        errors = conn.execute(text("SELECT reason, coalesce(raw_line, '') FROM csv_import_errors")).all()
    for row in [*stored, *errors]:
        assert all(FAKE_SECRET not in value for value in row)


def run_cli(*args: str):
    from click.testing import CliRunner

    from metgan.cli import cli

    return CliRunner().invoke(cli, ["import-csv", *args])


def test_proc_self_environ_is_refused_and_never_echoed(db, import_dir, monkeypatch, caplog):
    from metgan.errors import ConfigError

    _, settings = import_dir
    monkeypatch.setenv("API_TOKEN", FAKE_SECRET)  # in this process's /proc/self/environ
    with pytest.raises(ConfigError, match="outside the import folder") as caught:
        import_csv("/proc/self/environ", settings=settings)
    result = run_cli("/proc/self/environ")
    assert result.exit_code != 0 and "outside the import folder" in result.output
    assert_no_secret_anywhere(db, str(caught.value), result.output, caplog.text)
    # not even when the import folder holds /proc
    monkeypatch.setenv("METGAN_IMPORT_DIR", "/proc")
    from metgan.config import get_settings

    with pytest.raises(ConfigError, match="outside the import folder"):
        import_csv("/proc/self/environ", settings=get_settings())
    assert rows_of(db, "SELECT count(*) FROM csv_imports") == [(0,)]


def test_symlinks_and_dot_dot_cannot_leave_the_import_folder(db, import_dir, tmp_path):
    from metgan.errors import ConfigError

    folder, settings = import_dir
    outside = write_csv(tmp_path / "outside.csv", sample_rows()[:2])
    (folder / "link.csv").symlink_to(outside)
    (folder / "sub").mkdir()
    for source in (folder / "link.csv", f"{folder}/../outside.csv", "../outside.csv", "sub/../../outside.csv",
                   str(outside)):
        with pytest.raises(ConfigError, match="outside the import folder"):
            import_csv(source, settings=settings)
    # a relative path is in the import folder, a link within it is followed
    write_csv(folder / "sub" / "inside.csv", sample_rows()[:2])
    (folder / "inner-link.csv").symlink_to(folder / "sub" / "inside.csv")
    assert import_csv("sub/inside.csv", settings=settings)["new"] == 2
    assert import_csv(folder / "inner-link.csv", settings=settings)["unchanged"] == 2


def test_devices_fifos_and_folders_are_not_regular_files(db, import_dir):
    import os

    from metgan.errors import ConfigError

    folder, settings = import_dir
    os.mkfifo(folder / "pipe.csv")
    (folder / "dir.csv").mkdir()
    for name in ("pipe.csv", "dir.csv"):
        with pytest.raises(ConfigError, match="is not a regular file"):
            import_csv(name, settings=settings)
    with pytest.raises(ConfigError, match="outside the import folder"):
        import_csv("/dev/zero", settings=settings)


def test_a_secret_in_the_first_line_appears_nowhere(db, import_dir, caplog):
    from metgan.errors import ConfigError

    folder, settings = import_dir
    path = folder / "secret.csv"
    path.write_text(f"AWS_SECRET_ACCESS_KEY={FAKE_SECRET},Object ID\n1,{FAKE_SECRET}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="lacks the column 'Object Number'") as caught:
        import_csv(path, settings=settings)
    result = run_cli(str(path))
    assert result.exit_code != 0
    assert "lacks the column 'Object Number' (53 of the 54 columns missing)" in result.output
    assert rows_of(db, "SELECT status FROM csv_imports") == [("failed",), ("failed",)]
    assert_no_secret_anywhere(db, str(caught.value), result.output, caplog.text)


def test_csv_urls_only_on_the_allowed_hosts_and_redirects_are_checked(db, settings, monkeypatch):
    from metgan.errors import ConfigError
    from tests.hostile.server import HostileServer

    with pytest.raises(ConfigError, match="CSV host 'evil.example' is not in METGAN_CSV_HOSTS"):
        import_csv("https://evil.example/MetObjects.csv", settings=settings)
    server = HostileServer().start()
    try:
        monkeypatch.setenv("METGAN_CSV_HOSTS", f"127.0.0.1:{server.port}")
        from metgan.config import get_settings

        chosen = get_settings()
        foreign = server.url(f"to?url=http://localhost:{server.port}/secret")
        with pytest.raises(ConfigError, match="redirect refused: CSV host 'localhost' is not in METGAN_CSV_HOSTS"):
            import_csv(foreign, settings=chosen)
        result = run_cli(foreign)
        assert result.exit_code != 0 and "redirect refused" in result.output
        with pytest.raises(ConfigError, match="more than 5 redirects"):
            import_csv(server.url("loop"), settings=chosen)
        assert server.paths["/secret"] == 0
    finally:
        server.stop()
    assert rows_of(db, "SELECT count(*) FROM csv_imports") == [(0,)]


def test_a_killed_import_is_marked_failed_by_the_next_one(db, settings, database_url, tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import sys
    import threading
    import time

    from metgan.met.csv_import import ABANDONED_MESSAGE, IMPORT_LOCK_CLASS, mark_abandoned_imports

    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve_and_stall() -> None:  # the header, then nothing: the import waits for the body
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: 100000000\r\n\r\n"
                           + ",".join(CSV_HEADER).encode() + b"\r\n")
        held.append(connection)

    threading.Thread(target=serve_and_stall, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/MetObjects.csv"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("METGAN_")},
           "METGAN_DATABASE_URL": database_url, "METGAN_DATA_DIR": str(tmp_path / "data"),
           "METGAN_CSV_HOSTS": "127.0.0.1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = subprocess.Popen([sys.executable, "-m", "metgan", "import-csv", url], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not rows_of(db, "SELECT import_id FROM csv_imports") and time.monotonic() < deadline:
            assert process.poll() is None, "the import ended before it started"
            time.sleep(0.2)
        [(import_id, status)] = rows_of(db, "SELECT import_id, status FROM csv_imports")
        assert status == "running"
        assert mark_abandoned_imports(db) == 0  # alive: its lock is held
        assert rows_of(db, "SELECT status FROM csv_imports") == [("running",)]
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    # the server notices the dead client and its backend ends, releasing the lock
    deadline = time.monotonic() + 30
    while rows_of(db, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = :c "
                      "AND objid = :i", c=IMPORT_LOCK_CLASS, i=import_id) != [(0,)]:
        assert time.monotonic() < deadline, "the killed import's lock was never released"
        time.sleep(0.2)
    for connection in held:
        connection.close()
    listener.close()

    path = write_csv(tmp_path / "next.csv", sample_rows()[:2])
    assert import_csv(path, settings=settings)["new"] == 2

    status, error = one(db, "SELECT status, counts->>'error' FROM csv_imports WHERE import_id = :id", id=import_id)
    assert (status, error) == ("failed", ABANDONED_MESSAGE)
    assert rows_of(db, "SELECT status FROM csv_imports ORDER BY import_id") == [("failed",), ("success",)]
