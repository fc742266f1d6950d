"""`cutover status`: the runs, or one run's counts (live while it runs)."""

from __future__ import annotations

import json

from rich.table import Table
from sqlalchemy import select

from ops import exitcodes
from ops.console import make_console
from ops.services import database, reading
from ops.summary import print_summary, run_document
from shared.errors import ConfigError
from shared.schema.control import Run
from shared.settings import Settings


def list_runs(settings: Settings, as_json: bool, limit: int) -> int:
    database(settings)
    with reading(settings)() as session:
        runs = session.scalars(select(Run).order_by(Run.created_at.desc()).limit(limit)).all()
        docs = [run_document(session, r.id) for r in runs]
    if as_json:
        print(json.dumps(docs, indent=2))
        return exitcodes.OK
    table = Table(title="runs")
    for column in ("run", "kind", "state", "created", "read", "committed", "skipped", "dead", "blocked", "files"):
        table.add_column(column, overflow="fold")
    for doc in docs:
        t = doc["totals"]
        state = "in progress" if doc["state"] in ("staging", "ready", "running") else doc["state"]  # or interrupted, abandoned
        table.add_row(doc["run_id"], doc["kind"], state, doc["created_at"], *(str(t[c]) for c in
                      ("read", "committed", "skipped", "dead", "blocked")), ", ".join(doc["files"]))
    make_console().print(table)
    return exitcodes.OK


def show_run(settings: Settings, run_id: str, as_json: bool) -> int:
    database(settings)
    with reading(settings)() as session:
        if session.get(Run, run_id) is None:
            raise ConfigError(f"no run {run_id!r}; `cutover status` lists them")
        if as_json:
            print(json.dumps(run_document(session, run_id), indent=2))
            return exitcodes.OK
        doc = print_summary(make_console(), session, run_id)
    if doc["message"]:
        print(doc["message"])
    return exitcodes.OK
