"""What the console starts: an import (staged as `cutover run` stages it, then handed to the
workers), a replay of dead letters (as `cutover dlq replay` plans it), a discard. Staging a large
file takes a while, so an import is staged in a thread of its own and the operator is sent to the
run's page at once; when an e-mail address was given, the same thread waits for the run to end and
sends the report, as `cutover run --email` does. A console stopped before then sends no report; the
run's page still offers it for download."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from ops.embedded import LocalWorkers
from ops.mailer import report_message, send
from ops.runs import RunRequest, hand_over, ready_sources, stage_run, start_dispatch
from ops.summary import run_document
from ops.web import audit
from ops.web.uploads import remove_csv_files
from producer.replay import LetterFilter, ReplayPlan, discard, plan_replay
from shared.errors import ConfigError, SourceError
from shared.schema.control import Run
from shared.settings import Settings

log = logging.getLogger("cutover.console")
POLL_SECONDS = 2.0


@dataclass(frozen=True)
class ImportOrder:
    """Everything the review screen settled, for the thread that stages the run."""

    run_id: str
    operator: str
    file_path: Path
    file_name: str
    profile_path: Path
    encoding: str | None
    create_missing: bool
    email: str | None
    audit_id: int


class Launcher:
    def __init__(self, settings: Settings, sf: sessionmaker[Session], reader: sessionmaker[Session], app: Celery,
                 workers: LocalWorkers | None = None) -> None:
        self.settings, self.sf, self.reader, self.app, self.workers = settings, sf, reader, app, workers
        self.stopping = threading.Event()

    def start_import(self, order: ImportOrder) -> None:
        threading.Thread(target=self._run_import, args=(order,), name=f"console-{order.run_id}", daemon=True).start()

    def _run_import(self, order: ImportOrder) -> None:
        try:
            request = RunRequest(paths=[order.file_path], format_name="csv", email=order.email)
            options = {"profile": order.profile_path, "encoding": order.encoding, "create_missing": order.create_missing}
            try:
                # loads=False: the signed-in operator's permission was checked on every request
                sources = ready_sources(self.settings, self.sf, [order.file_path], "csv", options, loads=False)
                staged = stage_run(self.settings, self.sf, sources, request, order.run_id, order.operator)
            finally:
                remove_csv_files(order.file_path.parent)
            hand_over(self.sf, staged.run_id, self.workers)
            start_dispatch(self.app, staged.run_id)
        except SourceError as exc:
            log.info("run %s refused: %s", order.run_id, exc)  # the run's page shows the refusal
            return
        except Exception:
            log.exception("run %s could not be started", order.run_id)
            return
        lines = [line.replace(str(order.file_path), order.file_name) for line in staged.precheck]
        audit.update(self.sf, order.audit_id, records=sum(staged.read.values()), precheck=lines)
        if order.email:
            self._email_when_done(order, lines)

    def _email_when_done(self, order: ImportOrder, precheck: list[str]) -> None:
        assert order.email is not None
        while not self.stopping.is_set():
            with self.reader() as session:
                if session.get_one(Run, order.run_id).state == "completed":
                    break
            self.stopping.wait(POLL_SECONDS)
        else:
            return
        try:
            with self.reader() as session:
                doc = run_document(session, order.run_id)
                send(self.settings, report_message(session, doc, self.settings.mail_from, order.email, precheck))
            audit.record(self.sf, order.operator, audit.EMAIL, order.run_id, f"report e-mailed to {order.email}")
        except ConfigError as exc:
            audit.record(self.sf, order.operator, audit.EMAIL, order.run_id, f"the report could not be e-mailed: {exc}")
        except Exception:
            log.exception("run %s: e-mailing the report failed", order.run_id)

    def replay(self, operator: str, run_id: str, letters: LetterFilter, upsert: bool) -> ReplayPlan:
        """Plan and start a replay of ``letters`` (always of ``run_id``), as `cutover dlq replay` does."""
        plan = plan_replay(self.sf, letters, upsert=upsert, chunk_size=self.settings.chunk_size,
                           records_per_message=self.settings.records_per_message)
        if plan.replay_id is not None:
            hand_over(self.sf, plan.replay_id, self.workers)
            start_dispatch(self.app, plan.replay_id)
            detail = ", ".join(f"{n} {e}" for e, n in sorted(plan.by_entity.items()))
            audit.record(self.sf, operator, audit.REPLAY, run_id,
                         f"replayed {plan.records} record(s) as {plan.replay_id} ({detail}; letters {_ids(letters)})"
                         + (", updating rows that differ (upsert)" if upsert else ""),
                         {"replay_id": plan.replay_id, **_chosen(letters), "upsert": upsert,
                          "not_replayable": plan.not_replayable}, plan.records)
        return plan

    def discard(self, operator: str, run_id: str, letters: LetterFilter) -> int:
        count = discard(self.sf, letters)
        audit.record(self.sf, operator, audit.DISCARD, run_id, f"discarded {count} dead letter(s): {_ids(letters)}",
                     _chosen(letters), count)
        return count

    def wait_idle(self, seconds: float) -> None:
        """Give threads that are staging a moment to finish before the console stops."""
        deadline = time.monotonic() + seconds
        for thread in threading.enumerate():
            if thread.name.startswith("console-") and thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))


def _chosen(letters: LetterFilter) -> dict[str, object]:
    """Which letters an action concerned, for the audit: ids, or the group's filter."""
    chosen: dict[str, object] = {"letters": list(letters.ids)}
    for name in ("entity", "error_class", "outcome"):
        if getattr(letters, name):
            chosen[name] = getattr(letters, name)
    return chosen


def _ids(letters: LetterFilter) -> str:
    return ", ".join(f"#{i}" for i in letters.ids[:20]) + (" …" if len(letters.ids) > 20 else "")
