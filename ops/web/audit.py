"""The console's audit: who started an import, replayed or discarded dead letters, had a report
e-mailed or saved a profile — one row each in ``console_audit``, shown on the run it concerns."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from shared.schema.console import ConsoleAudit

START, REPLAY, DISCARD, EMAIL, PROFILE = "start", "replay", "discard", "email", "profile"


def record(sf: sessionmaker[Session], operator: str, action: str, run_id: str | None, summary: str,
           detail: dict[str, Any] | None = None, records: int = 0) -> int:
    with sf.begin() as session:
        row = ConsoleAudit(operator=operator, action=action, run_id=run_id, summary=summary, detail=detail or {},
                           records=records)
        session.add(row)
        session.flush()
        return row.id


def update(sf: sessionmaker[Session], audit_id: int, records: int | None = None, **detail: Any) -> None:
    with sf.begin() as session:
        row = session.get_one(ConsoleAudit, audit_id)
        row.detail = {**row.detail, **detail}
        if records is not None:
            row.records = records


def for_run(session: Session, run_id: str) -> list[ConsoleAudit]:
    """What was done to a run, oldest first; for a replay, the replay action that made it."""
    rows = session.scalars(select(ConsoleAudit).where(or_(ConsoleAudit.run_id == run_id, ConsoleAudit.action == REPLAY))
                           .order_by(ConsoleAudit.at, ConsoleAudit.id)).all()
    return [r for r in rows if r.run_id == run_id or r.detail.get("replay_id") == run_id]


def start_of(session: Session, run_id: str) -> ConsoleAudit | None:
    return session.scalar(select(ConsoleAudit).where(ConsoleAudit.run_id == run_id, ConsoleAudit.action == START)
                          .order_by(ConsoleAudit.id).limit(1))
