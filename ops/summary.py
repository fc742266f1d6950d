"""Counts of a run as a table, as JSON, and the invariant read = committed + skipped + dead + blocked; its
duration, and while it loads, its progress at the rate averaged so far (what `cutover status` shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ops.progress import Estimate, average_since, describe
from shared.dispatch import OUTCOMES, live_counts
from shared.liveness import effective_state
from shared.schema.base import utcnow
from shared.schema.control import DeadLetter, DispatchChunk, Run, StagedRecord
from shared.schema.subscriptions import Subscription
from shared.sweeper import recent_events

COLUMNS = ("read", *OUTCOMES)
IN_PROGRESS = ("staging", "ready", "running")
WHAT_IT_DOES = {"staging": "still reading its files", "ready": "staged, waiting for a worker on the control queue",
                "running": "still loading", "interrupted": "interrupted: nothing works on it any more",
                "abandoned": "abandoned while its files were read"}


def run_document(session: Session, run_id: str) -> dict[str, Any]:
    """The run for scripts: id, state, per entity counts, totals and whether they balance."""
    run = session.get_one(Run, run_id)
    state = effective_state(run)
    counts = live_counts(session, run_id)
    entities = {name: {c: n for c, n in row.items() if c in (*COLUMNS, "wave", "pending")} for name, row in
                sorted(counts.items(), key=lambda kv: (kv[1]["wave"], kv[0]))}
    totals = {c: sum(row[c] for row in counts.values()) for c in (*COLUMNS, "pending")}
    unbalanced = [name for name, row in counts.items() if row["read"] != sum(row[o] for o in OUTCOMES)]
    return {
        "run_id": run.id, "kind": run.kind, "state": state, "files": run.files, "message": run.message or _advice(run.id, state),
        "created_at": run.created_at.isoformat(timespec="seconds"),
        "finished_at": run.finished_at.isoformat(timespec="seconds") if run.finished_at else None,
        "duration_seconds": round((run.finished_at - run.created_at).total_seconds(), 1) if run.finished_at else None,
        "entities": entities, "totals": totals,
        "balanced": not unbalanced if run.state == "completed" else None, "unbalanced": sorted(unbalanced),
        "events": [f"{at.isoformat(timespec='seconds')} {message}" for at, message in recent_events(session, run_id)],
        "reminders": go_live_reminders(session, run_id),
    }


def _advice(run_id: str, state: str) -> str | None:
    if state == "interrupted":
        return f"nothing works on run {run_id} any more: continue it with `cutover resume {run_id}`"
    if state == "abandoned":
        return (f"run {run_id} was stopped while its files were read: discard it with `cutover discard {run_id}` "
                "and run the files again")
    return None


def go_live_reminders(session: Session, dispatch_id: str) -> list[str]:
    """The seed's go-live advice, when the run (or replay) committed subscriptions; whether they are
    marked for manual invoice verification is read from the target, so a replay tells the truth too."""
    loaded = (select(StagedRecord.target_id)
              .where(StagedRecord.dispatch_id == dispatch_id, StagedRecord.entity == "Subscription",
                     StagedRecord.status == "committed"))
    total, marked = session.execute(
        select(func.count(), func.count().filter(Subscription.manual_invoice_verification))
        .where(Subscription.id.in_(loaded))).one()
    if not total:
        return []
    if marked == total:
        first = (f"{total} subscription(s) are marked for manual invoice verification: verify their invoices in the "
                 "billing system before releasing them.")
    else:
        first = (f"{total - marked} of {total} subscription(s) are not marked for manual invoice verification "
                 "(run without --manual-invoice-verification): the billing system will invoice them unverified; "
                 "consider manual verification of invoicing until the dust has settled.")
    return [first, "Keep automatic dunning off until you have verified that reminders go to the right people."]


def run_duration(doc: dict[str, Any]) -> str:
    """How long the run took, or has taken so far while in progress; a refused run has none."""
    if doc["duration_seconds"] is not None:
        return short_duration(doc["duration_seconds"])
    if doc["state"] in IN_PROGRESS:
        return short_duration((utcnow() - datetime.fromisoformat(doc["created_at"])).total_seconds()) + " so far"
    return "—"


def short_duration(seconds: float) -> str:
    """``42s``, ``3m 05s``, ``2h 07m``."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def summary_title(doc: dict[str, Any]) -> str:
    """``run r… — completed in 18s``; ``run r… — running — 1m 05s so far`` (the duration `cutover status` lists)."""
    if doc["duration_seconds"] is not None:
        return f"run {doc['run_id']} — {doc['state']} in {run_duration(doc)}"
    if doc["state"] in IN_PROGRESS:
        return f"run {doc['run_id']} — {doc['state']} — {run_duration(doc)}"
    return f"run {doc['run_id']} — {doc['state']}"


def loading_estimate(session: Session, doc: dict[str, Any]) -> Estimate | None:
    """For a run that is loading: records settled of read, the rate averaged since its first chunk was
    published, and the time left at that rate (``ops.progress``). A single look has no window of
    samples to measure over, as the live display has; None before loading starts. Records dead at
    read time (chunk −1) were settled before loading began, so they do not count in the rate."""
    if doc["state"] not in IN_PROGRESS:
        return None
    first = session.scalar(select(func.min(DispatchChunk.published_at)).where(DispatchChunk.dispatch_id == doc["run_id"]))
    if first is None:
        return None
    at_read = session.scalar(select(func.count()).select_from(StagedRecord)
                             .where(StagedRecord.dispatch_id == doc["run_id"], StagedRecord.chunk < 0)) or 0
    settled = sum(doc["totals"][o] for o in OUTCOMES)
    return average_since(0.0, min(at_read, settled), (utcnow() - first).total_seconds(), settled, doc["totals"]["read"])


def counts_table(doc: dict[str, Any], title: str | None = None) -> Table:
    table = Table(title=title, show_footer=True)
    table.add_column("wave", justify="right")
    table.add_column("entity", footer="total")
    for column in COLUMNS:
        table.add_column(column, justify="right", footer=str(doc["totals"][column]))
    for name, row in doc["entities"].items():
        table.add_row(str(row["wave"]), name, *(str(row[c]) for c in COLUMNS))
    return table


def error_digest(session: Session, run_id: str, limit: int = 12) -> list[str]:
    """What went wrong, grouped by entity, outcome and error class, with one example each."""
    run = session.get_one(Run, run_id)
    mine = (DeadLetter.record_id.in_(select(StagedRecord.id).where(StagedRecord.dispatch_id == run_id))
            if run.kind == "replay" else DeadLetter.run_id == run_id)
    rows = session.execute(
        select(DeadLetter.entity, DeadLetter.outcome, DeadLetter.error_class, func.count(), func.min(DeadLetter.id))
        .where(mine, DeadLetter.state == "open")
        .group_by(DeadLetter.entity, DeadLetter.outcome, DeadLetter.error_class)
        .order_by(func.count().desc()).limit(limit)
    ).all()
    lines = []
    for entity, outcome, error_class, count, example_id in rows:
        letter = session.get_one(DeadLetter, example_id)
        hint = f" — {letter.hint}" if letter.hint else ""
        example = f"#{letter.id} {letter.source_file}:{letter.line}: {letter.message}{hint}"
        lines.append(f"{count:>6} × {entity} {outcome} ({error_class}), e.g. {example}")
    return lines


def print_summary(console: Console, session: Session, run_id: str) -> dict[str, Any]:
    doc = run_document(session, run_id)
    console.print(counts_table(doc, title=summary_title(doc)))
    digest = error_digest(session, run_id)
    if digest:
        where = "cutover dlq list" if doc["kind"] == "replay" else f"cutover dlq list --run {run_id}"
        console.print(f"dead letters (details: {where}):")
        for line in digest:
            console.print(line, highlight=False, markup=False)
    for reminder in doc["reminders"]:
        console.print(f"[yellow]go-live:[/yellow] {reminder}")
    for event in doc["events"]:
        console.print(f"[yellow]healed:[/yellow] {event}", highlight=False)
    if doc["state"] == "refused":
        console.print(f"refused, nothing was loaded: {doc['message']}", highlight=False, markup=False)
        return doc
    if doc["balanced"] is None:
        estimate = loading_estimate(session, doc)
        console.print(f"the run is {WHAT_IT_DOES.get(doc['state'], doc['state'])}: "
                      f"{doc['totals']['pending']:,} record(s) not loaded yet"
                      + (f" — {describe(estimate)} (averaged since loading began)" if estimate else ""), highlight=False)
        return doc
    verdict = "holds" if doc["balanced"] else f"DOES NOT HOLD for {', '.join(doc['unbalanced'])}"
    console.print(f"read = committed + skipped + dead + blocked {verdict} "
                  f"({doc['totals']['read']} = {doc['totals']['committed']} + {doc['totals']['skipped']} + "
                  f"{doc['totals']['dead']} + {doc['totals']['blocked']})")
    return doc
