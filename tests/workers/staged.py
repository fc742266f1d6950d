"""What the batch-loader tests share: a run's staged records as envelopes, a batch loaded directly
(no Celery), and a record's dead letter."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from shared.entities import REGISTRY
from shared.envelope import Envelope
from shared.errors import Position
from shared.schema.control import DeadLetter, StagedRecord
from shared.vault import Vault
from workers.batch import Loaders, load_batch


def staged_envelopes(sessions: sessionmaker[Session], run_id: str, entity: str, **overrides: Any) -> list[Envelope]:
    """The run's staged records of ``entity``, in read order."""
    with sessions() as session:
        rows = session.scalars(sa.select(StagedRecord).where(StagedRecord.run_id == run_id, StagedRecord.entity == entity)
                               .order_by(StagedRecord.id)).all()
        return [Envelope(run_id, r.id, r.entity, r.key, r.digest, Position(r.source_file, r.line, r.col),
                         dict(r.payload), **overrides) for r in rows]


class DirectLoads:
    """A test database's sessions, vault and loaders: load a batch, read a record's dead letter."""

    sessions: sessionmaker[Session]
    vault: Vault
    loaders: Loaders

    def load(self, entity: str, envelopes: list[Envelope]) -> dict[int, str]:
        return load_batch(self.sessions, REGISTRY, self.vault, self.loaders, REGISTRY[entity], envelopes,
                          {e.record_id: 1 for e in envelopes})

    def letter(self, record_id: int) -> DeadLetter:
        with self.sessions() as session:
            return session.scalars(sa.select(DeadLetter).where(DeadLetter.record_id == record_id)).one()
