"""The Import screens, in the seed's order: biller, import type (only those the permission policy
allows, checked again on the server at every step), file, invoice types (autopay and paperless),
column mapping, account number and its order, pre-check, review and Start. Each screen's answer is
kept on the import (``console_imports``); a screen opens only once the ones before it are answered."""

from __future__ import annotations

import codecs
import secrets
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ops.mailer import require_mail
from ops.web import audit, drafts
from ops.web.auth import SignedIn, find_session
from ops.web.launcher import ImportOrder
from ops.web.pages import (
    COOKIE,
    Console,
    Reply,
    console_of,
    csrf_refusal,
    error,
    field,
    fields,
    page,
    redirect,
    render,
)
from ops.web.precheck import dry_run
from ops.web.uploads import UploadRefused, private_folder, receive_upload, remove_csv_files, sweep
from producer.readers.csv_profile import ENROLS, IMPORT_TYPES, Profile
from producer.staging import new_run_id
from shared.errors import ConfigError
from shared.schema.base import utcnow
from shared.schema.console import ConsoleImport
from shared.schema.target import ReferenceItem

ENCODINGS = ("utf-8", "latin-1", "cp1252", "utf-16")
ENROLMENT_WARNING = ("Every row is enrolled on each invoice type you select, even when the customer has no invoice "
                     "of that type.")


# -- loading an import ---------------------------------------------------------------------------


def _load(session: Session, console: Console, who: SignedIn, draft_id: str, lock: bool = False) -> ConsoleImport:
    """The operator's own open import, after the permission check for its type (403 when forged).
    ``lock``: row-locked, so two Starts sent at once start one run."""
    draft = session.get(ConsoleImport, draft_id, with_for_update=lock)
    if draft is not None and draft.operator == who.operator and draft.state == "started" and draft.run_id:
        raise Reply(redirect(f"/runs/{draft.run_id}"))  # started already: its run's page
    if draft is None or draft.operator != who.operator or draft.state != "open":
        raise HTTPException(404, "no such import in progress")
    if draft.import_type:
        console.policy.check_import(who.operator, draft.import_type)
    return draft


def _step(request: Request, console: Console, who: SignedIn, draft: ConsoleImport, step: str, template: str,
          status: int = 200, **context: Any) -> Response:
    if not drafts.reachable(draft, step):
        return redirect(f"/import/{draft.id}/{drafts.first_missing(draft)}")
    return render(request, console, who, template, status=status, draft=draft, step=step,
                  steps=drafts.steps_for(draft.import_type), **context)


def _touch(draft: ConsoleImport) -> None:
    draft.updated_at = utcnow()


def _folder(console: Console, draft: ConsoleImport) -> Path:
    return console.uploads / draft.id


# -- 1. biller -----------------------------------------------------------------------------------


@page
def biller_page(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    with console.reader() as session:
        mine = session.scalars(select(ConsoleImport).where(ConsoleImport.operator == who.operator,
                                                           ConsoleImport.state == "open")
                               .order_by(ConsoleImport.updated_at.desc()).limit(10)).all()
        unfinished = [(d, drafts.first_missing(d)) for d in mine]
    return render(request, console, who, "import_biller.html", step="biller", steps=drafts.steps_for(None),
                  billers=[console.biller], unfinished=unfinished, draft=None)


@page
def biller_post(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    if field(form, "biller") != console.biller:
        raise ConfigError(f"choose the biller this console imports for: {console.biller}")
    expire_idle(console)
    draft = ConsoleImport(id=secrets.token_hex(16), operator=who.operator, biller=console.biller)
    with console.sf.begin() as session:
        session.add(draft)
    return redirect(f"/import/{draft.id}/type")


def expire_idle(console: Console) -> None:
    """The keeping rule for uploads: imports left open for ``console_upload_hours`` expire, and
    every folder loses what its import no longer needs (``ops.web.uploads.sweep``)."""
    cutoff = utcnow() - timedelta(hours=console.settings.console_upload_hours)
    with console.sf.begin() as session:
        session.execute(update(ConsoleImport).where(ConsoleImport.state == "open", ConsoleImport.updated_at < cutoff)
                        .values(state="expired"))
        states = dict(session.execute(select(ConsoleImport.id, ConsoleImport.state)).tuples().all())
    sweep(console.uploads, states)


# -- 2. import type ------------------------------------------------------------------------------


@page
def type_page(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    with console.reader() as session:
        draft = _load(session, console, who, request.path_params["draft"])
        allowed = [t for t in IMPORT_TYPES if console.policy.may_import(who.operator, t)]
        return _step(request, console, who, draft, "type", "import_type.html", types=allowed,
                     limited=len(allowed) < len(IMPORT_TYPES))


@page
def type_post(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    chosen = field(form, "import_type")
    if chosen not in IMPORT_TYPES:
        raise ConfigError(f"import type {chosen!r} is not one of {', '.join(IMPORT_TYPES)}")
    with console.sf.begin() as session:
        draft = _load(session, console, who, request.path_params["draft"])
        console.policy.check_import(who.operator, chosen)
        if draft.import_type != chosen:
            draft.import_type = chosen
            drafts.forget_from(draft, "type")
        _touch(draft)
        return redirect(f"/import/{draft.id}/file")


# -- 3. file ---------------------------------------------------------------------------------------


def _file_context(console: Console, draft: ConsoleImport) -> dict[str, Any]:
    usable, unusable = [], []
    for named in drafts.named_profiles(console.settings.profiles_dir):
        if named.profile is None:
            unusable.append(named)
        elif named.profile.import_type == draft.import_type:
            usable.append(named)
    return {"profiles": usable, "unusable": unusable, "encodings": ENCODINGS,
            "limit_mb": console.settings.console_upload_max_mb, "profiles_dir": console.settings.profiles_dir}


@page
def file_page(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    with console.reader() as session:
        draft = _load(session, console, who, request.path_params["draft"])
        return _step(request, console, who, draft, "file", "import_file.html", **_file_context(console, draft))


async def file_post(request: Request) -> Response:
    """The upload: streamed to the import's private folder (``ops.web.uploads``), its CSRF token
    checked once the form is read, its header read with the chosen encoding."""
    console = console_of(request)
    who = await run_in_threadpool(find_session, console.reader, request.cookies.get(COOKIE))
    if who is None:
        return await run_in_threadpool(error, request, console, None, 403, "Sign in first",
                                       "Your sign-in has ended; sign in and upload the file again.")
    draft_id = request.path_params["draft"]
    refusal = await run_in_threadpool(_clear_upload, console, who, draft_id)
    if refusal is not None:
        return refusal
    folder = console.uploads / draft_id
    try:
        upload = await receive_upload(request, folder, console.settings.console_upload_max_mb)
    except UploadRefused as refused:
        return await run_in_threadpool(_file_refused, request, console, who, draft_id, refused.status, refused.message)
    problem = csrf_refusal(request, upload.fields.get("csrf", ""), who)
    if problem:
        remove_csv_files(folder)
        return await run_in_threadpool(error, request, console, who, 403, "Form refused", problem)
    return await run_in_threadpool(_file_taken, request, console, who, draft_id, upload.path, upload.file_name,
                                   upload.size, upload.fields)


def _clear_upload(console: Console, who: SignedIn, draft_id: str) -> Response | None:
    with console.sf.begin() as session:
        try:
            draft = _load(session, console, who, draft_id)
        except Reply as reply:
            return reply.response
        if not draft.import_type:
            return redirect(f"/import/{draft.id}/type")
        draft.file_path = draft.file_name = None
        draft.headers, draft.file_size = [], None
        drafts.forget_from(draft, "file")
        _touch(draft)
    remove_csv_files(console.uploads / draft_id)
    return None


def _file_refused(request: Request, console: Console, who: SignedIn, draft_id: str, status: int, message: str) -> Response:
    with console.reader() as session:
        draft = _load(session, console, who, draft_id)
        return _step(request, console, who, draft, "file", "import_file.html", status=status, error=message,
                     **_file_context(console, draft))


def _file_taken(request: Request, console: Console, who: SignedIn, draft_id: str, path: Path | None,
                file_name: str | None, size: int, form: dict[str, str]) -> Response:
    """Read the uploaded file's header (in the chosen encoding, else the chosen profile's, else UTF-8)
    and, when a saved profile was chosen, take its answers."""
    assert path is not None and file_name is not None
    lacking: list[str] = []
    try:
        with console.sf.begin() as session:
            draft = _load(session, console, who, draft_id)
            chosen = _named_profile(console, form["profile"], draft.import_type or "") if form.get("profile") else None
            encoding = form.get("encoding") or (chosen.encoding if chosen else None)
            if encoding is not None:
                codecs.lookup(encoding)
            draft.file_path, draft.file_name, draft.file_size = str(path), file_name, size
            draft.headers, draft.encoding = drafts.headers_of(path, encoding), encoding
            if chosen is not None:
                lacking = drafts.apply_profile(draft, chosen)
            _touch(draft)
            following = "invoice-types" if draft.import_type in ENROLS else "mapping"
    except (ConfigError, LookupError) as exc:
        remove_csv_files(path.parent)
        message = str(exc).replace(str(path), file_name).replace("with --encoding", "in the Encoding field")
        return _file_refused(request, console, who, draft_id, 400, f"{message} — nothing was kept; choose the file again.")
    if lacking:
        with console.reader() as session:
            draft = _load(session, console, who, draft_id)
            return _step(request, console, who, draft, "file", "import_file.html", lacking=lacking, following=following,
                         **_file_context(console, draft))
    return redirect(f"/import/{draft_id}/{following}")


def _named_profile(console: Console, name: str, import_type: str) -> Profile:
    for named in drafts.named_profiles(console.settings.profiles_dir):
        if named.name == name and named.profile is not None and named.profile.import_type == import_type:
            return named.profile
    raise ConfigError(f"no usable {import_type} profile named {name!r} in {console.settings.profiles_dir}")


# -- 4. invoice types ------------------------------------------------------------------------------


def _invoice_types(session: Session) -> list[str]:
    return list(session.scalars(select(ReferenceItem.name).where(ReferenceItem.kind == "InvoiceType")
                                .order_by(ReferenceItem.name)))


@page
def invoice_types_page(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    with console.reader() as session:
        draft = _load(session, console, who, request.path_params["draft"])
        if draft.import_type not in ENROLS:
            return redirect(f"/import/{draft.id}/mapping")
        known = _invoice_types(session)
        return _step(request, console, who, draft, "invoice-types", "import_invoice_types.html", known=known,
                     warning=ENROLMENT_WARNING, unknown=[t for t in draft.invoice_types if t not in known])


@page
def invoice_types_post(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    with console.sf.begin() as session:
        draft = _load(session, console, who, request.path_params["draft"])
        known = _invoice_types(session)
        chosen = [t for t in fields(form, "invoice_type") if t in known]
        if not chosen:
            raise Reply(_step(request, console, who, draft, "invoice-types", "import_invoice_types.html", status=400,
                              known=known, warning=ENROLMENT_WARNING, unknown=[],
                              error="Select at least one invoice type."))
        draft.invoice_types = chosen
        drafts.forget_from(draft, "invoice-types")
        _touch(draft)
        return redirect(f"/import/{draft.id}/mapping")


# -- 5. column mapping -----------------------------------------------------------------------------


@page
def mapping_page(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    with console.reader() as session:
        draft = _load(session, console, who, request.path_params["draft"])
        guessed = False
        if not draft.columns and draft.file_path and draft.import_type:
            draft.columns, _ = drafts.guess(Path(draft.file_path), draft.import_type, draft.encoding)
            guessed = True
        # the guess is a suggestion until the operator sends the form: this session is never committed
        return _step(request, console, who, draft, "mapping", "import_mapping.html", rows=drafts.field_rows(draft),
                     guessed=guessed)


@page
def mapping_post(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    with console.sf.begin() as session:
        draft = _load(session, console, who, request.path_params["draft"])
        if not draft.import_type or not drafts.reachable(draft, "mapping"):
            return redirect(f"/import/{draft.id}/{drafts.first_missing(draft)}")
        columns = {}
        for row in drafts.field_rows(draft):
            header = field(form, f"col_{row['name']}")
            if header and header not in draft.headers:
                raise ConfigError(f"{row['name']}: {header!r} is not a column of {draft.file_name}")
            if header:
                columns[row["name"]] = header
        draft.columns = columns
        try:
            drafts.check_columns(draft.import_type, columns)
        except ConfigError as exc:
            raise Reply(_step(request, console, who, draft, "mapping", "import_mapping.html", status=400,
                              rows=drafts.field_rows(draft), error=str(exc))) from None
        drafts.forget_from(draft, "mapping")
        _touch(draft)
        return redirect(f"/import/{draft.id}/account-number")


# -- 6. account number, 7. its order ---------------------------------------------------------------


def _part_rows(draft: ConsoleImport) -> list[dict[str, str]]:
    rows = [{"choice": f"col:{p['column']}" if "column" in p else "literal", "literal": p.get("literal", "")}
            for p in draft.parts]
    return rows + [{"choice": "", "literal": ""}] * (drafts.MAX_PARTS - len(rows))


@page
def account_page(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    with console.reader() as session:
        draft = _load(session, console, who, request.path_params["draft"])
        if not draft.parts and draft.file_path and draft.import_type:
            _, draft.parts = drafts.guess(Path(draft.file_path), draft.import_type, draft.encoding)
        return _step(request, console, who, draft, "account-number", "import_account.html", rows=_part_rows(draft))


@page
def account_post(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    with console.sf.begin() as session:
        draft = _load(session, console, who, request.path_params["draft"])
        if not drafts.reachable(draft, "account-number"):
            return redirect(f"/import/{draft.id}/{drafts.first_missing(draft)}")
        parts: list[dict[str, str]] = []
        for index in range(drafts.MAX_PARTS):
            choice = field(form, f"part{index}")
            literal = form.get(f"literal{index}") if form is not None else None
            if choice.startswith("col:") and choice[4:] in draft.headers:
                parts.append({"column": choice[4:]})
            elif choice == "literal" and isinstance(literal, str) and literal:
                parts.append({"literal": literal[:64]})
        draft.prefix, draft.parts = field(form, "prefix")[:64], parts
        try:
            drafts.check_parts(draft)
        except ConfigError as exc:
            raise Reply(_step(request, console, who, draft, "account-number", "import_account.html", status=400,
                              rows=_part_rows(draft), error=str(exc))) from None
        drafts.forget_from(draft, "account-number")
        _touch(draft)
        return redirect(f"/import/{draft.id}/order")


@page
def order_page(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    with console.reader() as session:
        draft = _load(session, console, who, request.path_params["draft"])
        return _step(request, console, who, draft, "order", "import_order.html", preview=drafts.preview_numbers(draft))


@page
def order_post(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    """Put the parts in the chosen order, build the profile, and run the pre-check (a dry run, in a
    transaction of its own: SQLite allows one writer at a time)."""
    with console.sf.begin() as session:
        draft = _load(session, console, who, request.path_params["draft"])
        if not drafts.reachable(draft, "order"):
            return redirect(f"/import/{draft.id}/{drafts.first_missing(draft)}")
        positions = []
        for index, part in enumerate(draft.parts):
            wanted = field(form, f"pos{index}")
            positions.append((int(wanted) if wanted.isdigit() else index + 1, index, part))
        draft.parts = [part for _, _, part in sorted(positions, key=lambda p: (p[0], p[1]))]
        try:
            profile = drafts.build_profile(draft)
        except ConfigError as exc:
            raise Reply(_step(request, console, who, draft, "order", "import_order.html", status=400,
                              preview=drafts.preview_numbers(draft), error=str(exc))) from None
        folder = private_folder(_folder(console, draft))
        drafts.write_profile(profile, folder / drafts.PROFILE_FILE, f"the mapping of import {draft.id} ({draft.file_name})")
        assert draft.file_path is not None and draft.file_name is not None
        path, name, encoding = Path(draft.file_path), draft.file_name, draft.encoding
        draft.precheck = None
        _touch(draft)
    result = dry_run(console.settings, path, name, profile, encoding)
    with console.sf.begin() as session:
        draft = _load(session, console, who, request.path_params["draft"])
        draft.precheck = result
    return redirect(f"/import/{draft.id}/precheck")


# -- 8. pre-check, 9. review and start -------------------------------------------------------------


@page
def precheck_page(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    with console.reader() as session:
        draft = _load(session, console, who, request.path_params["draft"])
        return _step(request, console, who, draft, "precheck", "import_precheck.html", result=draft.precheck or {})


def _review(request: Request, console: Console, who: SignedIn, draft: ConsoleImport, status: int = 200,
            error: str | None = None) -> Response:
    return _step(request, console, who, draft, "review", "import_review.html", status=status, error=error,
                 result=draft.precheck or {}, mail_on=bool(console.settings.smtp_host),
                 profiles_dir=console.settings.profiles_dir)


@page
def review_page(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    with console.reader() as session:
        draft = _load(session, console, who, request.path_params["draft"])
        return _review(request, console, who, draft)


@page
def start_post(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    """Start: the run is staged in the background (``ops.web.launcher``) and the operator goes to its page."""
    run_id = new_run_id()
    profile_name = field(form, "profile_name")
    with console.sf.begin() as session:
        draft = _load(session, console, who, request.path_params["draft"], lock=True)
        if drafts.first_missing(draft) != "review":
            return redirect(f"/import/{draft.id}/{drafts.first_missing(draft)}")
        assert draft.import_type and draft.file_path and draft.file_name
        console.policy.check_import(who.operator, draft.import_type)
        draft.create_missing = field(form, "create_missing") == "on"
        draft.email = field(form, "email") or None
        try:
            if draft.email:
                require_mail(console.settings, draft.email)
            profile = drafts.build_profile(draft)
            saved = (drafts.save_named(console.settings.profiles_dir, profile_name, profile, who.operator, utcnow(),
                                       field(form, "replace_profile") == "on") if profile_name else None)
        except ConfigError as exc:
            raise Reply(_review(request, console, who, draft, status=400,
                                error=str(exc).replace("--email", "e-mail"))) from None
        profile_path = drafts.write_profile(profile, private_folder(_folder(console, draft)) / drafts.PROFILE_FILE,
                                            f"the mapping of run {run_id} ({draft.file_name})")
        draft.state, draft.run_id = "started", run_id
        _touch(draft)
        choices = ", ".join(filter(None, ["creating missing customers" if draft.create_missing else "",
                                          f"report to {draft.email}" if draft.email else ""]))
        summary = (f"started a {draft.import_type} import of {draft.file_name} for {draft.biller}"
                   + (f" ({choices})" if choices else ""))
        detail = {"import_type": draft.import_type, "file": draft.file_name, "biller": draft.biller,
                  "invoice_types": draft.invoice_types, "create_missing": draft.create_missing, "email": draft.email,
                  "profile": saved.name if saved else None, "precheck": (draft.precheck or {}).get("lines", [])}
        order = ImportOrder(run_id, who.operator, Path(draft.file_path), draft.file_name, profile_path, draft.encoding,
                            draft.create_missing, draft.email, 0)
    if saved is not None:
        audit.record(console.sf, who.operator, audit.PROFILE, run_id, f"saved the mapping as profile {saved.name}",
                     {"path": str(saved), "import_type": detail["import_type"]})
    audit_id = audit.record(console.sf, who.operator, audit.START, run_id, summary, detail)
    console.launcher.start_import(replace(order, audit_id=audit_id))
    return redirect(f"/runs/{run_id}")


@page
def cancel_post(request: Request, console: Console, who: SignedIn, form: FormData | None) -> Response:
    with console.sf.begin() as session:
        draft = _load(session, console, who, request.path_params["draft"])
        draft.state = "cancelled"
        _touch(draft)
    expire_idle(console)
    return redirect("/")
