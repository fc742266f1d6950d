"""What the run pages show, read from the same places `cutover status`, `reconcile` and `dlq list`
read: the run document (``ops.summary.run_document``), the dispatch's waves and in-flight records,
rate and ETA (``ops.progress``), the reconciliation, the dead letters grouped by error, and the
audit. Values of secret fields never leave here unmasked."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ops.progress import Backpressure, Estimate, Meter, describe
from ops.reconcile import reconcile
from ops.summary import run_document
from ops.web import audit
from ops.web.precheck import masked_value
from shared.dispatch import OUTCOMES, in_flight, runs_of
from shared.schema.control import DeadLetter, DispatchWave, Run, StagedRecord
from shared.settings import Settings

ACTIVE = ("staging", "ready", "running")
LETTERS_PER_GROUP = 200


class Meters:
    """One ``Meter`` per run being watched, shared by every viewer of the console (bounded)."""

    def __init__(self, keep: int = 200) -> None:
        self.keep = keep
        self.meters: OrderedDict[str, Meter] = OrderedDict()
        self.lock = threading.Lock()

    def sample(self, run_id: str, done: int, total: int) -> Estimate:
        with self.lock:
            meter = self.meters.pop(run_id, None) or Meter()
            self.meters[run_id] = meter
            while len(self.meters) > self.keep:
                self.meters.popitem(last=False)
            meter.add(time.monotonic(), done)
            return meter.estimate(total)

    def rate(self, run_id: str) -> float | None:
        with self.lock:
            meter = self.meters.get(run_id)
            return meter.rate() if meter else None


@dataclass
class WaveRow:
    wave: int
    state: str
    chunks_done: int
    chunks_total: int
    entities: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)


def settled(totals: dict[str, int]) -> int:
    return sum(totals[o] for o in OUTCOMES)


def progress(session: Session, settings: Settings, run_id: str, meters: Meters) -> dict[str, Any]:
    """The live part of a run's page: per wave and entity against the total, rate, ETA, back-pressure."""
    doc = run_document(session, run_id)
    chunks = {w.wave: w for w in session.scalars(select(DispatchWave).where(DispatchWave.dispatch_id == run_id))}
    waves: dict[int, WaveRow] = {}
    for name, row in doc["entities"].items():
        state = chunks.get(row["wave"])
        wave = waves.setdefault(row["wave"], WaveRow(
            row["wave"], state.state if state else ("done" if doc["state"] == "completed" else "—"),
            state.chunks_done if state else 0, state.chunks_total if state else 0))
        wave.entities.append({"name": name, **row, "settled": settled(row)})
    for wave in waves.values():
        wave.totals = {c: sum(e[c] for e in wave.entities) for c in ("read", *OUTCOMES, "pending")}
        wave.totals["settled"] = settled(wave.totals)
    totals = {**doc["totals"], "settled": settled(doc["totals"])}
    estimate = meters.sample(run_id, totals["settled"], totals["read"])
    pressure = (Backpressure(in_flight(session, run_id), settings.max_in_flight, settings.chunk_size)
                if doc["state"] == "running" else None)
    return {"doc": doc, "waves": [waves[w] for w in sorted(waves)], "totals": totals, "estimate": estimate,
            "estimate_text": describe(estimate), "backpressure": pressure, "final": doc["state"] in ("completed", "refused")}


def overview(session: Session, run_id: str) -> dict[str, Any]:
    """Who started the run and how, when, its files and its pre-check (kept by the console)."""
    run = session.get_one(Run, run_id)
    start = audit.start_of(session, run_id)
    by = run.options.get("started_by") if isinstance(run.options, dict) else None
    how = "web console" if start else ("replay" if run.kind == "replay" else "command line")
    if start:
        by = start.operator
    replay_rows = [a for a in audit.for_run(session, run_id) if a.action == audit.REPLAY and a.detail.get("replay_id") == run_id]
    if replay_rows:
        by, how = replay_rows[0].operator, "web console"
    return {"run": run, "started_by": by or "not recorded", "how": how,
            "files": [Path(f).name for f in run.files], "options": _shown_options(run.options),
            "precheck": (start.detail.get("precheck") if start else None) or [],
            "import": start.detail if start else None,
            "replayed_runs": runs_of(session, run_id) if run.kind == "replay" else []}


def _shown_options(options: dict[str, Any]) -> list[str]:
    shown = []
    for key, value in sorted((options or {}).items()):
        if key in ("started_by", "validate") or value in (None, False, "") or (key == "records_per_message" and value == 1):
            continue
        if key == "profile" and value:
            value = Path(str(value)).name
        shown.append(f"{key.replace('_', ' ')}: {value}")
    return shown


def verdicts(session: Session, run_id: str) -> list[dict[str, Any]]:
    """The reconciliation of every run the dispatch loaded (``ops.reconcile``), as lines."""
    out = []
    for run in runs_of(session, run_id):
        result = reconcile(session, run)
        out.append({"run_id": run, "reconciled": result.reconciled, "lines": list(result.lines())})
    return out


def letter_groups(session: Session, run: Run) -> dict[str, Any]:
    """The run's open dead letters grouped by entity, outcome and error class, with every letter's
    file, line, field, value (masked when secret), message and hint; and how many were replayed or
    discarded. For a replay: the letters of the records it re-published."""
    mine = (DeadLetter.record_id.in_(select(StagedRecord.id).where(StagedRecord.dispatch_id == run.id))
            if run.kind == "replay" else DeadLetter.run_id == run.id)
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    counted = session.execute(select(DeadLetter.entity, DeadLetter.outcome, DeadLetter.error_class, func.count())
                              .where(mine, DeadLetter.state == "open")
                              .group_by(DeadLetter.entity, DeadLetter.outcome, DeadLetter.error_class)).all()
    for entity, outcome, error_class, count in sorted(counted, key=lambda r: (-r[3], r[0], r[2])):
        letters = session.scalars(select(DeadLetter).where(mine, DeadLetter.state == "open", DeadLetter.entity == entity,
                                                           DeadLetter.outcome == outcome,
                                                           DeadLetter.error_class == error_class)
                                  .order_by(DeadLetter.source_file, DeadLetter.line, DeadLetter.id)
                                  .limit(LETTERS_PER_GROUP)).all()
        groups[(entity, outcome, error_class)] = {
            "entity": entity, "outcome": outcome, "error_class": error_class, "count": count,
            "letters": [letter_row(d) for d in letters], "more": max(0, count - len(letters)),
            "replayable": sum(1 for d in letters if d.stage != "read"),
        }
    closed = dict(session.execute(select(DeadLetter.state, func.count()).where(mine, DeadLetter.state != "open")
                                  .group_by(DeadLetter.state)).all())
    return {"groups": list(groups.values()), "open": sum(g["count"] for g in groups.values()),
            "replayed": closed.get("replayed", 0), "discarded": closed.get("discarded", 0)}


def letter_row(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as a page shows it: the file's name, never a secret value."""
    return {"id": letter.id, "file": Path(letter.source_file).name, "line": letter.line, "field": letter.field,
            "value": masked_value(letter.entity, letter.field, letter.value), "message": letter.message,
            "hint": letter.hint, "stage": letter.stage, "attempts": letter.attempts, "blocked_by": letter.blocked_by}


def run_list(session: Session, active: bool, limit: int = 100) -> list[dict[str, Any]]:
    """Runs in progress, or completed and refused ones, newest first, with their totals."""
    wanted = Run.state.in_(ACTIVE) if active else Run.state.notin_(ACTIVE)
    runs = session.scalars(select(Run).where(wanted).order_by(Run.created_at.desc()).limit(limit)).all()
    out = []
    for run in runs:
        doc = run_document(session, run.id)
        totals = {**doc["totals"], "settled": settled(doc["totals"])}
        start = audit.start_of(session, run.id)
        out.append({"doc": doc, "totals": totals, "files": [Path(f).name for f in run.files],
                    "started_by": start.operator if start else (run.options or {}).get("started_by") or "—",
                    "import_type": start.detail.get("import_type") if start else None})
    return out
