"""The record parser on every real sample in ../shared/met-samples and on the error bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from metgan.db import columns
from metgan.errors import MetApiError
from metgan.met import parse

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "met-samples"
OBJECTS = sorted((SAMPLES / "objects").glob("*.json")) if (SAMPLES / "objects").is_dir() else []
needs_samples = pytest.mark.skipif(not OBJECTS, reason=f"no Met samples under {SAMPLES}/objects")


def load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def sample(object_id: int) -> dict:
    matches = [p for p in OBJECTS if p.name.startswith(f"object_{object_id}_") or p.stem == f"object_{object_id}"]
    if not matches:
        pytest.skip(f"sample object {object_id} absent from {SAMPLES}/objects")
    return load(matches[0])


@needs_samples
@pytest.mark.parametrize("path", OBJECTS, ids=[p.stem for p in OBJECTS])
def test_every_sample_record_parses(path):
    record = load(path)
    parsed = parse.parse_record(record)
    assert parsed.object_id == record["objectID"]
    assert set(parsed.columns) == set(columns.OBJECT_COLUMNS)
    assert parsed.columns["raw"] is record
    for column, value in parsed.columns.items():
        assert value != "", f"{column} kept an empty string"
    for seq, tag in enumerate(parsed.tags):
        assert tag["seq"] == seq and tag["term"]
    for seq, constituent in enumerate(parsed.constituents):
        assert constituent["seq"] == seq
    if record.get("primaryImage"):
        assert parsed.image_urls, "a record with an image lists it"
        assert parsed.image_urls[1:] == [u for u in record["additionalImages"] if u]
    else:
        assert parsed.image_urls == []
    assert parsed.columns["metadata_date"].tzinfo is not None
    assert parsed.columns["is_public_domain"] is record["isPublicDomain"]


@needs_samples
def test_current_schema_record_436535():
    parsed = parse.parse_record(sample(436535))
    c = parsed.columns
    assert c["title"] == "Wheat Field with Cypresses"
    assert c["gallery_number"] == "822"
    assert c["is_highlight"] is True and c["is_timeline_work"] is True
    assert c["culture"] is None  # "" → NULL
    assert c["object_begin_date"] == 1889
    assert c["metadata_date"] == datetime(2026, 5, 13, 4, 56, 47, 627000, tzinfo=UTC)
    assert [t["term"] for t in parsed.tags] == ["Landscapes", "Cypresses", "Summer"]
    assert parsed.tags[0]["aat_url"].endswith("300132294")
    assert parsed.tags[0]["wikidata_url"].endswith("Q191163")
    assert len(parsed.constituents) == 1
    van_gogh = parsed.constituents[0]
    assert van_gogh["constituent_id"] == 161947
    assert van_gogh["name"] == "Vincent van Gogh"
    assert van_gogh["nationality"] == "Dutch" and van_gogh["begin_date"] == "1853"
    assert van_gogh["gender"] is None
    assert len(c["measurements"]) == 2 and c["measurements"][1]["elementDescription"] is None
    assert parsed.primary_image_url.endswith("/web-large/DP-42549-001.jpg")
    assert len(parsed.image_urls) == 5


@needs_samples
def test_2019_schema_tags_are_plain_strings_and_constituents_null():
    parsed = parse.parse_record(sample(1000))
    assert [t["term"] for t in parsed.tags] == ["Coat of Arms", "Dishes"]
    assert parsed.tags[0]["aat_url"] is None
    assert parsed.constituents == []
    assert parsed.columns["measurements"] is None
    assert parsed.columns["accession_year"] is None  # field absent in 2019
    assert parsed.columns["gallery_number"] is None
    assert parsed.columns["metadata_date"] == datetime(2019, 1, 30, 9, 8, 7, 740000, tzinfo=UTC)


@needs_samples
def test_constituents_without_id_and_null_tags():
    old = parse.parse_record(sample(786829))
    assert [c["constituent_id"] for c in old.constituents] == [None, None, None]
    assert old.constituents[1]["role"] == "Maker"
    assert old.tags == []
    nulls = parse.parse_record(sample(47533))
    assert nulls.constituents == [] and nulls.tags == []
    assert nulls.columns["object_date"] is None
    assert nulls.columns["additional_images"] == []
    pissarro = parse.parse_record(sample(339645))
    assert pissarro.constituents[0]["name"] == "Camille Pissarro"
    assert pissarro.constituents[0]["alpha_sort"] == "Pissarro, Camille"


@needs_samples
def test_not_public_domain_has_no_image():
    parsed = parse.parse_record(sample(1027))
    assert parsed.columns["is_public_domain"] is False
    assert parsed.columns["primary_image"] is None
    assert parsed.image_urls == []
    assert parsed.tags == []
    assert parsed.constituents[0]["constituent_id"] == 162583


@needs_samples
def test_image_urls_with_spaces_and_dashes_are_kept_verbatim():
    parsed = parse.parse_record(sample(786829))
    assert parsed.primary_image_url.endswith("/ESDA Kalimian Temple.jpg")
    assert "–" in parsed.image_urls[1]


ERRORS = SAMPLES / "errors"


def error_body(name: str) -> bytes:
    path = ERRORS / name
    if not path.exists():
        pytest.skip(f"error sample {name} absent from {ERRORS}")
    return path.read_bytes()


def test_error_bodies_are_recognised():
    not_found = error_body("404_objects_0_ObjectID_not_found.json")
    assert parse.error_message(not_found) == "ObjectID not found"
    assert parse.is_gone_message(parse.error_message(not_found))
    loan = error_body("object_not_a_valid_object.json")
    assert parse.is_gone_message(parse.error_message(loan))
    assert parse.is_gone_message(parse.error_message(error_body("404_objects_empty_id_Not_Found.json")))
    with pytest.raises(MetApiError, match="ObjectID not found"):
        parse.parse_record(json.loads(not_found))


def test_block_page_is_html_and_never_a_record():
    page = error_body("incapsula_block_page_2019.html")
    assert parse.looks_like_html(page)
    assert parse.error_message(page) is None
    assert not parse.looks_like_html(b'{"objectID": 1}')


def test_search_without_results_has_null_ids():
    assert parse.parse_id_listing(json.loads(error_body("search_no_results_objectIDs_null.json"))) == []


def test_listings_parse_sorted_and_unique():
    path = SAMPLES / "listings" / "objects_departmentIds15_metadataDate2018-10-10.json"
    if not path.exists():
        pytest.skip(f"listing sample absent from {path.parent}")
    body = load(path)
    ids = parse.parse_id_listing(body)
    assert ids == sorted(set(body["objectIDs"]))
    assert parse.parse_id_listing({"total": 3, "objectIDs": [3, 1, 3, "2"]}) == [1, 2, 3]
    with pytest.raises(MetApiError):
        parse.parse_id_listing({"message": "nope"})


def test_value_helpers():
    assert parse.text_or_none("  a\x00b ") == "ab"
    assert parse.text_or_none("   ") is None
    assert parse.int_or_none("153505") == 153505
    assert parse.int_or_none("") is None
    assert parse.int_or_none(2**40) is None
    assert parse.int_or_none(True) is None
    assert parse.parse_metadata_date("2026-05-13T04:56:47.6271234Z").microsecond == 627123
    assert parse.parse_metadata_date("not a date") is None
    with pytest.raises(MetApiError):
        parse.parse_record(["not", "a", "record"])
    with pytest.raises(MetApiError):
        parse.parse_record({"objectID": "", "title": "x"})


def test_values_postgresql_refuses_are_made_storable_and_the_rest_kept():
    record = {"objectID": 7, "title": "Vase \ud800\x00", "culture": "\udfff",
              "measurements": [{"elementName": "Overall",
                                "elementMeasurements": {"Height": float("nan"), "Width": float("inf"), "Depth": 2.5}}],
              "objectEndDate": float("-inf"), "tags": [{"term": "Bi\x00rds"}], "additionalImages": [],
              "primaryImage": "http://h/a\x00.jpg", "escaped": "C:\\u0000\\x", "n\x00ame": 10**5000}
    parsed = parse.parse_record(record)
    c = parsed.columns
    assert (c["title"], c["culture"], c["object_end_date"]) == ("Vase \ufffd", "\ufffd", None)
    assert c["measurements"] == [{"elementName": "Overall",
                                  "elementMeasurements": {"Height": None, "Width": None, "Depth": 2.5}}]
    assert parsed.tags[0]["term"] == "Birds" and parsed.image_urls == ["http://h/a.jpg"]
    assert c["raw"]["escaped"] == "C:\\u0000\\x", "text that only looks like an escaped NUL is kept"
    assert c["raw"]["name"] is None
    json.dumps(c["raw"], allow_nan=False).encode("utf-8")  # what jsonb input needs
    assert record["title"] == "Vase \ud800\x00", "the caller's record is not changed"


def test_a_clean_record_is_kept_as_the_same_object():
    record = {"objectID": 8, "title": "Vase", "measurements": [{"elementMeasurements": {"Height": 3.0}}]}
    assert parse.parse_record(record).columns["raw"] is record


def test_a_record_nested_deeper_than_the_limit_is_refused_in_one_line():
    nested: list = []
    for _ in range(parse.MAX_DEPTH + 5):
        nested = [nested]
    with pytest.raises(MetApiError, match=r"^object 9: record nested deeper than 64 levels$"):
        parse.parse_record({"objectID": 9, "measurements": nested})
    assert parse.parse_record({"objectID": 9, "tags": [[[["ok"]]]]}).object_id == 9


def test_a_date_that_overflows_in_utc_is_no_date():
    assert parse.parse_metadata_date("0001-01-01T00:00:00+05:00") is None
