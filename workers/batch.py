"""Load many records of one entity type in few transactions, with outcomes kept per record.

The per-record path (``workers.process``) costs a transaction, a ledger lookup and a status update
per record. Here a batch shares them: one query finds which keys the ledger already holds, each
record's loader runs inside its own savepoint (so a bad record rolls back alone and is dead-lettered
while the others commit), and the ledger rows and status updates are written with one multi-row
statement each at the end. A transaction also ends when it has run for ``budget`` seconds, so slow
records (password hashing) never hold SQLite's write lock, or PostgreSQL row locks, for long.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from shared.envelope import Envelope, natural_key_text
from shared.errors import Blocked, LoaderCrashed, RecordError
from shared.limits import ColumnTooLong
from shared.logs import record_fields
from shared.registry import EntityType, Registry
from shared.schema.base import utcnow
from shared.schema.control import DeadLetter, LedgerEntry, StagedRecord
from shared.vault import Vault
from workers import outcomes
from workers.context import BatchCache, LoadContext, Loader, PendingLoad
from workers.passwords import hash_password
from workers.process import TRANSIENT, first_line, process_record, refused_by_database

log = logging.getLogger("cutover.worker")

DEFAULT_BUDGET = 1.0
ACCOUNT_FIELDS = ("User", "Name", "Parent")
"""Fields that name accounts: their accounts are fetched for the whole batch in one query."""
RACE_RETRIES = 3
FIRST_HASH_GROUP = 8
"""Records with passwords load in groups sized so their hashing fits the transaction budget: the first
group measures the hash."""


@dataclass
class _Transaction:
    """What one batch transaction decided, written in bulk before it commits."""

    session: Session
    savepoints: bool
    """Each record in its own savepoint. Off for the first try of a batch: a clean batch (the usual
    case) saves two round trips a record; the first record error sends the batch again with them."""
    cache: BatchCache = field(default_factory=BatchCache)
    loaded: dict[str, PendingLoad] = field(default_factory=dict)  # key → ledger entry to insert
    statuses: list[dict[str, Any]] = field(default_factory=list)
    awaiting_ids: list[tuple[dict[str, Any], PendingLoad | None, Any]] = field(default_factory=list)
    """(status, ledger entry, new row): the row's id is known once the batch's rows are flushed."""
    replayed: list[int] = field(default_factory=list)
    outcomes: dict[int, str] = field(default_factory=dict)

    def settle(self, env: Envelope, outcome: str, target_id: int | None, row: Any = None,
               entry: PendingLoad | None = None) -> None:
        """``row``: a new row whose id (for the status and ``entry``) is known only after the flush."""
        status = {"id": env.record_id, "status": outcome, "target_id": target_id}
        self.statuses.append(status)
        if row is not None:
            self.awaiting_ids.append((status, entry, row))
        self.outcomes[env.record_id] = outcome
        if env.replay:
            self.replayed.append(env.record_id)

    def write(self) -> None:
        self.cache.run_after()
        self.session.flush()  # the batch's new rows, one multi-row INSERT … RETURNING per table
        for status, entry, row in self.awaiting_ids:
            status["target_id"] = row.id
            if entry is not None:
                entry.target_id = row.id
        if self.loaded:
            self.session.execute(insert(LedgerEntry), [_ledger_row(e) for e in self.loaded.values()])
        if self.statuses:
            self.session.execute(update(StagedRecord), self.statuses)
        if self.replayed:
            self.session.execute(update(DeadLetter).where(DeadLetter.record_id.in_(self.replayed), DeadLetter.state == "open")
                                 .values(state="replayed", updated_at=utcnow()))


def load_batch(sessions: sessionmaker[Session], registry: Registry, vault: Vault, loaders: dict[str, Loader],
               entity: EntityType, envelopes: Sequence[Envelope], attempts: dict[int, int],
               budget: float = DEFAULT_BUDGET, readers: sessionmaker[Session] | None = None) -> dict[int, str]:
    """Outcome per record id (committed, skipped, dead, blocked). Raises only transient errors; what
    committed before one is kept (loading is idempotent, so the whole batch can be sent again)."""
    results: dict[int, str] = {}
    todo = list(envelopes)
    hashing = "Password" in entity.secret_fields
    group = FIRST_HASH_GROUP if hashing else len(todo)
    hashes: dict[str, str] = {}
    while todo:
        head = todo[:group]
        if hashing:
            started = time.monotonic()
            made = _hash_passwords(readers or sessions, vault, head, hashes)
            if made:  # as many records a transaction as can be hashed in its time budget
                group = max(1, int(budget * made / max(time.monotonic() - started, 1e-6)))
        done = _load_some(sessions, registry, vault, loaders, entity, head, attempts, budget, results, hashes)
        todo = todo[done:]
    return results


def _hash_passwords(readers: sessionmaker[Session], vault: Vault, envelopes: Sequence[Envelope],
                    hashes: dict[str, str]) -> int:
    """Hash the passwords of records not loaded yet, into ``hashes``, before any write transaction
    opens (tens of milliseconds a password: inside a transaction it would hold SQLite's write lock and
    PostgreSQL's row locks). Returns how many it hashed."""
    wanted = [env for env in envelopes if env.fields.get("Password") and env.key not in hashes]
    if not wanted:
        return 0
    with readers() as session:
        loaded = set(session.scalars(select(LedgerEntry.key).where(LedgerEntry.key.in_([e.key for e in wanted]))))
    made = 0
    for env in wanted:
        if env.key not in loaded:
            try:
                hashes[env.key] = hash_password(vault.decrypt(env.fields["Password"]))
                made += 1
            except Exception:  # the loader reports this record's own error (undecryptable, refused by the policy)
                continue
    return made


def _load_some(sessions: sessionmaker[Session], registry: Registry, vault: Vault, loaders: dict[str, Loader],
               entity: EntityType, todo: list[Envelope], attempts: dict[int, int], budget: float,
               results: dict[int, str], hashes: dict[str, str]) -> int:
    """One transaction over the head of ``todo``; returns how many records it settled.

    The first try runs without savepoints. Any record error, and any error the database raises when
    the batch's rows are written (a value too long, a constraint), rolls it back and the batch runs
    again with a savepoint per record, each record's rows written inside its own savepoint, so the
    record at fault is parked alone and the rest commit. Should the write still fail outside every
    record's savepoint, the records are settled one by one on the per-record path."""
    savepoints = False
    for _ in range(RACE_RETRIES + 1):
        try:
            with sessions.begin() as session:
                tx = _Transaction(session, savepoints)
                tx.cache.password_hashes = hashes
                done = _run(tx, registry, vault, loaders, entity, todo, attempts, time.monotonic() + budget)
                tx.write()
            results.update(tx.outcomes)
            return done
        except _RecordFailed:
            savepoints = True  # rolled back: again, each record in its own savepoint
        except IntegrityError as exc:
            # A concurrent worker wrote one of these ledger keys or natural keys meanwhile: look again.
            log.info("%s batch clashed with a concurrent write (%s); retrying", entity.name, first_line(exc))
            savepoints = True
        except TRANSIENT:
            raise
        except (ColumnTooLong, DBAPIError) as exc:
            if savepoints:
                log.warning("%s batch: the database refused its write (%s); settling its records one by one",
                            entity.name, first_line(exc))
                return _one_by_one(sessions, registry, vault, loaders, entity, todo, attempts, results)
            savepoints = True
    # Still clashing: settle the head record alone, on the per-record path (which parks it if need be).
    env = todo[0]
    results[env.record_id] = process_record(sessions, registry, vault, loaders, entity, env, attempts.get(env.record_id, 1))
    return 1


def _one_by_one(sessions: sessionmaker[Session], registry: Registry, vault: Vault, loaders: dict[str, Loader],
                entity: EntityType, todo: list[Envelope], attempts: dict[int, int], results: dict[int, str]) -> int:
    for env in todo:
        results[env.record_id] = process_record(sessions, registry, vault, loaders, entity, env,
                                                attempts.get(env.record_id, 1))
    return len(todo)


class _RecordFailed(Exception):
    """A record failed in a batch tried without savepoints: the transaction is rolled back."""


def _run(tx: _Transaction, registry: Registry, vault: Vault, loaders: dict[str, Loader], entity: EntityType,
         todo: list[Envelope], attempts: dict[int, int], deadline: float) -> int:
    previous = {e.key: e for e in tx.session.scalars(select(LedgerEntry).where(LedgerEntry.key.in_([e.key for e in todo])))}
    tx.cache.envelopes = todo
    tx.cache.prefetch_accounts(tx.session, (e.fields.get(f, "") for e in todo for f in ACCOUNT_FIELDS))
    loader = loaders[entity.name]
    for index, env in enumerate(todo):
        if index and time.monotonic() > deadline:
            return index
        earlier = previous.get(env.key) or tx.loaded.get(env.key)
        if earlier is not None:
            tx.settle(env, "committed" if earlier.record_id == env.record_id else "skipped", earlier.target_id)
            continue
        error = _load_one(tx, LoadContext(tx.session, env, entity, registry, vault, cache=tx.cache), loader)
        if error is not None:
            if not tx.savepoints:
                raise _RecordFailed()
            tx.outcomes[env.record_id] = outcomes.record_failure(tx.session, env, entity, error,
                                                                 attempts.get(env.record_id, 1))
            outcome = tx.outcomes[env.record_id]
            log.warning("%s %s: %s", env.label(entity.lookup_key), outcome, error, extra=record_fields(env, outcome, error))
    return len(todo)


def _load_one(tx: _Transaction, ctx: LoadContext, loader: Loader) -> RecordError | Blocked | None:
    """Run the loader (in a savepoint when the transaction uses them); returns the error that parks
    the record, if any."""
    env, entity = ctx.envelope, ctx.entity
    try:
        with tx.session.begin_nested() if tx.savepoints else nullcontext():
            loaded = loader(ctx)
    except (RecordError, Blocked) as error:
        return error
    except ColumnTooLong as exc:
        return exc.as_record_error(env.fields)
    except TRANSIENT:
        raise
    except IntegrityError:
        raise  # retried as a whole by the caller
    except DBAPIError as exc:
        if not tx.savepoints:
            raise  # the batch is tried again with savepoints, where this record's rows are written alone
        return refused_by_database(exc)
    except Exception as exc:  # a loader bug must not stall the chunk: park the record, keep the trace
        if not tx.savepoints:
            return LoaderCrashed(f"{type(exc).__name__}: {first_line(exc)}")  # logged when tried again
        log.exception("%s: loader crashed", env.label(entity.lookup_key),
                      extra=record_fields(env, "dead", error_class="LoaderCrashed"))
        return LoaderCrashed(f"{type(exc).__name__}: {first_line(exc)}", hint="a bug in cutover; report it with this record")
    if loaded.outcome == "skipped":
        # The same record delivered twice at once (at-least-once delivery): the row found is its own.
        mine = tx.session.get(LedgerEntry, env.key)
        if mine is not None and mine.record_id == env.record_id:
            tx.settle(env, "committed", mine.target_id)
            return None
    entry = None
    if loaded.outcome == "committed":
        natural = natural_key_text(env.fields, entity.natural_key) if entity.natural_key else None
        entry = PendingLoad(key=env.key, entity=env.entity, digest=env.digest, target_id=loaded._target_id,
                            natural_key=natural, run_id=env.run_id, record_id=env.record_id)
        tx.loaded[env.key] = entry
        if natural is not None:
            tx.cache.pending[(env.entity, natural)] = entry
    tx.settle(env, loaded.outcome, loaded._target_id, loaded.row, entry)
    return None


def _ledger_row(entry: PendingLoad) -> dict[str, object]:
    return {"key": entry.key, "entity": entry.entity, "natural_key": entry.natural_key, "digest": entry.digest,
            "target_id": entry.target_id, "run_id": entry.run_id, "record_id": entry.record_id, "committed_at": utcnow()}
