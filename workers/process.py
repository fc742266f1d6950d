"""Load one record, Celery or not: ledger check, loader, outcome — the row and its ledger entry in
one transaction; a record error or a missing parent parks the record in its own transaction.
Used by the load tasks and, inline against a rolled-back transaction, by `cutover validate`."""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shared.envelope import Envelope
from shared.errors import Blocked, InvalidValue, LoaderCrashed, RecordError
from shared.limits import ColumnTooLong
from shared.logs import record_fields
from shared.registry import EntityType, Registry
from shared.vault import Vault
from workers import outcomes
from workers.context import LoadContext, Loader

log = logging.getLogger("cutover.worker")

TRANSIENT = (OperationalError,)
RACE_RETRIES = 3


def process_record(sessions: sessionmaker[Session], registry: Registry, vault: Vault, loaders: dict[str, Loader],
                   entity: EntityType, env: Envelope, attempts: int) -> str:
    """Returns the outcome (committed, skipped, dead, blocked). Raises only transient errors."""
    for race in range(RACE_RETRIES):
        try:
            with sessions.begin() as session:
                previous = outcomes.already_loaded(session, env)
                if previous is not None:
                    return outcomes.record_duplicate(session, env, previous)
                loaded = loaders[env.entity](LoadContext(session, env, entity, registry, vault))
                session.flush()
                outcomes.record_success(session, env, entity, loaded.target_id, loaded.outcome)
                return loaded.outcome
        except (RecordError, Blocked) as error:
            return park(sessions, entity, env, error, attempts)
        except ColumnTooLong as exc:
            return park(sessions, entity, env, exc.as_record_error(env.fields), attempts)
        except IntegrityError as exc:
            # Another worker wrote the same natural key or ledger key meanwhile: look again.
            if race == RACE_RETRIES - 1:
                clash = LoaderCrashed(f"the row kept clashing with concurrent writes: {first_line(exc)}",
                                      hint="replay it once the run has finished")
                return park(sessions, entity, env, clash, attempts)
        except TRANSIENT:
            raise
        except DBAPIError as exc:  # the database refused a value (overflow, encoding): the record's fault
            return park(sessions, entity, env, refused_by_database(exc), attempts)
        except Exception as exc:  # a loader bug must not stall the chunk: park the record, keep the trace
            log.exception("%s: loader crashed", env.label(entity.lookup_key),
                          extra=record_fields(env, "dead", error_class="LoaderCrashed"))
            crash = LoaderCrashed(f"{type(exc).__name__}: {first_line(exc)}", hint="a bug in cutover; report it with this record")
            return park(sessions, entity, env, crash, attempts)
    raise AssertionError("unreachable")


def refused_by_database(exc: DBAPIError) -> InvalidValue:
    return InvalidValue(f"the database refused a value of this record: {first_line(exc)}",
                        hint="compare the record's values with the target's limits (lengths, numeric range, encoding)")


def park(sessions: sessionmaker[Session], entity: EntityType, env: Envelope, error: RecordError | Blocked,
         attempts: int) -> str:
    with sessions.begin() as session:
        outcome = outcomes.record_failure(session, env, entity, error, attempts)
    log.warning("%s %s: %s", env.label(entity.lookup_key), outcome, error, extra=record_fields(env, outcome, error))
    return outcome


def first_line(exc: BaseException) -> str:
    text = str(exc.orig) if isinstance(exc, DBAPIError) and exc.orig is not None else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
