"""The `cutover` command line. Imports are lazy, so `cutover --help` never touches Redis or a database."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ops import exitcodes

_OVERRIDES: dict[str, Any] = {}
"""Settings given on the command line (``--log-format``), over the environment and the TOML file."""


def _settings() -> Any:
    """The settings; with ``log_format = json`` this process logs JSON lines on standard error."""
    from shared.settings import load_settings

    settings = load_settings().with_overrides(**_OVERRIDES)
    if settings.log_format == "json":
        _log_json_lines(settings.log_level)
    return settings


@functools.cache
def _log_json_lines(level: str) -> None:
    """Once per process: the producer's log lines (``shared/logs.py``) as JSON on standard error."""
    from shared.logs import configure_logging

    configure_logging("json", level)


def _log_format(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--log-format``, for the commands that log (and the workers they start)."""

    def remember(_: click.Context, __: click.Parameter, value: str | None) -> None:
        if value is not None:
            _OVERRIDES["log_format"] = value

    return click.option("--log-format", type=click.Choice(["text", "json"]), expose_value=False, callback=remember,
                        help="Log lines as text or JSON lines, with run id, entity, record key and outcome as fields "
                             "(default: CUTOVER_LOG_FORMAT).")(fn)


def _console(as_json: bool = False) -> Any:
    from ops.console import make_console

    return make_console(stderr=as_json)


def _guard(fn: Callable[[], int]) -> None:
    """Typed errors become one clear line and a documented exit status."""
    from sqlalchemy.exc import OperationalError

    from shared.errors import ConfigError, CutoverError, SourceError

    try:
        code = fn()
    except (click.ClickException, click.exceptions.Abort, click.exceptions.Exit):
        raise  # usage errors, "Aborted!" at a prompt: click prints them with their own status
    except SourceError as exc:
        click.echo(f"error: {exc}", err=True)
        code = exitcodes.REFUSED
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        code = exitcodes.REFUSED
    except CutoverError as exc:
        click.echo(f"error: {exc}", err=True)
        code = exitcodes.FAILURE
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        code = exitcodes.INCOMPLETE
    except OperationalError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        if "full" in reason:
            click.echo(f"error: the disk holding the database is full ({reason}): free space and run the command again",
                       err=True)
        else:
            click.echo(f"error: cannot reach the database: {reason}", err=True)
        code = exitcodes.REFUSED
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        click.echo(f"error: {exc.strerror or exc}{where}: fix it (free space, permissions) and run the command again",
                   err=True)
        code = exitcodes.REFUSED
    except Exception as exc:  # a bug: one line for the operator, the trace in a file for the report
        click.echo(f"error: unexpected {type(exc).__name__}: {exc} — a bug in cutover; details in {_crash_log(exc)}",
                   err=True)
        code = exitcodes.FAILURE
    sys.exit(code)


def _crash_log(exc: BaseException) -> str:
    import tempfile
    import traceback

    with tempfile.NamedTemporaryFile("w", prefix="cutover-crash-", suffix=".log", delete=False) as fh:
        fh.write("".join(traceback.format_exception(exc)))
        return fh.name


def _hide_password(url: str) -> str:
    import re

    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cutover", prog_name="cutover", message="%(prog)s %(version)s")
def main() -> None:
    """cutover: migrate customer and billing data from legacy exports into a billing database.

    Wherever a command asks for a run id, `last` (or `-`) stands for the newest run."""


def _run_id(text: str, replays: bool = False) -> str:
    """A run id as typed: ``last``/``-`` is looked up in the database (``ops/run_ids.py``)."""
    from ops.backends import database
    from ops.run_ids import LATEST, resolve_run_id

    if text not in LATEST:
        return text
    with database(_settings())() as session:
        return resolve_run_id(session, text, replays)


def _optional_run_id(text: str | None) -> str | None:
    return None if text is None else _run_id(text)


def _format_choice() -> click.Choice:
    from producer.formats import FORMATS

    return click.Choice(FORMATS.names())


def _format_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--format`` and every declared format's own options (``producer/formats.py``), named by format."""
    from producer.formats import FORMATS, flag

    for fmt, name, spec in reversed(FORMATS.command_line()):
        kind: dict[str, Any] = {"is_flag": True} if spec.kind == "flag" else {}
        if spec.kind == "file":
            kind["type"] = click.Path(exists=True, dir_okay=False, path_type=Path)
        fn = click.option(flag(name), name, help=f"{fmt.name}: {spec.help}", **kind)(fn)
    return click.option("--format", "format_name", type=_format_choice(),
                        help="Source format of every path (default: from each file's extension).")(fn)


def _check(paths: tuple[Path, ...], format_name: str | None, format_options: dict[str, Any], as_json: bool) -> int:
    """`cutover validate` and `cutover run --dry-run`: every check a run makes, nothing written."""
    from dataclasses import asdict

    from ops.validate import validate as check

    report = check(_settings(), list(paths), format_name, format_options)
    if as_json:
        click.echo(json.dumps({"records": report.records, "precheck": report.precheck,
                               "findings": [asdict(f) for f in report.findings]}, indent=2))
    else:
        for line in report.precheck:
            click.echo(line)
        for f in report.findings:
            click.echo(f"{f.position}: {f.entity}: {f.outcome} ({f.error_class}): {f.message}")
        click.echo(f"{report.records} record{'' if report.records == 1 else 's'} checked, "
                   f"{len(report.findings)} would not load")
    return exitcodes.RECORDS_FAILED if report.findings else exitcodes.OK


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@_format_options
@click.option("--dry-run", is_flag=True, help="Check everything and write nothing: the same as `cutover validate`.")
@click.option("--email", help="Send the run's report (counts, every error row attached) here when it ends (needs SMTP settings).")
@click.option("--upsert", is_flag=True, help="Update rows whose natural key exists with different content.")
@click.option("--wait/--no-wait", default=True, help="Wait for the run to finish, with a live display.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON (for scripts).")
@click.option("--workers", "local_workers", type=int, default=None,
              help="Start N local worker processes (default with the embedded broker: one per core).")
@click.option("--timeout", type=float, default=None, help="Stop waiting after this many seconds (exit 5).")
@click.option("--records-per-message", type=click.IntRange(1, 10_000), default=None,
              help="Records a message carries (default: CUTOVER_RECORDS_PER_MESSAGE, 500); 1: one message a record. "
                   "Keys, outcomes, dead letters and replay stay per record either way.")
@_log_format
def run(paths: tuple[Path, ...], format_name: str | None, dry_run: bool, email: str | None, upsert: bool, wait: bool,
        as_json: bool, local_workers: int | None, timeout: float | None, records_per_message: int | None,
        **format_options: Any) -> None:
    """Stage FILES (or folders of them), publish one message per record in waves, and load them."""

    def go() -> int:
        from ops.runs import RunRequest, execute_run
        from shared.errors import ConfigError

        if dry_run:
            if email or not wait:
                raise ConfigError(f"--dry-run checks and writes nothing: it cannot be combined with "
                                  f"{'--email' if email else '--no-wait'}")
            return _check(paths, format_name, format_options, as_json)
        request = RunRequest(paths=list(paths), format_name=format_name, format_options=format_options, upsert=upsert,
                             wait=wait, as_json=as_json, local_workers=local_workers, timeout=timeout, email=email,
                             records_per_message=records_per_message)
        settings = _settings()
        if records_per_message:  # the local workers this command starts size their batches by it too
            settings = settings.with_overrides(records_per_message=records_per_message)
        code, doc = execute_run(settings, request, _console(as_json))
        if as_json:
            click.echo(json.dumps({**doc, "exit_code": code}, indent=2))
        return code

    _guard(go)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@_format_options
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@_log_format
def validate(paths: tuple[Path, ...], format_name: str | None, as_json: bool, **format_options: Any) -> None:
    """Check FILES completely without writing to the target; exit 3 when any record would fail."""
    _guard(lambda: _check(paths, format_name, format_options, as_json))


@main.command()
@click.argument("run_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--limit", default=20, show_default=True, help="Runs to list.")
def status(run_id: str | None, as_json: bool, limit: int) -> None:
    """List runs, or show one run's counts per entity (RUN_ID `last`: the newest run or replay)."""

    def go() -> int:
        from ops.status import list_runs, show_run

        if run_id:
            return show_run(_settings(), _run_id(run_id, replays=True), as_json)
        return list_runs(_settings(), as_json, limit)

    _guard(go)


@main.command()
@click.argument("run_id")
@click.option("--wait/--no-wait", default=True, help="Wait for the run to finish, with a live display.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@click.option("--workers", "local_workers", type=int, default=None, help="Start N local worker processes.")
@_log_format
def resume(run_id: str, wait: bool, as_json: bool, local_workers: int | None) -> None:
    """Get a run (or replay) moving again: re-publish its unfinished chunks (loading is idempotent)."""

    def go() -> int:
        from ops.runs import execute_resume

        code, doc = execute_resume(_settings(), _run_id(run_id, replays=True), wait=wait, as_json=as_json,
                                   local_workers=local_workers, console=_console(as_json))
        if as_json:
            click.echo(json.dumps({**doc, "exit_code": code}, indent=2))
        return code

    _guard(go)


@main.command()
@click.argument("run_id")
def discard(run_id: str) -> None:
    """Discard RUN, abandoned while its files were read (nothing of it was loaded): `cutover status` shows it."""

    def go() -> int:
        from ops.backends import database
        from producer.staging import undo_staging
        from shared.errors import ConfigError
        from shared.liveness import effective_state
        from shared.schema.control import Run

        with database(_settings()).begin() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise ConfigError(f"no run {run_id!r}; `cutover status` lists them")
            state = effective_state(run)
            if state != "abandoned":
                then = f" (continue it with `cutover resume {run_id}`)" if state == "interrupted" else ""
                raise ConfigError(f"run {run_id} is {state}: only a run abandoned while its files were read can be "
                                  f"discarded{then}")
            undo_staging(session, run_id, "discarded", "abandoned while staging; discarded with `cutover discard`")
        click.echo(f"run {run_id} discarded: nothing of it was loaded; run its files again")
        return exitcodes.OK

    _guard(go)


@main.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def reconcile(run_id: str, as_json: bool) -> None:
    """Compare what RUN's source said (records, money per account) with the target; exit 6 on any difference."""

    def go() -> int:
        from ops.backends import database, reading
        from ops.reconcile import reconcile as check

        settings = _settings()
        database(settings)
        with reading(settings)() as session:
            result = check(session, _run_id(run_id))
        if as_json:
            click.echo(json.dumps(result.as_dict(), indent=2))
        else:
            for line in result.lines():
                click.echo(line)
        return exitcodes.OK if result.reconciled else exitcodes.NOT_RECONCILED

    _guard(go)


@main.command()
@click.argument("run_id")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="Folder for the result files.")
@click.option("--format", "formats", type=click.Choice(["jsonl", "csv"]), multiple=True,
              help="jsonl and/or csv (default: both).")
@click.option("--split", is_flag=True,
              help="Also write RUN.success.* (loaded records, with their target id) and RUN.errors.* (dead and blocked "
                   "records, with their fields, secrets masked, and the error).")
def report(run_id: str, out_dir: Path, formats: tuple[str, ...], split: bool) -> None:
    """Write RUN's per-record results: one row per source record (file, position, key, outcome, target id, error)."""

    def go() -> int:
        from ops.backends import database, reading
        from ops.report import FORMATS, write_report

        settings = _settings()
        database(settings)
        with reading(settings)() as session:
            paths = write_report(session, _run_id(run_id), out_dir, formats or FORMATS, split=split)
        for path in paths:
            click.echo(f"wrote {path}")
        return exitcodes.OK

    _guard(go)


@main.group()
def dlq() -> None:
    """Dead letters: list, show, replay, discard."""


def _letter_filters(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--outcome", type=click.Choice(["dead", "blocked"]), help="Only dead or only blocked.")(fn)
    fn = click.option("--error-class", help="Only this error class (e.g. UnknownReference).")(fn)
    fn = click.option("--entity", help="Only this entity type (e.g. User).")(fn)
    return click.option("--run", "run_id", help="Only this run (`last`: the newest run).")(fn)


@dlq.command("list")
@_letter_filters
@click.option("--state", type=click.Choice(["open", "replayed", "discarded", "superseded", "any"]), default="open",
              show_default=True, help="open: waiting for a fix; replayed: loaded since; discarded: given up; superseded: "
                                      "replaced by the same record's letter in a later run; any: all of them.")
@click.option("--limit", default=100, show_default=True, help="Letters to list at most.")
@click.option("--json", "as_json", is_flag=True, help="Print the letters as JSON.")
def dlq_list(run_id: str | None, entity: str | None, error_class: str | None, outcome: str | None, state: str,
             limit: int, as_json: bool) -> None:
    """List dead letters, by wave and id."""

    def go() -> int:
        from ops.dlq import list_letters
        from producer.replay import LetterFilter

        letters = LetterFilter(_optional_run_id(run_id), entity, error_class, outcome, state=state)
        return list_letters(_settings(), letters, limit, as_json)

    _guard(go)


@dlq.command("show")
@click.argument("letter_id", type=int)
def dlq_show(letter_id: int) -> None:
    """Show one dead letter: error, position, attempts, the record (secrets masked)."""

    def go() -> int:
        from ops.dlq import show_letter

        return show_letter(_settings(), letter_id)

    _guard(go)


@dlq.command("replay")
@_letter_filters
@click.argument("letter_ids", nargs=-1, type=int)
@click.option("--upsert", is_flag=True, help="Update rows whose natural key exists with different content.")
@click.option("--wait/--no-wait", default=True, help="Wait for the replay to finish, with a live display.")
@click.option("--json", "as_json", is_flag=True, help="Print the replay as JSON.")
@click.option("--workers", "local_workers", type=int, default=None, help="Start N local worker processes.")
@_log_format
def dlq_replay(letter_ids: tuple[int, ...], run_id: str | None, entity: str | None, error_class: str | None,
               outcome: str | None, upsert: bool, wait: bool, as_json: bool, local_workers: int | None) -> None:
    """Replay open dead letters (and the records blocked behind them) in wave order."""

    def go() -> int:
        from ops.runs import execute_replay
        from producer.replay import LetterFilter

        letters = LetterFilter(_optional_run_id(run_id), entity, error_class, outcome, ids=letter_ids)
        code, doc = execute_replay(_settings(), letters, upsert=upsert, wait=wait, as_json=as_json,
                                   local_workers=local_workers, console=_console(as_json))
        if as_json:
            click.echo(json.dumps({**doc, "exit_code": code}, indent=2))
        return code

    _guard(go)


@dlq.command("discard")
@_letter_filters
@click.argument("letter_ids", nargs=-1, type=int)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def dlq_discard(letter_ids: tuple[int, ...], run_id: str | None, entity: str | None, error_class: str | None,
                outcome: str | None, yes: bool) -> None:
    """Mark dead letters discarded: they will not be replayed (their records stay dead)."""

    def go() -> int:
        from ops.backends import database
        from producer.replay import LetterFilter, discard

        if not (letter_ids or run_id or entity or error_class or outcome):
            raise click.UsageError("name the letters to discard: their ids, or at least one of --run, --entity, "
                                   "--error-class, --outcome")
        letters = LetterFilter(_optional_run_id(run_id), entity, error_class, outcome, ids=letter_ids)
        if not yes and not click.confirm("discard the matching dead letters?", default=False):
            return exitcodes.OK
        count = discard(database(_settings()), letters)
        click.echo(f"discarded {count} dead letter(s)")
        return exitcodes.OK

    _guard(go)


@main.group()
def db() -> None:
    """The target database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema migrations (Alembic) to CUTOVER_DATABASE_URL."""

    def go() -> int:
        from ops.backends import upgrade_database
        from shared.db import engine_for

        url = upgrade_database(_settings())
        click.echo(f"schema is current on {engine_for(url).url.render_as_string(hide_password=True)}")
        return exitcodes.OK

    _guard(go)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--queues", "-Q",
              help="Comma-separated queues (default: all: control,reference,accounts,contacts,ledger,subscriptions,"
                   "services,tickets).")
@click.option("--concurrency", "-c", type=int, help="Worker processes (default: CUTOVER_WORKER_CONCURRENCY or cores).")
@_log_format
@click.pass_context
def worker(ctx: click.Context, queues: str | None, concurrency: int | None) -> None:
    """Run workers on this machine (a thin wrapper over `celery worker`; extra options pass through)."""

    def go() -> int:
        import os

        from ops.embedded import worker_command
        from ops.processes import run_supervised

        settings = _settings()
        if settings.embedded_broker:
            raise click.UsageError("set CUTOVER_BROKER_URL: `cutover worker` joins a shared broker "
                                   "(the embedded default starts its own workers during `cutover run`)")
        if queues:
            settings = settings.with_overrides(worker_queues=queues)
        cmd = worker_command(settings, concurrency) + list(ctx.args)
        return run_supervised(cmd, {**os.environ, **settings.as_env()})

    _guard(go)


@main.command()
@click.option("--port", type=int, help="Port (default: CUTOVER_FLOWER_PORT).")
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--insecure-open", is_flag=True, help="Run without credentials (only allowed on localhost).")
def flower(port: int | None, address: str, insecure_open: bool) -> None:
    """Start Flower on the configured broker (or this home's embedded Redis), with basic auth from settings."""

    def go() -> int:
        from ops.flower import exec_flower, flower_command

        settings = _settings()
        return exec_flower(settings, flower_command(settings, port, address, insecure_open))

    _guard(go)


@main.command("console")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, help="Port (default: CUTOVER_CONSOLE_PORT, 8700).")
@click.option("--workers", "local_workers", type=int, default=None,
              help="Start N local worker processes (default with the embedded broker: one per core).")
def web_console(host: str, port: int | None, local_workers: int | None) -> None:
    """Serve the web console: imports screen by screen, runs in progress and completed, dead letters."""

    def go() -> int:
        from ops.web.server import serve

        settings = _settings()
        return serve(settings, host, port or settings.console_port, local_workers)

    _guard(go)


@main.group()
def operator() -> None:
    """Operators who sign in to the web console (what they may do: CUTOVER_OPERATORS)."""


@operator.command("add")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
@click.option("--reset", is_flag=True, help="Give an existing operator a new password (ends their sign-ins).")
def operator_add(name: str, password_stdin: bool, reset: bool) -> None:
    """Add an operator NAME with a password (stored only as an Argon2id hash)."""

    def go() -> int:
        from ops.backends import database
        from ops.web.auth import add_operator, check_name, check_password

        check_name(name)
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = click.prompt("password", hide_input=True, confirmation_prompt=True)
        check_password(password)
        settings = _settings()
        new = add_operator(database(settings), name, password, reset=reset)
        click.echo(f"operator {name} {'added' if new else 'has a new password'}; permissions: "
                   + _permissions_text(settings, name))
        return exitcodes.OK

    _guard(go)


def _permissions_text(settings: Any, name: str) -> str:
    from shared.permissions import Policy

    granted = sorted(Policy.from_settings(settings).permissions_of(name))
    return (", ".join(granted) if granted else "none (paperless imports only)") + " (from CUTOVER_OPERATORS)"


@operator.command("list")
def operator_list() -> None:
    """List the console's operators, their permissions and last sign-in."""

    def go() -> int:
        from ops.backends import database
        from ops.web.auth import list_operators

        settings = _settings()
        for op in list_operators(database(settings)):
            last = op.signed_in_at.isoformat(timespec="seconds") if op.signed_in_at else "never"
            click.echo(f"{op.name}: {_permissions_text(settings, op.name)}; last sign-in {last}")
        return exitcodes.OK

    _guard(go)


@operator.command("remove")
@click.argument("name")
def operator_remove(name: str) -> None:
    """Remove an operator and end their sign-ins (the audit keeps their name)."""

    def go() -> int:
        from ops.backends import database
        from ops.web.auth import remove_operator

        remove_operator(database(_settings()), name)
        click.echo(f"operator {name} removed")
        return exitcodes.OK

    _guard(go)


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--accounts", default=1000, show_default=True, help="Accounts to generate.")
@click.option("--seed", default=0, show_default=True, help="Random seed: the same seed and options give the same bytes.")
@click.option("--fault-rate", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Fraction of users with an unknown TaxCode (0 to 1).")
@click.option("--passwords/--no-passwords", default=True, show_default=True,
              help="Give every User a Password (hashed on load, ~130 ms each: leave out to measure throughput).")
@click.option("--points-per-account", default=4, show_default=True, type=click.IntRange(0, 4),
              help="Contact points per account, in the order email 1, email 2, phone 1, phone 2.")
@click.option("--ledger/--no-ledger", default=False, show_default=True,
              help="Also write ledger.xml: 12 transactions and 4 payments per account on 4 invoices.")
@click.option("--accounts-per-close", default=100, show_default=True, type=click.IntRange(min=1),
              help="Ledger: accounts whose monthly invoices one bare CloseInvoice closes.")
def sample(out_dir: Path, accounts: int, seed: int, fault_rate: float, passwords: bool, points_per_account: int,
           ledger: bool, accounts_per_close: int) -> None:
    """Write a synthetic engageip migration (reference + accounts, optionally ledger) of any size."""

    def go() -> int:
        from ops.sample import expected_counts, write_engageip_sample

        for path in write_engageip_sample(out_dir, accounts, seed=seed, fault_rate=fault_rate, passwords=passwords,
                                          points_per_account=points_per_account, ledger=ledger,
                                          accounts_per_close=accounts_per_close):
            click.echo(f"wrote {path} ({path.stat().st_size:,} bytes)")
        counts = expected_counts(accounts, points_per_account=points_per_account, ledger=ledger,
                                 accounts_per_close=accounts_per_close)
        click.echo(f"records: {sum(counts.values()):,}")
        for entity, count in counts.items():
            click.echo(f"  {entity:<16} {count:>12,}")
        return exitcodes.OK

    _guard(go)


@main.command()
@click.option("--records", type=click.IntRange(1000), default=100_000, show_default=True,
              help="Size of the synthetic migration (≈ 22 records an account, with the ledger).")
@click.option("--database", "database_url", default=None,
              help="PostgreSQL server URL (a scratch database `cutover_bench` is made on it per case); default: "
                   "CUTOVER_DATABASE_URL, or SQLite when none is set (no COPY figure then).")
@click.option("--broker", "broker_url", default=None,
              help="Redis URL of a database the benchmark may EMPTY (default: CUTOVER_BROKER_URL, or the embedded Redis).")
@click.option("--workers", type=int, default=2, show_default=True, help="Worker processes for the main cases.")
@click.option("--scaling", default="1,2,4", show_default=True, help="Worker counts for the scaling cases ('' for none).")
@click.option("--naive-records", type=int, default=10_000, show_default=True, help="Size of the naive case (slow by design).")
@click.option("--records-per-message", "packed", type=int, default=500, show_default=True,
              help="Records a message carries in the default and password cases (the per-record case carries 1).")
@click.option("--password-records", type=int, default=40_000, show_default=True,
              help="Size of the password case (every account with a password, hashed with the default password_hash).")
@click.option("--ledger/--no-ledger", default=True, show_default=True, help="Include invoices, transactions and payments.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("bench-results"), show_default=True,
              help="Where bench.json is written.")
@click.option("--cases", "only", default="", help="Only these cases, comma-separated (default, naive, per-record, passwords).")
@click.option("--scratch-database", default="cutover_bench", show_default=True,
              help="PostgreSQL: the database dropped and created again before each case (never one in use).")
def bench(records: int, database_url: str | None, broker_url: str | None, workers: int, scaling: str, naive_records: int,
          packed: int, password_records: int, ledger: bool, out_dir: Path, only: str, scratch_database: str) -> None:
    """Run a synthetic migration end to end per message shape and compare with PostgreSQL COPY of the same rows."""

    def go() -> int:
        from rich.table import Table

        from shared.errors import ConfigError

        try:
            import psutil  # noqa: F401 - the benchmark's process metrics; an extra, not a runtime dependency
        except ImportError:
            raise ConfigError('cutover bench measures processes with psutil, which is not installed; install the bench '
                              'extra: pip install -c constraints.txt -e ".[bench]" (in the cutover folder)') from None
        from ops.bench.run import RECORDS_PER_ACCOUNT, BenchConfig, run_bench, table

        settings = _settings()
        per_account = RECORDS_PER_ACCOUNT if ledger else 6
        config = BenchConfig(
            accounts=max(1, records // per_account), settings=settings,
            database_url=database_url or settings.database_url or "sqlite",
            broker_url=broker_url or settings.broker_url or None, out_dir=out_dir, workers=workers,
            scaling=tuple(int(n) for n in scaling.split(",") if n.strip()),
            naive_accounts=max(1, naive_records // per_account), packed=packed, ledger=ledger,
            password_accounts=max(1, password_records // per_account), scratch_database=scratch_database,
            only=tuple(c.strip() for c in only.split(",") if c.strip()))
        console = _console()
        doc = run_bench(config, progress=console.print)
        rows = table(doc)
        grid = Table(*rows[0], title=f"cutover bench — {records:,} records requested")
        for row in rows[1:]:
            grid.add_row(*row)
        console.print(grid)
        for case in doc["cases"]:
            name = f"{case['case']['name']} × {case['case']['workers']}"
            console.print(f"{name}: records/s per wave (from the end of the wave before) — " + ", ".join(
                f"{w['wave']} {w['entities']} {w['records_per_second']:,}" for w in case["waves"] if w["committed"] >= 100))
        console.print(f"written: {out_dir / 'bench.json'}")
        return 0 if all(c["exit_code"] in (0, 3) for c in doc["cases"]) else 1

    _guard(go)


@main.command("config")
def show_config() -> None:
    """Show every setting, its environment variable and its current value (secrets hidden)."""

    def go() -> int:
        from dataclasses import fields

        settings = _settings()
        for f in fields(settings):
            value = getattr(settings, f.name)
            if f.name in ("vault_key", "vault_previous_keys", "flower_password", "smtp_password",
                          "console_metrics_token") and value:
                value = "«set»"
            elif f.name.endswith("_url") or f.name == "result_backend":
                value = _hide_password(str(value))
            click.echo(f"CUTOVER_{f.name.upper():22} = {value!s:40} # {f.metadata.get('doc', '')}")
        return exitcodes.OK

    _guard(go)


@main.group()
def vault() -> None:
    """The secrets vault."""


@vault.command("rotate")
def vault_rotate() -> None:
    """Seal every stored secret under the current key (after setting a new CUTOVER_VAULT_KEY and
    listing the old one in CUTOVER_VAULT_PREVIOUS_KEYS)."""

    def go() -> int:
        from ops.backends import database
        from ops.vault_rotation import rotate
        from shared.entities import REGISTRY
        from shared.vault import Vault

        settings = _settings()
        result = rotate(database(settings), REGISTRY, Vault.from_settings(settings))
        for table, count in result.rows.items():
            click.echo(f"{table}: {count} secret(s) sealed under the current key")
        click.echo("keep the FIRST key listed in CUTOVER_VAULT_PREVIOUS_KEYS for good: idempotency keys of records with "
                   "secrets are computed from it; the others can go once no worker or queued message still uses them")
        return exitcodes.OK

    _guard(go)


@main.group()
def csv() -> None:
    """The csv format (Customer Import Tool): mapping profiles."""


@csv.group("profile")
def csv_profile() -> None:
    """Write and check mapping profiles."""


@csv_profile.command("init")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--type", "import_type", required=True, type=click.Choice(["registration", "autopay", "paperless"]),
              help="The import type the profile is for.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here (default: NAME.profile.yaml in the current folder, for FILE NAME.csv).")
@click.option("--encoding", help="The file's encoding (default: UTF-8 with or without BOM).")
@click.option("--force", is_flag=True, help="Overwrite an existing profile.")
def csv_profile_init(file: Path, import_type: str, out: Path | None, encoding: str | None, force: bool) -> None:
    """Write a starting profile from FILE's header, with the obvious columns mapped."""

    def go() -> int:
        from ops.profiles import init_profile
        from shared.errors import ConfigError

        target = out or Path(file.stem + ".profile.yaml")
        if target.exists() and not force:
            raise ConfigError(f"{target} exists; use --force to overwrite it or --out to write elsewhere")
        text, todo = init_profile(file, import_type, encoding)
        target.write_text(text, encoding="utf-8")
        click.echo(f"wrote {target}")
        needs = "check the account_number recipe" + (" and fill in invoice_types" if import_type != "registration" else "")
        click.echo(f"review it before use: {needs}" + (f"; no column was found for {', '.join(todo)}" if todo else ""))
        return exitcodes.OK

    _guard(go)


@csv_profile.command("check")
@click.argument("profile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--encoding", help="FILE's encoding (default: the profile's, else UTF-8 with or without BOM).")
def csv_profile_check(profile: Path, file: Path | None, encoding: str | None) -> None:
    """Check PROFILE, and that FILE's header has every column it maps (exit 4 when not)."""

    def go() -> int:
        from ops.profiles import check_profile

        checked = check_profile(profile, file, encoding)
        click.echo(f"{profile}: {checked.import_type} profile, {len(checked.columns)} column(s) mapped"
                   + (f", enrols on {', '.join(checked.invoice_types)}" if checked.invoice_types else "")
                   + (f"; {file} has every column it maps" if file else ""))
        return exitcodes.OK

    _guard(go)


if __name__ == "__main__":
    main()
