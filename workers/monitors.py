"""What Flower is told about a batch. A batch runs outside Celery's per-task tracing, so the events
Celery would send for each message are sent here, pipelined in one round trip each: every message is
*started* when its batch starts (so Flower's Active means something), and ends as *succeeded* when
its records committed or were skipped, or *failed* with the dead letter's class and message when one
of its records was dead-lettered or blocked. Messages are the dead letters' own, so no secret is
shown (dead letters never hold one in clear)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from celery import Celery
from celery_batches import SimpleRequest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared.schema.control import DeadLetter

FAILED = ("dead", "blocked")


def report_started(app: Celery, requests: list[SimpleRequest]) -> None:
    now = time.time()
    _send(app, requests, (("task-started", request, {"timestamp": now}) for request in requests))


def report_finished(app: Celery, requests: list[SimpleRequest], record_ids: Mapping[str, list[int]],
                    outcomes: Mapping[int, str], readers: sessionmaker[Session], runtime: float) -> None:
    """``record_ids``: the records each message (by request id) carried; ``outcomes``: per record."""
    failed = {rid for rid, outcome in outcomes.items() if outcome in FAILED}
    why = _letters(readers, failed) if failed else {}

    def events() -> Iterable[tuple[str, SimpleRequest, dict[str, Any]]]:
        for request in requests:
            mine = [rid for rid in record_ids.get(request.id, []) if rid in failed]
            if not mine:
                yield "task-succeeded", request, {"result": "None", "runtime": runtime}
                continue
            first = why.get(mine[0], ("Blocked", "blocked behind a dead parent"))
            more = f" (and {len(mine) - 1} more record(s) of this message)" if len(mine) > 1 else ""
            yield "task-failed", request, {"exception": f"{first[0]}('{first[1]}{more}')", "traceback": ""}
    _send(app, requests, events())


def _letters(readers: sessionmaker[Session], record_ids: set[int]) -> dict[int, tuple[str, str]]:
    with readers() as session:
        rows = session.execute(select(DeadLetter.record_id, DeadLetter.error_class, DeadLetter.message)
                               .where(DeadLetter.record_id.in_(sorted(record_ids)))).all()
    return {record_id: (error_class, message) for record_id, error_class, message in rows}


def _send(app: Celery, requests: list[SimpleRequest], events: Iterable[tuple[str, SimpleRequest, dict[str, Any]]]) -> None:
    if not app.conf.worker_send_task_events or not requests:
        return
    with app.events.default_dispatcher(hostname=requests[0].hostname) as dispatcher:
        with dispatcher.producer.batch(max_size=1000):
            for kind, request, fields in events:
                dispatcher.send(kind, uuid=request.id, name=request.name, **fields)
