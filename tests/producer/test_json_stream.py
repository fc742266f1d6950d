"""The JSON streamer under the iteras reader: the line and column of every top-level value (arrays
laid out any way, JSON Lines, files far larger than the read-ahead window), refused files and their
positions, comments and trailing commas (refused naming --lenient-json, accepted in lenient mode at
the same positions), bad JSON Lines lines as per-record errors, and flat memory."""

from __future__ import annotations

import json
import random
import tracemalloc
from pathlib import Path

import pytest

from producer.readers.json_stream import READ_AHEAD, JsonValue, read_values
from shared.errors import SourceError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "iteras"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def values(path: Path, *, lenient: bool = False) -> list[JsonValue]:
    return list(read_values(path, lenient=lenient))


def read_until_error(path: Path, *, lenient: bool = False) -> tuple[list[JsonValue], SourceError]:
    """Values yielded before the file-level error, and that error."""
    read: list[JsonValue] = []
    with pytest.raises(SourceError) as caught:
        read.extend(read_values(path, lenient=lenient))  # keeps what was read before the error
    return read, caught.value


def where(items: list[JsonValue]) -> list[tuple[int, int]]:
    return [(v.line, v.column) for v in items]


def payment(n: int) -> str:
    """A fixed-width operation (45 characters): the column of the n-th one on a line is arithmetic."""
    return f'{{"operation": "createpayment", "id": "{n:05d}"}}'


# --- positions --------------------------------------------------------------------------------------


def test_array_positions_are_where_each_object_starts(tmp_path: Path) -> None:
    path = write(tmp_path, "a.json", '[{"id": 1}, {"id": 2},\n'
                                     '  {"id": 3},\n'
                                     '\n'
                                     '\t{\n'
                                     '    "id": 4\n'
                                     '  }  ,   {"id": 5}]\n')
    read = values(path)
    assert [v.value for v in read] == [{"id": n} for n in range(1, 6)]
    assert where(read) == [(1, 2), (1, 13), (2, 3), (4, 2), (6, 10)]
    assert all(v.error is None for v in read)


def test_json_lines_positions_skip_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "a.jsonl", '{"id": 1}\n  {"id": 2}\n\n   \n{"id": 3}\r\n{"id": 4}')
    read = values(path)
    assert [v.value for v in read] == [{"id": n} for n in range(1, 5)]
    assert where(read) == [(1, 1), (2, 3), (5, 1), (6, 1)], "blank lines count; CRLF and a missing last newline are fine"


def test_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    array, lines = tmp_path / "a.json", tmp_path / "a.jsonl"
    array.write_bytes(b'\xef\xbb\xbf[{"name": "S\xc3\xb8ren"}]\n')
    lines.write_bytes(b'\xef\xbb\xbf{"name": "S\xc3\xb8ren"}\n{"name": "\xc3\x86be"}\n')
    assert [(v.value, v.line, v.column) for v in values(array)] == [({"name": "Søren"}, 1, 2)]
    assert [(v.value, v.line, v.column) for v in values(lines)] == [({"name": "Søren"}, 1, 1), ({"name": "Æbe"}, 2, 1)]


BIG = 50_000


def test_positions_stay_exact_far_past_the_read_ahead_window(tmp_path: Path) -> None:
    """Three fixed-width objects a line: object n is on line 2 + n // 3, column 3 + (n % 3) × 47."""
    path = tmp_path / "big.json"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("[\n")
        for first in range(0, BIG, 3):
            row = ", ".join(payment(n) for n in range(first, min(first + 3, BIG)))
            fh.write(f"  {row}{',' if first + 3 < BIG else ''}\n")
        fh.write("]\n")
    assert path.stat().st_size > 20 * READ_AHEAD
    read = values(path)
    assert len(read) == BIG
    assert [int(v.value["id"]) for v in read] == list(range(BIG))
    spots = {0: (2, 3), 1: (2, 50), 2: (2, 97), 3: (3, 3), 4_000: (1_335, 50), 25_000: (8_335, 50),
             49_998: (16_668, 3), 49_999: (16_668, 50)}
    assert {n: (read[n].line, read[n].column) for n in spots} == spots
    wrong = [n for n, v in enumerate(read) if (v.line, v.column) != (2 + n // 3, 3 + n % 3 * 47)]
    assert wrong == [], f"{len(wrong)} objects misplaced, first: {wrong[:3]}"


def test_positions_on_one_minified_line_far_past_the_window(tmp_path: Path) -> None:
    """A minified export is a single line: object n starts at column 2 + n × 46."""
    path = write(tmp_path, "min.json", "[" + ",".join(payment(n) for n in range(BIG)) + "]")
    read = values(path)
    assert len(read) == BIG
    assert {read[n].line for n in (0, BIG // 2, BIG - 1)} == {1}
    assert [read[n].column for n in (0, 1, 1_500, BIG - 1)] == [2, 48, 69_002, 2_299_956]
    assert all(v.column == 2 + n * 46 for n, v in enumerate(read))


def _mixed_layout(count: int, *, comments: bool) -> tuple[str, list[tuple[int, int]]]:
    """An array laid out at random (1 to 3 objects a line, some lines of 1,500 objects — longer than the
    window —, blank lines, indents, and optionally comments), with each object's expected position."""
    rng = random.Random(20261121)
    lines, expected, n = ["["], [], 0
    while n < count:
        per = 1_500 if rng.random() < 0.01 else rng.choice((1, 1, 2, 3))
        text = " " * rng.choice((0, 2, 4))
        for _ in range(min(per, count - n)):
            expected.append((len(lines) + 1, len(text) + 1))
            operation = json.dumps({"operation": "createpayment", "id": n + 1, "amount": 10500})
            text += operation + ("," if n < count - 1 else "") + " "
            n += 1
        if comments:
            text += ("// " + "note " * rng.choice((0, 1, 3))) if rng.random() < 0.5 else "/* a */"
        lines.append(text)
        if rng.random() < 0.05:
            lines.append("")
    lines.append("]")
    return "\n".join(lines) + "\n", expected


@pytest.mark.parametrize("lenient", [False, True], ids=["strict", "lenient-with-comments"])
def test_positions_in_a_mixed_layout_with_lines_longer_than_the_window(tmp_path: Path, lenient: bool) -> None:
    text, expected = _mixed_layout(BIG, comments=lenient)
    assert max(len(line) for line in text.splitlines()) > READ_AHEAD
    read = values(write(tmp_path, "mixed.json", text), lenient=lenient)
    assert [v.value["id"] for v in read] == list(range(1, BIG + 1))
    wrong = [(n, e, g) for n, (e, g) in enumerate(zip(expected, where(read), strict=True)) if e != g]
    assert wrong == [], f"{len(wrong)} objects misplaced, first (index, expected, reported): {wrong[:3]}"


def test_json_lines_positions_far_past_the_window(tmp_path: Path) -> None:
    lines = [("  " if n % 3 == 0 else "") + payment(n) for n in range(BIG)]
    lines[30_000] = '{"operation": "createpayment", "id": "30000",}'
    read = values(write(tmp_path, "big.jsonl", "\n".join(lines) + "\n"))
    assert len(read) == BIG
    assert [(read[n].line, read[n].column) for n in (0, 1, 29_999, 30_001, 30_003, BIG - 1)] == [
        (1, 3), (2, 1), (30_000, 1), (30_002, 1), (30_004, 3), (BIG, 1)]
    bad = read[30_000]
    assert (bad.value, bad.line, bad.error_line, bad.error_column) == (None, 30_001, 30_001, 46)
    assert [n for n, v in enumerate(read) if v.error is not None] == [30_000]


def test_values_that_are_not_objects_are_still_values(tmp_path: Path) -> None:
    """Whether a value is an operation is the reader's business: the streamer yields it with its position."""
    read = values(write(tmp_path, "a.json", '[1, "two", null, true, [3], {"id": 4}]'))
    assert [(v.value, v.column) for v in read] == [(1, 2), ("two", 5), (None, 12), (True, 18), ([3], 24), ({"id": 4}, 29)]


def test_numbers_cut_by_the_window_are_read_whole(tmp_path: Path) -> None:
    numbers = list(range(1_000_000, 1_030_000))
    read = values(write(tmp_path, "numbers.json", "[" + ", ".join(map(str, numbers)) + "]"))
    assert [v.value for v in read] == numbers


# --- refused files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   \n\t\n"], ids=["empty", "white-space"])
def test_empty_file_is_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "a.json", text)
    read, error = read_until_error(path)
    assert read == []
    assert "empty" in error.detail
    assert str(error).startswith(str(path))


@pytest.mark.parametrize(("text", "line", "column", "found"), [
    ("x", 1, 1, "'x'"), ('\n  "operations"', 2, 3, "'\"'"), ("42", 1, 1, "'4'")])
def test_first_character_must_open_an_array_or_an_object(tmp_path: Path, text: str, line: int, column: int, found: str) -> None:
    read, error = read_until_error(write(tmp_path, "a.json", text))
    assert read == []
    assert error.line == line and f"column {column}:" in error.detail, error
    assert "expected '['" in error.detail and found in error.detail


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot open"):
        values(tmp_path / "nope.json")


def test_file_that_is_not_utf8_is_refused_naming_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "latin.json"
    path.write_bytes('[{"id": 1},\n {"name": "Søren"}]'.encode("latin-1"))
    _, error = read_until_error(path)
    assert (error.path, error.line) == (str(path), 2)
    assert error.detail == ("column 13: not UTF-8 text: byte 0xf8 at byte offset 24 (invalid start byte); "
                            "JSON files are UTF-8")


def test_array_cut_after_an_object_names_the_end_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "a.json", '[\n  {"id": 1},\n  {"id": 2}\n')
    read, error = read_until_error(path)
    assert [v.value for v in read] == [{"id": 1}, {"id": 2}], "values before the damage are read"
    assert error.line == 4 and "column 1:" in error.detail
    assert "end of the file" in error.detail and "cut short" in error.detail


CUT_INSIDE = {
    # where the file stops: column of the error on line 3
    "after-a-value": ('{"id": 2', 11),
    "after-a-comma": ('{"id": 2,', 12),
    "after-a-key": ('{"id": 2, "name"', 19),
    "after-a-colon": ('{"id": 2, "name": ', 21),
    "inside-a-nested-object": ('{"id": 2, "address": {"country": "DK"', 40),
    "inside-a-string": ('{"id": 2, "name": "Pe', 21),
}


@pytest.mark.parametrize("cut", list(CUT_INSIDE))
def test_array_cut_inside_an_object_says_it_is_cut_short(tmp_path: Path, cut: str) -> None:
    tail, column = CUT_INSIDE[cut]
    path = write(tmp_path, "a.json", '[\n  {"id": 1},\n  ' + tail)
    read, error = read_until_error(path)
    assert [v.value for v in read] == [{"id": 1}]
    assert error.line == 3 and f"column {column}:" in error.detail, error
    assert "cut short" in error.detail
    assert not error.detail.endswith(" at"), "no dangling decoder wording"


def test_missing_comma_between_objects(tmp_path: Path) -> None:
    path = write(tmp_path, "a.json", '[\n  {"id": 1}\n  {"id": 2}\n]\n')
    read, error = read_until_error(path)
    assert [v.value for v in read] == [{"id": 1}]
    assert error.line == 3 and "column 3:" in error.detail, error
    assert "expected ',' or ']'" in error.detail and "'{'" in error.detail
    assert f"{path}:3: column 3: invalid JSON" in str(error)


def test_missing_comma_inside_an_object_has_the_decoders_position(tmp_path: Path) -> None:
    path = write(tmp_path, "a.json", '[\n  {"id": 1 "name": "x"}\n]\n')
    _, error = read_until_error(path)
    assert error.line == 2 and "column 12:" in error.detail
    assert "Expecting ',' delimiter" in error.detail


def test_text_after_the_array_is_refused(tmp_path: Path) -> None:
    read, error = read_until_error(write(tmp_path, "a.json", '[{"id": 1}]\n{"id": 2}\n'))
    assert len(read) == 1
    assert error.line == 2 and "column 1:" in error.detail
    assert "after the closing ']'" in error.detail


# --- comments and trailing commas -------------------------------------------------------------------

LENIENT_CASES = {
    # name: (file text, line and column of the first fault, positions of the values read leniently)
    "comment-after-comma": ('[\n  {"id": 1}, // first\n  {"id": 2}\n]\n', 2, 14, [(2, 3), (3, 3)]),
    "comment-inside-object": ('[\n  {"id": 1,   // customer ID\n   "name": "x"}\n]\n', 2, 15, [(2, 3)]),
    "block-comment": ('[\n  /* customers\n     first */ {"id": 1}\n]\n', 2, 3, [(3, 15)]),
    "trailing-comma-array": ('[\n  {"id": 1},\n  {"id": 2},\n]\n', 3, 12, [(2, 3), (3, 3)]),
    "trailing-comma-object": ('[\n  {"id": 1,\n   "name": "x",\n  }\n]\n', 4, 3, [(2, 3)]),
    "comment-after-last-object": ('[\n  {"id": 1},\n  {"id": 2}  // last\n]\n', 3, 14, [(2, 3), (3, 3)]),
    "comment-before-comma": ('[\n  {"id": 1} /* one */,\n  {"id": 2}\n]\n', 2, 13, [(2, 3), (3, 3)]),
    "comment-before-the-array": ('// exported from iteras\n[\n  {"id": 1}\n]\n', 1, 1, [(3, 3)]),
}


@pytest.mark.parametrize("case", list(LENIENT_CASES))
def test_comment_or_trailing_comma_is_refused_naming_the_lenient_option(tmp_path: Path, case: str) -> None:
    text, line, column, _ = LENIENT_CASES[case]
    path = write(tmp_path, "a.json", text)
    _, error = read_until_error(path)
    assert (error.line, error.path) == (line, str(path))
    assert f"{path}:{line}: column {column}: invalid JSON" in str(error)
    assert "--lenient-json" in error.detail
    assert ("comment" if "comment" in case else "trailing comma") in error.detail


@pytest.mark.parametrize("case", list(LENIENT_CASES))
def test_lenient_mode_reads_the_values_at_their_places_in_the_file(tmp_path: Path, case: str) -> None:
    text, _, _, positions = LENIENT_CASES[case]
    read = values(write(tmp_path, "a.json", text), lenient=True)
    assert where(read) == positions
    assert [v.value["id"] for v in read] == list(range(1, len(positions) + 1))


def test_seed_style_example_is_refused_strict_and_read_lenient() -> None:
    path = EXAMPLES / "seed-style.json"
    text = path.read_text(encoding="utf-8")
    _, error = read_until_error(path)
    assert "--lenient-json" in error.detail
    read = values(path, lenient=True)
    assert len(read) == text.count('"operation"')
    assert all(isinstance(v.value, dict) and "operation" in v.value for v in read)
    starts = [n + 1 for n, line in enumerate(text.splitlines()) if line.strip() == "{"]
    assert [v.line for v in read] == starts, "each operation is on the line of its '{'"


def test_comment_markers_inside_strings_are_text(tmp_path: Path) -> None:
    text = ('[\n  {"url": "http://iteras.dk/x", "note": "a /* b */ c", "q": "say \\"// hi\\"", "end": "x,"},\n'
            '  {"id": 2} // real comment\n]\n')
    path = write(tmp_path, "a.json", text)
    first, second = values(path, lenient=True)
    assert first.value == {"url": "http://iteras.dk/x", "note": "a /* b */ c", "q": 'say "// hi"', "end": "x,"}
    assert (second.value, second.line, second.column) == ({"id": 2}, 3, 3)
    strict = write(tmp_path, "strict.json", text.replace(" // real comment", ""))
    assert values(strict)[0].value == first.value, "'//' inside a string is no comment in strict mode either"


def test_block_comments_across_lines_keep_positions(tmp_path: Path) -> None:
    text = ('[ /* operations\n'
            '     exported 2026-11-21 */ {"id": 1, /* inline */ "name": "a"},\n'
            '  /*\n'
            '   * {"id": "not this"},\n'
            '   */\n'
            '  {"id": 2 /* two */}, /* x */ {"id": 3}\n'
            ']\n')
    read = values(write(tmp_path, "a.json", text), lenient=True)
    assert [v.value for v in read] == [{"id": 1, "name": "a"}, {"id": 2}, {"id": 3}]
    assert where(read) == [(2, 29), (6, 3), (6, 32)]


def test_trailing_commas_nested_and_across_comment_lines(tmp_path: Path) -> None:
    text = ('[\n'
            '  {"weekdays": [6, 7,], "address": {"country": "DK",},},\n'
            '  {"id": 2},   // last one\n'
            '  // nothing more\n'
            '\n'
            ']\n')
    read = values(write(tmp_path, "a.json", text), lenient=True)
    assert [v.value for v in read] == [{"weekdays": [6, 7], "address": {"country": "DK"}}, {"id": 2}]
    assert where(read) == [(2, 3), (3, 3)]


def test_lenient_mode_relaxes_nothing_else(tmp_path: Path) -> None:
    _, error = read_until_error(write(tmp_path, "a.json", "[\n  {'id': 1}\n]\n"), lenient=True)
    assert error.line == 2 and "column 4:" in error.detail
    _, error = read_until_error(write(tmp_path, "b.json", '[\n  {"id": 1},,\n  {"id": 2}\n]\n'), lenient=True)
    assert error.line == 2


# --- JSON Lines -------------------------------------------------------------------------------------


def test_bad_json_lines_line_is_that_values_error_and_the_next_lines_read(tmp_path: Path) -> None:
    path = write(tmp_path, "a.jsonl", '{"id": 1}\n'
                                      '  {"id": 2, "name": "x",}\n'
                                      '{"id": 3\n'
                                      '{"id": 4} {"id": 5}\n'
                                      '{"id": 6}\n')
    read = values(path)
    assert [v.value for v in read] == [{"id": 1}, None, None, None, {"id": 6}]
    assert where(read) == [(1, 1), (2, 3), (3, 1), (4, 1), (5, 1)]
    trailing, cut, extra = read[1:4]
    assert (trailing.error_line, trailing.error_column) == (2, 25)
    assert trailing.error is not None and "trailing comma" in trailing.error and "--lenient-json" in trailing.error
    assert (cut.error_line, cut.error_column) == (3, 9)
    assert cut.error is not None and "cut short" in cut.error
    assert (extra.error_line, extra.error_column) == (4, 11)
    assert extra.error is not None and "Extra data" in extra.error
    assert read[0].error is None and read[4].error is None


def test_json_lines_comment_is_an_error_strict_and_blank_lenient(tmp_path: Path) -> None:
    path = write(tmp_path, "a.jsonl", '{"id": 1}  // customer\n/* skipped */ {"id": 2}\n// a whole line\n{"id": 3,}\n')
    strict = values(path)
    assert [(v.line, v.error_column) for v in strict if v.error] == [(1, 12), (2, 1), (3, 1), (4, 10)]
    assert all("--lenient-json" in (v.error or "") for v in strict)
    lenient = values(path, lenient=True)
    assert [(v.value, v.line, v.column) for v in lenient] == [({"id": 1}, 1, 1), ({"id": 2}, 2, 15), ({"id": 3}, 4, 1)]
    assert all(v.error is None for v in lenient)


# --- flat memory ------------------------------------------------------------------------------------

BIG_OPERATIONS = 60_000
ADDRESS = "Østergade 19, 2. th.\n8900 Randers C " + "x" * 800


def _operation(n: int) -> str:
    return json.dumps({"operation": "createcustomer", "id": n + 1, "name": f"Kunde {n}", "email": f"k{n}@example.dk",
                       "address": {"name": f"Kunde {n}", "company": "Boghandel ApS", "address": ADDRESS, "country": "DK"}},
                      ensure_ascii=False)


def _write_big_array(path: Path, operations: int, separator: str) -> None:
    """Stream a JSON array to disk, one ~1 KB operation after another, each followed by ``separator``."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("[" + separator)
        fh.writelines(_operation(n) + ("," if n < operations - 1 else "") + separator for n in range(operations))
        fh.write("]\n")


def _traced_peak(path: Path, *, lenient: bool = False) -> tuple[int, JsonValue | None, int]:
    count, last = 0, None
    tracemalloc.start()
    try:
        for item in read_values(path, lenient=lenient):
            count += 1
            last = item
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return count, last, peak


@pytest.fixture(scope="module")
def big_array(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.json"
    _write_big_array(path, BIG_OPERATIONS, "\n")
    return path


def test_big_array_reads_in_flat_python_memory(big_array: Path) -> None:
    assert big_array.stat().st_size > 50_000_000
    count, last, peak = _traced_peak(big_array)
    assert count == BIG_OPERATIONS
    assert last is not None and last.value["id"] == BIG_OPERATIONS
    assert (last.line, last.column) == (BIG_OPERATIONS + 1, 1)
    assert peak < 10_000_000, f"peak traced memory {peak / 1e6:.1f} MB"


def test_big_minified_array_on_one_line_reads_in_flat_python_memory(tmp_path: Path) -> None:
    path = tmp_path / "minified.json"
    _write_big_array(path, BIG_OPERATIONS, "")
    assert path.stat().st_size > 50_000_000
    count, last, peak = _traced_peak(path)
    assert count == BIG_OPERATIONS
    assert last is not None and last.line == 1
    assert peak < 10_000_000, f"peak traced memory {peak / 1e6:.1f} MB"


def test_big_array_reads_in_flat_python_memory_when_lenient(tmp_path: Path) -> None:
    path = tmp_path / "lenient.json"
    operations = 3_000
    _write_big_array(path, operations, " // note\n")
    assert path.stat().st_size > 3_000_000
    count, last, peak = _traced_peak(path, lenient=True)
    assert count == operations
    assert last is not None and (last.line, last.column) == (operations + 1, 1)
    assert peak < 10_000_000, f"peak traced memory {peak / 1e6:.1f} MB"
