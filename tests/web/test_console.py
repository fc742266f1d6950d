"""The web console in a real headless Chromium, against real Redis, real worker processes, SQLite and
PostgreSQL: an operator with the import permission runs the example registration, autopay (missing
accounts, continued with create-missing) and paperless (Latin-1, through a profile written for the
command line) imports through every screen, watches the run pages reach the end, downloads the
reports, and replays a dead letter once its cause is fixed (with a profile the console saved, run by
the command line); the counts are the examples' README's. An operator without the permission sees
and reaches only Paperless; forged requests, forms without their CSRF token and oversized uploads
are refused; no card or bank account number of the files reaches the browser or the e-mail.

Screenshots of every screen: tests/web/artifacts/<test>/."""

from __future__ import annotations

import csv
import email
import html
import io
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from email import policy
from pathlib import Path
from typing import Any

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Cluster
from tests.web.conftest import PASSWORD, ConsoleProcess, Operator, add_operator

pytestmark = [pytest.mark.slow, pytest.mark.browser]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "csv"
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
COLUMNS = ("read", "committed", "skipped", "dead", "blocked")
OPERATORS = "alice=import+replay+discard; bob="
RUN_TIMEOUT = 180_000


# -- what the files hold that must never be shown -------------------------------------------------------


def planted_numbers() -> list[str]:
    """Every card and bank account number of autopay.csv, as written and as digits only."""
    with open(EXAMPLES / "autopay.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    written = [r[c].strip() for r in rows for c in ("Card Number", "Bank Account") if r[c].strip()]
    digits = ["".join(ch for ch in n if ch.isdigit()) for n in written]
    numbers = sorted(set(written) | set(digits))
    assert len(numbers) >= 24 and "4111 1111 1111 1111" in numbers and "4111111111111111" in numbers
    return numbers


def assert_no_secrets(texts: list[tuple[str, str]], numbers: list[str]) -> None:
    assert texts, "nothing was captured"
    for where, text in texts:
        for number in numbers:
            assert number not in text, f"{number!r} reached the browser in {where}"


# -- page helpers ---------------------------------------------------------------------------------------


def counts(op: Operator) -> dict[str, tuple[int, ...]]:
    """The counts table of a run page: entity → (read, committed, skipped, dead, blocked)."""
    out = {}
    for row in op.page.locator("table.counts tbody tr:not(.wave)").all():
        cells = [c.inner_text().strip().replace(",", "") for c in row.locator("td").all()]
        out[cells[1]] = tuple(int(v) for v in cells[2:7])
    return out


def wait_completed(op: Operator) -> None:
    """The run page updates itself (live.js) and shows the completed view when the run ends."""
    op.page.wait_for_selector("h3:has-text('Reconciliation')", timeout=RUN_TIMEOUT)


def run_id_of(op: Operator) -> str:
    return op.page.url.rstrip("/").split("/runs/")[1].split("?")[0]


def live_fragments(op: Operator, run_id: str) -> list[str | None]:
    """The live parts of a run's page the browser fetched (None: the page reloaded before it kept the body)."""
    return [body.decode() if body is not None else None for url, status, _, body in op.seen.responses
            if url.endswith(f"/runs/{run_id}/live") and status == 200]


def plain(answer: Any) -> str:
    """A response's text with HTML entities resolved."""
    return html.unescape(answer.text())


def run_of(cluster: Cluster, file_name: str) -> str:
    """The run that read ``file_name`` (``files`` is JSON: matched here, not in SQL)."""
    return str(next(run for run, files in cluster.query("SELECT id, files FROM runs ORDER BY created_at")
                    if file_name in str(files)))


def begin_import(op: Operator, import_type: str) -> str:
    """Import → biller → import type: returns the import's id."""
    op.goto("/")
    op.page.click("a.choice:has-text('Import')")
    op.shot(f"{import_type}-biller")
    op.page.click("button:has-text('Continue')")
    op.page.check(f"input[name=import_type][value={import_type}]")
    op.shot(f"{import_type}-type")
    op.page.click("button:has-text('Continue')")
    assert op.page.url.endswith("/file"), op.page.url
    return op.page.url.split("/import/")[1].split("/")[0]


def upload(op: Operator, path: Path, profile: str = "", encoding: str = "") -> None:
    op.page.set_input_files("input[type=file]", str(path))
    if profile:
        op.page.select_option("select[name=profile]", profile)
    if encoding:
        op.page.select_option("select[name=encoding]", encoding)
    op.shot(f"{path.stem}-file")
    op.page.click("button:has-text('Upload')")


def through_precheck(op: Operator, name: str) -> str:
    """Order → pre-check: returns the pre-check page's text."""
    op.shot(f"{name}-order")
    op.page.click("button:has-text('Continue to the pre-check')")
    op.page.wait_for_url("**/precheck")
    op.shot(f"{name}-precheck")
    return str(op.page.inner_text("main"))


def start(op: Operator, name: str, create_missing: bool = False, email: str = "", profile_name: str = "") -> str:
    """Pre-check → review → Start; returns the run id once the run page shows the end."""
    op.page.click("a:has-text('Continue')")
    op.page.wait_for_url("**/review")
    if create_missing:
        op.page.check("input[name=create_missing]")
    if email:
        op.page.fill("input[name=email]", email)
    if profile_name:
        op.page.fill("input[name=profile_name]", profile_name)
    op.shot(f"{name}-review")
    op.page.click("button:has-text('Start')")
    op.page.wait_for_url("**/runs/r*")
    run_id = run_id_of(op)
    op.shot(f"{name}-run-in-progress")
    wait_completed(op)
    op.shot(f"{name}-run-completed")
    assert live_fragments(op, run_id), "the run page fetched its live part while the run went on"
    return run_id


# -- SMTP -------------------------------------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        raw = envelope.original_content or envelope.content
        self.messages.append(raw if isinstance(raw, bytes) else raw.encode())
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- 1. the three imports, reports, replay ---------------------------------------------------------------


def test_an_operator_imports_the_examples_through_every_screen(cluster: Cluster, start_console: Any,
                                                               operators: Any, tmp_path: Path) -> None:
    from aiosmtpd.controller import Controller

    cluster.start_worker()
    done = cluster.cli("run", str(EXAMPLES / "reference.xml"))
    assert done.returncode == 0, done.stdout + done.stderr
    profiles = cluster.home / "profiles"
    profiles.mkdir()
    shutil.copy(EXAMPLES / "paperless.json", profiles / "paperless.json")  # written for `--profile`, opened here
    add_operator(cluster.home, {**cluster.env, "CUTOVER_OPERATORS": OPERATORS}, "alice")
    inbox, smtp_port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        console = start_console(CUTOVER_OPERATORS=OPERATORS, CUTOVER_SMTP_HOST="127.0.0.1",
                                CUTOVER_SMTP_PORT=str(smtp_port), CUTOVER_SMTP_STARTTLS="never",
                                CUTOVER_MAIL_FROM="cutover@example.com", CUTOVER_CONSOLE_BILLER="Millbrook Water & Sewer")
        alice = operators(console, "alice")
        alice.sign_in()
        alice.shot("home")
        assert "Biller Customer Imports" in alice.page.inner_text("h1")
        cookie = next(c for c in alice.context.cookies() if c["name"] == "cutover_console")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

        # registration: the mapping guessed from the header, the account number built and put in order
        begin_import(alice, "registration")
        upload(alice, EXAMPLES / "registration.csv")
        alice.page.wait_for_url("**/mapping")
        assert alice.page.input_value("select[name=col_name]") == "Customer Name"
        assert alice.page.locator("tr:has(label[for=col_login]) .req").count() == 1, "required fields are marked"
        alice.shot("registration-mapping")
        alice.page.click("button:has-text('Continue')")
        alice.page.wait_for_url("**/account-number")
        alice.page.fill("input[name=prefix]", "WTR-")
        alice.page.select_option("select[name=part0]", "col:District")  # in the wrong order on purpose
        alice.page.select_option("select[name=part1]", "literal")
        alice.page.fill("input[name=literal1]", "-")
        alice.page.select_option("select[name=part2]", "col:Account Number")
        alice.shot("registration-account-number")
        alice.page.click("button:has-text('Continue')")
        alice.page.wait_for_url("**/order")
        assert "WTR-01-104417" in alice.page.inner_text("main")
        alice.page.select_option("select[name=pos0]", "3")
        alice.page.select_option("select[name=pos2]", "1")
        text = through_precheck(alice, "registration")
        assert "pre-check (registration): 41 row(s): 37 to load, 3 refused at read, 1 repeated" in text
        assert "eleanor.grady.example.com" in text and "login is empty" in text
        registration = start(alice, "registration", profile_name="registration-console")
        assert counts(alice) == {"Registration": (41, 36, 1, 4, 0)}
        assert "WTR-104417-01" in [r[0] for r in cluster.query("SELECT name FROM accounts")]

        # autopay: three account numbers missing, continued with create-missing, the report e-mailed
        begin_import(alice, "autopay")
        upload(alice, EXAMPLES / "autopay.csv")
        alice.page.wait_for_url("**/invoice-types")
        assert "enrolled on each invoice type you select" in alice.page.inner_text("main")
        alice.page.check("input[name=invoice_type][value='Water Bill']")
        alice.page.check("input[name=invoice_type][value='Sewer Bill']")
        alice.shot("autopay-invoice-types")
        alice.page.click("button:has-text('Continue')")
        alice.page.wait_for_url("**/mapping")
        assert alice.page.input_value("select[name=col_card_number]") == "Card Number"
        assert alice.page.input_value("select[name=col_bank_account_number]") == "Bank Account"
        alice.shot("autopay-mapping")
        alice.page.click("button:has-text('Continue')")
        alice.page.fill("input[name=prefix]", "WTR-")
        assert alice.page.input_value("select[name=part0]") == "col:Account Number", "guessed as profile init does"
        alice.page.select_option("select[name=part1]", "literal")
        alice.page.fill("input[name=literal1]", "-")
        alice.page.select_option("select[name=part2]", "col:District")
        alice.shot("autopay-account-number")
        alice.page.click("button:has-text('Continue')")
        text = through_precheck(alice, "autopay")
        assert "pre-check (autopay): 25 row(s): 20 to load, 5 refused at read, 0 repeated" in text
        assert "Missing account numbers (3 row(s))" in text
        for number in ("WTR-109901-01", "WTR-109905-02", "WTR-109912-03"):
            assert number in text
        assert "«secret»" in text, "the Luhn failure of line 7 shows its value masked"
        autopay = start(alice, "autopay", create_missing=True, email="ops@example.com")
        assert counts(alice) == {"Autopay": (25, 20, 0, 5, 0)}

        # paperless: Latin-1, through the profile written for the command line
        begin_import(alice, "paperless")
        upload(alice, EXAMPLES / "paperless.csv", profile="paperless")
        alice.page.wait_for_url("**/invoice-types")
        assert alice.page.is_checked("input[name=invoice_type][value='Water Bill']")
        assert alice.page.is_checked("input[name=invoice_type][value='Trash Bill']")
        assert not alice.page.is_checked("input[name=invoice_type][value='Sewer Bill']")
        alice.page.click("button:has-text('Continue')")
        alice.shot("paperless-mapping")
        alice.page.click("button:has-text('Continue')")
        assert alice.page.input_value("input[name=prefix]") == "WTR-"
        alice.shot("paperless-account-number")
        alice.page.click("button:has-text('Continue')")
        text = through_precheck(alice, "paperless")
        assert "pre-check (paperless): 20 row(s): 19 to load, 1 refused at read, 0 repeated" in text
        assert "WTR-109960-02" in text and "WTR-109975-04" in text
        paperless = start(alice, "paperless")
        assert counts(alice) == {"Paperless": (20, 17, 0, 3, 0)}
        payloads = [json.loads(p) if isinstance(p, str) else p for (p,) in
                    cluster.query("SELECT payload FROM staged_records WHERE run_id = :r", r=paperless)]
        names = {p.get("name") for p in payloads}
        assert {"Agnès Høgberg", "Günther Brüning", "Renée Lachapelle"} <= names, "Latin-1 read as Latin-1"

        # the examples' README: what the target holds after the three imports
        assert cluster.query("SELECT count(*) FROM accounts")[0][0] == 39
        assert cluster.query("SELECT count(*) FROM logins WHERE is_owner")[0][0] == 39
        assert cluster.query("SELECT kind, count(*) FROM payment_methods GROUP BY kind ORDER BY kind") == [("ach", 9),
                                                                                                          ("card", 11)]
        assert cluster.query("SELECT kind, count(*) FROM enrolments GROUP BY kind ORDER BY kind") == [("autopay", 40),
                                                                                                     ("paperless", 34)]

        # reports: the same bytes as `cutover report`, error rows as the e-mail attaches them
        _, report_csv = alice.download("Per-record report (CSV)")
        _, report_jsonl = alice.download("Per-record report (JSON Lines)")
        errors_name, errors_csv = alice.download("Rows that did not load (CSV)")
        out = tmp_path / "cli-report"
        done = cluster.cli("report", paperless, "--out", str(out))
        assert done.returncode == 0, done.stderr
        assert report_csv == (out / f"{paperless}.csv").read_bytes()
        assert report_jsonl == (out / f"{paperless}.jsonl").read_bytes()
        assert errors_name == f"{paperless}-errors.csv"
        error_rows = list(csv.DictReader(io.StringIO(errors_csv.decode())))
        assert sorted((r["line"], r["error_class"]) for r in error_rows) == [
            ("10", "UnknownReference"), ("12", "InvalidValue"), ("18", "UnknownReference")]

        # the cause fixed from the command line with the profile the console saved, then a replay
        fix = tmp_path / "fix-registration.csv"
        fix.write_text("Account Number,District,Customer Name,Login,E-mail,Phone,Service Address,Meter Size\n"
                       "109960,02,Agnès Høgberg,ahogberg,agnes.hogberg@example.com,802-555-0190,1 Elm Row,5/8\n",
                       encoding="utf-8")
        saved = cluster.home / "profiles" / "registration-console.yaml"
        assert "saved in the web console by alice" in saved.read_text()
        done = cluster.cli("run", str(fix), "--profile", str(saved))
        assert done.returncode == 0, done.stdout + done.stderr
        alice.goto(f"/runs/{paperless}")
        letter = alice.page.locator("tr:has(td:text-is('WTR-109960-02')) input[name=letter]")
        letter.check()
        alice.shot("paperless-dead-letters")
        alice.page.locator("form.group:has(input[name=letter]:checked) button[value=replay]").click()
        alice.page.wait_for_url("**/runs/x*")
        wait_completed(alice)
        alice.shot("replay-completed")
        assert counts(alice) == {"Paperless": (1, 1, 0, 0, 0)}
        alice.goto(f"/runs/{paperless}")
        assert counts(alice) == {"Paperless": (20, 18, 0, 2, 0)}

        # discard the other missing account's letter, after the confirmation page
        alice.page.locator("tr:has(td:text-is('WTR-109975-04')) input[name=letter]").check()
        alice.page.locator("form.group:has(input[name=letter]:checked) button[value=discard]").click()
        assert "Discard 1 dead letter(s)?" in alice.page.inner_text("h1")
        alice.shot("discard-confirm")
        alice.page.click("button:has-text('Discard 1 dead letter')")
        alice.page.wait_for_url(f"**/runs/{paperless}?done=discarded")
        audit = alice.page.inner_text("section:has(h2:text-is('Audit'))")
        alice.shot("paperless-audit")
        assert "started a paperless import of paperless.csv for Millbrook Water & Sewer" in audit
        assert "replayed 1 record(s) as x" in audit and "discarded 1 dead letter(s)" in audit
        assert audit.count("alice") >= 3
        assert cluster.query("SELECT operator, action FROM console_audit WHERE run_id = :r ORDER BY id", r=paperless) == [
            ("alice", "start"), ("alice", "replay"), ("alice", "discard")]

        # an engageip run started from the command line shows on the in-progress and completed pages too
        alice.goto("/runs?view=completed")
        alice.shot("completed-list")
        listed = alice.page.inner_text("table.runs")
        for run in (registration, autopay, paperless):
            assert run in listed
        reference = run_of(cluster, "reference.xml")
        alice.goto(f"/runs/{reference}")
        assert counts(alice) == {"InvoiceType": (3, 3, 0, 0, 0)}
        assert "(command line)" in alice.page.inner_text("dl.facts")

        # the e-mailed report arrived; nothing seen holds a card or bank account number
        deadline = time.monotonic() + 60
        while not inbox.messages and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    message = email.message_from_bytes(inbox.messages[0], policy=policy.default)
    assert str(message["Subject"]).startswith(f"cutover run {autopay} completed: 25 read, 20 committed, 0 skipped, 5 dead")
    mail = "\n".join(str(part.get_content()) for part in message.walk() if part.get_content_maintype() == "text")
    assert "card_number" in mail and "«secret»" in mail, "the attachment lists the Luhn failure, masked"
    numbers = planted_numbers()
    assert_no_secrets(alice.everything_seen() + [("e-mail", mail)], numbers)
    pages = [url for url, status, kind, body in alice.seen.responses if kind.startswith("text/html") and status == 200]
    assert len(pages) > 40, "every page of the three imports was seen"
    assert not [e for e in alice.errors if "Content Security Policy" in e or "Uncaught" in e], alice.errors


# -- 2. what an operator may not do ------------------------------------------------------------------------


@SQLITE_ONLY
def test_permissions_csrf_and_upload_limit_are_enforced_on_the_server(cluster: Cluster, start_console: Any,
                                                                        operators: Any, tmp_path: Path) -> None:
    cluster.start_worker()
    assert cluster.cli("run", str(EXAMPLES / "reference.xml")).returncode == 0
    env = {**cluster.env, "CUTOVER_OPERATORS": OPERATORS}
    add_operator(cluster.home, env, "alice")
    assert "none (paperless imports only)" in add_operator(cluster.home, env, "bob")
    done = cluster.cli("run", str(EXAMPLES / "registration.csv"), "--profile", str(EXAMPLES / "registration.yaml"))
    assert done.returncode == 3, done.stderr
    registration = run_of(cluster, "registration.csv")
    letter = cluster.query("SELECT id FROM dead_letters WHERE run_id = :r AND stage = 'load'", r=registration)[0][0]
    console = start_console(CUTOVER_OPERATORS=OPERATORS, CUTOVER_CONSOLE_UPLOAD_MAX_MB="1",
                            CUTOVER_CONSOLE_METRICS_TOKEN="scrape-token-123")

    # a wrong password, then bob, who lacks the import permission: Paperless only, on the page and on the server
    bob = operators(console, "bob")
    bob.sign_in(password="not the password at all")
    assert "do not match an operator" in bob.page.inner_text("main")
    bob.shot("wrong-password")
    bob.sign_in()
    draft = begin_import_as_bob(bob)
    assert bob.page.locator("input[name=import_type]").count() == 1  # only paperless was offered
    token = bob.csrf()
    for forged in ("autopay", "registration"):
        answer = bob.page.request.post(f"{console.url}/import/{draft}/type", form={"csrf": token, "import_type": forged})
        assert answer.status == 403, forged
        assert "may not run" in plain(answer) and "'import' permission" in plain(answer)
    assert cluster.query("SELECT import_type FROM console_imports WHERE id = :d", d=draft) == [(None,)]
    bob.page.check("input[name=import_type][value=paperless]")
    bob.page.click("button:has-text('Continue')")
    bob.page.wait_for_url("**/file")

    # an import of alice's is not bob's to see or change
    alice = operators(console, "alice")
    alice.sign_in()
    alices = begin_import(alice, "autopay")
    assert bob.page.request.get(f"{console.url}/import/{alices}/file").status == 404
    # bob sees dead letters but may neither replay nor discard them
    bob.goto(f"/runs/{registration}")
    assert bob.page.locator("button[value=replay]").count() == 0 and bob.page.locator("button[value=discard]").count() == 0
    bob.shot("run-without-replay")
    for action in ("replay", "discard"):
        answer = bob.page.request.post(f"{console.url}/runs/{registration}/letters",
                                       form={"csrf": token, "action": action, "letter": str(letter)})
        assert answer.status == 403 and f"need the '{action}' permission" in plain(answer), action
    assert cluster.query("SELECT state FROM dead_letters WHERE id = :i", i=letter) == [("open",)]

    # forms without their CSRF token (or with another's) are refused, and change nothing
    before = cluster.query("SELECT count(*) FROM console_imports")[0][0]
    for form in ({"biller": "target.db"}, {"biller": "target.db", "csrf": "forged-token"}):
        answer = bob.page.request.post(f"{console.url}/import", form=form)
        assert answer.status == 403 and "security token (CSRF protection)" in plain(answer)
    answer = bob.page.request.post(f"{console.url}/runs/{registration}/letters", form={"action": "discard",
                                                                                    "letter": str(letter)})
    assert answer.status == 403
    assert cluster.query("SELECT count(*) FROM console_imports")[0][0] == before
    anonymous = bob.context.browser.new_context()
    try:
        answer = anonymous.request.post(f"{console.url}/sign-in", form={"name": "bob", "password": PASSWORD})
        assert answer.status == 403, "a sign-in without the form's token"
    finally:
        anonymous.close()
    bob.goto("/import")  # a real form whose token was taken out before sending it
    bob.page.evaluate("document.querySelector('main form input[name=csrf]').remove()")
    with bob.page.expect_navigation() as sent:
        bob.page.click("button:has-text('Continue')")
    assert sent.value is not None and sent.value.status == 403
    assert "security token (CSRF protection)" in bob.page.inner_text("main")
    bob.shot("csrf-refused")

    # an upload above the limit: a clear message, nothing kept, nothing staged
    big = tmp_path / "too-big.csv"
    with big.open("w", encoding="utf-8") as handle:
        handle.write("Acct No,Dist,Name,Email Address\n")
        for n in range(40_000):
            handle.write(f"{200000 + n},01,Customer {n},customer{n}@example.com\n")
    assert big.stat().st_size > 1024 * 1024
    runs_before = cluster.query("SELECT count(*) FROM runs")[0][0]
    bob.goto(f"/import/{draft}/file")
    upload(bob, big)
    message = bob.page.inner_text("p.error")
    bob.shot("upload-too-large")
    assert "too-big.csv is larger than the 1 MB the console accepts" in message and "nothing was kept" in message
    assert cluster.query("SELECT count(*) FROM runs")[0][0] == runs_before
    assert cluster.query("SELECT file_path FROM console_imports WHERE id = :d", d=draft) == [(None,)]
    folder = cluster.home / "console" / "uploads" / draft
    assert not [p for p in folder.rglob("*") if p.is_file()], "nothing of the upload is left"

    # uploads are private, security headers on every page
    upload(bob, EXAMPLES / "paperless.csv", encoding="latin-1")
    bob.page.wait_for_url("**/invoice-types")
    kept = folder / "paperless.csv"
    assert kept.stat().st_mode & 0o777 == 0o600 and folder.stat().st_mode & 0o777 == 0o700
    assert (cluster.home / "console").stat().st_mode & 0o777 == 0o700
    response = bob.goto("/")
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"] and "frame-ancestors 'none'" in headers[
        "content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"

    # a blocking pre-check finding stops the import: a saved profile names an invoice type the target lacks
    gas = json.loads((EXAMPLES / "paperless.json").read_text())
    gas["invoice_types"] = ["Gas Bill"]
    (cluster.home / "profiles").mkdir(exist_ok=True)
    (cluster.home / "profiles" / "paperless-gas.json").write_text(json.dumps(gas))
    blocked = begin_import_as_bob(bob)
    bob.page.check("input[name=import_type][value=paperless]")
    bob.page.click("button:has-text('Continue')")
    upload(bob, EXAMPLES / "paperless.csv", profile="paperless-gas")
    bob.page.wait_for_url("**/invoice-types")
    assert "not configured in the target: Gas Bill" in bob.page.inner_text("main")
    bob.goto(f"/import/{blocked}/mapping")  # straight on, as the profile says
    bob.page.click("button:has-text('Continue')")
    bob.page.click("button:has-text('Continue')")
    text = through_precheck(bob, "blocking")
    assert "This file cannot be imported" in text and "invoice type 'Gas Bill' is not configured" in text
    assert bob.page.locator("a:has-text('Continue')").count() == 0, "a blocking error cannot be continued"
    bob.goto(f"/import/{blocked}/review")
    assert bob.page.url.endswith(f"/import/{blocked}/precheck")
    runs_before = cluster.query("SELECT count(*) FROM runs")[0][0]
    answer = bob.page.request.post(f"{console.url}/import/{blocked}/start", form={"csrf": token}, max_redirects=0)
    assert answer.status == 303 and answer.headers["location"].endswith("/precheck")
    assert cluster.query("SELECT count(*) FROM runs")[0][0] == runs_before

    # Prometheus metrics: a token or a sign-in
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{console.url}/metrics", timeout=10)
    assert refused.value.code == 401
    wrong = urllib.request.Request(f"{console.url}/metrics", headers={"Authorization": "Bearer nope"})
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(wrong, timeout=10)
    scrape = urllib.request.Request(f"{console.url}/metrics", headers={"Authorization": "Bearer scrape-token-123"})
    with urllib.request.urlopen(scrape, timeout=10) as answer:
        text = answer.read().decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("cutover_records", (("entity", "Registration"), ("kind", "run"), ("outcome", "committed"),
                                        ("run", registration), ("wave", "3")))] == 36
    assert samples[("cutover_records", (("entity", "Registration"), ("kind", "run"), ("outcome", "dead"),
                                        ("run", registration), ("wave", "3")))] == 4
    assert samples[("cutover_run_state", (("kind", "run"), ("run", registration), ("state", "completed")))] == 1
    assert bob.page.request.get(f"{console.url}/metrics").status == 200


def begin_import_as_bob(op: Operator) -> str:
    op.goto("/import")
    op.page.click("button:has-text('Continue')")
    op.shot("type-paperless-only")
    assert "Without the import permission you may run only the Paperless import" in op.page.inner_text("main")
    return op.page.url.split("/import/")[1].split("/")[0]


# -- 3. in progress, for every format ------------------------------------------------------------------------


def test_the_in_progress_page_follows_a_command_line_run_to_its_end(cluster: Cluster, start_console: Any,
                                                                     operators: Any) -> None:
    """An engageip run started with `cutover run --no-wait`, watched in the console: counts per wave and
    entity against the total, rate and ETA, back-pressure, until the completed view."""
    add_operator(cluster.home, cluster.env, "carol")
    console = start_console()
    carol = operators(console, "carol")
    carol.sign_in()
    engageip = Path(__file__).resolve().parents[2] / "examples" / "engageip"
    done = cluster.cli("run", str(engageip), "--no-wait")
    assert done.returncode == 0, done.stderr
    run_id = cluster.query("SELECT id FROM runs ORDER BY created_at DESC")[0][0]
    cluster.start_worker()
    carol.goto("/runs?view=in-progress")
    carol.shot("in-progress-list")
    carol.goto(f"/runs/{run_id}")
    carol.shot("engageip-in-progress")
    wait_completed(carol)
    carol.shot("engageip-completed")
    fragments = live_fragments(carol, run_id)
    running = [f for f in fragments if f is not None and 'data-state="running"' in f]
    assert running, "the page was updated while the run was running"
    assert any("records/s" in f for f in running) and any("records in flight" in f for f in running)
    totals = counts(carol)
    assert totals["User"] == (122, 114, 1, 7, 0) and totals["Contact"] == (197, 189, 0, 2, 6)
    assert sum(row[0] for row in totals.values()) == 1508
    assert "reconciled: 13 account(s)" in carol.page.inner_text("main")


# -- 4. the embedded default -----------------------------------------------------------------------------------


def test_console_and_flower_on_the_embedded_default(tmp_path: Path, operators: Any) -> None:
    """No broker configured: the console keeps the bundled Redis and local workers up, so an import
    started from it loads; `cutover flower` shares that Redis (and leaves it up when it ends)."""
    import os

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUTOVER_")}
    env.update({"CUTOVER_HOME": str(home), "CUTOVER_WORKER_CONCURRENCY": "2",
                "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    (home / "profiles").mkdir()
    shutil.copy(EXAMPLES / "registration.yaml", home / "profiles" / "millbrook-registration.yaml")
    add_operator(home, env, "dana")
    console = ConsoleProcess(home, env).start()
    flower: subprocess.Popen[bytes] | None = None
    try:
        dana = operators(console, "dana")
        dana.sign_in()
        begin_import(dana, "registration")
        upload(dana, EXAMPLES / "registration.csv", profile="millbrook-registration")
        dana.page.wait_for_url("**/mapping")
        dana.page.click("button:has-text('Continue')")
        assert dana.page.input_value("input[name=prefix]") == "WTR-"
        dana.page.click("button:has-text('Continue')")
        through_precheck(dana, "embedded")
        start(dana, "embedded")
        assert counts(dana) == {"Registration": (41, 36, 1, 4, 0)}

        flower_port = free_port()
        flower = subprocess.Popen([sys.executable, "-m", "ops.cli", "flower", "--insecure-open", "--port",
                                   str(flower_port)], env=env, cwd=home, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        deadline, status = time.monotonic() + 60, 0
        while time.monotonic() < deadline and status != 200:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{flower_port}/workers", timeout=5) as answer:
                    status = answer.status
            except (urllib.error.URLError, OSError):
                assert flower.poll() is None, "flower exited"
                time.sleep(0.5)
        assert status == 200
        flower.terminate()
        flower.wait(30)
        assert (home / "redis.sock").exists(), "Flower shared the console's Redis and left it up"
        left = [p.pid for p in psutil.process_iter(["cmdline"])
                if f"--port={flower_port}" in " ".join(p.info["cmdline"] or []) and p.pid != flower.pid]
        assert not left, "the Flower process `cutover flower` started outlived it"
        dana.goto("/runs?view=completed")
        assert "registration.csv" in dana.page.inner_text("table.runs")
    finally:
        if flower is not None and flower.poll() is None:
            flower.kill()
        console.stop()
    assert not (home / "redis.sock").exists(), "the console stopped its embedded Redis"
