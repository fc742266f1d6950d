"""Stream the top-level values of a JSON array or a JSON Lines file, each with its line and column.

Why not ijson: a migration report must name the line of every record and the line *and column* of
a syntax error, and ijson's fast backend reports neither. The standard library's C decoder does,
so this module feeds it a sliding window of the file (``raw_decode`` one value at a time): memory
holds one record plus a read-ahead block, whatever the file size.

Two layouts, told apart by the first character: ``[`` is one JSON array; ``{`` is JSON Lines (one
value per line, each line on its own: a bad line is that record's error, the next line reads on).
In an array a syntax error stops the file — nothing after it can be trusted — and is a
``SourceError`` with line and column.

``lenient`` accepts what the seed's own examples contain: ``//`` and ``/* */`` comments and
trailing commas. They are blanked out with spaces, so every line and column stays where it was.

What the decoder cannot take never becomes a traceback: bytes that are not UTF-8 name their line
(``producer.readers.text`` decodes the file), a value nested too deep for the decoder's recursion
limit is refused at its position, an operation longer than ``MAX_RECORD`` refuses the file, and an
integer longer than Python converts (4,300 digits) is read as a ``LongNumber`` for the reader to
refuse that record, naming the field.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

from producer.readers.text import DecodedText, LineTooLong, Undecodable, split_lines
from shared.errors import SourceError

READ_AHEAD = 1 << 16
"""Characters read beyond the value being decoded before decoding is tried again."""
MAX_RECORD = 64 << 20
"""A single operation larger than this is refused rather than buffered without end."""
LENIENT_HINT = "run with --lenient-json to accept comments and trailing commas"
TOO_DEEP = "arrays or objects nested too deep to read (hundreds of levels, where an operation needs a few): is the file damaged?"
TOO_LARGE = (f"the operation that starts here is larger than {MAX_RECORD >> 20} MB (or never ends): an operation "
             "that large is refused rather than buffered without end")
_WHITESPACE = re.compile(r"[ \t\n\r]*")


class RepeatedKeys(dict[str, Any]):
    """An object that writes some key more than once (JSON allows it, the decoder keeps the last
    one): the reader refuses the record rather than drop a value silently."""

    repeated: tuple[str, ...] = ()


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    marked = RepeatedKeys(obj)
    marked.repeated = tuple(key for key, n in Counter(k for k, _ in pairs).items() if n > 1)
    return marked


@dataclass(frozen=True)
class LongNumber:
    """An integer literal longer than Python converts to ``int`` (``sys.get_int_max_str_digits``,
    4,300 digits by default), kept as its text so the reader can refuse the record naming the field."""

    literal: str

    @property
    def digits(self) -> int:
        return len(self.literal.lstrip("-"))

    def __str__(self) -> str:
        """The start and the length: never thousands of digits in a message or a dead letter."""
        return f"{self.literal[:20]}… ({self.digits:,} digits)"


def json_default(value: Any) -> str:
    """``json.dumps(..., default=json_default)``: a ``LongNumber`` is shown by its start and length."""
    if isinstance(value, LongNumber):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _int_or_long(literal: str) -> int | LongNumber:
    limit = sys.get_int_max_str_digits()
    return LongNumber(literal) if limit and len(literal.lstrip("-")) > limit else int(literal)


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs)
_LONG_NUMBERS = json.JSONDecoder(object_pairs_hook=_pairs, parse_int=_int_or_long)
"""Decodes again a value the fast decoder refused for an over-long integer. Only then: a
``parse_int`` hook would cost every integer of every file a Python call."""


@dataclass
class JsonValue:
    """One top-level value, or the reason its text is not JSON (JSON Lines only)."""

    value: Any
    line: int
    column: int
    error: str | None = None
    error_line: int | None = None
    error_column: int | None = None
    long_numbers: bool = False
    """The value holds a ``LongNumber`` somewhere (an integer too long to convert)."""


def read_values(path: Path, *, lenient: bool = False) -> Iterator[JsonValue]:
    """Every top-level value of ``path`` in file order."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise SourceError(str(path), None, f"cannot open: {exc.strerror}") from None
    with handle:
        text = DecodedText(handle, "utf-8-sig", block_size=READ_AHEAD)
        # Fixed-size blocks, not lines: a minified export is one line of many gigabytes.
        blocks: Iterable[str] = _LenientLines(text.lines(max_line=MAX_RECORD)) if lenient else text.blocks()
        try:
            yield from _Values(path, iter(blocks), lenient).values()
        except Undecodable as exc:
            raise SourceError(str(path), exc.line, f"column {exc.column}: not UTF-8 text: {exc.describe()}; "
                                                   "JSON files are UTF-8") from None
        except LineTooLong as exc:  # lenient mode reads a line at a time
            raise SourceError(str(path), exc.lines_before + 1, f"a line larger than {MAX_RECORD >> 20} MB: an "
                                                               "operation that large is refused rather than buffered "
                                                               "without end") from None


class _Values:
    """The decoding loop over a window of the file (``buf``), with a position mark that only moves
    forward, so finding a record's line and column costs the text since the previous record."""

    def __init__(self, path: Path, blocks: Iterator[str], lenient: bool) -> None:
        self.path, self.blocks, self.lenient = path, blocks, lenient
        self.buf, self.pos, self.eof = "", 0, False
        # buf[mark] is on line mark_line, which starts at buf[line_start] (negative: before the window)
        self.mark, self.mark_line, self.line_start = 0, 1, 0

    # -- window ----------------------------------------------------------------------------------

    def _more(self, at_least: int = READ_AHEAD) -> bool:
        """Append blocks until ``at_least`` more characters are buffered; False at end of file."""
        if self.eof:
            return False
        if self.pos > READ_AHEAD:  # drop what is consumed; the mark keeps line and column right
            self._where(self.pos)
            cut = self.pos
            self.buf, self.pos, self.mark, self.line_start = self.buf[cut:], 0, 0, self.line_start - cut
        parts: list[str] = []
        size = 0
        for block in self.blocks:
            parts.append(block)
            size += len(block)
            if size >= at_least:
                break
        else:
            self.eof = True
        self.buf += "".join(parts)
        return bool(parts)

    def _where(self, index: int) -> tuple[int, int]:
        """Line and column (1-based) of ``buf[index]``; moves the mark there when it lies ahead."""
        assert index >= self.mark, "positions are asked for in file order"
        newlines = self.buf.count("\n", self.mark, index)
        if newlines:
            self.mark_line += newlines
            self.line_start = self.buf.rfind("\n", self.mark, index) + 1
        self.mark = index
        return self.mark_line, index - self.line_start + 1

    def _skip_space(self) -> str:
        """Skip JSON whitespace; the next character, '' at end of file."""
        while True:
            match = _WHITESPACE.match(self.buf, self.pos)
            assert match is not None
            self.pos = match.end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def _fail(self, index: int, message: str) -> SourceError:
        return _invalid(self.path, self._where(index), message)

    # -- values ----------------------------------------------------------------------------------

    def values(self) -> Iterator[JsonValue]:
        first = self._skip_space()
        if first == "":
            raise SourceError(str(self.path), None, "the file is empty: expected a JSON array or JSON Lines")
        if first == "[":
            yield from self._array()
        elif first == "{":
            yield from self._json_lines()
        else:
            raise self._fail(self.pos, self._comment()
                             or f"expected '[' (a JSON array of operations) or '{{' (JSON Lines), found {first!r}")

    def _array(self) -> Iterator[JsonValue]:
        self.pos += 1  # '['
        if self._skip_space() == "]":
            self.pos += 1
        else:
            while True:
                yield self._decode()
                nxt = self._skip_space()
                if nxt == "]":
                    self.pos += 1
                    break
                if nxt != ",":
                    raise self._fail(self.pos, self._comment() or "expected ',' or ']' after an operation"
                                     + (", found the end of the file (the file is cut short)" if nxt == "" else
                                        f", found {nxt!r}"))
                comma = self._where(self.pos)
                self.pos += 1
                if self._skip_space() == "]":
                    if not self.lenient:
                        raise _invalid(self.path, comma, f"a trailing comma before ']' is not JSON; {LENIENT_HINT}")
                    self.pos += 1
                    break
        trailing = self._skip_space()
        if trailing:
            raise self._fail(self.pos, self._comment() or f"unexpected {trailing!r} after the closing ']' of the array")

    def _comment(self) -> str | None:
        """The message for a comment at ``pos`` (strict mode), or None when there is none."""
        if len(self.buf) - self.pos < 2:
            self._more(2)
        return _comment_message(self.buf[self.pos:self.pos + 2])

    def _decode(self) -> JsonValue:
        """Decode the value at ``pos``, reading more of the file while it is cut by the window."""
        decoder = _DECODER
        while True:
            try:
                value, end = decoder.raw_decode(self.buf, self.pos)
                if end < len(self.buf) or not self._more():  # a number cut by the window reads on
                    break
            except json.JSONDecodeError as exc:
                pending = len(self.buf) - self.pos
                if pending > MAX_RECORD:
                    if _out_of_text(self.buf, exc):
                        raise _refused(self.path, self._where(self.pos), TOO_LARGE) from None
                    raise self._fail(exc.pos, _explain(self.buf, exc)) from None
                # read on, doubling what is buffered, but never much past MAX_RECORD
                start = self.pos
                if not self._more(max(READ_AHEAD, min(pending, MAX_RECORD + READ_AHEAD - pending))):
                    # _more may have dropped the consumed text: place the fault in the window as it is now
                    moved = json.JSONDecodeError(exc.msg, self.buf, exc.pos - (start - self.pos))
                    raise self._fail(moved.pos, _explain(self.buf, moved)) from None
            except RecursionError:
                raise _refused(self.path, self._where(self.pos), f"the value that starts here has {TOO_DEEP}") from None
            except ValueError as exc:  # the decoder's only other ValueError: an integer over 4,300 digits
                if decoder is _LONG_NUMBERS:
                    raise _refused(self.path, self._where(self.pos), f"cannot read the value that starts here: {exc}") from None
                decoder = _LONG_NUMBERS
        if end - self.pos > MAX_RECORD:  # read whole within the slack of the last read: refused all the same
            raise _refused(self.path, self._where(self.pos), TOO_LARGE)
        line, column = self._where(self.pos)
        self.pos = end
        found = JsonValue(value, line, column)
        if decoder is _LONG_NUMBERS:
            found.long_numbers = True
        return found

    def _json_lines(self) -> Iterator[JsonValue]:
        """One value per line; a line that is not JSON is that record's error, not the file's."""
        number, column = self._where(self.pos)
        # the buffered text from the start of the line, then the rest of the file, without the "\n"
        lines = split_lines(chain([self.buf[self.pos - column + 1:]], self.blocks), keepends=False, max_line=MAX_RECORD)
        try:
            for text in lines:
                if text.strip():
                    yield _decode_line(text, number)
                number += 1
        except LineTooLong:
            raise _refused(self.path, (number, 1), f"a line larger than {MAX_RECORD >> 20} MB: an operation that "
                                                   "large is refused rather than buffered without end") from None


def _decode_line(text: str, number: int) -> JsonValue:
    """One JSON Lines line: its value, or why it is not one (that record's error)."""
    indent = len(text) - len(text.lstrip())
    try:
        return JsonValue(_DECODER.decode(text), number, indent + 1)
    except json.JSONDecodeError as exc:
        return JsonValue(None, number, indent + 1, _explain(text, exc), number, exc.colno)
    except RecursionError:
        return JsonValue(None, number, indent + 1, TOO_DEEP, number, indent + 1)
    except ValueError:  # an integer over 4,300 digits: decode again, keeping it as a LongNumber
        pass
    try:
        return JsonValue(_LONG_NUMBERS.decode(text), number, indent + 1, long_numbers=True)
    except RecursionError:
        return JsonValue(None, number, indent + 1, TOO_DEEP, number, indent + 1)
    except ValueError as exc:
        return JsonValue(None, number, indent + 1, f"cannot read this line: {exc}", number, indent + 1)


def _invalid(path: Path, where: tuple[int, int], message: str) -> SourceError:
    return _refused(path, where, f"invalid JSON: {message}")


def _refused(path: Path, where: tuple[int, int], message: str) -> SourceError:
    line, column = where
    return SourceError(str(path), line, f"column {column}: {message}")


def _out_of_text(text: str, exc: json.JSONDecodeError) -> bool:
    """The decoder only ran out of text (a string not closed yet, or a fault in the last few
    characters, where the buffer cuts a token), rather than met a fault inside the value."""
    return exc.msg.startswith("Unterminated string") or len(text) - exc.pos <= 16


def _explain(text: str, exc: json.JSONDecodeError) -> str:
    """The decoder's message, with what the seed's own examples trip on named plainly."""
    at = text[exc.pos:exc.pos + 2]
    comment = _comment_message(at)
    if comment:
        return comment
    before = text[:exc.pos].rstrip()
    if at[:1] in ("}", "]") and before.endswith(","):
        return f"a trailing comma before {at[:1]!r} is not JSON; {LENIENT_HINT}"
    if exc.msg.startswith("Unterminated string"):
        return "a string that starts here is never closed (is the file or the line cut short?)"
    if exc.pos >= len(text.rstrip()):
        return f"{exc.msg} (the file or line is cut short)"
    return exc.msg


def _comment_message(at: str) -> str | None:
    return f"a comment ({at}…) is not JSON; {LENIENT_HINT}" if at.startswith(("//", "/*")) else None


class _LenientLines:
    """Blank out comments and trailing commas line by line, keeping every character's position.

    A comma is held until the next significant character shows whether it trails (before ``}`` or
    ``]``): lines are held back only while a comma waits across blank or comment-only lines."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = lines
        self.in_block = False
        self.held: list[list[str]] = []
        self.comma: tuple[int, int] | None = None  # (held line index, column)

    def __iter__(self) -> Iterator[str]:
        for line in self.lines:
            chars = list(line)
            self.held.append(chars)
            self._scan(chars, len(self.held) - 1)
            keep = len(self.held) if self.comma is None else self.comma[0]
            yield from ("".join(c) for c in self.held[:keep])
            self.held = self.held[keep:]
            if self.comma is not None:
                self.comma = (0, self.comma[1])
        yield from ("".join(c) for c in self.held)

    def _scan(self, chars: list[str], row: int) -> None:
        i, n = 0, len(chars)
        while i < n:
            c = chars[i]
            if self.in_block:
                if c == "*" and i + 1 < n and chars[i + 1] == "/":
                    chars[i] = chars[i + 1] = " "
                    self.in_block = False
                    i += 2
                    continue
                if c not in "\r\n":
                    chars[i] = " "
                i += 1
                continue
            if c == '"':
                self._settle_comma(trailing=False)
                i = _end_of_string(chars, i)
                continue
            if c == "/" and i + 1 < n and chars[i + 1] == "/":
                while i < n and chars[i] not in "\r\n":  # a lone "\r" ends the comment too
                    chars[i] = " "
                    i += 1
                continue
            if c == "/" and i + 1 < n and chars[i + 1] == "*":
                chars[i] = chars[i + 1] = " "
                self.in_block = True
                i += 2
                continue
            if c in " \t\r\n":
                i += 1
                continue
            self._settle_comma(trailing=c in "}]")
            if c == ",":
                self.comma = (row, i)
            i += 1

    def _settle_comma(self, trailing: bool) -> None:
        if self.comma is not None:
            if trailing:
                row, col = self.comma
                self.held[row][col] = " "
            self.comma = None


def _end_of_string(chars: list[str], i: int) -> int:
    """Index just past the JSON string starting at ``i`` (or the end of the line if unterminated)."""
    i += 1
    while i < len(chars):
        if chars[i] == "\\":
            i += 2
            continue
        if chars[i] == '"':
            return i + 1
        i += 1
    return i
