"""Thin tasks: one load task per entity type (named ``cutover.load.<Entity>`` so Flower reads as the
migration) and the dispatch tasks on the control queue. The base class owns delivery counting and
the retry-or-dead-letter decision; ``workers.process`` owns the transaction and the ledger.

Load tasks never raise for a record's own fault: they dead-letter it and return ``None``, so a chord
never fails and never carries more than a null result per member."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task

from shared import dispatch
from shared.celery_app import DISPATCH_CHUNK_DONE, DISPATCH_RESUME, DISPATCH_START
from shared.entities import REGISTRY
from shared.envelope import Envelope
from shared.errors import RegistryError, RetriesExhausted, WorkerLost
from shared.registry import EntityType
from workers import outcomes
from workers.loaders import load_all
from workers.process import TRANSIENT, first_line, park, process_record
from workers.runtime import runtime

log = logging.getLogger("cutover.worker")


class RecordTask(Task):
    """Loads one record of ``entity``."""

    entity: EntityType
    acks_late = True
    reject_on_worker_lost = True
    ignore_result = False  # chord members must report (a null result) to close the barrier

    def run(self, message: dict[str, Any]) -> None:
        env = Envelope.from_message(message)
        rt = runtime()
        try:
            attempts = self._count_delivery(env)
            if attempts > rt.settings.max_attempts:
                lost = WorkerLost(f"the worker died on this record {attempts - 1} times",
                                  hint="look for a crash in the worker logs, then replay")
                park(rt.sessions, self.entity, env, lost, attempts)
            else:
                process_record(rt.sessions, rt.registry, rt.vault, rt.loaders, self.entity, env, attempts)
            if self._redelivered() and dispatch.close_if_orphaned(rt.sessions, self.app, env.record_id):
                log.warning("%s: redelivered after a worker was lost; closed its chunk", env.label(self.entity.lookup_key))
        except TRANSIENT as exc:
            self._retry_or_park(env, exc)
        return

    def _redelivered(self) -> bool:
        return bool((self.request.delivery_info or {}).get("redelivered"))

    def _count_delivery(self, env: Envelope) -> int:
        """Only a redelivered message costs a write: its attempt count bounds poison-message loops."""
        if not self._redelivered():
            return 1 + (self.request.retries or 0)
        with runtime().sessions.begin() as session:
            return outcomes.bump_attempts(session, env) + 1

    def _retry_or_park(self, env: Envelope, exc: Exception) -> None:
        rt = runtime()
        retries = self.request.retries or 0
        if retries + 1 < rt.settings.max_attempts:
            countdown = min(rt.settings.retry_backoff_max, 2 ** retries)
            log.warning("%s: transient %s, retry %d in %ss", env.label(self.entity.lookup_key), type(exc).__name__,
                        retries + 1, countdown)
            raise self.retry(exc=exc, countdown=countdown, max_retries=rt.settings.max_attempts)
        error = RetriesExhausted(f"{type(exc).__name__} after {retries + 1} attempts: {first_line(exc)}",
                                 hint="check the database and broker, then replay")
        try:
            park(rt.sessions, self.entity, env, error, retries + 1)
        except TRANSIENT as still_down:
            # The dead letter itself cannot be written: keep the message and try again later, so the
            # record is neither lost nor allowed to fail its chord.
            log.warning("%s: database still unreachable; retrying in %ss", env.label(self.entity.lookup_key),
                        rt.settings.retry_backoff_max)
            raise self.retry(exc=still_down, countdown=rt.settings.retry_backoff_max, max_retries=None) from None


def register_tasks(app: Celery) -> None:
    """A load task per declared entity that has a loader, plus the dispatch tasks."""
    loaders = load_all()
    missing = [e.name for e in REGISTRY if e.name not in loaders]
    if missing:
        raise RegistryError(f"declared entity types without a loader: {', '.join(missing)}")
    for entity in REGISTRY:
        if entity.name in loaders:
            task_class = type(f"Load{entity.name}", (RecordTask,), {"entity": entity, "name": entity.task_name})
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
