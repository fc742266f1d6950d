"""JSON on the hot paths: a record's canonical bytes, its payload as staged, its payload as read back.

Every record is JSON-encoded twice while it is staged (its content digest and its payload) and
decoded once when it loads: with the standard library that was one seventh of the producer's CPU.
orjson does the same work in C. Its output is byte for byte what ``json.dumps(...,
ensure_ascii=False, separators=(",", ":"))`` writes for the strings records are made of, so a
digest (and every idempotency key derived from it) is the same as before. Wherever orjson would
refuse to write (a lone surrogate, an integer beyond 64 bits), the standard library decides,
exactly as it did before."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson


def canonical_content(entity: str, fields: Mapping[str, str]) -> bytes:
    """A stable byte form of a record: same meaning, same bytes (attribute order never matters)."""
    items = sorted(fields.items())
    try:
        return orjson.dumps([entity, items])
    except TypeError:
        return json.dumps([entity, items], ensure_ascii=False, separators=(",", ":")).encode()


def payload_text(payload: Mapping[str, Any]) -> str:
    """A staged record's payload as the JSON text the database stores."""
    try:
        return orjson.dumps(payload).decode()
    except TypeError:
        return json.dumps(payload)


def payload_of(text: str | bytes | Mapping[str, Any]) -> Any:
    """A payload read back as text (or already decoded by the driver) as the mapping it was. A payload
    holds strings only (a reader's fields and the producer's own annotations), which orjson reads
    exactly as the standard library does; text orjson refuses is left to the standard library."""
    if not isinstance(text, (str, bytes)):
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
