"""Writing a record's outcome: the target row and its ledger entry in one transaction; a duplicate
key skipped; a dead or blocked record parked in ``dead_letters`` with everything a report needs."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.envelope import Envelope, natural_key_text
from shared.errors import Blocked, RecordError
from shared.letters import supersede_letters
from shared.registry import EntityType
from shared.schema.base import utcnow
from shared.schema.control import DeadLetter, LedgerEntry, StagedRecord
from shared.vault import SECRET_MASK


def already_loaded(session: Session, env: Envelope) -> LedgerEntry | None:
    return session.get(LedgerEntry, env.key)


def record_success(session: Session, env: Envelope, entity: EntityType, target_id: int | None, outcome: str) -> None:
    """Same transaction as the loader's writes: ledger entry (committed only), status, dead letter closed."""
    if outcome == "committed":
        session.add(LedgerEntry(key=env.key, entity=env.entity, digest=env.digest, target_id=target_id,
                                natural_key=natural_key_text(env.fields, entity.natural_key) if entity.natural_key else None,
                                run_id=env.run_id, record_id=env.record_id))
    _set_status(session, env, outcome, target_id)
    _close_letter(session, env)


def record_duplicate(session: Session, env: Envelope, previous: LedgerEntry) -> str:
    """The key is in the ledger: loaded before. A redelivery of this very record changes nothing."""
    outcome = "committed" if previous.record_id == env.record_id else "skipped"
    _set_status(session, env, outcome, previous.target_id)
    _close_letter(session, env)
    return outcome


def record_failure(session: Session, env: Envelope, entity: EntityType, error: RecordError | Blocked, attempts: int) -> str:
    """Park the record: dead (its own fault) or blocked (its parent's), in its own transaction."""
    values: dict[str, object] = {
        "run_id": env.run_id, "entity": env.entity, "wave": _wave(session, env), "stage": "load", "state": "open",
        "error_class": type(error).__name__,
        "ref_key": natural_key_text(env.fields, entity.lookup_key) if entity.lookup_key else None,
        "source_file": env.position.file, "line": env.position.line, "col": env.position.column,
        "attempts": attempts, "updated_at": utcnow(),
    }
    if isinstance(error, Blocked):
        values.update(outcome="blocked", message=str(error), field=None, value=None, hint=None,
                      blocked_by=error.parent_letter_id)
    else:
        values.update(outcome="dead", message=error.message, field=error.field, value=_shown_value(entity, error),
                      hint=error.hint, blocked_by=None)
    letter = session.scalar(select(DeadLetter).where(DeadLetter.record_id == env.record_id))
    if letter is None:
        supersede_letters(session, [env.key], env.run_id)
        session.add(DeadLetter(record_id=env.record_id, **values))
    else:
        for name, value in values.items():
            setattr(letter, name, value)
    outcome = str(values["outcome"])
    _set_status(session, env, outcome, None)
    return outcome


def _close_letter(session: Session, env: Envelope) -> None:
    """A replayed record that loads closes its dead letter; first loads skip the write (hot path)."""
    if env.replay:
        session.execute(update(DeadLetter).where(DeadLetter.record_id == env.record_id, DeadLetter.state == "open")
                        .values(state="replayed", updated_at=utcnow()))


def bump_attempts(session: Session, env: Envelope) -> int:
    session.execute(update(StagedRecord).where(StagedRecord.id == env.record_id)
                    .values(attempts=StagedRecord.attempts + 1))
    return session.scalar(select(StagedRecord.attempts).where(StagedRecord.id == env.record_id)) or 0


def _set_status(session: Session, env: Envelope, status: str, target_id: int | None) -> None:
    session.execute(update(StagedRecord).where(StagedRecord.id == env.record_id)
                    .values(status=status, target_id=target_id))


def _wave(session: Session, env: Envelope) -> int:
    return session.scalar(select(StagedRecord.wave).where(StagedRecord.id == env.record_id)) or 0


def _shown_value(entity: EntityType, error: RecordError) -> str | None:
    if error.value is None:
        return None
    if error.field in entity.secret_fields:
        return SECRET_MASK
    return str(error.value)

