"""Property-based tests of the record parser: whatever JSON-ish value comes in, parse_record
returns rows PostgreSQL accepts or raises MetApiError, never anything else."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metgan.db import columns
from metgan.errors import MetApiError
from metgan.met import parse

# Strings with what Python's json lets through and PostgreSQL does not: NUL, lone surrogates,
# and text that only looks like an escape.
HOSTILE_TEXT = st.sampled_from(["\x00", "\ud800", "\udfff", "a\ud800b", "\\u0000", "\x00\x00", "é", ""])
TEXT = st.one_of(st.text(st.characters(exclude_categories=()), max_size=20), HOSTILE_TEXT,
                 st.lists(HOSTILE_TEXT | st.text(max_size=3), max_size=4).map("".join))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.just(float("inf")), st.just(float("nan")),
                    TEXT)
JSONISH = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                       max_leaves=30)
FIELDS = [*columns.TEXT_FIELDS, *columns.BOOL_FIELDS, *columns.INT_FIELDS, "additionalImages", "measurements",
          "metadataDate", "tags", "constituents", "artistDisplayName", "message"]
RECORDS = st.one_of(
    st.fixed_dictionaries({"objectID": st.integers(min_value=1, max_value=2**31 - 1) | JSONISH},
                          optional={name: JSONISH for name in FIELDS}),
    st.dictionaries(TEXT, JSONISH, max_size=6),
    JSONISH,
)


def storable_problems(value, path: str = "value", depth: int = 0) -> list[str]:
    """What in ``value`` PostgreSQL text or jsonb would refuse (empty: nothing)."""
    if depth > parse.MAX_DEPTH + 1:
        return [f"{path}: nested deeper than {parse.MAX_DEPTH}"]
    if isinstance(value, str):
        problems = [f"{path}: NUL"] if "\x00" in value else []
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problems.append(f"{path}: not encodable as UTF-8")
        return problems
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{path}: {value!r}"]
    if isinstance(value, dict):
        return [p for k, v in value.items()
                for p in storable_problems(k, f"{path} key", depth + 1) + storable_problems(v, f"{path}[{k!r}]", depth + 1)]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in storable_problems(v, f"{path}[{i}]", depth + 1)]
    return []


def parsed_or_refused(record):
    try:
        return parse.parse_record(record)
    except MetApiError as exc:
        message = str(exc)
        assert message and "\n" not in message, "a parse error is one clear line"
        return None


@settings(max_examples=200, deadline=None, database=None)
@given(RECORDS)
def test_any_record_parses_into_storable_rows_or_is_refused_in_one_line(record):
    parsed = parsed_or_refused(record)
    if parsed is None:
        return
    assert isinstance(parsed.object_id, int) and 0 < parsed.object_id <= 2**31 - 1
    assert set(parsed.columns) == set(columns.OBJECT_COLUMNS)
    rows = {"columns": parsed.columns, "constituents": parsed.constituents, "tags": parsed.tags,
            "image_urls": parsed.image_urls}
    assert storable_problems(rows) == []
    for column in ("raw", "measurements"):
        if parsed.columns[column] is not None:
            json.dumps(parsed.columns[column], allow_nan=False, ensure_ascii=False).encode("utf-8")
    for column in columns.INT_FIELDS.values():
        value = parsed.columns[column]
        assert value is None or -(2**31) < value < 2**31


@settings(max_examples=200, deadline=None, database=None)
@given(st.integers(min_value=1, max_value=600))
def test_any_depth_is_parsed_or_refused_never_a_recursion_error(depth):
    nested: object = "leaf\x00"
    for _ in range(depth):
        nested = {"k": [nested]} if depth % 2 else [nested]
    parsed = parsed_or_refused({"objectID": 5, "measurements": [nested], "title": nested})
    containers = depth * (2 if depth % 2 else 1) + 2  # the record and its measurements list too
    assert (parsed is None) == (containers > parse.MAX_DEPTH)


@pytest.fixture(scope="module")
def engine(database_url):
    from metgan.db import get_engine

    return get_engine()


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({"objectID": st.integers(min_value=1, max_value=2**31 - 1)},
                             optional={name: JSONISH for name in FIELDS}))
def test_postgresql_stores_every_parsed_record(engine, record):
    from sqlalchemy import text

    from metgan.db import met as repository
    from metgan.db.met import FetchOutcome

    parsed = parsed_or_refused(record)
    if parsed is None:
        return
    repository.store_fetch_outcomes(engine, 0, [FetchOutcome(parsed.object_id, "ok", 1, parsed=parsed)])
    with engine.connect() as conn:
        status, reason = conn.execute(text("SELECT status, status_reason FROM met_objects WHERE object_id = :i"),
                                      {"i": parsed.object_id}).one()
    assert (status, reason) == ("ok", None), "PostgreSQL refused a record the parser passed"
