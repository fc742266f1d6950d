"""A lone record — a redelivery, a fallback, a test — is a batch of one on the one record path
(``workers/batch.py``); and a record parked by the task itself (lost worker, retries exhausted)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session, sessionmaker

from shared.envelope import Envelope
from shared.errors import Blocked, RecordError
from shared.registry import EntityType, Registry
from shared.vault import Vault
from workers.batch import TRANSIENT, Loaders, _Transaction, first_line, load_batch
from workers.context import Loader
from workers.plans import load_planners

__all__ = ["TRANSIENT", "as_loaders", "first_line", "park", "process_record"]


def as_loaders(loaders: Loaders | Mapping[str, Loader]) -> Loaders:
    """Per-record loaders by entity, with the set-based planners beside them."""
    return loaders if isinstance(loaders, Loaders) else Loaders(load_planners(), dict(loaders))


def process_record(sessions: sessionmaker[Session], registry: Registry, vault: Vault,
                   loaders: Loaders | Mapping[str, Loader], entity: EntityType, env: Envelope, attempts: int) -> str:
    """Returns the outcome (committed, skipped, dead, blocked). Raises only transient errors."""
    return load_batch(sessions, registry, vault, as_loaders(loaders), entity, [env], {env.record_id: attempts})[env.record_id]


def park(sessions: sessionmaker[Session], entity: EntityType, env: Envelope, error: RecordError | Blocked,
         attempts: int) -> str:
    """Park a record in a transaction of its own; returns its outcome (dead or blocked)."""
    with sessions.begin() as session:
        tx = _Transaction(session, True)
        tx.park(env, entity, error, attempts)
    return tx.outcomes[env.record_id]
