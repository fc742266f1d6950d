"""Streaming reader for engageip XML: every child of the root is one record.

lxml ``iterparse`` with DTDs, external entities and entity expansion off; each record element is
cleared once read, so memory stays flat whatever the file size. A document with a DOCTYPE is refused
before any record is read (that is where XML bombs and external entities live). With no DTD and no
entities, ``huge_tree`` only lifts libxml2's 10 MB limit on one attribute value, so a ticket
attachment given inline (base64 ``Content``, up to the attachment limit) can be read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lxml import etree

from producer.attachments import shown_content, store_attachment
from producer.readers import values
from producer.readers.base import RawRecord
from producer.readers.engageip_elements import (
    AMOUNT,
    BOOL,
    DATE,
    DATETIME,
    DECIMAL,
    ELEMENTS,
    INT,
    MONEY,
    ElementSpec,
)
from producer.readers.engageip_rules import RULES
from shared.errors import InvalidValue, MissingField, Position, RecordError, SourceError, UnknownName
from shared.hints import hint_for

if TYPE_CHECKING:
    from producer.formats import EngageipOptions

DOCTYPE_REFUSED = "a DOCTYPE is not allowed (DTDs and entities are refused)"
_PARSERS = {
    INT: values.parse_int, DECIMAL: values.parse_decimal, AMOUNT: values.parse_amount, MONEY: values.parse_money,
    BOOL: values.parse_bool,
}


class EngageIPReader:
    def read(self, path: Path, options: EngageipOptions) -> Iterator[RawRecord]:
        _refuse_doctype(path)
        context = etree.iterparse(
            str(path), events=("start", "end"), resolve_entities=False, no_network=True, load_dtd=False,
            dtd_validation=False, huge_tree=True, remove_comments=True, remove_pis=True,
        )
        depth = 0
        root = None
        try:
            for event, elem in context:
                if event == "start":
                    depth += 1
                    if depth == 1:
                        root = elem
                        if elem.getroottree().docinfo.doctype:
                            raise SourceError(str(path), elem.sourceline, DOCTYPE_REFUSED)
                    continue
                depth -= 1
                if depth == 1:
                    yield self._record(path, elem, options)
                    elem.clear(keep_tail=False)
                    if root is not None:
                        while elem.getprevious() is not None:
                            del root[0]
        except etree.XMLSyntaxError as exc:
            line, message = _first_error(exc)
            raise SourceError(str(path), line, f"not well-formed XML: {message}") from None
        if root is None:
            raise SourceError(str(path), None, "no root element: the file is empty")

    def _record(self, path: Path, elem: etree._Element, options: EngageipOptions) -> RawRecord:
        tag = elem.tag if isinstance(elem.tag, str) else str(elem.tag)
        line = elem.sourceline
        position = Position(str(path), line if isinstance(line, int) else None)
        raw = {str(k): str(v) for k, v in elem.attrib.items()}
        spec = ELEMENTS.get(tag)
        if spec is None:
            err = UnknownName(f"unknown element {tag!r}", field=tag, value=tag, hint=hint_for(tag, ELEMENTS))
            return RawRecord(tag, raw, position, err)
        if len(elem):
            child = elem[0].tag
            err = UnknownName(f"{tag} records carry attributes only; unexpected child element {child!r}",
                              field=str(child), value=str(child))
            return RawRecord(tag, raw, position, err)
        content = ""
        if raw.get("Content", "").strip():  # attachment bytes never go into a payload or a dead letter
            content, raw["Content"] = raw["Content"], shown_content(raw["Content"])
        try:
            fields = typed_fields(tag, spec, raw, day_first=options.day_first)
            if tag in RULES:
                fields = RULES[tag](fields)
            if tag == "TicketAttachment":
                fields = store_attachment(path, {**fields, "Content": content} if "Content" in fields else fields,
                                          options.attachments)
        except RecordError as err:
            return RawRecord(tag, raw, position, err)
        return RawRecord(tag, fields, position)


def typed_fields(tag: str, spec: ElementSpec, raw: dict[str, str], *, day_first: bool) -> dict[str, str]:
    """Check names and types of one record's attributes; empty optional attributes are dropped."""
    for name in raw:
        if name not in spec.attributes:
            raise UnknownName(f"unknown attribute {name!r} on {tag}", field=name, value=raw[name],
                              hint=hint_for(name, spec.attributes))
    fields: dict[str, str] = {}
    for name, text in raw.items():
        if text.strip() == "":
            continue
        kind = spec.attributes[name]
        if kind in (DATE, DATETIME):
            fields[name] = values.parse_date(name, text, day_first=day_first)
        else:
            fields[name] = _PARSERS.get(kind, values.parse_text)(name, text)
    missing = [n for n in spec.required if n not in fields]
    if missing:
        raise MissingField(f"{tag} needs {', '.join(missing)}", field=missing[0], value=raw.get(missing[0], ""))
    if spec.one_of and not any(all(n in fields for n in group) for group in spec.one_of):
        options = " or ".join(" + ".join(g) for g in spec.one_of)
        raise MissingField(f"{tag} needs {options}", field=spec.one_of[0][0], value="")
    return fields


def _first_error(exc: etree.XMLSyntaxError) -> tuple[int | None, str]:
    """Line and message of a parse failure. With entities unresolved, an undeclared entity surfaces
    as "no element found" at line 0; the parser's error log then holds the real cause."""
    if exc.position and exc.position[0]:
        return exc.position[0], exc.msg
    log: Any = exc.error_log
    errors = [e for e in (list(log) if log else []) if e.line]
    if errors:
        return errors[-1].line, errors[-1].message
    return (exc.lineno or None), exc.msg


PROLOG_BLOCK = 65536


def _refuse_doctype(path: Path) -> None:
    """Refuse a DOCTYPE before the parser sees it. The whole prolog (declaration, comments,
    processing instructions) is scanned, block by block, up to the first element: a DOCTYPE is
    named with its line however long the comments before it are, and memory holds one block."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by the with below; the open alone names a read error
    except OSError as exc:
        raise SourceError(str(path), None, f"cannot read the file: {exc.strerror}") from None
    with fh:
        scanner = _PrologScanner()
        empty = True
        while True:
            block = fh.read(PROLOG_BLOCK)
            if not block:
                break
            empty = empty and not block.strip()
            found = scanner.feed(block)
            if found is not None:
                if found.doctype_line is not None:
                    raise SourceError(str(path), found.doctype_line, DOCTYPE_REFUSED)
                return
    if empty:
        raise SourceError(str(path), None, "the file is empty")


class _Verdict:
    def __init__(self, doctype_line: int | None) -> None:
        self.doctype_line = doctype_line


class _PrologScanner:
    """Walks the prolog in blocks: skips comments and processing instructions (which may hold '<'
    and span blocks, and are dropped as they are passed, so memory holds about one block), stops at
    the first element or at a DOCTYPE, and counts lines on the way."""

    def __init__(self) -> None:
        self.tail = b""       # bytes not yet decided (a construct cut by the end of a block)
        self.line = 1         # line of the first byte of ``tail``
        self.closing = b""    # inside a comment (``-->``) or a processing instruction (``?>``)

    def feed(self, block: bytes) -> _Verdict | None:
        data = self.tail + block
        i = 0
        while True:
            if self.closing:
                close = data.find(self.closing, i)
                if close < 0:
                    self._keep(data, max(i, len(data) - len(self.closing) + 1))
                    return None
                i, self.closing = close + len(self.closing), b""
                continue
            start = data.find(b"<", i)
            if start < 0:
                self._keep(data, len(data))
                return None
            if data.startswith(b"<!--", start):
                i, self.closing = start + 4, b"-->"
                continue
            if data.startswith(b"<?", start):
                i, self.closing = start + 2, b"?>"
                continue
            if len(data) - start < len(b"<!DOCTYPE"):
                self._keep(data, start)  # too short to tell what starts here
                return None
            if data.startswith(b"<!DOCTYPE", start):
                return _Verdict(self.line + data.count(b"\n", 0, start))
            return _Verdict(None)  # the first element: the prolog is over

    def _keep(self, data: bytes, offset: int) -> None:
        self.line += data.count(b"\n", 0, offset)
        self.tail = data[offset:]


__all__ = ["EngageIPReader", "InvalidValue"]
