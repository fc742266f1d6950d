"""The plumbing every page shares: the console's state, the sign-in check and the CSRF check applied
to each request before its handler runs (in a worker thread, so database work never blocks the
event loop), permission refusals as 403 pages, and rendering with the context every template uses."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from celery import Celery
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from ops.embedded import LocalWorkers
from ops.web.auth import SignedIn, Throttle, find_session
from ops.web.drafts import TYPE_LABELS
from ops.web.launcher import Launcher
from ops.web.runview import Meters
from shared.errors import ConfigError
from shared.permissions import DISCARD, IMPORT, REPLAY, NotPermitted, Policy
from shared.settings import Settings

COOKIE = "cutover_console"
FORM_LIMIT = 256 * 1024
"""Largest body of an ordinary form (uploads have their own limit)."""
TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


@dataclass
class Console:
    """Everything a request may need, built once by `cutover console`."""

    settings: Settings
    sf: sessionmaker[Session]
    """Sessions that write (imports, sign-ins, audit): short transactions."""
    reader: sessionmaker[Session]
    """Sessions of pages that only read (``shared.db.read_session_factory``): never queued behind the workers' writes."""
    celery: Celery
    workers: LocalWorkers | None
    policy: Policy
    templates: Jinja2Templates
    meters: Meters
    launcher: Launcher
    throttle: Throttle
    metrics: CollectorRegistry
    biller: str
    flower_url: str

    @property
    def uploads(self) -> Path:
        return self.settings.home.resolve() / "console" / "uploads"


class Reply(Exception):  # noqa: N818 - not an error: a handler's answer that also undoes its transaction
    """Raised by a handler inside ``with sf.begin()`` to answer with ``response`` (a form shown again
    with what is wrong) and roll back what it changed."""

    def __init__(self, response: Response) -> None:
        super().__init__("reply")
        self.response = response


Handler = Callable[[Request, Console, SignedIn, FormData | None], Response]


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """An operator's page: signed in (else to the sign-in page), and for a POST a form that carries
    the session's CSRF token (else 403). The handler runs in a thread."""

    async def endpoint(request: Request) -> Response:
        console = console_of(request)
        form = None
        if request.method == "POST":
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > FORM_LIMIT:
                return await run_in_threadpool(error, request, console, None, 413, "Form too large",
                                               "This form sends more than a form of the console ever does.")
            try:
                form = await request.form(max_fields=500, max_part_size=FORM_LIMIT)
            except MultiPartException as exc:
                return await run_in_threadpool(error, request, console, None, 400, "Form not readable", str(exc))
        return await run_in_threadpool(serve, handler, request, console, form)

    return endpoint


def serve(handler: Handler, request: Request, console: Console, form: FormData | None) -> Response:
    who = find_session(console.reader, request.cookies.get(COOKIE))
    if who is None:
        if request.method == "GET":
            return RedirectResponse(f"/sign-in?next={quote(request.url.path)}", status_code=303)
        return error(request, console, None, 403, "Sign in first", "Your sign-in has ended; sign in and try again.")
    if form is not None:
        refusal = csrf_refusal(request, str(form.get("csrf", "")), who)
        if refusal:
            return error(request, console, who, 403, "Form refused", refusal)
    try:
        return handler(request, console, who, form)
    except Reply as reply:
        return reply.response
    except NotPermitted as exc:
        return error(request, console, who, 403, "Not permitted", str(exc))
    except ConfigError as exc:
        return error(request, console, who, 400, "That cannot be done", str(exc))


def csrf_refusal(request: Request, token: str, who: SignedIn) -> str | None:
    """Why a POST is refused, or None: its CSRF token must be the session's, and a browser that
    names the form's origin must name this console."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.rstrip("/") != f"{request.url.scheme}://{request.url.netloc}":
        return f"This form was sent from {origin}, not from this console."
    if not token or not hmac.compare_digest(token, who.csrf):
        return ("This form was sent without the console's security token (CSRF protection): reload the page and "
                "send it again.")
    return None


def render(request: Request, console: Console, who: SignedIn | None, name: str, status: int = 200,
           **context: Any) -> Response:
    operator = who.operator if who else None
    base = {
        "who": who, "csrf": who.csrf if who else "", "biller": console.biller, "flower_url": console.flower_url,
        "may_import": bool(operator) and console.policy.may(operator or "", IMPORT),
        "may_replay": bool(operator) and console.policy.may(operator or "", REPLAY),
        "may_discard": bool(operator) and console.policy.may(operator or "", DISCARD),
        "type_labels": TYPE_LABELS, "path": request.url.path,
        "workers_down": _workers_down(console),
    }
    return console.templates.TemplateResponse(request, name, {**base, **context}, status_code=status)


def _workers_down(console: Console) -> str | None:
    if console.workers is None:
        return None
    try:
        console.workers.check()
    except ConfigError as exc:
        return str(exc)
    return None


def error(request: Request, console: Console, who: SignedIn | None, status: int, title: str, message: str) -> Response:
    return render(request, console, who, "error.html", status=status, title=title, message=message)


def field(form: FormData | None, name: str) -> str:
    value = form.get(name) if form is not None else None
    return value.strip() if isinstance(value, str) else ""


def fields(form: FormData | None, name: str) -> list[str]:
    return [v.strip() for v in (form.getlist(name) if form is not None else []) if isinstance(v, str) and v.strip()]


def redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def templates() -> Jinja2Templates:
    env = Jinja2Templates(directory=str(TEMPLATES))
    env.env.filters["when"] = lambda d: d.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(d, datetime) else (d or "—")
    env.env.filters["n"] = lambda v: f"{v:,}" if isinstance(v, int) else v
    env.env.filters["basename"] = lambda p: Path(str(p)).name
    return env
