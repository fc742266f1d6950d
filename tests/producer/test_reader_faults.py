"""Hostile input never ends a run in a traceback. Each fault below ends either as a refused file (a
``SourceError`` naming file, line and a clear reason: exit status 4) or as that record's own dead
letter (a ``RecordError`` naming the field):

* arrays or objects nested thousands of levels deep (the decoder's recursion limit);
* integers longer than Python converts (4,300 digits), never copied whole into a message;
* a 50 MB string (read, then refused at staging) and a record over ``MAX_RECORD`` (refused file);
* a byte that is not UTF-8 in a JSON file, and an undecodable byte in a CSV file: the exact line,
  however far into the file and wherever the read blocks fall;
* a NUL character in a CSV cell or an iteras string, refused once staged, naming the field."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from producer.formats import CsvOptions, IterasOptions
from producer.readers import json_stream
from producer.readers.base import RawRecord
from producer.readers.csv_import import CsvReader
from producer.readers.csv_profile import parse_profile
from producer.readers.iteras import IterasReader
from producer.readers.json_stream import MAX_RECORD, READ_AHEAD, JsonValue, read_values
from producer.readers.text import DecodedText, LineTooLong, Undecodable, split_lines
from producer.staging import SourceFile, Stager
from shared.db import session_factory, upgrade
from shared.entities import REGISTRY
from shared.errors import InvalidValue, SourceError
from shared.schema.control import DeadLetter, StagedRecord
from shared.vault import Vault

CUSTOMER = {"operation": "createcustomer", "id": 10001, "name": "Peter Jensen"}
SUBSCRIPTION = {"operation": "createsubscription", "id": 10001, "subscription_id": "S-1", "campaign": "AVIS-12M"}
REGISTRATION = parse_profile({"import_type": "registration", "account_number": {"parts": [{"column": "Account Number"}]},
                              "columns": {"name": "Name", "login": "Login"}}, "registration.yaml")
DEEP = 5_000
"""Levels of nesting far past any decoder's recursion limit."""
DIGITS = 5_000
LONG = "7" + "3" * (DIGITS - 1)
"""An integer of 5,000 digits, over Python's 4,300-digit conversion limit."""
LATIN_O, LATIN_U = "ø".encode("latin-1"), "ü".encode("latin-1")


@pytest.fixture
def big_tmp(tmp_path: Path) -> Iterator[Path]:
    """A temporary folder whose files are removed after the test: pytest keeps old temp folders,
    and these tests write files of 50 to 70 MB."""
    yield tmp_path
    for path in tmp_path.iterdir():
        path.unlink(missing_ok=True)


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def read_json(path: Path, *, lenient: bool = False) -> list[JsonValue]:
    return list(read_values(path, lenient=lenient))


def refused(read: Any) -> tuple[list[Any], SourceError]:
    """What a reader yields before its SourceError, and that error."""
    got: list[Any] = []
    with pytest.raises(SourceError) as caught:
        got.extend(read)
    return got, caught.value


def iteras(path: Path, **options: Any) -> list[RawRecord]:
    return list(IterasReader().read(path, IterasOptions(**options)))


def nested(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "array" else '{"a": ' * depth + "1" + "}" * depth


def shown_anywhere(record: RawRecord) -> str:
    """Every text a dead letter of ``record`` would hold."""
    error = record.error
    assert error is not None
    return " ".join([str(error), str(error.value), error.field or "", error.hint or "", *record.fields.values()])


# --- 1. deep nesting --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["array", "object"])
def test_deep_nesting_in_an_array_refuses_the_file_at_the_values_place(tmp_path: Path, kind: str) -> None:
    path = write(tmp_path, "deep.json", f"[\n  {dumps(CUSTOMER)},\n  {nested(DEEP, kind)}\n]\n")
    read, error = refused(read_values(path))
    assert [v.value for v in read] == [CUSTOMER], "what comes before the fault is read"
    assert (error.path, error.line) == (str(path), 3)
    assert error.detail.startswith("column 3: ") and "nested too deep" in error.detail, error


@pytest.mark.parametrize("kind", ["array", "object"])
def test_deep_nesting_in_json_lines_is_that_lines_record_error(tmp_path: Path, kind: str) -> None:
    path = write(tmp_path, "deep.jsonl", f"{dumps(CUSTOMER)}\n  {nested(DEEP, kind)}\n{dumps(SUBSCRIPTION)}\n")
    first, deep, last = iteras(path)
    assert first.error is None and last.error is None and last.position.line == 3
    assert isinstance(deep.error, InvalidValue)
    assert (deep.position.line, deep.position.column) == (2, 3)
    assert "nested too deep" in str(deep.error) and deep.fields == {}


def test_every_depth_around_the_decoders_limit_is_a_record_or_its_error(tmp_path: Path) -> None:
    """Wherever the limit falls (it depends on the stack the reader runs on), a value just under it
    must not break what comes after decoding (the dead letter's text, the field checks)."""
    limit = sys.getrecursionlimit()
    depths = range(limit - 150, limit + 20)
    lines = [dumps({**CUSTOMER, "name": None}).replace("null", nested(d, "array")) for d in depths]
    records = iteras(write(tmp_path, "around.jsonl", "\n".join(lines) + "\n"))
    assert len(records) == len(depths)
    assert all(isinstance(r.error, InvalidValue) for r in records), "a list is no name: every record is refused"
    reasons = ["nested too deep" in str(r.error) for r in records]
    assert reasons[-1] and not reasons[0], "the limit lies inside the range tried"
    assert reasons == sorted(reasons), "deeper values are refused for depth, shallower ones for their type"


def test_depths_around_the_limit_in_an_array_stop_at_the_first_too_deep(tmp_path: Path) -> None:
    limit = sys.getrecursionlimit()
    depths = list(range(limit - 150, limit + 20))
    path = write(tmp_path, "around.json", "[\n" + ",\n".join(nested(d, "array") for d in depths) + "\n]\n")
    read, error = refused(IterasReader().read(path, IterasOptions()))
    assert 0 < len(read) < len(depths)
    assert error.line == len(read) + 2 and "nested too deep" in error.detail


# --- 2. integers over 4,300 digits ------------------------------------------------------------------


def test_decoder_fast_path_has_no_parse_int_hook() -> None:
    """An over-long integer is handled by decoding again; the decoder every value goes through keeps
    the C scanner's own integer parsing."""
    assert json_stream._DECODER.parse_int is int


def assert_long_number_refused(record: RawRecord, field: str) -> None:
    error = record.error
    assert isinstance(error, InvalidValue), error
    assert error.field == field
    assert f"{field} is a number of {DIGITS:,} digits" in error.message
    assert "more than any id or amount can hold" in error.message
    assert str(error.value).lstrip("-").startswith(LONG[:12]) and f"{DIGITS:,} digits" in str(error.value)
    assert "3" * 200 not in shown_anywhere(record), "the digits are never copied whole"


@pytest.mark.parametrize("layout", ["array", "json-lines"])
def test_over_long_integer_is_that_records_error_naming_the_field(tmp_path: Path, layout: str) -> None:
    operations = [CUSTOMER, {**CUSTOMER, "id": "__LONG__"}, SUBSCRIPTION]
    texts = [dumps(op).replace('"__LONG__"', LONG) for op in operations]
    text = "[\n" + ",\n".join(texts) + "\n]\n" if layout == "array" else "\n".join(texts) + "\n"
    first, long, last = iteras(write(tmp_path, "long.json" if layout == "array" else "long.jsonl", text))
    assert first.error is None and last.error is None, "the records around it read"
    assert_long_number_refused(long, "id")
    assert long.entity == "Customer" and long.fields["name"] == "Peter Jensen"
    assert long.position.line == (3 if layout == "array" else 2)
    assert last.position.line == (4 if layout == "array" else 3)


def test_over_long_integer_deep_in_an_operation_names_its_path(tmp_path: Path) -> None:
    periods = [{"campaign": "A", "begin": "2024-01-01"}, {"campaign": "A", "begin": "2025-01-01", "remaining_assignments": 0}]
    text = dumps({**SUBSCRIPTION, "periods": periods}).replace('"remaining_assignments": 0', f'"remaining_assignments": -{LONG}')
    (record,) = iteras(write(tmp_path, "long.jsonl", text + "\n"))
    assert_long_number_refused(record, "periods[1].remaining_assignments")


def test_over_long_integer_cut_by_the_read_ahead_window(tmp_path: Path) -> None:
    """The number straddles the end of the first block: it is still read whole, and positions after it hold."""
    filler = {**CUSTOMER, "name": "x" * (READ_AHEAD - 2_000)}
    operations = [dumps(filler), dumps({**CUSTOMER, "id": 0}).replace('"id": 0', f'"id": {LONG}'), dumps(SUBSCRIPTION)]
    records = iteras(write(tmp_path, "long.json", "[" + ", ".join(operations) + "]"))
    assert [r.error is None for r in records] == [True, False, True]
    assert_long_number_refused(records[1], "id")
    first, second, _ = map(len, operations)
    assert [r.position.column for r in records] == [2, 2 + first + 2, 2 + first + 2 + second + 2]


@pytest.mark.parametrize("layout", ["array", "json-lines"])
def test_over_long_integer_as_the_whole_value(tmp_path: Path, layout: str) -> None:
    text = f"[{dumps(CUSTOMER)}, {LONG}]" if layout == "array" else f"{dumps(CUSTOMER)}\n{LONG}\n"
    first, record = iteras(write(tmp_path, "long.json" if layout == "array" else "long.jsonl", text))
    assert first.error is None and isinstance(record.error, InvalidValue)
    assert f"must be a JSON object, found a number: {LONG[:20]}… ({DIGITS:,} digits)" in str(record.error)
    assert "3" * 200 not in str(record.error)


# --- 3. a 50 MB string, and a record over MAX_RECORD ------------------------------------------------


def _options(format_name: str, options: dict[str, Any]) -> Any:
    return IterasOptions(**options) if format_name == "iteras" else CsvOptions(mapping=REGISTRATION, **options)


def staged(tmp_path: Path, path: Path, format_name: str, **options: Any) -> tuple[list[Any], list[Any]]:
    """Stage ``path`` into a fresh SQLite database: its staged records and dead letters, in file order."""
    url = f"sqlite:///{tmp_path / 'control.db'}"
    upgrade(url)
    sf = session_factory(url)
    run_id = Stager(sf, REGISTRY, Vault(b"k" * 32), chunk_size=100).stage(
        [SourceFile(path, format_name, _options(format_name, options))], {}).run_id
    with sf() as session:
        records = session.scalars(sa.select(StagedRecord).where(StagedRecord.run_id == run_id)
                                  .order_by(StagedRecord.id)).all()
        letters = session.scalars(sa.select(DeadLetter).where(DeadLetter.run_id == run_id)
                                  .order_by(DeadLetter.record_id)).all()
    return list(records), list(letters)


@pytest.mark.parametrize("layout", ["array", "json-lines"])
def test_a_50_mb_string_reads_then_is_refused_at_staging(big_tmp: Path, layout: str) -> None:
    tmp_path = big_tmp
    huge = "x" * (50 * 2**20)
    texts = [dumps({**CUSTOMER, "name": huge}), dumps({**CUSTOMER, "id": 10002})]
    text = "[\n" + ",\n".join(texts) + "\n]\n" if layout == "array" else "\n".join(texts) + "\n"
    path = write(tmp_path, "huge.json" if layout == "array" else "huge.jsonl", text)
    first, second = iteras(path)
    assert first.error is None and len(first.fields["name"]) == len(huge), "the reader reads it whole"
    assert second.error is None and second.position.line == (3 if layout == "array" else 2)
    del first, second
    records, letters = staged(tmp_path, path, "iteras")
    assert [r.status for r in records] == ["dead", "pending"]
    (letter,) = letters
    assert (letter.error_class, letter.field, letter.stage) == ("InvalidValue", "name", "read")
    assert f"name is {len(huge):,} characters long" in letter.message
    assert len(letter.value) < 200 and len(records[0].payload["name"]) < 200, "the dead letter keeps the start only"


@pytest.mark.parametrize("layout", ["array", "json-lines", "lenient"])
def test_a_record_over_max_record_refuses_the_file(big_tmp: Path, layout: str) -> None:
    tmp_path = big_tmp
    texts = [dumps(CUSTOMER), dumps({**CUSTOMER, "name": "x" * (MAX_RECORD + 1)}), dumps(CUSTOMER)]
    text = "[\n" + ",\n".join(texts) + "\n]\n" if layout != "json-lines" else "\n".join(texts) + "\n"
    path = write(tmp_path, "over.jsonl" if layout == "json-lines" else "over.json", text)
    read, error = refused(read_values(path, lenient=layout == "lenient"))
    # lenient mode holds line 2 back until what follows its comma shows whether the comma trails
    assert [v.value for v in read] == ([] if layout == "lenient" else [CUSTOMER])
    assert (error.path, error.line) == (str(path), 3 if layout != "json-lines" else 2)
    assert f"{MAX_RECORD >> 20} MB" in error.detail and "larger than" in error.detail, error
    assert len(str(error)) < 400


def test_a_syntax_error_in_a_long_value_keeps_the_decoders_message(tmp_path: Path) -> None:
    """Only a value the window cuts reads on: a real fault far inside it is reported as it is."""
    path = write(tmp_path, "bad.json", '[\n  {"id": 1 "name": "' + "x" * (3 * READ_AHEAD) + '"}\n]\n')
    _, error = refused(read_values(path))
    assert error.line == 2 and "column 12:" in error.detail and "Expecting ',' delimiter" in error.detail


# --- 4. not UTF-8 in a JSON file --------------------------------------------------------------------


def latin1_json_lines(bad_line: int, lines: int = 3_000) -> bytes:
    rows = [dumps({**CUSTOMER, "id": n}) for n in range(1, lines + 1)]
    rows[bad_line - 1] = rows[bad_line - 1].replace("Peter Jensen", "Søren Jensen")
    return "\n".join(rows).encode("latin-1") + b"\n"


@pytest.mark.parametrize(("layout", "lenient"), [("array", False), ("array", True), ("json-lines", False)])
def test_byte_that_is_not_utf8_names_its_line_far_into_the_file(tmp_path: Path, layout: str, lenient: bool) -> None:
    body = latin1_json_lines(2_500)
    data = b"[\n" + body.replace(b"}\n", b"},\n", 2_999) + b"]\n" if layout == "array" else body
    assert data.index(LATIN_O) > 2 * READ_AHEAD
    path = write(tmp_path, "latin.json", data)
    read, error = refused(read_values(path, lenient=lenient))
    line = data[:data.index(LATIN_O)].count(b"\n") + 1
    assert line == (2_501 if layout == "array" else 2_500)
    assert (error.path, error.line) == (str(path), line), error
    column = data.index(LATIN_O) - data.rindex(b"\n", 0, data.index(LATIN_O))
    assert error.detail.startswith(f"column {column}: not UTF-8 text"), error
    assert f"byte offset {data.index(LATIN_O):,}" in error.detail and "0xf8" in error.detail
    assert "block" not in error.detail
    assert all(v.error is None for v in read) and len(read) < line


@pytest.mark.parametrize("at", [READ_AHEAD - 1, READ_AHEAD, READ_AHEAD + 1])
def test_bad_sequence_across_the_block_boundary(tmp_path: Path, at: int) -> None:
    """A two-byte lead with no continuation, placed around the end of the first read block."""
    head = b'[\n  {"name": "' + b"a" * (at - 14) + b"\xc3(" + b'"}\n]\n'
    assert head.index(b"\xc3") == at
    _, error = refused(read_values(write(tmp_path, "cut.json", head)))
    assert error.line == 2 and error.detail.startswith(f"column {at - 1}: not UTF-8"), error
    assert f"byte offset {at:,}" in error.detail


def test_valid_multibyte_characters_across_the_block_boundary_keep_positions(tmp_path: Path) -> None:
    rows = [dumps({**CUSTOMER, "id": n, "name": "Ærø " * (n % 7)}) for n in range(1, 5_000)]
    path = write(tmp_path, "dk.json", "[\n" + ",\n".join(rows) + "\n]\n")
    read = read_json(path)
    assert [(v.line, v.column) for v in read] == [(n + 2, 1) for n in range(len(rows))]
    assert read[-1].value["name"] == "Ærø " * (4_999 % 7)


def test_not_utf8_right_after_a_byte_order_mark(tmp_path: Path) -> None:
    _, error = refused(read_values(write(tmp_path, "bom.json", b'\xef\xbb\xbf\xff[{"id": 1}]')))
    assert error.line == 1 and error.detail.startswith("column 1: not UTF-8") and "byte offset 3" in error.detail


def test_file_cut_inside_a_character_names_the_last_line(tmp_path: Path) -> None:
    _, error = refused(read_values(write(tmp_path, "cut.jsonl", b'{"id": 1}\n{"name": "S\xc3')))
    assert error.line == 2 and "column 12:" in error.detail and "cut" in error.detail, error


def test_lenient_reading_keeps_a_comment_ending_at_a_lone_carriage_return(tmp_path: Path) -> None:
    path = write(tmp_path, "cr.json", '[ // first\r{"id": 1}, /* x */ {"id": 2},\n]\n')
    assert [v.value for v in read_json(path, lenient=True)] == [{"id": 1}, {"id": 2}]


# --- 5. CSV encoding errors -------------------------------------------------------------------------


def read_csv(path: Path, **options: Any) -> list[RawRecord]:
    return list(CsvReader().read(path, CsvOptions(mapping=REGISTRATION, **options)))


def test_csv_bad_byte_on_line_two_names_line_two(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", "Account Number,Name,Login\n1001,José,jose\n1002,Bob,bob\n".encode("latin-1"))
    read, error = refused(CsvReader().read(path, CsvOptions(mapping=REGISTRATION)))
    assert read == []
    assert (error.path, error.line) == (str(path), 2)
    assert "cannot be read as utf-8" in error.detail and "column 9" in error.detail and "byte offset 34" in error.detail
    assert "--encoding" in error.detail and "a few after" not in error.detail


def test_csv_bad_byte_inside_a_quoted_cell_names_its_own_line(tmp_path: Path) -> None:
    text = 'Account Number,Name,Login\n1001,Ann,ann\n1002,"Bob\r\nJosé\r\nJones",bob\n'
    read, error = refused(CsvReader().read(write(tmp_path, "a.csv", text.encode("cp1252")), CsvOptions(mapping=REGISTRATION)))
    assert [r.position.line for r in read] == [2], "the rows before are read"
    assert error.line == 4, "the line of the byte, not of the row it belongs to"


@pytest.mark.parametrize("line", [2, 3_000, 6_001])
def test_csv_bad_byte_far_into_the_file(tmp_path: Path, line: int) -> None:
    rows = ["Account Number,Name,Login"] + [f"{i},Name {i},login{i}" for i in range(1, 6_001)]
    rows[line - 1] = f"{line},Jürgen,jurgen"
    data = "\n".join(rows).encode("latin-1") + b"\n"
    read, error = refused(CsvReader().read(write(tmp_path, "a.csv", data), CsvOptions(mapping=REGISTRATION)))
    assert error.line == line and len(read) == line - 2
    assert f"byte offset {data.index(LATIN_U):,}" in error.detail


def test_csv_other_encodings_name_their_codec(tmp_path: Path) -> None:
    """0x81 is undefined in Windows-1252."""
    path = write(tmp_path, "a.csv", b"Account Number,Name,Login\r\n1001,Ann,ann\r\n1002,B\x81b,bob\r\n")
    _, error = refused(CsvReader().read(path, CsvOptions(mapping=REGISTRATION, encoding="cp1252")))
    assert error.line == 3 and "cannot be read as cp1252" in error.detail and "0x81" in error.detail


def test_csv_utf16_with_its_byte_order_mark(tmp_path: Path) -> None:
    text = "Account Number,Name,Login\r\n1001,Zoë,zoe\r\n1002,\"Bob\r\nJones\",bob\r\n"
    records = read_csv(write(tmp_path, "a.csv", text.encode("utf-16")), encoding="utf-16")
    assert [(r.position.line, r.fields["name"]) for r in records] == [(2, "Zoë"), (3, "Bob\r\nJones")]


def test_csv_line_endings_and_quoted_line_breaks_keep_their_lines(tmp_path: Path) -> None:
    """\\r\\n, \\n and a lone \\r each end a line (the csv module's newline="" reading), a line break
    inside quotes stays in the cell, and nothing moves when lines straddle the read blocks."""
    rows = ["Account Number,Name,Login"]
    expected: list[tuple[int, str]] = []
    line = 2
    for i in range(1, 8_001):
        name = f'"Name\r\n{i}"' if i % 5 == 0 else f"Name {i}"
        expected.append((line, name.strip('"')))
        rows.append(f"{i},{name},login{i}")
        line += 2 if i % 5 == 0 else 1
    ends = ["\r\n", "\n", "\r"]
    text = "".join(row + ends[n % 3] for n, row in enumerate(rows))
    path = write(tmp_path, "a.csv", text)
    assert path.stat().st_size > 3 * READ_AHEAD
    records = read_csv(path)
    assert [(r.position.line, r.fields["name"]) for r in records] == expected
    assert all(r.error is None for r in records)


def test_csv_line_over_max_record_refuses_the_file(big_tmp: Path) -> None:
    tmp_path = big_tmp
    text = "Account Number,Name,Login\n1001,Ann,ann\n1002," + "x" * (MAX_RECORD + 1) + ",bob\n"
    read, error = refused(CsvReader().read(write(tmp_path, "a.csv", text), CsvOptions(mapping=REGISTRATION)))
    assert [r.position.line for r in read] == [2]
    assert error.line == 3 and f"{MAX_RECORD >> 20} MB" in error.detail


def test_csv_cell_with_other_unicode_line_breaks_stays_one_line(tmp_path: Path) -> None:
    """Form feed, vertical tab, NEL and U+2028 end a line for str.splitlines, not for CSV."""
    path = write(tmp_path, "a.csv", "Account Number,Name,Login\r\n1001,A\x0cB\x0bC\x85D\u2028E,ann\r\n1002,Bob,bob\r\n")
    records = read_csv(path)
    assert [(r.position.line, r.fields["name"]) for r in records] == [(2, "A\x0cB\x0bC\x85D\u2028E"), (3, "Bob")]


# --- the decoding helper, at every block size ---------------------------------------------------------

MIXED = "ab\r\ncd\ré\n\n\r\r\nÆbleø\u2028x\r" + "z" * 9 + "\r\n"


@pytest.mark.parametrize("block", [1, 2, 3, 5, 7, 64])
def test_decoded_lines_are_what_newline_empty_text_mode_gives(block: int) -> None:
    """Line ends and multi-byte characters cut by every possible block boundary."""
    data = MIXED.encode("utf-8")
    expected = list(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline=""))
    assert list(DecodedText(io.BytesIO(data), "utf-8-sig", universal_newlines=True, block_size=block).lines()) == expected
    newline_only = list(DecodedText(io.BytesIO(data), "utf-8-sig", block_size=block).lines())
    assert newline_only == [line + "\n" for line in MIXED.split("\n")[:-1]]


@pytest.mark.parametrize("block", [1, 2, 3, 5, 7, 64])
@pytest.mark.parametrize("universal", [True, False], ids=["universal", "newline-only"])
def test_every_bad_byte_is_placed_exactly_at_every_block_size(block: int, universal: bool) -> None:
    data = MIXED.encode("utf-8")
    for at in range(len(data) + 1):
        if at < len(data) and (data[at] & 0xC0) == 0x80:
            continue  # inside a character: the bad byte would break that character instead
        broken = data[:at] + b"\xff" + data[at:]
        with pytest.raises(Undecodable) as caught:
            list(DecodedText(io.BytesIO(broken), "utf-8-sig", universal_newlines=universal, block_size=block).lines())
        before = data[:at].decode("utf-8")
        lines = before.replace("\r\n", "\n").replace("\r", "\n").split("\n") if universal else before.split("\n")
        fault = caught.value
        assert (fault.line, fault.column, fault.offset, fault.data) == (len(lines), len(lines[-1]) + 1, at, b"\xff"), at


def test_split_lines_refuses_a_line_over_its_limit_and_names_the_lines_before() -> None:
    with pytest.raises(LineTooLong) as caught:
        list(split_lines(["a\nb\n", "c" * 6, "c" * 6, "\n"], max_line=10))
    assert caught.value.lines_before == 2
    assert list(split_lines(["a\nb\n", "c" * 5, "c" * 5, "\n"], max_line=10)) == ["a\n", "b\n", "c" * 10 + "\n"]


# --- 6. characters a database cannot store ----------------------------------------------------------


def test_nul_in_a_csv_cell_is_that_records_error_once_staged(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", "Account Number,Name,Login\n1001,Ann\x00Smith,ann\n1002,Bob,bob\n")
    first, second = read_csv(path)
    assert first.error is None and first.fields["name"] == "Ann\x00Smith", "the csv module reads NUL as a character"
    records, letters = staged(tmp_path, path, "csv")
    assert [r.status for r in records] == ["dead", "pending"]
    (letter,) = letters
    assert (letter.error_class, letter.field, letter.line) == ("InvalidValue", "name", 2)
    assert "NUL character" in letter.message and "\x00" not in letter.value and "\x00" not in records[0].payload["name"]


def test_nul_in_an_iteras_string_is_that_records_error_once_staged(tmp_path: Path) -> None:
    path = write(tmp_path, "a.jsonl", dumps({**CUSTOMER, "name": "Peter\u0000Jensen"}) + "\n" + dumps(SUBSCRIPTION) + "\n")
    records, letters = staged(tmp_path, path, "iteras")
    assert [r.status for r in records] == ["dead", "pending"]
    (letter,) = letters
    assert (letter.error_class, letter.field, letter.line, letter.col) == ("InvalidValue", "name", 1, 1)
    assert "NUL character" in letter.message and "\x00" not in letter.value
