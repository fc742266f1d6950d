"""Dead-letter bookkeeping that staging (letters of records refused at read) and loading (letters of
records that failed in a worker) share."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.schema.base import utcnow
from shared.schema.control import DeadLetter, StagedRecord


def supersede_letters(session: Session, keys: Sequence[str], run_id: str) -> None:
    """One open letter per record key: the same record failing again in a later run (the same files
    run twice) replaces the earlier run's letter, which is kept as ``superseded``."""
    if not keys:
        return
    earlier = select(StagedRecord.id).where(StagedRecord.key.in_(list(keys)), StagedRecord.run_id != run_id)
    session.execute(update(DeadLetter).where(DeadLetter.state == "open", DeadLetter.record_id.in_(earlier))
                    .values(state="superseded", updated_at=utcnow()))


def supersede_earlier_letters(session: Session, run_id: str) -> None:
    """At the end of staging: the letters of this run's records refused at read replace the open
    letters earlier runs had for the same records."""
    mine = select(StagedRecord.key).where(StagedRecord.run_id == run_id, StagedRecord.status == "dead")
    earlier = select(StagedRecord.id).where(StagedRecord.key.in_(mine), StagedRecord.run_id != run_id)
    session.execute(update(DeadLetter).where(DeadLetter.state == "open", DeadLetter.record_id.in_(earlier))
                    .values(state="superseded", updated_at=utcnow()))
