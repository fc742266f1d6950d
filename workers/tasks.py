"""Thin tasks: one load task per entity type (named ``cutover.load.<Entity>`` so Flower reads as the
migration) and the dispatch tasks on the control queue. The base class owns delivery counting and
the retry-or-dead-letter decision; ``workers.batch`` owns the transactions and the ledger.

Load tasks never raise for a record's own fault: they dead-letter it, so a batch never fails. They
store no result: a chunk closes when its last record leaves ``pending`` in the database."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery
from celery_batches import SimpleRequest
from sqlalchemy import select

from shared import dispatch
from shared.celery_app import DISPATCH_CHUNK_DONE, DISPATCH_RESUME, DISPATCH_START
from shared.entities import REGISTRY
from shared.envelope import Envelope, runs_named
from shared.errors import LoaderCrashed, RegistryError, RetriesExhausted, WorkerLost
from shared.logs import batch_fields
from shared.registry import EntityType
from shared.schema.control import Run, StagedRecord
from shared.settings import load_settings
from workers import outcomes
from workers.batch import Loaders, load_batch
from workers.batches import ResilientBatches
from workers.envelopes import envelopes_of
from workers.loaders import load_all
from workers.monitors import report_finished, report_started
from workers.plans import load_planners
from workers.process import TRANSIENT, first_line, park, process_record
from workers.runtime import runtime

log = logging.getLogger("cutover.worker")


class RecordTask(ResilientBatches):
    """Loads records of ``entity``: a message names up to ``records_per_message`` of them (one: the
    per-record shape), whose envelopes the pool process reads from the database (``workers.envelopes``).

    The worker buffers messages (celery-batches) and hands up to ``flush_every`` of them to one pool
    process, which loads them in few transactions (``workers.batch``). Messages are acknowledged after
    the batch returns (acks_late): a worker that dies mid-batch leaves them to be delivered again,
    and the ledger makes the second delivery a no-op for what had committed."""

    entity: EntityType
    acks_late = True
    ignore_result = True

    def run(self, requests: list[SimpleRequest]) -> None:  # type: ignore[override]
        try:
            self._load(requests)
        except TRANSIENT as exc:
            # The database is unreachable outside the load's own retries (which runs, delivery counts,
            # dead letters, even the RetriesExhausted ones, closing chunks): an outage delays a batch,
            # never drops it. What committed is recognised by the ledger when the messages come back.
            backoff = runtime().settings.retry_backoff_max
            log.warning("%s: database still unreachable; sending the batch again in %ss (%s)", self.entity.name,
                        backoff, type(exc).__name__)
            self._send_again(requests, backoff, _retries(requests))

    def _load(self, requests: list[SimpleRequest]) -> None:
        rt = runtime()
        envelopes: list[Envelope] = []
        attempts: dict[int, int] = {}
        chunks: set[tuple[str, int, int]] = set()
        requests = self._set_aside_unknown_runs(requests)
        report_started(self.app, requests)
        carried: dict[str, list[int]] = {}
        parked: dict[int, str] = {}
        for request, named in zip(requests, envelopes_of(rt.readers, [r.args[0] for r in requests]), strict=True):
            for env in named:
                carried.setdefault(request.id, []).append(env.record_id)
                if env.chunk:
                    chunks.add(env.chunk)
                count = self._count_delivery(request, env)
                if count > rt.settings.max_attempts:
                    lost = WorkerLost(f"the worker died on this record {count - 1} times",
                                      hint="look for a crash in the worker logs, then replay")
                    parked[env.record_id] = park(rt.sessions, self.entity, env, lost, count)
                    continue
                attempts[env.record_id] = count
                envelopes.append(env)
        started = time.monotonic()
        outcomes: dict[int, str] = {}
        try:
            outcomes = load_batch(rt.sessions, rt.registry, rt.vault, rt.loaders, self.entity, envelopes, attempts,
                       budget=rt.settings.batch_seconds, readers=rt.readers)
        except TRANSIENT as exc:
            if self._retry_or_park(requests, envelopes, exc):
                dispatch.close_if_empty(rt.sessions, self.app, chunks)
            return
        except Exception:  # never leave a record pending behind an acknowledged message
            log.exception("%s: a batch of %d record(s) failed unexpectedly; settling them one by one",
                          self.entity.name, len(envelopes))
            try:
                outcomes = self._settle_alone(envelopes, attempts)
            except TRANSIENT as exc:
                if self._retry_or_park(requests, envelopes, exc):
                    dispatch.close_if_empty(rt.sessions, self.app, chunks)
                return
        loaded_at = time.monotonic()
        closed = dispatch.close_if_empty(rt.sessions, self.app, chunks)
        log.info("%s: %d message(s), %d record(s) loaded in %.3fs, %d chunk(s) closed in %.3fs", self.entity.name,
                 len(requests), len(envelopes), loaded_at - started, closed, time.monotonic() - loaded_at,
                 extra=batch_fields(self.entity.name, envelopes, len(requests), loaded_at - started, closed))
        report_finished(self.app, requests, carried, {**outcomes, **parked}, rt.readers, loaded_at - started)

    def _settle_alone(self, envelopes: list[Envelope], attempts: dict[int, int]) -> dict[int, str]:
        rt = runtime()
        outcomes = {}
        for env in envelopes:
            try:
                outcomes[env.record_id] = process_record(rt.sessions, rt.registry, rt.vault, rt.loaders, self.entity,
                                                         env, attempts.get(env.record_id, 1))
            except TRANSIENT:
                raise
            except Exception as exc:
                crash = LoaderCrashed(f"{type(exc).__name__}: {first_line(exc)}",
                                      hint="a bug in cutover; report it with this record")
                outcomes[env.record_id] = park(rt.sessions, self.entity, env, crash, attempts.get(env.record_id, 1))
        return outcomes

    def _set_aside_unknown_runs(self, requests: list[SimpleRequest]) -> list[SimpleRequest]:
        """A message for a run this database does not know (a database restored from an older backup,
        a message published before a reset) is never loaded nor counted as done: it is sent back with
        back-off, logged as an error, and dropped with an error after ``max_attempts``."""
        runs = {run for request in requests for run in runs_named(request.args[0])}
        known = known_runs(runtime().sessions, runs)
        if known == runs:
            return requests
        keep: list[SimpleRequest] = []
        foreign: list[SimpleRequest] = []
        for request in requests:
            mine = runs_named(request.args[0]) <= known
            (keep if mine else foreign).append(request)
        max_attempts = runtime().settings.max_attempts
        for request in foreign:
            retries = _retries([request])
            unknown = sorted(runs_named(request.args[0]) - known)
            if retries + 1 >= max_attempts:
                log.error("%s: message %s names run(s) %s, which this database does not know: dropped after %d "
                          "deliveries", self.entity.name, request.id, ", ".join(unknown), retries + 1)
                continue
            log.error("%s: message %s names run(s) %s, which this database does not know: sent back (delivery %d of %d)",
                      self.entity.name, request.id, ", ".join(unknown), retries + 1, max_attempts)
            self._send_again([request], min(runtime().settings.retry_backoff_max, 2 ** retries), retries + 1)
        return keep

    def _count_delivery(self, request: SimpleRequest, env: Envelope) -> int:
        """Only a redelivered message costs a write: its attempt count bounds poison-message loops."""
        retries = _retries([request])
        if not (request.delivery_info or {}).get("redelivered"):
            return 1 + retries
        with runtime().sessions.begin() as session:
            return outcomes.bump_attempts(session, env) + 1

    def _retry_or_park(self, requests: list[SimpleRequest], envelopes: list[Envelope], exc: Exception) -> bool:
        """The database or broker failed mid-batch: send every message again later (what committed is
        skipped then), or, after ``max_attempts``, dead-letter the records that are still pending.
        Returns True when it parked them (their chunks may then be empty)."""
        rt = runtime()
        retries = _retries(requests)
        if retries + 1 < rt.settings.max_attempts:
            countdown = min(rt.settings.retry_backoff_max, 2 ** retries)
            log.warning("%s: transient %s, retry %d of a batch of %d record(s) in %ss", self.entity.name,
                        type(exc).__name__, retries + 1, len(envelopes), countdown)
            self._send_again(requests, countdown, retries + 1)
            return False
        error = RetriesExhausted(f"{type(exc).__name__} after {retries + 1} attempts: {first_line(exc)}",
                                 hint="check the database and broker, then replay")
        for env in envelopes:  # if these dead letters cannot be written either, run() sends the batch again
            if not _settled(rt.sessions, env):
                park(rt.sessions, self.entity, env, error, retries + 1)
        return True

    def _send_again(self, requests: list[SimpleRequest], countdown: int, retries: int) -> None:
        with self.app.producer_or_acquire() as producer:
            for request in requests:
                self.app.send_task(self.name, args=request.args, countdown=countdown, retries=retries,
                                   producer=producer, ignore_result=True)


def _retries(requests: list[SimpleRequest]) -> int:
    """Times the batch was already sent again (Celery's ``retries`` header; the highest of its messages)."""
    return max(int((r.request_dict or {}).get("retries") or 0) for r in requests)


def known_runs(sessions: Any, run_ids: set[str]) -> set[str]:
    if not run_ids:
        return set()
    with sessions() as session:
        return set(session.scalars(select(Run.id).where(Run.id.in_(sorted(run_ids)))))


def _settled(sessions: Any, env: Envelope) -> bool:
    with sessions() as session:
        return session.scalar(select(StagedRecord.status).where(StagedRecord.id == env.record_id)) != "pending"


def register_tasks(app: Celery) -> None:
    """A load task per declared entity that has a loader, plus the dispatch tasks."""
    loaders = Loaders(load_planners(), load_all())
    missing = [e.name for e in REGISTRY if e.name not in loaders]
    if missing:
        raise RegistryError(f"declared entity types without a planner or a loader: {', '.join(missing)}")
    settings = load_settings()
    for entity in REGISTRY:
        if entity.name in loaders:
            task_class = type(f"Load{entity.name}", (RecordTask,), {
                "entity": entity, "name": entity.task_name,
                "flush_every": settings.messages_per_batch, "flush_interval": settings.batch_wait})
            app.register_task(task_class())

    # Dispatch tasks keep the run moving: a database outage must delay them, never drop them.
    control = {"acks_late": True, "ignore_result": True, "autoretry_for": TRANSIENT, "retry_backoff": True,
               "retry_backoff_max": 60, "max_retries": None}

    @app.task(name=DISPATCH_START, **control)
    def dispatch_start(dispatch_id: str) -> None:
        rt = runtime()
        dispatch.start(rt.sessions, app, rt.registry, dispatch_id, rt.window)

    @app.task(name=DISPATCH_CHUNK_DONE, **control)
    def dispatch_chunk_done(dispatch_id: str, wave: int, chunk: int) -> None:
        rt = runtime()
        dispatch.chunk_done(rt.sessions, app, rt.registry, dispatch_id, wave, chunk, rt.window)

    @app.task(name=DISPATCH_RESUME, **control)
    def dispatch_resume(dispatch_id: str) -> None:
        rt = runtime()
        sent = dispatch.resume(rt.sessions, app, rt.registry, dispatch_id, rt.window)
        log.info("resumed %s: %d chunk(s) published again", dispatch_id, sent)
