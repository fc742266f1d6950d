"""Plan a replay of dead letters: the chosen letters plus every record blocked behind them, put back
into a new dispatch in wave order, so parents load before the children they release."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session, sessionmaker

from producer.staging import new_run_id, write_dispatch_waves
from shared.schema.control import DeadLetter, Run, StagedRecord


@dataclass(frozen=True)
class LetterFilter:
    """Which dead letters an operator means: by run, entity, error class, outcome, or ids."""

    run_id: str | None = None
    entity: str | None = None
    error_class: str | None = None
    outcome: str | None = None
    ids: tuple[int, ...] = ()
    state: str = "open"

    def apply(self, query: Select) -> Select:  # type: ignore[type-arg]
        if self.state != "any":
            query = query.where(DeadLetter.state == self.state)
        if self.run_id:
            query = query.where(DeadLetter.run_id == self.run_id)
        if self.entity:
            query = query.where(DeadLetter.entity == self.entity)
        if self.error_class:
            query = query.where(DeadLetter.error_class == self.error_class)
        if self.outcome:
            query = query.where(DeadLetter.outcome == self.outcome)
        if self.ids:
            query = query.where(DeadLetter.id.in_(self.ids))
        return query


@dataclass
class ReplayPlan:
    replay_id: str | None
    records: int = 0
    by_entity: Counter[str] = field(default_factory=Counter)
    not_replayable: int = 0


def plan_replay(sf: sessionmaker[Session], letters: LetterFilter, *, upsert: bool, chunk_size: int,
                records_per_message: int) -> ReplayPlan:
    """Move the chosen letters' records (and what is blocked behind them) into a new replay dispatch.
    Its messages are packed like a run's (``records_per_message``), so a large replay loads in batches
    as large as a run's."""
    with sf.begin() as session:
        chosen = session.execute(letters.apply(select(DeadLetter.id, DeadLetter.stage))).all()
        not_replayable = sum(1 for _, stage in chosen if stage == "read")
        ids = {letter_id for letter_id, stage in chosen if stage != "read"}
        ids |= _blocked_behind(session, ids)
        if not ids:
            return ReplayPlan(None, not_replayable=not_replayable)
        replay_id = new_run_id("replay")
        options = {"upsert": upsert, "records_per_message": records_per_message}
        session.add(Run(id=replay_id, kind="replay", state="staging", options=options, files=[]))
        session.flush()
        rows = session.execute(
            select(DeadLetter.record_id, StagedRecord.wave, StagedRecord.entity)
            .join(StagedRecord, StagedRecord.id == DeadLetter.record_id)
            .where(DeadLetter.id.in_(ids)).order_by(StagedRecord.wave, StagedRecord.id)
        ).all()
        plan = ReplayPlan(replay_id, records=len(rows), not_replayable=not_replayable)
        per_wave: Counter[int] = Counter()
        for record_id, wave, entity in rows:
            chunk = per_wave[wave] // chunk_size
            per_wave[wave] += 1
            plan.by_entity[entity] += 1
            session.execute(update(StagedRecord).where(StagedRecord.id == record_id)
                            .values(dispatch_id=replay_id, chunk=chunk, status="pending", attempts=0))
        write_dispatch_waves(session, replay_id)
        session.get_one(Run, replay_id).state = "ready"
    return plan


def _blocked_behind(session: Session, parents: set[int]) -> set[int]:
    """Open blocked letters whose chain of ``blocked_by`` leads to one of ``parents``."""
    found: set[int] = set()
    frontier = set(parents)
    while frontier:
        children = set(session.scalars(
            select(DeadLetter.id).where(DeadLetter.blocked_by.in_(frontier), DeadLetter.state == "open")
        ).all()) - found - parents
        found |= children
        frontier = children
    return found


def discard(sf: sessionmaker[Session], letters: LetterFilter) -> int:
    """Mark letters discarded: the operator decided they will not load (their records stay dead)."""
    with sf.begin() as session:
        ids = session.scalars(letters.apply(select(DeadLetter.id))).all()
        if ids:
            session.execute(update(DeadLetter).where(DeadLetter.id.in_(ids)).values(state="discarded"))
        return len(ids)
