"""`--email ADDRESS`: send a run's report when it ends — the counts in the message, every row that
did not load as a CSV attachment — through the SMTP server in the settings.

Refused up front (before anything is staged) when no SMTP server is configured, so an operator
never learns after a night's run that the report went nowhere."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Any

from sqlalchemy.orm import Session

from ops.report import error_rows_csv
from shared.emails import check_email
from shared.errors import ConfigError, RecordError
from shared.settings import Settings

STARTTLS = ("auto", "always", "never")


def require_mail(settings: Settings, address: str) -> None:
    """Raise ConfigError unless a report can be sent to ``address``."""
    if not settings.smtp_host:
        raise ConfigError("--email needs an SMTP server: set CUTOVER_SMTP_HOST (and CUTOVER_SMTP_PORT, "
                          "CUTOVER_SMTP_USER, CUTOVER_SMTP_PASSWORD as needed); nothing was started")
    if settings.smtp_starttls not in STARTTLS:
        raise ConfigError(f"smtp_starttls must be one of {', '.join(STARTTLS)}, not {settings.smtp_starttls!r}")
    try:
        check_email(address, "--email")
    except RecordError as exc:
        raise ConfigError(str(exc)) from None


def report_message(session: Session, doc: dict[str, Any], sender: str, to: str, precheck: list[str]) -> EmailMessage:
    run_id, totals = doc["run_id"], doc["totals"]
    message = EmailMessage()
    message["Subject"] = (f"cutover run {run_id} {doc['state']}: {totals['read']} read, {totals['committed']} committed, "
                          f"{totals['skipped']} skipped, {totals['dead']} dead, {totals['blocked']} blocked")
    message["From"], message["To"] = sender, to
    lines = [f"Run {run_id} ({', '.join(doc['files'])}) is {doc['state']}.", "", *precheck, "",
             f"{'entity':<16} {'read':>8} {'committed':>10} {'skipped':>8} {'dead':>6} {'blocked':>8}"]
    for name, row in doc["entities"].items():
        lines.append(f"{name:<16} {row['read']:>8} {row['committed']:>10} {row['skipped']:>8} {row['dead']:>6} "
                     f"{row['blocked']:>8}")
    errors, count = error_rows_csv(session, run_id)
    lines += ["", f"{count} row(s) did not load: they are attached ({run_id}-errors.csv) with file, line, error, "
                  "field and hint; `cutover dlq list --run " + run_id + "` shows them too."]
    lines += [f"go-live: {r}" for r in doc.get("reminders", [])]
    message.set_content("\n".join(lines))
    message.add_attachment(errors, subtype="csv", charset="utf-8", filename=f"{run_id}-errors.csv")
    return message


def send(settings: Settings, message: EmailMessage) -> None:
    """Deliver through the configured server; an SMTP failure is a ConfigError naming the server."""
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
            smtp.ehlo()
            if settings.smtp_starttls == "always" or (settings.smtp_starttls == "auto" and smtp.has_extn("starttls")):
                smtp.starttls()
                smtp.ehlo()
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise ConfigError(f"the report could not be e-mailed through {settings.smtp_host}:{settings.smtp_port}: {exc}; "
                          "`cutover report` writes it to files") from None
