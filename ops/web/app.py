"""The console's ASGI application: routes, sign-in and sign-out, the start page, /metrics, error
pages, security headers and static assets (shipped in the package)."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ops.web import import_pages as imp
from ops.web import run_pages as runs
from ops.web.auth import SignedIn, close_session, find_session, open_session, verify
from ops.web.pages import COOKIE, FORM_LIMIT, STATIC, Console, console_of, error, field, page, redirect, render
from ops.web.runview import ACTIVE
from ops.web.security import SecurityHeaders
from shared.schema.control import Run

log = logging.getLogger("cutover.console")
PRE_COOKIE = "cutover_console_signin"
"""Holds the sign-in form's CSRF token (double submit) before any session exists."""


def _safe_next(target: str | None) -> str:
    """Only a path of this console: never another site after signing in."""
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return "/"
    return target


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int, path: str = "/") -> None:
    response.set_cookie(name, value, max_age=max_age, path=path, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def _sign_in_form(request: Request, console: Console, status: int = 200, message: str | None = None,
                  target: str | None = None) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(request, console, None, "sign_in.html", status=status, pre=token, error=message,
                      next=_safe_next(target or request.query_params.get("next")))
    _cookie(response, request, PRE_COOKIE, token, 3600, path="/sign-in")
    return response


async def sign_in_page(request: Request) -> Response:
    console = console_of(request)
    who = await run_in_threadpool(find_session, console.reader, request.cookies.get(COOKIE))
    if who is not None:
        return redirect(_safe_next(request.query_params.get("next")))
    return await run_in_threadpool(_sign_in_form, request, console)


async def sign_in_post(request: Request) -> Response:
    console = console_of(request)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > FORM_LIMIT:
        return await run_in_threadpool(error, request, console, None, 413, "Form too large", "This is not a sign-in.")
    form = await request.form(max_fields=10, max_part_size=4096)
    return await run_in_threadpool(_sign_in, request, console, form)


def _sign_in(request: Request, console: Console, form: FormData) -> Response:
    pre = request.cookies.get(PRE_COOKIE, "")
    if not pre or not hmac.compare_digest(pre, field(form, "csrf")):
        return error(request, console, None, 403, "Form refused",
                     "The sign-in form was sent without its security token (CSRF protection): reload the page and sign in.")
    name, password = field(form, "name"), str(form.get("password") or "")
    target = _safe_next(field(form, "next"))
    if console.throttle.blocked(name):
        return _sign_in_form(request, console, 429, "Too many failed sign-ins for this name: wait 15 minutes.", target)
    operator = verify(console.sf, name, password)
    if operator is None:
        console.throttle.failed(name)
        log.warning("failed sign-in for %r from %s", name, request.client.host if request.client else "?")
        return _sign_in_form(request, console, 401, "That name and password do not match an operator of this console.",
                             target)
    console.throttle.succeeded(name)
    token = open_session(console.sf, operator, console.settings.console_session_hours)
    response = RedirectResponse(target, status_code=303)
    _cookie(response, request, COOKIE, token, console.settings.console_session_hours * 3600)
    response.delete_cookie(PRE_COOKIE, path="/sign-in")
    return response


@page
def sign_out(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    close_session(console.sf, who.token_hash)
    response = redirect("/sign-in")
    response.delete_cookie(COOKIE, path="/")
    return response


@page
def home(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    with console.reader() as session:
        active = session.scalar(select(func.count()).select_from(Run).where(Run.state.in_(ACTIVE)))
        finished = session.scalar(select(func.count()).select_from(Run).where(Run.state.notin_(ACTIVE)))
    return render(request, console, who, "home.html", active=active, finished=finished)


async def metrics(request: Request) -> Response:
    """Prometheus text format, for a signed-in operator or a scraper holding ``console_metrics_token``."""
    console = console_of(request)
    token = console.settings.console_metrics_token
    bearer = request.headers.get("authorization", "")
    allowed = bool(token) and hmac.compare_digest(bearer, f"Bearer {token}")
    if not allowed:
        allowed = await run_in_threadpool(find_session, console.reader, request.cookies.get(COOKIE)) is not None
    if not allowed:
        return PlainTextResponse("sign in, or send the metrics token as 'Authorization: Bearer …'\n", status_code=401,
                                 headers={"WWW-Authenticate": 'Bearer realm="cutover console"'})
    body = await run_in_threadpool(generate_latest, console.metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def http_error(request: Request, exc: Exception) -> Response:
    console = console_of(request)
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "unexpected error"
    who = await run_in_threadpool(find_session, console.reader, request.cookies.get(COOKIE))
    titles = {400: "That cannot be done", 403: "Not permitted", 404: "Not found", 405: "Not allowed"}
    return await run_in_threadpool(error, request, console, who, status, titles.get(status, "Error"), str(detail))


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    console = console_of(request)
    return await run_in_threadpool(error, request, console, None, 500, "Unexpected error",
                                   "Something went wrong in the console; the console's log says what. Nothing was changed "
                                   "by this page.")


def build_app(console: Console) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        console.launcher.stopping.set()
        await run_in_threadpool(console.launcher.wait_idle, 10.0)

    step = "/import/{draft:str}"
    routes = [
        Route("/", home),
        Route("/healthz", healthz),
        Route("/sign-in", sign_in_page, methods=["GET"]),
        Route("/sign-in", sign_in_post, methods=["POST"]),
        Route("/sign-out", sign_out, methods=["POST"]),
        Route("/import", imp.biller_page, methods=["GET"]),
        Route("/import", imp.biller_post, methods=["POST"]),
        Route(f"{step}/type", imp.type_page, methods=["GET"]),
        Route(f"{step}/type", imp.type_post, methods=["POST"]),
        Route(f"{step}/file", imp.file_page, methods=["GET"]),
        Route(f"{step}/file", imp.file_post, methods=["POST"]),
        Route(f"{step}/invoice-types", imp.invoice_types_page, methods=["GET"]),
        Route(f"{step}/invoice-types", imp.invoice_types_post, methods=["POST"]),
        Route(f"{step}/mapping", imp.mapping_page, methods=["GET"]),
        Route(f"{step}/mapping", imp.mapping_post, methods=["POST"]),
        Route(f"{step}/account-number", imp.account_page, methods=["GET"]),
        Route(f"{step}/account-number", imp.account_post, methods=["POST"]),
        Route(f"{step}/order", imp.order_page, methods=["GET"]),
        Route(f"{step}/order", imp.order_post, methods=["POST"]),
        Route(f"{step}/precheck", imp.precheck_page, methods=["GET"]),
        Route(f"{step}/review", imp.review_page, methods=["GET"]),
        Route(f"{step}/start", imp.start_post, methods=["POST"]),
        Route(f"{step}/cancel", imp.cancel_post, methods=["POST"]),
        Route("/runs", runs.runs_page),
        Route("/runs/{run_id:str}", runs.run_page),
        Route("/runs/{run_id:str}/live", runs.run_live),
        Route("/runs/{run_id:str}/letters", runs.letters_post, methods=["POST"]),
        Route("/runs/{run_id:str}/letters/discard", runs.discard_post, methods=["POST"]),
        Route("/runs/{run_id:str}/{kind:str}", runs.download),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)], lifespan=lifespan,
                    exception_handlers={HTTPException: http_error, 500: server_error})
    app.state.console = console
    return app
