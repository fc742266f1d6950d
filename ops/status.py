"""`cutover status`: the runs, or one run's counts (live while it runs)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rich.table import Table
from sqlalchemy import select

from ops import exitcodes
from ops.backends import database, reading
from ops.console import make_console
from ops.summary import print_summary, run_document
from shared.errors import ConfigError
from shared.schema.base import utcnow
from shared.schema.control import Run
from shared.settings import Settings

IN_PROGRESS = ("staging", "ready", "running")


def list_runs(settings: Settings, as_json: bool, limit: int) -> int:
    database(settings)
    with reading(settings)() as session:
        runs = session.scalars(select(Run).order_by(Run.created_at.desc()).limit(limit)).all()
        docs = [run_document(session, r.id) for r in runs]
    if as_json:
        print(json.dumps(docs, indent=2))
        return exitcodes.OK
    console = make_console()
    if not docs:
        console.print("no runs yet: `cutover run FILES` starts one (`cutover validate FILES` checks them first)")
        return exitcodes.OK
    table = Table(title="runs")
    for column in ("run", "kind", "state", "created", "duration", "read", "committed", "skipped", "dead", "blocked",
                   "files"):
        table.add_column(column, overflow="fold", justify="right" if column == "duration" else "left")
    for doc in docs:
        t = doc["totals"]
        state = "in progress" if doc["state"] in IN_PROGRESS else doc["state"]
        table.add_row(doc["run_id"], doc["kind"], state, doc["created_at"], _duration(doc), *(str(t[c]) for c in
                      ("read", "committed", "skipped", "dead", "blocked")), ", ".join(doc["files"]))
    console.print(table)
    return exitcodes.OK


def _duration(doc: dict[str, Any]) -> str:
    """How long the run took, or has taken so far while in progress; a refused run has none."""
    if doc["duration_seconds"] is not None:
        return format_duration(doc["duration_seconds"])
    if doc["state"] in IN_PROGRESS:
        return format_duration((utcnow() - datetime.fromisoformat(doc["created_at"])).total_seconds()) + " so far"
    return "—"


def format_duration(seconds: float) -> str:
    """``42s``, ``3m 05s``, ``2h 07m``."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def show_run(settings: Settings, run_id: str, as_json: bool) -> int:
    database(settings)
    with reading(settings)() as session:
        if session.get(Run, run_id) is None:
            raise ConfigError(f"no run {run_id!r}; `cutover status` lists them")
        if as_json:
            print(json.dumps(run_document(session, run_id), indent=2))
            return exitcodes.OK
        print_summary(make_console(), session, run_id)
    return exitcodes.OK
