"""The one record path: records of one entity type loaded in few transactions, outcomes kept per
record. A lone record (a redelivery, a fallback, `cutover validate`) is a batch of one.

Per transaction: one query finds which keys the idempotency ledger already holds (those records are
settled from it); the rest are loaded —

* **set-based** for entity types with a planner (``workers/plans``): every record is planned from the
  batch's lookups, without writing, so a bad record fails alone; the planned rows are written together
  (``Planner.write``);
* **record by record** for the others, through their loader (``workers/loaders``): optimistically
  without savepoints, and on the first record error again with a savepoint per record, so the bad
  record rolls back alone.

Ledger rows, statuses and closed dead letters are then written with one statement each. Whatever the
database refuses at that point (a value too long, a constraint) sends the batch's records through
again one by one, each in its own transaction, so only the record at fault is parked (pgloader's
retry of a failed batch). Passwords are hashed before a transaction opens, in groups sized to the
transaction budget, so no lock is held while hashing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shared.dialects import dialect_of, table_of
from shared.envelope import Envelope, natural_key_text
from shared.errors import Blocked, InvalidValue, LoaderCrashed, RecordError
from shared.lengths import ColumnTooLong
from shared.logs import record_fields
from shared.registry import EntityType, Registry
from shared.schema.base import utcnow
from shared.schema.control import DeadLetter, LedgerEntry, StagedRecord
from shared.vault import Vault
from workers import outcomes
from workers.context import BatchCache, LoadContext, Loader, PendingLoad
from workers.lookups import Lookups
from workers.passwords import hash_password
from workers.plans import Batch, Planned, Planner

log = logging.getLogger("cutover.worker")

TRANSIENT = (OperationalError,)
DEFAULT_BUDGET = 1.0
ACCOUNT_FIELDS = ("User", "Name", "Parent")
"""Fields that name accounts: their accounts are fetched for the whole batch in one query."""
RACE_RETRIES = 3
FIRST_HASH_GROUP = 8
"""Records with passwords load in groups sized so their hashing fits the transaction budget: the first
group measures the hash."""
LEDGER = table_of(LedgerEntry)
STAGED = table_of(StagedRecord)


@dataclass(frozen=True)
class Loaders:
    """How each entity type loads: its planner (set-based), else its per-record loader."""

    planners: dict[str, Planner]
    loaders: dict[str, Loader]

    def __contains__(self, name: str) -> bool:
        return name in self.planners or name in self.loaders


@dataclass
class _Transaction:
    """What one batch transaction decided, written in bulk before it commits."""

    session: Session
    savepoints: bool
    """Per-record loaders only: each record in its own savepoint. Off for the first try of a batch (a
    clean batch, the usual case, saves two round trips a record); the first record error sends the
    batch again with them."""
    cache: BatchCache = field(default_factory=BatchCache)
    loaded: dict[str, PendingLoad] = field(default_factory=dict)  # key → ledger entry to insert
    statuses: list[dict[str, Any]] = field(default_factory=list)
    awaiting_ids: list[tuple[dict[str, Any], PendingLoad | None, Any]] = field(default_factory=list)
    """(status, ledger entry, new ORM row): the row's id is known once the batch's rows are flushed."""
    replayed: list[int] = field(default_factory=list)
    outcomes: dict[int, str] = field(default_factory=dict)
    failed: RecordError | Blocked | None = None
    """The record error that stopped a try without savepoints."""

    def settle(self, env: Envelope, outcome: str, target_id: int | None, row: Any = None,
               entry: PendingLoad | None = None) -> None:
        """``row``: a new ORM row whose id (for the status and ``entry``) is known only after the flush."""
        status = {"id": env.record_id, "status": outcome, "target_id": target_id}
        self.statuses.append(status)
        if row is not None:
            self.awaiting_ids.append((status, entry, row))
        self.outcomes[env.record_id] = outcome
        if env.replay:
            self.replayed.append(env.record_id)

    def committed(self, env: Envelope, entity: EntityType, target_id: int | None, row: Any = None) -> PendingLoad:
        natural = natural_key_text(env.fields, entity.natural_key) if entity.natural_key else None
        entry = PendingLoad(key=env.key, entity=env.entity, digest=env.digest, target_id=target_id, natural_key=natural,
                            run_id=env.run_id, record_id=env.record_id)
        self.loaded[env.key] = entry
        if natural is not None:
            self.cache.pending[(env.entity, natural)] = entry
        self.settle(env, "committed", target_id, row, entry)
        return entry

    def park(self, env: Envelope, entity: EntityType, error: RecordError | Blocked, attempts: int) -> None:
        outcome = outcomes.record_failure(self.session, env, entity, error, attempts)
        self.outcomes[env.record_id] = outcome
        log.warning("%s %s: %s", env.label(entity.lookup_key), outcome, error, extra=record_fields(env, outcome, error))

    def write(self) -> None:
        self.cache.run_after()
        self.session.flush()  # ORM rows of per-record loaders, one multi-row INSERT … RETURNING per table
        for status, entry, row in self.awaiting_ids:
            status["target_id"] = row.id
            if entry is not None:
                entry.target_id = row.id
        dialect = dialect_of(self.session)
        dialect.insert(self.session, LEDGER, [_ledger_row(e) for e in self.loaded.values()])
        dialect.update_rows(self.session, STAGED, "id", self.statuses)
        if self.replayed:
            self.session.execute(update(DeadLetter).where(DeadLetter.record_id.in_(self.replayed), DeadLetter.state == "open")
                                 .values(state="replayed", updated_at=utcnow()))


def load_batch(sessions: sessionmaker[Session], registry: Registry, vault: Vault, loaders: Loaders,
               entity: EntityType, envelopes: Sequence[Envelope], attempts: dict[int, int],
               budget: float = DEFAULT_BUDGET, readers: sessionmaker[Session] | None = None) -> dict[int, str]:
    """Outcome per record id (committed, skipped, dead, blocked). Raises only transient errors; what
    committed before one is kept (loading is idempotent, so the whole batch can be sent again)."""
    results: dict[int, str] = {}
    # Each record once: the sweeper may publish a record again while its first message is still on its
    # way, and both can land in one batch. They are one record, with one outcome.
    once: dict[int, Envelope] = {}
    for env in envelopes:
        once.setdefault(env.record_id, env)
    todo = list(once.values())
    hashing = "Password" in entity.secret_fields and any(env.fields.get("Password") for env in todo)
    planner = loaders.planners.get(entity.name)
    limit = (planner.records_at_once if planner is not None else None) or len(todo)
    group = min(FIRST_HASH_GROUP, limit) if hashing else limit
    hashes: dict[str, str] = {}
    work = _Work(sessions, registry, vault, loaders, entity, attempts, budget, hashes)
    while todo:
        head = todo[:group]
        if hashing:
            started = time.monotonic()
            made = _hash_passwords(readers or sessions, vault, head, hashes)
            if made:  # as many records a transaction as can be hashed in its time budget
                group = min(limit, max(1, int(budget * made / max(time.monotonic() - started, 1e-6))))
        done = work.some(head, results)
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
        keys = dialect_of(session).any_of(LedgerEntry.key, [e.key for e in wanted])
        loaded = set(session.scalars(select(LedgerEntry.key).where(keys)))
    made = 0
    for env in wanted:
        if env.key not in loaded:
            try:
                hashes[env.key] = hash_password(vault.decrypt(env.fields["Password"]))
                made += 1
            except Exception:  # the planner reports this record's own error (undecryptable, refused by the policy)
                continue
    return made


class _RecordFailed(Exception):
    """A record failed in a batch tried without savepoints: the transaction is rolled back."""


@dataclass
class _Work:
    sessions: sessionmaker[Session]
    registry: Registry
    vault: Vault
    loaders: Loaders
    entity: EntityType
    attempts: dict[int, int]
    budget: float
    hashes: dict[str, str]

    @property
    def planner(self) -> Planner | None:
        return self.loaders.planners.get(self.entity.name)

    def some(self, todo: list[Envelope], results: dict[int, str]) -> int:
        """One transaction over the head of ``todo``; returns how many records it settled."""
        savepoints = False
        for _ in range(RACE_RETRIES + 1):
            try:
                with self.sessions.begin() as session:
                    tx = _Transaction(session, savepoints)
                    done = self._plan(tx, todo) if self.planner else self._run(tx, todo, time.monotonic() + self.budget)
                    tx.write()
                results.update(tx.outcomes)
                return done
            except _RecordFailed:
                savepoints = True  # rolled back: again, each record in its own savepoint
            except IntegrityError as exc:
                # A concurrent worker wrote one of these ledger keys or natural keys meanwhile: look again.
                log.info("%s batch clashed with a concurrent write (%s); retrying", self.entity.name, first_line(exc))
                savepoints = True
            except TRANSIENT:
                raise
            except (ColumnTooLong, DBAPIError) as exc:
                if len(todo) == 1:
                    results[todo[0].record_id] = self.park_alone(todo[0], _refused(exc, todo[0]))
                    return 1
                if self.planner or savepoints:
                    log.warning("%s batch: the database refused its write (%s); loading its records one by one",
                                self.entity.name, first_line(exc))
                    return self.one_by_one(todo, results)
                savepoints = True
        if len(todo) > 1:
            return self.one_by_one(todo[:1], results)  # still clashing: the head record alone, then the rest
        clash = LoaderCrashed("the row kept clashing with concurrent writes", hint="replay it once the run has finished")
        results[todo[0].record_id] = self.park_alone(todo[0], clash)
        return 1

    def one_by_one(self, todo: list[Envelope], results: dict[int, str]) -> int:
        for env in todo:
            self.some([env], results)
        return len(todo)

    def park_alone(self, env: Envelope, error: RecordError | Blocked) -> str:
        with self.sessions.begin() as session:
            tx = _Transaction(session, True)
            tx.park(env, self.entity, error, self.attempts.get(env.record_id, 1))
        return tx.outcomes[env.record_id]

    def _settled_from_ledger(self, tx: _Transaction, todo: list[Envelope]) -> list[Envelope]:
        """Records whose key the ledger holds are settled from it; the others are returned."""
        previous = {row.key: row for row in tx.session.connection().execute(
            select(LedgerEntry.key, LedgerEntry.record_id, LedgerEntry.target_id)
            .where(dialect_of(tx.session).any_of(LedgerEntry.key, [e.key for e in todo])))}
        fresh = []
        for env in todo:
            earlier = previous.get(env.key) or tx.loaded.get(env.key)
            if earlier is None:
                fresh.append(env)
            else:  # loaded before: by this very record (a redelivery), or by an identical one
                tx.settle(env, "committed" if earlier.record_id == env.record_id else "skipped", earlier.target_id)
        return fresh

    # -- set-based ----------------------------------------------------------------------------

    def _plan(self, tx: _Transaction, todo: list[Envelope]) -> int:
        planner = self.planner
        assert planner is not None
        fresh = self._settled_from_ledger(tx, todo)
        if not fresh:
            return len(todo)
        batch = Batch(self.entity, Lookups(tx.session), self.hashes, self.vault)
        planner.prefetch(fresh, batch)
        planned: list[Planned] = []
        for env in fresh:
            try:
                planned.append(planner.plan(env, batch))
            except (RecordError, Blocked) as error:
                tx.park(env, self.entity, error, self.attempts.get(env.record_id, 1))
            except Exception as exc:  # a planner bug must not stall the chunk: park the record, keep the trace
                log.exception("%s: planner crashed", env.label(self.entity.lookup_key),
                              extra=record_fields(env, "dead", error_class="LoaderCrashed"))
                crash = LoaderCrashed(f"{type(exc).__name__}: {first_line(exc)}",
                                      hint="a bug in cutover; report it with this record")
                tx.park(env, self.entity, crash, self.attempts.get(env.record_id, 1))
        planner.write(tx.session, planned, batch)
        for row in planned:
            if row.error is not None:
                tx.park(row.env, self.entity, row.error, self.attempts.get(row.env.record_id, 1))
            elif row.outcome == "committed":
                tx.committed(row.env, self.entity, row.target_id)
            else:
                tx.settle(row.env, row.outcome, row.target_id)
        return len(todo)

    # -- record by record ---------------------------------------------------------------------

    def _run(self, tx: _Transaction, todo: list[Envelope], deadline: float) -> int:
        fresh = {env.record_id for env in self._settled_from_ledger(tx, todo)}
        tx.cache.envelopes = todo
        tx.cache.prefetch_accounts(tx.session, (e.fields.get(f, "") for e in todo for f in ACCOUNT_FIELDS))
        loader = self.loaders.loaders[self.entity.name]
        for index, env in enumerate(todo):
            if index and time.monotonic() > deadline:
                _forget_unsettled(tx, todo[index:])
                return index
            if env.record_id not in fresh:
                continue
            if env.key in tx.loaded:  # an identical record earlier in this batch
                tx.settle(env, "skipped", tx.loaded[env.key].target_id)
                continue
            error = self._load_one(tx, LoadContext(tx.session, env, self.entity, self.registry, self.vault, tx.cache), loader)
            if error is not None:
                if not tx.savepoints:
                    tx.failed = error
                    raise _RecordFailed()
                tx.park(env, self.entity, error, self.attempts.get(env.record_id, 1))
        return len(todo)

    def _load_one(self, tx: _Transaction, ctx: LoadContext, loader: Loader) -> RecordError | Blocked | None:
        """Run the loader (in a savepoint when the transaction uses them); returns the error that
        parks the record, if any."""
        env = ctx.envelope
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
            if tx.savepoints:
                log.exception("%s: loader crashed", env.label(self.entity.lookup_key),
                              extra=record_fields(env, "dead", error_class="LoaderCrashed"))
            return LoaderCrashed(f"{type(exc).__name__}: {first_line(exc)}", hint="a bug in cutover; report it with this record")
        if loaded.outcome == "committed":
            tx.committed(env, self.entity, loaded._target_id, loaded.row)
        else:
            tx.settle(env, loaded.outcome, loaded._target_id, loaded.row)
        return None


def _forget_unsettled(tx: _Transaction, rest: list[Envelope]) -> None:
    """Records past the deadline load in the next transaction: drop what the ledger check settled for them."""
    later = {env.record_id for env in rest}
    tx.statuses = [s for s in tx.statuses if s["id"] not in later]
    for record_id in later:
        tx.outcomes.pop(record_id, None)
    tx.replayed = [r for r in tx.replayed if r not in later]


def _refused(exc: Exception, env: Envelope) -> RecordError:
    if isinstance(exc, ColumnTooLong):
        return exc.as_record_error(env.fields)
    assert isinstance(exc, DBAPIError)
    return refused_by_database(exc)


def refused_by_database(exc: DBAPIError) -> InvalidValue:
    return InvalidValue(f"the database refused a value of this record: {first_line(exc)}",
                        hint="compare the record's values with the target's limits (lengths, numeric range, encoding)")


def first_line(exc: BaseException) -> str:
    text = str(exc.orig) if isinstance(exc, DBAPIError) and exc.orig is not None else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _ledger_row(entry: PendingLoad) -> dict[str, object]:
    return {"key": entry.key, "entity": entry.entity, "natural_key": entry.natural_key, "digest": entry.digest,
            "target_id": entry.target_id, "run_id": entry.run_id, "record_id": entry.record_id, "committed_at": utcnow()}
