"""Runs of every format: the in-progress and completed lists, a run's page (live counts per wave and
entity, rate and ETA, back-pressure, pre-check, who started it; once completed the summary, the
reconciliation, the reports to download and the dead letters), and replay and discard of dead
letters for operators the policy allows."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from ops.report import error_rows_csv, write_report
from ops.web import audit, runview
from ops.web.auth import SignedIn
from ops.web.pages import Console, field, fields, page, redirect, render
from ops.web.uploads import private_folder
from producer.replay import LetterFilter
from shared.permissions import DISCARD, REPLAY
from shared.schema.console import ConsoleImport
from shared.schema.control import DeadLetter, Run


@page
def runs_page(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    active = request.query_params.get("view", "in-progress") != "completed"
    with console.reader() as session:
        rows = runview.run_list(session, active)
    return render(request, console, who, "runs.html", rows=rows, active=active)


def _starting(session: Session, run_id: str) -> bool:
    """A run the console started whose staging thread has not written its row yet."""
    return session.scalar(select(ConsoleImport.id).where(ConsoleImport.run_id == run_id)) is not None


@page
def run_page(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    run_id = request.path_params["run_id"]
    with console.reader() as session:
        run = session.get(Run, run_id)
        if run is None:
            if _starting(session, run_id):
                return render(request, console, who, "run_starting.html", run_id=run_id)
            raise HTTPException(404, f"no run {run_id}")
        context: dict[str, Any] = {"run_id": run_id, "live": runview.progress(session, console.settings, run_id, console.meters),
                                   "about": runview.overview(session, run_id), "audit": audit.for_run(session, run_id)}
        if run.state == "completed":
            context["verdicts"] = runview.verdicts(session, run_id)
        if run.state in ("completed", "running", "ready"):
            context["letters"] = runview.letter_groups(session, run)
        done = request.query_params.get("done")
        context["notice"] = {"discarded": "Dead letters discarded.", "nothing": "Nothing to replay: the chosen letters "
                             "failed at read time (fix the file and run it again) or are no longer open."}.get(done or "")
        return render(request, console, who, "run.html", **context)


@page
def run_live(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    """The live part of a run's page, fetched again every few seconds by ``live.js``."""
    run_id = request.path_params["run_id"]
    with console.reader() as session:
        if session.get(Run, run_id) is None:
            if _starting(session, run_id):
                return render(request, console, who, "_starting.html", run_id=run_id)
            raise HTTPException(404, f"no run {run_id}")
        return render(request, console, who, "_progress.html", run_id=run_id,
                      live=runview.progress(session, console.settings, run_id, console.meters))


def _download(console: Console, run_id: str, kind: str) -> Response:
    """The per-record report (``ops.report``, spreadsheet-safe CSV or JSON Lines) or the error rows the
    e-mail attaches. Written to a private folder first and sent from there, so a slow download never
    holds a database transaction (on SQLite, the writers' lock) open."""
    with console.reader() as session:
        run = session.get(Run, run_id)
        if run is None or run.kind != "run":
            raise HTTPException(404, f"no run {run_id} (a replay reports through the runs it replayed)")
        if kind == "errors.csv":
            text, _ = error_rows_csv(session, run_id)
            return Response(text, media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{run_id}-errors.csv"'})
        folder = Path(tempfile.mkdtemp(dir=private_folder(console.settings.home.resolve() / "console" / "reports")))
        written = write_report(session, run_id, folder, (kind.split(".")[-1],))
    path = written[0]
    media = "application/x-ndjson; charset=utf-8" if kind == "report.jsonl" else "text/csv; charset=utf-8"
    return FileResponse(path, media_type=media, filename=path.name,
                        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))


@page
def download(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    kind = request.path_params["kind"]
    if kind not in ("report.csv", "report.jsonl", "errors.csv"):
        raise HTTPException(404, "no such report")
    return _download(console, request.path_params["run_id"], kind)


def _chosen(run_id: str, form: FormData | None) -> LetterFilter:
    """The letters a form ticks — always of this run, and open (an empty choice is never "all")."""
    ids = tuple(int(v) for v in fields(form, "letter") if v.isdigit())
    if not ids:
        raise HTTPException(400, "tick the dead letters to act on")
    return LetterFilter(run_id=run_id, ids=ids)


@page
def letters_post(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    """Replay at once; discard after a confirmation page that lists what will be discarded."""
    run_id = request.path_params["run_id"]
    action = field(form, "action")
    letters = _chosen(run_id, form)
    with console.reader() as session:
        run = session.get(Run, run_id)
        if run is None or run.kind != "run":
            raise HTTPException(404, f"no run {run_id}")
    if action == "replay":
        console.policy.check(who.operator, REPLAY, "replay dead letters")
        plan = console.launcher.replay(who.operator, run_id, letters, upsert=field(form, "upsert") == "on")
        return redirect(f"/runs/{plan.replay_id}" if plan.replay_id else f"/runs/{run_id}?done=nothing")
    if action == "discard":
        console.policy.check(who.operator, DISCARD, "discard dead letters")
        with console.reader() as session:
            chosen = session.scalars(letters.apply(select(DeadLetter)).order_by(DeadLetter.line, DeadLetter.id)
                                     .limit(500)).all()
            rows = [runview.letter_row(d) | {"entity": d.entity, "error_class": d.error_class} for d in chosen]
        return render(request, console, who, "confirm_discard.html", run_id=run_id, rows=rows,
                      form_fields=[("letter", str(d["id"])) for d in rows])
    raise HTTPException(400, "choose replay or discard")


@page
def discard_post(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    run_id = request.path_params["run_id"]
    console.policy.check(who.operator, DISCARD, "discard dead letters")
    console.launcher.discard(who.operator, run_id, _chosen(run_id, form))
    return redirect(f"/runs/{run_id}?done=discarded")
