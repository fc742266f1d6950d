"""Staged ids follow the read order, and a dead letter points at its own record, whichever way a
batch was written: a batch without a dead record goes in without fetching ids (on PostgreSQL, one
``COPY`` whose rows take the sequence's next value as they arrive), a batch with one takes its ids
first, for its letters. Small batches here, so one file makes both kinds, several times over."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

import producer.staging
from producer.formats import FORMATS, SourceFile
from producer.staging import Stager
from shared.db import session_factory, upgrade
from shared.entities import REGISTRY
from shared.envelope import natural_key_text
from shared.schema.control import DeadLetter, StagedRecord
from shared.vault import Vault

USERS = 23
BAD_EVERY = 7
"""Every seventh record lacks its Owner: dead at read."""


def _accounts(path: Path) -> Path:
    lines = ['<?xml version="1.0"?>', "<Import>"]
    for n in range(USERS):
        owner = "" if n % BAD_EVERY == 3 else ' Owner="admin"'
        lines.append(f'<User Name="acct-{n:03d}"{owner} Role="Customer" Currency="USD" Language="English" '
                     f'Culture="en-US" StatusType="Active" BillGroup="Monthly" CreditRating="Good" BillDay="1" '
                     f'TaxCode="None" />')
    lines.append("</Import>")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ids_follow_the_read_order_and_letters_their_records(database_url: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(producer.staging, "BATCH", 4)
    upgrade(database_url)
    sessions = session_factory(database_url)
    source = SourceFile(_accounts(tmp_path / "accounts.xml"), "engageip", FORMATS["engageip"].options())
    run_id = Stager(sessions, REGISTRY, Vault(b"k" * 32), chunk_size=5).stage([source], {}).run_id
    with sessions() as session:
        staged = session.execute(sa.select(StagedRecord.id, StagedRecord.line, StagedRecord.status, StagedRecord.natural_key)
                                 .where(StagedRecord.run_id == run_id).order_by(StagedRecord.id)).all()
        letters = dict(session.execute(sa.select(DeadLetter.record_id, DeadLetter.field)
                                       .where(DeadLetter.run_id == run_id)).tuples().all())
    assert [line for _, line, _, _ in staged] == list(range(3, 3 + USERS)), "ids out of read order"
    dead = [(record_id, line) for record_id, line, status, _ in staged if status == "dead"]
    assert [line - 3 for _, line in dead] == [n for n in range(USERS) if n % BAD_EVERY == 3]
    assert set(letters) == {record_id for record_id, _ in dead}, "a dead letter points at another record"
    assert set(letters.values()) == {"Owner"}
    pending = [natural for _, _, status, natural in staged if status == "pending"]
    assert pending == [natural_key_text({"Owner": "admin", "Name": f"acct-{n:03d}"}, ("Owner", "Name"))
                       for n in range(USERS) if n % BAD_EVERY != 3]
