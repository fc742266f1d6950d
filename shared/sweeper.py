"""The sweeper: a run never waits for a person.

Messages can be lost for good (Redis restarted without persistence) or for an hour (the messages a
SIGKILLed worker had taken wait for the visibility timeout), and a dispatch task can die between
closing a wave and opening the next. Each worker runs a sweeper (``workers/sweeper.py``) that looks
at every active run every ``sweep_seconds``: when the run's records in flight and its chunks have not
changed for ``stall_seconds``, it acts —

* records still pending in chunks in flight are published again (loading is idempotent, so a record
  that was only slow loads once);
* a chunk whose records have all settled but which was never closed is closed;
* a dispatch with nothing in flight is moved on (next chunks, next wave, or finished);
* a run whose start was lost is started again —

unless messages are waiting in a queue: then nothing is lost, a worker for that queue is missing, and
the sweeper says so instead of piling up copies. One sweeper acts per stall period: the progress mark
is updated under the run's row lock. Every action is logged and kept as a run event (`cutover status RUN`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from celery import Celery
from kombu.exceptions import ChannelError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared import dispatch
from shared.celery_app import DISPATCH_CHUNK_DONE, DISPATCH_START, queue_name
from shared.entities import CONTROL_QUEUE
from shared.registry import Registry
from shared.schema.base import utcnow
from shared.schema.control import DispatchChunk, DispatchWave, Run, RunEvent, StagedRecord

log = logging.getLogger("cutover.sweeper")

ACTIVE = ("ready", "running")


def sweep(sf: sessionmaker[Session], app: Celery, registry: Registry, identity: str, window: int,
          stall_seconds: float) -> list[str]:
    """Look at every active run once; returns what was done (also logged and kept as run events)."""
    with sf() as session:
        active = session.scalars(select(Run.id).where(Run.state.in_(ACTIVE)).order_by(Run.created_at)).all()
    notes = []
    for run_id in active:
        note = heal(sf, app, registry, identity, run_id, window, stall_seconds)
        if note:
            notes.append(note)
    return notes


def heal(sf: sessionmaker[Session], app: Celery, registry: Registry, identity: str, dispatch_id: str, window: int,
         stall_seconds: float) -> str | None:
    """Act on one dispatch if it has stalled; None when it is moving (or was just looked at)."""
    stalled = _stalled_for(sf, dispatch_id, stall_seconds)
    if stalled is None:
        return None
    idle, state = stalled
    queued = queued_messages(app, [queue_name(q, identity) for q in (CONTROL_QUEUE, *registry.queues)])
    if queued:
        waiting = ", ".join(f"{name.rsplit('.', 1)[0]} ({count})" for name, count in sorted(queued.items()))
        note = (f"run {dispatch_id} made no progress for {idle:.0f} s while messages wait in {waiting}: is a worker "
                f"consuming those queues? (`cutover worker -Q {','.join(n.rsplit('.', 1)[0] for n in sorted(queued))}`)")
        return _record(sf, dispatch_id, "queue-unserved", note, logging.WARNING)
    if state == "ready":
        app.send_task(DISPATCH_START, args=(dispatch_id,), ignore_result=True)
        return _record(sf, dispatch_id, "restarted", f"run {dispatch_id} waited {idle:.0f} s for its start: started again")
    return _record(sf, dispatch_id, "republished", republish(sf, app, registry, dispatch_id, window, idle))


def _stalled_for(sf: sessionmaker[Session], dispatch_id: str, stall_seconds: float) -> tuple[float, str] | None:
    """Compare the dispatch's progress mark with the last one seen, under the run's row lock."""
    now = utcnow()
    with sf.begin() as session:
        run = session.scalars(select(Run).where(Run.id == dispatch_id).with_for_update()).first()
        if run is None or run.state not in ACTIVE:
            return None
        run.heartbeat_at = now
        mark = progress_mark(session, dispatch_id)
        if mark != run.progress_mark or run.progress_at is None:
            run.progress_mark, run.progress_at = mark, now
            return None
        idle = (now - run.progress_at).total_seconds()
        if idle < stall_seconds:
            return None
        run.progress_at = now  # the next action waits for another stall period
        return idle, run.state


def progress_mark(session: Session, dispatch_id: str) -> str:
    """Changes whenever a record of the dispatch settles or a chunk moves on."""
    claimed, published, emptied, done = session.execute(
        select(func.count(), func.count(DispatchChunk.published_at), func.count(DispatchChunk.emptied_at),
               func.count(DispatchChunk.done_at))
        .where(DispatchChunk.dispatch_id == dispatch_id)).one()
    return f"{dispatch.in_flight(session, dispatch_id)}:{claimed}:{published}:{emptied}:{done}"


def republish(sf: sessionmaker[Session], app: Celery, registry: Registry, dispatch_id: str, window: int,
              idle: float) -> str:
    """Publish again what a stalled dispatch has in flight; returns what was done, for the log."""
    with sf() as session:
        chunks = session.execute(
            select(DispatchChunk.wave, DispatchChunk.chunk, DispatchChunk.published_at, DispatchWave.chunks_total)
            .join(DispatchWave, (DispatchWave.dispatch_id == DispatchChunk.dispatch_id)
                  & (DispatchWave.wave == DispatchChunk.wave))
            .where(DispatchChunk.dispatch_id == dispatch_id, DispatchChunk.done_at.is_(None))
            .order_by(DispatchChunk.wave, DispatchChunk.chunk)).all()
        pending = {(wave, chunk): n for wave, chunk, n in session.execute(
            select(StagedRecord.wave, StagedRecord.chunk, func.count())
            .where(StagedRecord.dispatch_id == dispatch_id, StagedRecord.status == "pending",
                   StagedRecord.wave.in_({c.wave for c in chunks} or {-1}))
            .group_by(StagedRecord.wave, StagedRecord.chunk))}
    if not chunks:
        sent = dispatch.resume(sf, app, registry, dispatch_id, window)
        return (f"run {dispatch_id} made no progress for {idle:.0f} s with no chunk in flight: "
                f"moved on ({sent} chunk(s) published)")
    done = []
    for wave, chunk, published_at, total in chunks:
        where = f"chunk {chunk + 1}/{total} of wave {wave}"
        waiting = pending.get((wave, chunk), 0)
        if not waiting:
            app.send_task(DISPATCH_CHUNK_DONE, args=(dispatch_id, wave, chunk), ignore_result=True)
            done.append(f"{where}: every record settled, closed")
        elif dispatch.publish_chunk(sf, app, registry, dispatch_id, wave, chunk):
            if published_at is None:
                dispatch.mark_published(sf, dispatch_id, wave, chunk)
            done.append(f"{where}: {waiting} record(s) published again")
    return f"run {dispatch_id} made no progress for {idle:.0f} s: " + "; ".join(done)


def queued_messages(app: Celery, queues: Sequence[str]) -> dict[str, int]:
    """Messages waiting (not yet taken by any worker) per queue, for the queues that hold some."""
    found: dict[str, int] = {}
    with app.connection_for_write() as conn:
        channel: Any = conn.default_channel
        for name in queues:
            try:
                _, count, _ = channel.queue_declare(queue=name, passive=True)
            except ChannelError:
                continue  # never declared: nothing waits in it
            if count:
                found[name] = int(count)
    return found


def _record(sf: sessionmaker[Session], run_id: str, kind: str, message: str, level: int = logging.WARNING) -> str:
    log.log(level, message)
    with sf.begin() as session:
        session.add(RunEvent(run_id=run_id, kind=kind, message=message))
    return message


def recent_events(session: Session, run_id: str, limit: int = 5) -> list[tuple[datetime, str]]:
    rows = session.execute(select(RunEvent.at, RunEvent.message).where(RunEvent.run_id == run_id)
                           .order_by(RunEvent.id.desc()).limit(limit)).all()
    return [(at, message) for at, message in reversed(rows)]
