"""Waves of chunks, with back-pressure.

A run's (or replay's) staged records are numbered into chunks per wave at staging time. Dispatching a
wave publishes, per chunk, load messages naming its pending records by id (pipelined, see
``shared.publish``; the loading process reads the records, ``workers.envelopes``). The
barrier is in the database, where the outcomes are written anyway: the worker whose batch leaves a
chunk with no pending record sends ``chunk_done`` (``close_if_empty``), which claims and publishes
the next chunk; the one that closes a wave's last chunk opens the next wave. At most
``max_in_flight`` records' worth of chunks are out at once, so queues stay bounded whatever the
input size. A ``chunk_done`` that comes twice is counted once.

Why not a Celery chord per chunk: on Redis every chord member writes its result and bumps a counter
(three round trips a record) and batched tasks cannot be chord members; the database counter costs
one indexed query per batch.

Publishing happens inside worker tasks (``cutover.dispatch.*`` on the control queue), never from the
CLI, so no client process subscribes to hundreds of thousands of result channels.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, cast

from celery import Celery
from sqlalchemy import CursorResult, Text, func, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session, sessionmaker

from shared.celery_app import DISPATCH_CHUNK_DONE
from shared.dialects import dialect_of, table_of
from shared.envelope import KEY_SEPARATOR, pack_message
from shared.publish import OutgoingTask, publish_many
from shared.registry import Registry
from shared.schema.base import utcnow
from shared.schema.control import DispatchChunk, DispatchWave, Run, RunEntity, StagedRecord

log = logging.getLogger(__name__)

SessionFactory = sessionmaker[Session]


def chunks_in_flight(max_in_flight: int, chunk_size: int) -> int:
    return max(1, max_in_flight // max(1, chunk_size))


def start(sf: SessionFactory, app: Celery, registry: Registry, dispatch_id: str, window: int) -> None:
    """Open the first wave that has work; finish at once if none has. A start that was interrupted
    (its worker died while publishing) finishes publishing what it had claimed."""
    with sf.begin() as session:
        run = session.get(Run, dispatch_id)
        if run is None:
            log.error("start of run %s, which this database does not know: ignored", dispatch_id)
            return
        if run.state in ("completed", "refused"):
            return
        if run.state == "running":
            todo = _unpublished(session, dispatch_id)
        else:
            run.state = "running"
            todo = None
    if todo is None:
        todo = _open_next_wave(sf, dispatch_id, after=-1, window=window)
    _drain(sf, app, registry, dispatch_id, todo, window)


def resume(sf: SessionFactory, app: Celery, registry: Registry, dispatch_id: str, window: int) -> int:
    """Operator's recovery for a dispatch that stopped moving: publish again every claimed chunk that
    has not closed (loading is idempotent, and a chunk is counted once), or claim the next chunks of
    the first unfinished wave. Returns how many chunks were sent."""
    with sf.begin() as session:
        run = session.get(Run, dispatch_id)
        if run is None or run.state in ("completed", "refused"):
            return 0
        run.state = "running"
        todo = [(c.wave, c.chunk) for c in session.scalars(
            select(DispatchChunk).where(DispatchChunk.dispatch_id == dispatch_id, DispatchChunk.done_at.is_(None))
            .order_by(DispatchChunk.wave, DispatchChunk.chunk))]
        if not todo:
            state = session.scalars(
                select(DispatchWave).where(DispatchWave.dispatch_id == dispatch_id, DispatchWave.state != "done")
                .order_by(DispatchWave.wave).limit(1).with_for_update()).first()
            if state is None:
                _finish(session, dispatch_id)
                return 0
            state.state = "running"
            todo = [(state.wave, c) for c in _claim(session, state, window)]
    _drain(sf, app, registry, dispatch_id, list(todo), window)
    return len(todo)


def close_if_empty(sf: SessionFactory, app: Celery, chunks: Iterable[tuple[str, int, int]]) -> int:
    """The chunk barrier: after a batch commits, each chunk it touched that has no pending record
    left is closed by sending ``chunk_done`` (which counts it once, so two batches finishing the same
    chunk at once are harmless). The last batch to commit sees every other's commit, so a chunk can't
    be missed. Returns how many chunks it sent."""
    chunks = sorted(set(chunks))
    if not chunks:
        return 0
    empty = []
    with sf.begin() as session:
        for dispatch_id, wave, chunk in chunks:
            pending = session.scalar(select(StagedRecord.id).where(
                StagedRecord.dispatch_id == dispatch_id, StagedRecord.wave == wave, StagedRecord.chunk == chunk,
                StagedRecord.status == "pending").limit(1))
            if pending is None and _claim_emptied(session, dispatch_id, wave, chunk):
                empty.append((dispatch_id, wave, chunk))
    for key in empty:
        app.send_task(DISPATCH_CHUNK_DONE, args=key, ignore_result=True)  # routed to the control queue
    return len(empty)


def _claim_emptied(session: Session, dispatch_id: str, wave: int, chunk: int) -> bool:
    """Only the worker that flips ``emptied_at`` sends ``chunk_done``: two batches finishing one chunk
    together send it once, so a second ``chunk_done`` only ever means a redelivery after a lost worker."""
    flipped = cast(CursorResult[Any], session.execute(
        update(DispatchChunk)
        .where(DispatchChunk.dispatch_id == dispatch_id, DispatchChunk.wave == wave, DispatchChunk.chunk == chunk,
               DispatchChunk.emptied_at.is_(None))
        .values(emptied_at=utcnow()))).rowcount
    return bool(flipped)


def chunk_done(sf: SessionFactory, app: Celery, registry: Registry, dispatch_id: str, wave: int, chunk: int,
               window: int) -> None:
    """A chunk emptied: count it once, publish the next chunk of the wave, or open the next wave."""
    _drain(sf, app, registry, dispatch_id, _close_chunk(sf, dispatch_id, wave, chunk, window), window)


def _drain(sf: SessionFactory, app: Celery, registry: Registry, dispatch_id: str,
           todo: list[tuple[int, int]], window: int) -> None:
    """Publish claimed chunks; a chunk with nothing left to load closes at once (a loop, not recursion,
    so a long run of fully dead-lettered chunks cannot exhaust the stack)."""
    while todo:
        wave, chunk = todo.pop(0)
        if publish_chunk(sf, app, registry, dispatch_id, wave, chunk):
            mark_published(sf, dispatch_id, wave, chunk)
        else:
            todo.extend(_close_chunk(sf, dispatch_id, wave, chunk, window))


def mark_published(sf: SessionFactory, dispatch_id: str, wave: int, chunk: int) -> None:
    """Only a fully published chunk is marked: a chunk claimed but never marked is published again
    when its dispatcher's message comes back (the worker died while publishing)."""
    with sf.begin() as session:
        session.execute(update(DispatchChunk)
                        .where(DispatchChunk.dispatch_id == dispatch_id, DispatchChunk.wave == wave,
                               DispatchChunk.chunk == chunk)
                        .values(published_at=utcnow()))


def _unpublished(session: Session, dispatch_id: str) -> list[tuple[int, int]]:
    return [(c.wave, c.chunk) for c in session.scalars(
        select(DispatchChunk).where(DispatchChunk.dispatch_id == dispatch_id, DispatchChunk.published_at.is_(None),
                                    DispatchChunk.done_at.is_(None))
        .order_by(DispatchChunk.wave, DispatchChunk.chunk))]


def _close_chunk(sf: SessionFactory, dispatch_id: str, wave: int, chunk: int, window: int) -> list[tuple[int, int]]:
    with sf.begin() as session:
        marked = cast(CursorResult[Any], session.execute(
            update(DispatchChunk)
            .where(DispatchChunk.dispatch_id == dispatch_id, DispatchChunk.wave == wave,
                   DispatchChunk.chunk == chunk, DispatchChunk.done_at.is_(None))
            .values(done_at=utcnow())
        )).rowcount
        if not marked:
            log.info("chunk %s/%s/%s already counted; finishing any interrupted publishing", dispatch_id, wave, chunk)
            return _unpublished(session, dispatch_id)
        state = _wave_for_update(session, dispatch_id, wave)
        state.chunks_done += 1
        if state.chunks_done < state.chunks_total:
            return [(wave, c) for c in _claim(session, state, 1)]
        state.state = "done"
    return _open_next_wave(sf, dispatch_id, after=wave, window=window)


def _open_next_wave(sf: SessionFactory, dispatch_id: str, after: int, window: int) -> list[tuple[int, int]]:
    with sf.begin() as session:
        state = session.scalars(
            select(DispatchWave)
            .where(DispatchWave.dispatch_id == dispatch_id, DispatchWave.wave > after, DispatchWave.state == "waiting")
            .order_by(DispatchWave.wave).limit(1).with_for_update()
        ).first()
        if state is None:
            _finish(session, dispatch_id)
            return []
        state.state = "running"
        return [(state.wave, c) for c in _claim(session, state, window)]


def _wave_for_update(session: Session, dispatch_id: str, wave: int) -> DispatchWave:
    return session.execute(
        select(DispatchWave).where(DispatchWave.dispatch_id == dispatch_id, DispatchWave.wave == wave)
        .with_for_update()
    ).scalar_one()


def _claim(session: Session, state: DispatchWave, count: int) -> list[int]:
    """Reserve the next ``count`` chunk numbers of a wave (the row is locked by the caller)."""
    first = state.next_chunk
    last = min(state.chunks_total, first + count)
    state.next_chunk = last
    for number in range(first, last):
        session.add(DispatchChunk(dispatch_id=state.dispatch_id, wave=state.wave, chunk=number))
    return list(range(first, last))


def publish_chunk(sf: SessionFactory, app: Celery, registry: Registry, dispatch_id: str, wave: int, chunk: int) -> bool:
    """The chunk's pending records, named by id in messages of one entity type each — up to
    ``records_per_message`` records and about ``MESSAGE_BYTES`` of their text a message, or one
    message a record (``records_per_message`` 1) — pipelined to the broker. The loading process reads
    the records themselves (``workers.envelopes``). Returns False when the chunk has nothing left to
    load."""
    with sf() as session:
        rows = session.execute(
            select(StagedRecord.id, StagedRecord.entity, StagedRecord.natural_key, StagedRecord.source_file,
                   StagedRecord.line, func.length(sql_cast(StagedRecord.payload, Text)).label("size"))
            .where(StagedRecord.dispatch_id == dispatch_id, StagedRecord.wave == wave,
                   StagedRecord.chunk == chunk, StagedRecord.status == "pending")
            .order_by(StagedRecord.id)
        ).all()
        run = session.get(Run, dispatch_id)
        options = run.options if run else {}
    if not rows:
        return False
    upsert = bool(options.get("upsert"))
    per_message = max(1, int(options.get("records_per_message") or 1))
    by_entity: dict[str, list[Any]] = {}
    for row in rows:
        by_entity.setdefault(row.entity, []).append(row)
    messages = []
    for name, records in by_entity.items():
        entity = registry[name]
        for pack in _packs(records, per_message):
            labels = ", ".join(_label(r, name) for r in pack[:3]) + (f" … ({len(pack)})" if len(pack) > 3 else "")
            body = pack_message((dispatch_id, wave, chunk), [r.id for r in pack], upsert)
            messages.append(OutgoingTask(entity.task_name, (body,), labels))
    publish_many(app, messages)
    return True


MESSAGE_BYTES = 256 * 1024
"""About this much of records' text a message names at most (a worker's batch holds its messages'
records in memory)."""


def _packs(records: list[Any], per_message: int) -> list[list[Any]]:
    """Consecutive groups of at most ``per_message`` records and about ``MESSAGE_BYTES`` of text."""
    if per_message == 1:
        return [[r] for r in records]
    packs: list[list[Any]] = [[]]
    size = 0
    for record in records:
        weight = 200 + (record.size or 0)
        if packs[-1] and (len(packs[-1]) >= per_message or size + weight > MESSAGE_BYTES):
            packs.append([])
            size = 0
        packs[-1].append(record)
        size += weight
    return packs


def _label(record: Any, entity: str) -> str:
    """Short, secret-free text for Flower: ``User 'admin/bob' (accounts.xml:12)`` (the natural key)."""
    ident = record.natural_key.replace(KEY_SEPARATOR, "/") if record.natural_key else f"#{record.id}"
    return f"{entity} {ident!r} ({record.source_file}:{record.line})"


def _finish(session: Session, dispatch_id: str) -> None:
    run = session.get(Run, dispatch_id)
    if run is None or run.state == "completed":
        return
    # Every record's status changed since staging analyzed the table: without fresh statistics the
    # planner takes the loaded records for none, and reconciling a million-record run probes an index
    # half a million times (20 s, against 12 s once analyzed).
    dialect_of(session).analyze(session, table_of(StagedRecord))
    run.state = "completed"
    run.finished_at = utcnow()
    for run_id in runs_of(session, dispatch_id):
        snapshot_counts(session, run_id)


def in_flight(session: Session, dispatch_id: str) -> int:
    """Records published and not yet settled: what back-pressure bounds by ``max_in_flight``."""
    return session.scalar(
        select(func.count()).select_from(StagedRecord).join(DispatchChunk, (DispatchChunk.dispatch_id == StagedRecord.dispatch_id)
                                                            & (DispatchChunk.wave == StagedRecord.wave)
                                                            & (DispatchChunk.chunk == StagedRecord.chunk))
        .where(StagedRecord.dispatch_id == dispatch_id, StagedRecord.status == "pending", DispatchChunk.done_at.is_(None))
    ) or 0


def runs_of(session: Session, dispatch_id: str) -> list[str]:
    """The runs a dispatch loaded records of: itself, or for a replay the runs it replayed."""
    return list(session.scalars(select(StagedRecord.run_id).where(StagedRecord.dispatch_id == dispatch_id).distinct()
                                .order_by(StagedRecord.run_id)))


OUTCOMES = ("committed", "skipped", "dead", "blocked")


def live_counts(session: Session, run_id: str) -> dict[str, dict[str, int]]:
    """Per entity: read and every outcome so far, counted from the staged records themselves.
    For a replay, the records it re-published (each counts as read once)."""
    run = session.get(Run, run_id)
    replay = run is not None and run.kind == "replay"
    empty = {"wave": 0, "read": 0, **{o: 0 for o in OUTCOMES}, "pending": 0}
    counts: dict[str, dict[str, int]] = {}
    for row in session.execute(select(RunEntity).where(RunEntity.run_id == run_id)).scalars():
        counts[row.entity] = {**empty, "wave": row.wave, "read": row.read}
    owner = StagedRecord.dispatch_id if replay else StagedRecord.run_id
    grouped = session.execute(
        select(StagedRecord.entity, StagedRecord.wave, StagedRecord.status, func.count())
        .where(owner == run_id).group_by(StagedRecord.entity, StagedRecord.wave, StagedRecord.status)
    )
    for entity, wave, status, n in grouped:
        bucket = counts.setdefault(entity, {**empty, "wave": wave})
        bucket[status if status in OUTCOMES else "pending"] += n
        if replay:
            bucket["read"] += n
    return counts


def snapshot_counts(session: Session, run_id: str) -> None:
    """Store the final counts on ``run_entities`` (history, even if staged records are pruned)."""
    for entity, c in live_counts(session, run_id).items():
        row = session.get(RunEntity, (run_id, entity))
        if row is None:
            continue
        for outcome in OUTCOMES:
            setattr(row, outcome, c[outcome])

