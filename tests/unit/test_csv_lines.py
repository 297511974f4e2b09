"""How the CSV import splits the file into lines and records and checks a row (no database)."""

from __future__ import annotations

import csv
import io

import pytest

from metgan.db import columns
from metgan.met.csv_read import (
    ARTIST_COLUMNS,
    BOOL_COLUMNS,
    BREAKS,
    CSV_HEADER,
    INT_COLUMNS,
    PLAIN,
    TAG_COLUMNS,
    TEXT_COLUMNS,
    ParsedRow,
    RowError,
    RowParser,
    line_blocks,
    records,
)


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_lines_are_those_of_a_text_file_opened_with_newline_empty(size):
    data = b"\xef\xbb\xbfh1,h2\r\na,b\r\nc,\"d\re\"\rf,g\nlast,no newline"
    lines = [line for block in line_blocks(iter(chunked(data, size))) for line in block]

    expected = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="").readlines()
    assert [line.decode() for line in lines] == expected
    assert lines[1] == b"a,b\r\n"  # a \r\n split between two reads stays one line break


@pytest.mark.parametrize("size", [1, 5, 64, 1 << 20])
def test_records_carry_their_bytes_and_first_line_number(size):
    rows = [["Object ID", "Title"], ["1", "plain"], ["2", "two\r\nlines, \"quoted\""], ["3", "Ἀθηνᾶ – 北京"],
            ["4", "x" * 300]]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    data = buffer.getvalue().encode("utf-8")

    found = list(records(iter(chunked(data, size))))

    assert [(line, row) for line, row, _, _ in found] == [(1, rows[0]), (2, rows[1]), (3, rows[2]),
                                                          (5, rows[3]), (6, rows[4])]
    for (_, _, error, raw), written in zip(found, rows, strict=True):
        assert error is None
        one = io.StringIO()
        csv.writer(one, lineterminator="").writerow(written)
        assert raw == one.getvalue().encode("utf-8")


def test_bytes_that_are_not_utf8_become_replacement_characters_in_fields_and_bytes():
    data = b"Object ID,Title\n1,caf\xe9\n2,ok\n"

    found = list(records(iter([data])))

    assert found[1][1] == ["1", "caf\ufffd"]
    assert found[1][3] == "1,caf\ufffd".encode("utf-8")  # valid UTF-8: PostgreSQL takes it
    assert found[2][1:] == (["2", "ok"], None, b"2,ok")


def test_a_checked_row_names_its_fields_in_the_met_order_whatever_the_file_order():
    header = list(reversed(CSV_HEADER))  # a file with the Met's columns in another order
    values = {name: "" for name in CSV_HEADER}
    values.update({"Object ID": "42", "Title": " Vase ", "Is Highlight": "True", "Is Public Domain": "false",
                   "Object Begin Date": "-500", "Object End Date": " 7 ", "Dimensions": "H. 1 in.\r\nW. 2 in."})
    row = [values[name] for name in header]
    raw = b"the record's bytes\r\nas read"

    parsed = RowParser(header).parse(row, raw)

    assert isinstance(parsed, ParsedRow)
    assert (parsed.object_id, parsed.raw, parsed.escapes) == (42, raw, BREAKS)
    assert parsed.fields == [values[name] for name in CSV_HEADER]
    spelled = {"True": "t", "false": "f", "": ""}
    assert parsed.typed == [spelled[values[name]] for name in BOOL_COLUMNS] + ["-500", "7"]
    assert list(INT_COLUMNS) == ["Object Begin Date", "Object End Date"]
    assert len(parsed.csv_hash) == 32 and parsed.csv_hash == RowParser(header).parse(row, raw).csv_hash
    assert RowParser(header).parse(row, b"other bytes").csv_hash != parsed.csv_hash
    assert RowParser(header).parse(row, b"plain").escapes == PLAIN


@pytest.mark.parametrize(("column", "value", "reason"), [
    ("Object ID", "0", "Object ID '0' is not a positive whole number"),
    ("Object Begin Date", "ca. 500", "Object Begin Date 'ca. 500' is not a whole number"),
    ("Is Timeline Work", "maybe", "Is Timeline Work 'maybe' is not True or False"),
])
def test_a_bad_value_rejects_the_row_naming_the_column(column, value, reason):
    values = {name: "" for name in CSV_HEADER} | {"Object ID": "1", column: value}

    with pytest.raises(RowError, match=f"^{reason}$"):
        RowParser(list(CSV_HEADER)).parse([values[name] for name in CSV_HEADER], b"raw")
    with pytest.raises(RowError, match="^expected 54 columns, found 53$"):
        RowParser(list(CSV_HEADER)).parse([values[name] for name in CSV_HEADER][:-1], b"raw")


def test_the_csv_and_the_api_fill_met_objects_columns_from_one_map():
    by_kind = {"text": TEXT_COLUMNS, "bool": BOOL_COLUMNS, "int": INT_COLUMNS}
    api_by_kind = {"text": columns.TEXT_FIELDS, "bool": columns.BOOL_FIELDS, "int": columns.INT_FIELDS}
    for source in columns.SOURCE_COLUMNS:
        assert api_by_kind[source.kind][source.api_field] == source.column
        if source.csv_column is not None:
            assert by_kind[source.kind][source.csv_column] == source.column
    # every column of the Met's file is read into something, or is one of the three read alone
    mapped = {*TEXT_COLUMNS, *BOOL_COLUMNS, *INT_COLUMNS, *ARTIST_COLUMNS, *TAG_COLUMNS}
    assert set(CSV_HEADER) - mapped == {"Object ID", "Constituent ID", "Metadata Date"}
    assert mapped <= set(CSV_HEADER)
