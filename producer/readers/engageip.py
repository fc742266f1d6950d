"""Streaming reader for engageip XML: every child of the root is one record.

lxml ``iterparse`` with DTDs, external entities and entity expansion off; each record element is
cleared once read, so memory stays flat whatever the file size. A document with a DOCTYPE is refused
before any record is read (that is where XML bombs and external entities live). With no DTD and no
entities, ``huge_tree`` only lifts libxml2's 10 MB limit on one attribute value, so a ticket
attachment given inline (base64 ``Content``, up to the attachment limit) can be read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lxml import etree

from producer.attachments import shown_content, store_attachment
from producer.readers import values
from producer.readers.base import RawRecord, ReadOptions
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

DOCTYPE_REFUSED = "a DOCTYPE is not allowed (DTDs and entities are refused)"
_PARSERS = {
    INT: values.parse_int, DECIMAL: values.parse_decimal, AMOUNT: values.parse_amount, MONEY: values.parse_money,
    BOOL: values.parse_bool,
}


class EngageIPReader:
    format_name = "engageip"

    def read(self, path: Path, options: ReadOptions) -> Iterator[RawRecord]:
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

    def _record(self, path: Path, elem: etree._Element, options: ReadOptions) -> RawRecord:
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


def _refuse_doctype(path: Path) -> None:
    """Refuse a DOCTYPE before the parser sees it, reading only the prolog."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
    except OSError as exc:
        raise SourceError(str(path), None, f"cannot read the file: {exc.strerror}") from None
    if not head.strip():
        raise SourceError(str(path), None, "the file is empty")
    first_element = _first_element_offset(head)
    prolog = head if first_element < 0 else head[:first_element]
    marker = prolog.find(b"<!DOCTYPE")
    if marker >= 0:
        line = prolog.count(b"\n", 0, marker) + 1
        raise SourceError(str(path), line, DOCTYPE_REFUSED)


def _first_element_offset(head: bytes) -> int:
    i = 0
    while True:
        i = head.find(b"<", i)
        if i < 0 or i + 1 >= len(head):
            return -1
        if head.startswith(b"<!--", i):
            end = head.find(b"-->", i + 4)
            if end < 0:
                return -1
            i = end + 3
            continue
        if head[i + 1:i + 2] not in (b"?", b"!"):
            return i
        i += 1


__all__ = ["EngageIPReader", "InvalidValue"]
