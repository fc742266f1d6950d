"""`cutover status`: the runs, or one run's counts (live while it runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table
from sqlalchemy import select

from ops import exitcodes
from ops.backends import database, reading
from ops.console import make_console
from ops.progress import Estimate, time_left
from ops.summary import IN_PROGRESS, loading_estimate, print_summary, run_document, run_duration
from shared.errors import ConfigError
from shared.schema.control import Run
from shared.settings import Settings


def list_runs(settings: Settings, as_json: bool, limit: int) -> int:
    database(settings)
    with reading(settings)() as session:
        runs = session.scalars(select(Run).order_by(Run.created_at.desc()).limit(limit)).all()
        docs = [run_document(session, r.id) for r in runs]
        estimates = {doc["run_id"]: loading_estimate(session, doc) for doc in docs}
    for doc in docs:
        estimate = estimates[doc["run_id"]]
        if estimate is not None:
            doc["progress"] = _progress_json(estimate)
    if as_json:
        print(json.dumps(docs, indent=2))
        return exitcodes.OK
    console = make_console()
    if not docs:
        console.print("no runs yet: `cutover run FILES` starts one (`cutover validate FILES` checks them first)")
        return exitcodes.OK
    table = Table(title="runs")
    loading = any(estimates.values())
    for column in ("run", "kind", "state", "created", "duration", *(("progress",) if loading else ()), "read",
                   "committed", "skipped", "dead", "blocked", "files"):
        table.add_column(column, overflow="fold", justify="right" if column == "duration" else "left")
    for doc in docs:
        t = doc["totals"]
        state = "in progress" if doc["state"] in IN_PROGRESS else doc["state"]
        progress = (_progress_cell(estimates[doc["run_id"]]),) if loading else ()
        table.add_row(doc["run_id"], doc["kind"], state, doc["created_at"], run_duration(doc), *progress,
                      *(str(t[c]) for c in ("read", "committed", "skipped", "dead", "blocked")),
                      _files(doc["files"], console.is_terminal))
    console.print(table)
    return exitcodes.OK


def _progress_json(estimate: Estimate) -> dict[str, Any]:
    return {"settled": estimate.done, "total": estimate.total,
            "rate": None if estimate.rate is None else round(estimate.rate, 2),
            "eta_seconds": None if estimate.eta is None else round(estimate.eta, 1)}


def _progress_cell(estimate: Estimate | None) -> str:
    """``54% — about 15 s left``; empty for a run that is not loading."""
    return "" if estimate is None else f"{estimate.fraction:.0%} — {time_left(estimate)}"


def _files(files: list[str], terminal: bool) -> str:
    """The run's files; on a terminal, several in one folder as ``6 files in examples/engageip``, so
    the table fits it (``--json`` and output to a file list them all)."""
    folders = {str(Path(f).parent) for f in files}
    if terminal and len(files) > 1 and len(folders) == 1:
        return f"{len(files)} files in {folders.pop()}"
    return ", ".join(files)


def show_run(settings: Settings, run_id: str, as_json: bool) -> int:
    database(settings)
    with reading(settings)() as session:
        if session.get(Run, run_id) is None:
            raise ConfigError(f"no run {run_id!r}; `cutover status` lists them")
        if as_json:
            doc = run_document(session, run_id)
            estimate = loading_estimate(session, doc)
            if estimate is not None:
                doc["progress"] = _progress_json(estimate)
            print(json.dumps(doc, indent=2))
            return exitcodes.OK
        print_summary(make_console(), session, run_id)
    return exitcodes.OK
