"""How the CSV import splits the file into lines and records (no database)."""

from __future__ import annotations

import csv
import io

import pytest

from metgan.met.csv_read import line_blocks, records


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
