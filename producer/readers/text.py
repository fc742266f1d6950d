"""Decode a text file block by block, so a byte that does not decode is named by its exact line.

Why not ``open(path, encoding=...)``: the text layer decodes ahead of the reader (its next 8 KB
chunk, or the block asked for), so when a byte fails the reader only knows where *it* was, not
which line holds the byte. Here each binary block goes through an incremental decoder and the line
ends of what decoded are counted, so the line, column and byte offset of the fault are exact, while
memory still holds one block (plus the line under way, bounded by ``MAX_LINE``).

Lines follow one of two rules: ``\\n`` only (JSON, whose positions count ``\\n``), or every ``\\r\\n``,
``\\r`` and ``\\n`` (universal newlines: what ``open(..., newline="")`` yields and the ``csv`` module
needs; line ends are kept, so a quoted cell keeps its ``\\r\\n``).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator
from typing import BinaryIO

BLOCK = 1 << 16
"""Bytes read and decoded at a time."""
MAX_LINE = 64 << 20
"""A line longer than this (in characters) is refused rather than buffered without end."""
_LINE = {False: re.compile(r"[^\n]*\n"), True: re.compile(r"[^\r\n]*(?:\r\n|\r|\n)")}
_REASONS = {"unexpected end of data": "the file ends in the middle of a character: is it cut short?"}


class Undecodable(Exception):
    """Bytes the codec refuses, with the line and column (1-based, in decoded characters) and the
    byte offset (0-based) in the file where they start."""

    def __init__(self, line: int, column: int, offset: int, data: bytes, reason: str) -> None:
        self.line, self.column, self.offset, self.data, self.reason = line, column, offset, data, reason
        super().__init__(f"line {line}, column {column}: {self.describe()}")

    def describe(self) -> str:
        """The bytes, their offset and why, without the line and column (readers place those)."""
        where = f"at byte offset {self.offset:,} ({_REASONS.get(self.reason, self.reason)})"
        if not self.data:
            return where
        return f"byte{'s' if len(self.data) > 1 else ''} {' '.join(f'0x{b:02x}' for b in self.data[:8])} {where}"


class LineTooLong(Exception):
    """A line runs on past ``MAX_LINE`` characters; ``lines_before`` complete lines came first."""

    def __init__(self, lines_before: int, limit: int) -> None:
        self.lines_before, self.limit = lines_before, limit
        super().__init__(f"line {lines_before + 1} is longer than {limit:,} characters")


class DecodedText:
    """The text of a binary stream, decoded a block at a time, in blocks or in lines.

    ``universal_newlines`` decides what ends a line, both for ``lines()`` and for the line an
    ``Undecodable`` names."""

    def __init__(self, stream: BinaryIO, encoding: str, *, universal_newlines: bool = False,
                 block_size: int = BLOCK) -> None:
        self.stream, self.encoding, self.universal, self.block_size = stream, encoding, universal_newlines, block_size
        self._new_decoder = codecs.getincrementaldecoder(encoding)
        self.offset = 0
        """Bytes decoded so far."""
        self.line_ends = 0
        """Line ends in the text decoded so far."""
        self.column = 0
        """Characters decoded since the last line end."""
        self._after_cr = False

    def blocks(self) -> Iterator[str]:
        """The decoded text, a block at a time (never an empty string)."""
        decoder = self._new_decoder()
        while True:
            data = self.stream.read(self.block_size)
            final = not data
            state = decoder.getstate()
            try:
                text = decoder.decode(data, final)
            except UnicodeDecodeError as exc:
                before, fault = self._locate(state, data, final, exc)
                if before:  # what precedes the bad bytes is read, as it would be with any other block
                    self._advance(before)
                    yield before
                raise fault from None
            except UnicodeError as exc:  # a codec that says no without saying where (punycode): the block's start
                raise Undecodable(self.line_ends + 1, self.column + 1, self.offset, b"", str(exc)) from None
            self.offset += len(data)
            if text:
                self._advance(text)
                yield text
            if final:
                return

    def lines(self, *, max_line: int = MAX_LINE) -> Iterator[str]:
        """The decoded text a line at a time, each with its line end."""
        return split_lines(self.blocks(), universal=self.universal, max_line=max_line)

    # -- where things are ------------------------------------------------------------------------

    def _ends(self, text: str, after_cr: bool) -> int:
        if not self.universal:
            return text.count("\n")
        # "\r\n" is one line end, also when a block boundary falls between the two
        return text.count("\n") + text.count("\r") - text.count("\r\n") - (after_cr and text.startswith("\n"))

    def _last_end(self, text: str) -> int:
        return _after_last_end(text, self.universal) - 1

    def _advance(self, text: str) -> None:
        self.line_ends += self._ends(text, self._after_cr)
        last = self._last_end(text)
        self.column = len(text) - last - 1 if last >= 0 else self.column + len(text)
        self._after_cr = text.endswith("\r")

    def _locate(self, state: tuple[bytes, int], data: bytes, final: bool,
                exc: UnicodeDecodeError) -> tuple[str, Undecodable]:
        """Decode the failing block again a byte at a time from the state it started in, so the
        offset of the bad bytes and the text before them are exact whatever the codec buffers
        (a character cut by the block boundary, a byte order mark). The text before, and the fault."""
        probe = self._new_decoder()
        probe.setstate(state)
        decoded: list[str] = []
        for index in range(len(data) + final):
            pending = _pending(probe)
            try:
                if index < len(data):
                    decoded.append(probe.decode(data[index:index + 1]))
                else:
                    probe.decode(b"", True)
            except UnicodeDecodeError as fault:
                before = "".join(decoded)
                return before, self._fault(before, self.offset + index - len(pending) + fault.start,
                                           fault.object[fault.start:fault.end], fault.reason)
        # not reproduced (a codec that decodes differently byte by byte): name the block's start
        return "", self._fault("", self.offset, exc.object[exc.start:exc.end], exc.reason)

    def _fault(self, before: str, offset: int, data: bytes, reason: str) -> Undecodable:
        line = self.line_ends + self._ends(before, self._after_cr) + 1
        last = self._last_end(before)
        column = len(before) - last if last >= 0 else self.column + len(before) + 1
        return Undecodable(line, column, offset, data, reason)


def _pending(decoder: codecs.IncrementalDecoder) -> bytes:
    """Bytes the decoder holds from earlier input (the start of a character cut by a block boundary)."""
    buffered = decoder.getstate()[0]
    return buffered if isinstance(buffered, bytes) else b""


def _after_last_end(text: str, universal: bool) -> int:
    return max(text.rfind("\n"), text.rfind("\r")) + 1 if universal else text.rfind("\n") + 1


def _split_keeping_ends(piece: str, universal: bool) -> tuple[list[str], str]:
    """The complete lines of ``piece`` with their ends, and the rest."""
    if universal:
        # str.splitlines is fastest, but also ends lines at \v, \f, \x1c-\x1e, \x85, \u2028 and \u2029
        lines = piece.splitlines(True)
        rest = lines.pop() if lines and lines[-1][-1] not in "\r\n" else ""
        if all(line[-1] in "\r\n" for line in lines):
            return lines, rest
    # only up to the last line end: past it the pattern would try, and fail, at every character
    complete = _after_last_end(piece, universal)
    return _LINE[universal].findall(piece, 0, complete), piece[complete:]


def split_lines(texts: Iterable[str], *, universal: bool = False, keepends: bool = True,
                max_line: int = MAX_LINE) -> Iterator[str]:
    """The lines of a text given in pieces. Only the line under way is held across pieces, and only
    up to ``max_line`` characters (then ``LineTooLong``). Without ``keepends`` (``\\n`` lines only)
    the ``\\n`` is dropped and a ``\\r`` before it stays."""
    under_way: list[str] = []  # the start of a line that runs on into the next piece
    size = done = 0
    carry = ""  # a "\r" ending a piece, until the next shows whether "\n" follows
    for piece in texts:
        if carry:
            piece, carry = carry + piece, ""
        if universal and piece.endswith("\r"):
            piece, carry = piece[:-1], "\r"
        if not keepends and not universal:
            *lines, rest = piece.split("\n")
        else:
            lines, rest = _split_keeping_ends(piece, universal)
        if lines:
            if under_way:
                under_way.append(lines[0])
                lines[0] = "".join(under_way)  # one copy of a long line, not two
                if len(lines[0]) > max_line + 2:  # its line end does not count
                    raise LineTooLong(done, max_line)
                under_way, size = [], 0
            done += len(lines)
            yield from lines
        if rest:
            size += len(rest)
            if size > max_line:
                raise LineTooLong(done, max_line)
            under_way.append(rest)
    under_way.append(carry)
    if any(under_way):
        yield "".join(under_way)
