"""`cutover run` and `cutover dlq replay` end to end: stage or plan, hand the dispatch to the
workers, wait with a live display, print the summary and the reconciliation, and choose the exit status."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from celery import Celery
from rich.console import Console
from rich.live import Live
from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ops import exitcodes
from ops.backends import broker, database, reading
from ops.ctrl_c import DeferredCtrlC
from ops.embedded import LocalWorkers
from ops.mailer import report_message, require_mail, send
from ops.progress_view import Frame, ProgressView, read_frame
from ops.reconcile import reconcile
from ops.summary import print_summary, run_document
from producer.formats import FORMATS, Preparation, SourceFile
from producer.replay import LetterFilter, plan_replay
from producer.staging import Stager, StagingResult, new_run_id
from shared.celery_app import DISPATCH_RESUME, DISPATCH_START
from shared.dispatch import runs_of
from shared.entities import REGISTRY
from shared.errors import ConfigError, SourceError
from shared.gc_tuning import settle_for_throughput
from shared.liveness import this_process
from shared.permissions import current_operator
from shared.schema.base import utcnow
from shared.schema.control import Run
from shared.settings import Settings, load_settings
from shared.vault import Vault

POLL_SECONDS = 0.5
POLL_SHARE = 0.2
"""The most of the database's time the live view's polls may take: a frame of a million-record run
counts every staged record (over a second on PostgreSQL), so its polls space out to five times that."""

RETRY_SECONDS = 2.0
T = TypeVar("T")


POLL_MAX_SECONDS = 10.0
"""However long a poll took, the next comes within this many seconds."""


def poll_pause(took: float) -> float:
    """Seconds to wait before the next poll, after one that took ``took`` seconds to answer."""
    return min(POLL_MAX_SECONDS, max(POLL_SECONDS, took * (1 - POLL_SHARE) / POLL_SHARE))


@dataclass(kw_only=True)
class RunRequest:
    """What `cutover run` was asked (and, with ``paths`` empty, how `dlq replay` and `resume` wait)."""

    paths: list[Path]
    format_name: str | None = None
    format_options: dict[str, Any] = field(default_factory=dict)
    """The formats' own options by name, as given on the command line (``producer/formats.py``)."""
    upsert: bool = False
    wait: bool = True
    as_json: bool = False
    local_workers: int | None = None
    timeout: float | None = None
    email: str | None = None
    records_per_message: int | None = None
    """None: the ``records_per_message`` setting."""


def ready_sources(settings: Settings, sf: sessionmaker[Session], paths: list[Path], format_name: str | None,
                  format_options: dict[str, Any], loads: bool = True) -> list[SourceFile]:
    """The input files with their formats' options readied (a csv profile loaded and, when the command
    loads, the operator's permission checked), before anything is staged."""
    sources = FORMATS.resolve(paths, format_name)
    if not sources:
        raise ConfigError(f"no input files in {', '.join(map(str, paths))}")
    return FORMATS.ready(sources, format_options, Preparation(settings, sf, loads=loads))


def execute_run(settings: Settings, request: RunRequest, console: Console) -> tuple[int, dict[str, Any]]:
    _refuse_no_wait_on_embedded(settings, request.wait)
    sf = database(settings)
    sources = ready_sources(settings, sf, request.paths, request.format_name, request.format_options)
    if request.email:
        if not request.wait:
            raise ConfigError("--email sends the report when the run ends: it cannot be combined with --no-wait")
        require_mail(settings, request.email)
    run_id = new_run_id()
    with broker(settings, request.local_workers) as (app, workers):
        settle_for_throughput()  # a command that stages a run and ends: what it built so far stays
        try:
            staged = stage_run(settings, sf, sources, request, run_id, _who(settings))
        except SourceError as exc:
            console.print(f"[red]run {run_id} refused:[/red] {exc}\nNothing was loaded.")
            return exitcodes.REFUSED, {"run_id": run_id, "state": "refused", "message": str(exc)}
        checked = staged.precheck
        if not request.as_json:
            console.print(f"run {staged.run_id}: staged {sum(staged.read.values())} records from {len(sources)} file(s)")
            for line in checked:
                console.print(line, highlight=False, markup=False)
        hand_over(sf, staged.run_id, workers)
        _start(app, staged.run_id)
        if not request.wait:
            return exitcodes.OK, {"run_id": staged.run_id, "state": "running", "precheck": checked}
        code, doc = _wait_and_summarise(reading(settings), staged.run_id, workers, request, console)
    doc["precheck"] = checked
    if request.email:
        doc["email"] = _email_report(settings, sf, doc, request.email, checked, console, request.as_json)
    return code, doc


def stage_run(settings: Settings, sf: sessionmaker[Session], sources: list[SourceFile], request: RunRequest,
              run_id: str, started_by: str) -> StagingResult:
    """Read and stage a run's files (readied by :func:`ready_sources`; SourceError when the run is
    refused): the part of `cutover run` the web console shares. ``started_by`` is kept in the run's options."""
    stager = Stager(sf, REGISTRY, Vault.from_settings(settings), settings.chunk_size, settings.max_field_chars)
    per_message = request.records_per_message or settings.records_per_message
    options = {"upsert": request.upsert, "records_per_message": per_message, "started_by": started_by,
               **FORMATS.recorded(sources)}
    return stager.stage(sources, options, run_id=run_id)


def _who(settings: Settings) -> str:
    """The operator a run is recorded as started by; a container user without a name is no reason to fail."""
    try:
        return current_operator(settings)
    except (OSError, KeyError):
        return "unknown"


def _email_report(settings: Settings, sf: sessionmaker[Session], doc: dict[str, Any], address: str,
                  checked: list[str], console: Console, as_json: bool) -> str:
    """Send the report; a failure is said plainly but does not undo the run's exit status."""
    try:
        with sf() as session:
            send(settings, report_message(session, doc, settings.mail_from, address, checked))
    except ConfigError as exc:
        if not as_json:
            console.print(f"[red]{exc}[/red]")
        return f"failed: {exc}"
    if not as_json:
        console.print(f"report e-mailed to {address}")
    return f"sent to {address}"


def execute_replay(settings: Settings, letters: LetterFilter, *, upsert: bool, wait: bool, as_json: bool,
                   local_workers: int | None, console: Console) -> tuple[int, dict[str, Any]]:
    _refuse_no_wait_on_embedded(settings, wait)
    sf = database(settings)
    plan = plan_replay(sf, letters, upsert=upsert, chunk_size=settings.chunk_size,
                       records_per_message=settings.records_per_message)
    if plan.not_replayable and not as_json:
        console.print(f"{plan.not_replayable} dead letter(s) failed at read time and cannot be replayed: "
                      "fix the source file and run it again, or discard them")
    if plan.replay_id is None:
        if not as_json:
            console.print("nothing to replay: no open dead letter matches (`cutover dlq list` shows the open ones)")
        return exitcodes.OK, {"state": "nothing to replay", "not_replayable": plan.not_replayable}
    if not as_json:
        detail = ", ".join(f"{n} {e}" for e, n in sorted(plan.by_entity.items()))
        console.print(f"replay {plan.replay_id}: {plan.records} record(s) in wave order ({detail})")
    with broker(settings, local_workers) as (app, workers):
        hand_over(sf, plan.replay_id, workers)
        _start(app, plan.replay_id)
        if not wait:
            return exitcodes.OK, {"run_id": plan.replay_id, "state": "running"}
        request = RunRequest(paths=[], wait=True, as_json=as_json, local_workers=local_workers)
        return _wait_and_summarise(reading(settings), plan.replay_id, workers, request, console)


def execute_resume(settings: Settings, run_id: str, *, wait: bool, as_json: bool, local_workers: int | None,
                   console: Console) -> tuple[int, dict[str, Any]]:
    _refuse_no_wait_on_embedded(settings, wait)
    sf = database(settings)
    with sf() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise ConfigError(f"no run {run_id!r}; `cutover status` lists them")
        if run.state in ("completed", "refused"):
            raise ConfigError(f"run {run_id} is {run.state}; nothing to resume")
        if run.state == "staging":
            raise ConfigError(f"run {run_id} never finished staging (its command was stopped while reading): "
                              f"discard it with `cutover discard {run_id}` and run the files again")
    with broker(settings, local_workers) as (app, workers):
        hand_over(sf, run_id, workers)
        app.send_task(DISPATCH_RESUME, args=(run_id,), ignore_result=True)  # routed to the control queue
        if not wait:
            return exitcodes.OK, {"run_id": run_id, "state": "running"}
        request = RunRequest(paths=[], wait=True, as_json=as_json, local_workers=local_workers)
        return _wait_and_summarise(reading(settings), run_id, workers, request, console)


def _refuse_no_wait_on_embedded(settings: Settings, wait: bool) -> None:
    if not wait and settings.embedded_broker:
        raise ConfigError("--no-wait needs a shared broker (CUTOVER_BROKER_URL) and workers of its own: "
                          "the embedded Redis and workers stop when this command ends")


def hand_over(sf: sessionmaker[Session], dispatch_id: str, workers: LocalWorkers | None) -> None:
    """Record who the dispatch depends on: this command when it holds the workers (the embedded
    default), nobody otherwise (the workers sweep it). `cutover status` tells an interrupted run by it."""
    with sf.begin() as session:
        session.execute(update(Run).where(Run.id == dispatch_id)
                        .values(owner=this_process() if workers is not None else None, heartbeat_at=utcnow()))


def start_dispatch(app: Celery, dispatch_id: str) -> None:
    """Publishing happens in a worker (control queue): this process never subscribes to results."""
    app.send_task(DISPATCH_START, args=(dispatch_id,), ignore_result=True)  # routed to the control queue


_start = start_dispatch


class _Outage:
    """Says once that the database is unreachable, and once that it is back: the run itself goes on
    wherever workers run (their loads retry), so the waiting command waits with it."""

    def __init__(self, console: Console) -> None:
        self.console, self.since = console, 0.0

    def down(self, exc: Exception) -> None:
        if not self.since:
            self.since = time.monotonic()
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            self.console.print(f"the database is unreachable ({reason}); waiting for it — the workers retry their "
                               "batches until it is back", highlight=False, markup=False)

    def up(self) -> None:
        if self.since:
            self.console.print(f"the database is back after {time.monotonic() - self.since:.0f} s", highlight=False)
            self.since = 0.0


def patiently(read: Callable[[], T], outage: _Outage, deadline: float | None,
              pause: Callable[[float], None] = time.sleep) -> T | None:
    """``read()``, waiting out an unreachable database; None when the deadline passes first."""
    while True:
        try:
            value = read()
        except OperationalError as exc:
            outage.down(exc)
            if deadline is not None and time.monotonic() > deadline:
                return None
            pause(RETRY_SECONDS)
            continue
        outage.up()
        return value


def wait_for(readers: sessionmaker[Session], run_id: str, workers: LocalWorkers | None, console: Console,
             live_display: bool, timeout: float | None = None) -> bool:
    """Poll until the dispatch completes; True when it did, False when the timeout passed. Polls read
    only (they never wait for the workers' writes), and ride out an unreachable database. Ctrl-C ends
    the wait between two polls, never inside one (``ops/ctrl_c.py``)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    settings = load_settings()
    limit, chunk = settings.max_in_flight, settings.chunk_size
    outage = _Outage(console)
    view = ProgressView(REGISTRY, settings.password_hash) if live_display else None

    took = 0.0  # the last poll that answered (not the time spent riding out an outage)

    def look() -> tuple[str, Frame | None]:
        nonlocal took
        started = time.monotonic()
        with readers() as session:
            state = session.get_one(Run, run_id).state
            frame = read_frame(session, run_id, limit, chunk) if view is not None else None
        took = time.monotonic() - started
        return state, frame

    # transient: the view gives way to the summary's full table, printed once
    with DeferredCtrlC() as ctrl_c, \
            Live(console=console, auto_refresh=False, transient=True) if view is not None else _NoLive() as live:
        while True:
            seen = patiently(look, outage, deadline, ctrl_c.pause)
            ctrl_c.check()
            if seen is None:
                return False
            state, frame = seen
            if view is not None and frame is not None:
                view.update(frame)
                live.update(view, refresh=True)
            if state == "completed":
                return True
            if workers is not None:
                workers.check()
            if deadline is not None and time.monotonic() > deadline:
                return False
            ctrl_c.pause(poll_pause(took))


def _wait_and_summarise(readers: sessionmaker[Session], run_id: str, workers: LocalWorkers | None, request: RunRequest,
                        console: Console) -> tuple[int, dict[str, Any]]:
    live_display = console.is_terminal and not request.as_json
    try:
        finished = wait_for(readers, run_id, workers, console, live_display, request.timeout)
    except KeyboardInterrupt:
        finished = False
        if workers is not None:
            console.print(f"interrupted: stopping the local workers; continue with `cutover resume {run_id}`",
                          highlight=False)
            workers.stop_now()
        else:
            console.print(f"stopped waiting; the run goes on where workers run: cutover status {run_id}", highlight=False)
    outage = _Outage(console)
    try:
        doc = patiently(lambda: _summary(readers, run_id, console, request.as_json), outage, None)
    except KeyboardInterrupt:
        doc = None
    if doc is None:
        return exitcodes.INCOMPLETE, {"run_id": run_id, "state": "unknown"}
    if not finished:
        if not request.as_json and request.timeout is not None and workers is None:
            console.print(f"stopped waiting; the run goes on where workers run: cutover status {run_id}", highlight=False)
        elif not request.as_json and request.timeout is not None:
            console.print(f"stopped waiting; the local workers stop with this command: "
                          f"continue with `cutover resume {run_id}`", highlight=False)
        return exitcodes.INCOMPLETE, doc
    totals = doc["totals"]
    code = exitcodes.RECORDS_FAILED if totals["dead"] or totals["blocked"] else exitcodes.OK
    verdicts = patiently(lambda: _reconcile_all(readers, run_id), outage, None) or []
    doc["reconciliation"] = [v.as_dict() for v in verdicts]
    for verdict in verdicts:
        if not request.as_json:
            for line in verdict.lines():
                console.print(line if len(verdicts) == 1 else f"{verdict.run_id}: {line}", highlight=False, markup=False)
        if not verdict.reconciled:
            code = exitcodes.NOT_RECONCILED
    return code, doc


def _summary(readers: sessionmaker[Session], run_id: str, console: Console, as_json: bool) -> dict[str, Any]:
    with readers() as session:
        return run_document(session, run_id) if as_json else print_summary(console, session, run_id)


def _reconcile_all(readers: sessionmaker[Session], run_id: str) -> list[Any]:
    with readers() as session:
        return [reconcile(session, run) for run in runs_of(session, run_id)]


class _NoLive:
    """Stands in for rich's Live when output is not a terminal (no redraws in logs)."""

    def __enter__(self) -> _NoLive:
        return self

    def update(self, *_: object, **__: object) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
