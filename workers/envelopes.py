"""Envelopes of a batch's messages, read from ``staged_records``: a load message names its records
(``shared.envelope.pack_message``), and the loading process reads them here, one query for the whole
batch. Their fields then never travel through the broker, are never JSON-encoded for it, decoded by
the consumer and pickled again for the pool process: the costs that made publishing and consuming a
record dearer than deciding and writing it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session, sessionmaker

from shared.dialects import dialect_of
from shared.envelope import Envelope, carried_envelopes, names_records
from shared.errors import Position
from shared.json_codec import payload_of
from shared.schema.control import StagedRecord
from workers.lookups import chunks

log = logging.getLogger("cutover.worker")

def envelopes_of(readers: sessionmaker[Session], payloads: Sequence[Any]) -> list[list[Envelope]]:
    """Per message, in order, the envelopes of the records it names or carries. A named record that
    is no longer staged (its run was refused, its staging undone) has nothing to load and is left
    out, with a warning."""
    wanted = [int(record_id) for payload in payloads if names_records(payload) for record_id in payload["ids"]]
    rows = _staged(readers, wanted) if wanted else {}
    out: list[list[Envelope]] = []
    for payload in payloads:
        if not names_records(payload):
            out.append([Envelope.from_message(message) for message in carried_envelopes(payload)])
            continue
        chunk = (str(payload["chunk"][0]), int(payload["chunk"][1]), int(payload["chunk"][2]))
        upsert = bool(payload.get("upsert", False))
        envelopes = []
        for record_id in payload["ids"]:
            row = rows.get(int(record_id))
            if row is None:
                log.warning("record %s of chunk %s/%s/%s is no longer staged (its run was refused or undone): "
                            "nothing to load", record_id, *chunk)
                continue
            record_id, run_id, entity, key, digest, source_file, line, col, payload = row
            envelopes.append(Envelope(
                run_id=run_id, record_id=record_id, entity=entity, key=key, digest=digest,
                position=Position(source_file, line, col), fields=payload_of(payload), upsert=upsert,
                replay=run_id != chunk[0], chunk=chunk))
        out.append(envelopes)
    return out


def _staged(readers: sessionmaker[Session], record_ids: list[int]) -> dict[int, Any]:
    """The staged rows by id, as plain rows on the session's connection (no ORM bookkeeping), the
    payload as its JSON text (decoded by ``shared.json_codec``, not by the driver)."""
    found: dict[int, Any] = {}
    with readers() as session:
        dialect, connection = dialect_of(session), session.connection()
        for part in chunks(record_ids):
            for row in connection.execute(
                    select(StagedRecord.id, StagedRecord.run_id, StagedRecord.entity, StagedRecord.key,
                           StagedRecord.digest, StagedRecord.source_file, StagedRecord.line, StagedRecord.col,
                           cast(StagedRecord.payload, Text))
                    .where(dialect.any_of(StagedRecord.id, part))):
                found[row[0]] = row
    return found
