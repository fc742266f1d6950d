"""The message a record travels in, and the keys that make loading it idempotent.

A load message names its records: ``{"chunk": [dispatch, wave, chunk], "ids": [record ids], "upsert":
bool}`` (``pack_message``). The loading process reads their envelopes from ``staged_records`` in one
query per batch (``workers/envelopes.py``), so a record's fields cross no broker, no JSON round trip
and no pickle to the pool process. A message holding whole envelopes (``Envelope.to_message``, one or
a list) is still understood."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.errors import Position
from shared.json_codec import canonical_content

KEY_SEPARATOR = "\x1f"


@dataclass
class Envelope:
    """One record on its way to a loader. ``fields`` are already typed and normalised by the reader
    (dates ISO, booleans true/false); secret fields hold vault ciphertext, never clear text."""

    run_id: str
    record_id: int
    entity: str
    key: str
    digest: str
    position: Position
    fields: dict[str, str] = field(default_factory=dict)
    upsert: bool = False
    replay: bool = False
    """Published by a replay: only then can the record have an open dead letter to close."""
    chunk: tuple[str, int, int] | None = None
    """(dispatch, wave, chunk) the record was published in: the worker closes the chunk when it empties."""

    def to_message(self) -> dict[str, Any]:
        """The message body (``dataclasses.asdict`` would deep-copy every field: slow per record)."""
        position = self.position
        return {"run_id": self.run_id, "record_id": self.record_id, "entity": self.entity, "key": self.key,
                "digest": self.digest, "position": {"file": position.file, "line": position.line, "column": position.column},
                "fields": self.fields, "upsert": self.upsert, "replay": self.replay,
                "chunk": list(self.chunk) if self.chunk else None}

    @classmethod
    def from_message(cls, data: Mapping[str, Any]) -> Envelope:
        pos = data["position"]
        return cls(
            run_id=data["run_id"], record_id=int(data["record_id"]), entity=data["entity"], key=data["key"],
            digest=data["digest"], position=Position(pos["file"], pos.get("line"), pos.get("column")),
            fields=dict(data["fields"]), upsert=bool(data.get("upsert", False)), replay=bool(data.get("replay", False)),
            chunk=_chunk(data.get("chunk")),
        )

    def label(self, natural_key: tuple[str, ...]) -> str:
        """Short, secret-free text for Flower and logs: ``User 'bob' (accounts.xml:12)``."""
        ident = "/".join(self.fields.get(f, "") for f in natural_key) if natural_key else f"#{self.record_id}"
        return f"{self.entity} {ident!r} ({self.position})"


def pack_message(chunk: tuple[str, int, int], record_ids: Sequence[int], upsert: bool) -> dict[str, Any]:
    """A load message naming ``record_ids`` of one chunk (one id: the per-record shape)."""
    return {"chunk": list(chunk), "ids": list(record_ids), "upsert": upsert}


def names_records(payload: Any) -> bool:
    """Whether a load message names its records (``pack_message``) rather than carrying envelopes."""
    return isinstance(payload, dict) and "ids" in payload


def carried_envelopes(payload: Any) -> list[dict[str, Any]]:
    """The whole envelopes of a message that carries them: one (a dict) or a list."""
    return payload if isinstance(payload, list) else [payload]


def runs_named(payload: Any) -> set[str]:
    """The runs (or replays) a load message belongs to: what a worker checks this database knows."""
    if names_records(payload):
        return {str(payload["chunk"][0])}
    return {str(message["run_id"]) for message in carried_envelopes(payload)}


def _chunk(value: Any) -> tuple[str, int, int] | None:
    if not value:
        return None
    dispatch_id, wave, chunk = value
    return str(dispatch_id), int(wave), int(chunk)


def content_digest(entity: str, fields: Mapping[str, str]) -> str:
    return hashlib.sha256(canonical_content(entity, fields)).hexdigest()


def idempotency_key(digest: str, occurrence: int) -> str:
    """Content-addressed key: the n-th record with this content in a run gets the same key in every
    re-run, so a re-run skips it; two identical ledger lines still get two keys."""
    return hashlib.sha256(f"{digest}:{occurrence}".encode()).hexdigest()


def natural_key_text(fields: Mapping[str, str], names: tuple[str, ...]) -> str:
    return KEY_SEPARATOR.join(fields.get(n, "") for n in names)


def show_key(text: str) -> str:
    """A natural key as people read it."""
    return text.replace(KEY_SEPARATOR, " / ")
