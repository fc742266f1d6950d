"""The `cutover` command line. Imports are lazy, so `cutover --help` never touches Redis or a database."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ops import exitcodes


def _settings() -> Any:
    from shared.settings import load_settings

    return load_settings()


def _console(as_json: bool = False) -> Any:
    from ops.console import make_console

    return make_console(stderr=as_json)


def _guard(fn: Callable[[], int]) -> None:
    """Typed errors become one clear line and a documented exit status."""
    from shared.errors import ConfigError, CutoverError, SourceError

    try:
        code = fn()
    except SourceError as exc:
        click.echo(f"error: {exc}", err=True)
        code = exitcodes.REFUSED
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        code = exitcodes.REFUSED
    except CutoverError as exc:
        click.echo(f"error: {exc}", err=True)
        code = exitcodes.FAILURE
    sys.exit(code)


def _hide_password(url: str) -> str:
    import re

    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """cutover: migrate customer and billing data from legacy exports into a billing database."""


FORMATS = click.Choice(["engageip", "iteras", "csv"])


def _csv_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--create-missing", is_flag=True,
                      help="csv: create the customer (and owner login) of an account number that does not exist.")(fn)
    fn = click.option("--encoding", help="csv: the file's encoding (default: the profile's, else UTF-8 with or without BOM).")(fn)
    return click.option("--profile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                        help="csv: the mapping profile (YAML or JSON) the file is read through.")(fn)


def _iteras_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--manual-invoice-verification", is_flag=True,
                      help="iteras: mark imported subscriptions for manual invoice verification (go-live safety).")(fn)
    return click.option("--lenient-json", is_flag=True,
                        help="iteras: accept // and /* */ comments and trailing commas, as in the seed's examples.")(fn)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--format", "format_name", type=FORMATS, help="Source format (default: from the file extension).")
@click.option("--day-first", is_flag=True, help="Dates read D/M/YYYY instead of M/D/YYYY.")
@_iteras_options
@_csv_options
@click.option("--email", help="Send the run's report (counts, every error row attached) here when it ends (needs SMTP settings).")
@click.option("--upsert", is_flag=True, help="Update rows whose natural key exists with different content.")
@click.option("--wait/--no-wait", default=True, help="Wait for the run to finish, with a live display.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON (for scripts).")
@click.option("--workers", "local_workers", type=int, default=None,
              help="Start N local worker processes (default with the embedded broker: one per core).")
@click.option("--timeout", type=float, default=None, help="Stop waiting after this many seconds (exit 5).")
@click.option("--records-per-message", type=click.IntRange(1, 10_000), default=1, show_default=True,
              help="Pack N records into each message for raw speed (same keys, outcomes, dead letters and replay).")
def run(paths: tuple[Path, ...], format_name: str | None, day_first: bool, lenient_json: bool,
        manual_invoice_verification: bool, profile: Path | None, encoding: str | None, create_missing: bool,
        email: str | None, upsert: bool, wait: bool, as_json: bool, local_workers: int | None, timeout: float | None,
        records_per_message: int) -> None:
    """Stage FILES (or folders of them), publish one message per record in waves, and load them."""

    def go() -> int:
        from ops.runs import RunRequest, execute_run

        request = RunRequest(list(paths), format_name, day_first, upsert, wait, as_json, local_workers, timeout,
                             lenient_json, manual_invoice_verification, profile, encoding, create_missing, email,
                             records_per_message)
        code, doc = execute_run(_settings(), request, _console(as_json))
        if as_json:
            click.echo(json.dumps({**doc, "exit_code": code}, indent=2))
        return code

    _guard(go)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--format", "format_name", type=FORMATS, help="Source format (default: from the file extension).")
@click.option("--day-first", is_flag=True, help="Dates read D/M/YYYY instead of M/D/YYYY.")
@_iteras_options
@_csv_options
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def validate(paths: tuple[Path, ...], format_name: str | None, day_first: bool, lenient_json: bool,
             manual_invoice_verification: bool, profile: Path | None, encoding: str | None, create_missing: bool,
             as_json: bool) -> None:
    """Check FILES completely without writing to the target; exit 3 when any record would fail."""

    def go() -> int:
        from dataclasses import asdict

        from ops.validate import validate as check
        from producer.readers.base import ReadOptions

        options = ReadOptions(day_first=day_first, lenient_json=lenient_json,
                              manual_invoice_verification=manual_invoice_verification, encoding=encoding,
                              create_missing=create_missing)
        report = check(_settings(), list(paths), format_name, options, profile)
        if as_json:
            click.echo(json.dumps({"records": report.records, "precheck": report.precheck,
                                   "findings": [asdict(f) for f in report.findings]}, indent=2))
        else:
            for line in report.precheck:
                click.echo(line)
            for f in report.findings:
                click.echo(f"{f.position}: {f.entity}: {f.outcome} ({f.error_class}): {f.message}")
            click.echo(f"{report.records} records checked, {len(report.findings)} would not load")
        return exitcodes.RECORDS_FAILED if report.findings else exitcodes.OK

    _guard(go)


@main.command()
@click.argument("run_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--limit", default=20, show_default=True, help="Runs to list.")
def status(run_id: str | None, as_json: bool, limit: int) -> None:
    """List runs, or show one run's counts per entity."""

    def go() -> int:
        from ops.status import list_runs, show_run

        return show_run(_settings(), run_id, as_json) if run_id else list_runs(_settings(), as_json, limit)

    _guard(go)


@main.command()
@click.argument("run_id")
@click.option("--wait/--no-wait", default=True, help="Wait for the run to finish, with a live display.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@click.option("--workers", "local_workers", type=int, default=None, help="Start N local worker processes.")
def resume(run_id: str, wait: bool, as_json: bool, local_workers: int | None) -> None:
    """Get a run (or replay) moving again: re-publish its unfinished chunks (loading is idempotent)."""

    def go() -> int:
        from ops.runs import execute_resume

        code, doc = execute_resume(_settings(), run_id, wait=wait, as_json=as_json, local_workers=local_workers,
                                   console=_console(as_json))
        if as_json:
            click.echo(json.dumps({**doc, "exit_code": code}, indent=2))
        return code

    _guard(go)


@main.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def reconcile(run_id: str, as_json: bool) -> None:
    """Compare what RUN's source said (records, money per account) with the target; exit 6 on any difference."""

    def go() -> int:
        from ops.reconcile import reconcile as check
        from ops.services import database

        with database(_settings())() as session:
            result = check(session, run_id)
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
def report(run_id: str, out_dir: Path, formats: tuple[str, ...]) -> None:
    """Write RUN's per-record results: one row per source record (file, position, key, outcome, target id, error)."""

    def go() -> int:
        from ops.report import FORMATS, write_report
        from ops.services import database

        with database(_settings())() as session:
            paths = write_report(session, run_id, out_dir, formats or FORMATS)
        for path in paths.values():
            click.echo(f"wrote {path}")
        return exitcodes.OK

    _guard(go)


@main.group()
def dlq() -> None:
    """Dead letters: list, show, replay, discard."""


def _letter_filters(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--run", "run_id", help="Only this run.")(fn)
    fn = click.option("--entity", help="Only this entity type (e.g. User).")(fn)
    fn = click.option("--error-class", help="Only this error class (e.g. UnknownReference).")(fn)
    fn = click.option("--outcome", type=click.Choice(["dead", "blocked"]), help="Only dead or only blocked.")(fn)
    return fn


@dlq.command("list")
@_letter_filters
@click.option("--state", type=click.Choice(["open", "replayed", "discarded", "any"]), default="open", show_default=True)
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def dlq_list(run_id: str | None, entity: str | None, error_class: str | None, outcome: str | None, state: str,
             limit: int, as_json: bool) -> None:
    """List dead letters."""

    def go() -> int:
        from ops.dlq import list_letters
        from producer.replay import LetterFilter

        return list_letters(_settings(), LetterFilter(run_id, entity, error_class, outcome, state=state), limit, as_json)

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
@click.option("--wait/--no-wait", default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--workers", "local_workers", type=int, default=None, help="Start N local worker processes.")
def dlq_replay(letter_ids: tuple[int, ...], run_id: str | None, entity: str | None, error_class: str | None,
               outcome: str | None, upsert: bool, wait: bool, as_json: bool, local_workers: int | None) -> None:
    """Replay open dead letters (and the records blocked behind them) in wave order."""

    def go() -> int:
        from ops.runs import execute_replay
        from producer.replay import LetterFilter

        letters = LetterFilter(run_id, entity, error_class, outcome, ids=letter_ids)
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
        from ops.services import database
        from producer.replay import LetterFilter, discard

        if not (letter_ids or run_id or entity or error_class or outcome):
            raise click.UsageError("name letter ids or at least one filter")
        if not yes and not click.confirm("discard the matching dead letters?", default=False):
            return exitcodes.OK
        count = discard(database(_settings()), LetterFilter(run_id, entity, error_class, outcome, ids=letter_ids))
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
        from ops.services import upgrade_database
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
@click.pass_context
def worker(ctx: click.Context, queues: str | None, concurrency: int | None) -> None:
    """Run workers on this machine (a thin wrapper over `celery worker`; extra options pass through)."""

    def go() -> int:
        import os

        from ops.embedded import worker_command

        settings = _settings()
        if settings.embedded_broker:
            raise click.UsageError("set CUTOVER_BROKER_URL: `cutover worker` joins a shared broker "
                                   "(the embedded default starts its own workers during `cutover run`)")
        cmd = worker_command(settings, queues.split(",") if queues else None, concurrency) + list(ctx.args)
        os.execvpe(cmd[0], cmd, {**os.environ, **settings.as_env()})
        return exitcodes.FAILURE

    _guard(go)


@main.command()
@click.option("--port", type=int, help="Port (default: CUTOVER_FLOWER_PORT).")
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option("--insecure-open", is_flag=True, help="Run without credentials (only allowed on localhost).")
def flower(port: int | None, address: str, insecure_open: bool) -> None:
    """Start Flower on the configured broker, with basic auth from settings."""

    def go() -> int:
        from ops.flower import exec_flower, flower_command

        settings = _settings()
        exec_flower(settings, flower_command(settings, port, address, insecure_open))
        return exitcodes.FAILURE

    _guard(go)


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--accounts", default=1000, show_default=True, help="Accounts to generate.")
@click.option("--seed", default=0, show_default=True)
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
              help="Records a packed message carries.")
@click.option("--ledger/--no-ledger", default=True, show_default=True, help="Include invoices, transactions and payments.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("bench-results"), show_default=True,
              help="Where bench.json is written.")
@click.option("--scratch-database", default="cutover_bench", show_default=True,
              help="PostgreSQL: the database dropped and created again before each case (never one in use).")
def bench(records: int, database_url: str | None, broker_url: str | None, workers: int, scaling: str, naive_records: int,
          packed: int, ledger: bool, out_dir: Path, scratch_database: str) -> None:
    """Run a synthetic migration end to end per message shape and compare with PostgreSQL COPY of the same rows."""

    def go() -> int:
        from rich.table import Table

        from ops.bench.run import RECORDS_PER_ACCOUNT, BenchConfig, run_bench, table

        per_account = RECORDS_PER_ACCOUNT if ledger else 6
        config = BenchConfig(
            accounts=max(1, records // per_account),
            database_url=database_url or os.environ.get("CUTOVER_DATABASE_URL") or "sqlite",
            broker_url=broker_url or os.environ.get("CUTOVER_BROKER_URL") or None, out_dir=out_dir, workers=workers,
            scaling=tuple(int(n) for n in scaling.split(",") if n.strip()),
            naive_accounts=max(1, naive_records // per_account), packed=packed, ledger=ledger,
            scratch_database=scratch_database)
        console = _console()
        doc = run_bench(config, progress=console.print)
        rows = table(doc)
        grid = Table(*rows[0], title=f"cutover bench — {records:,} records requested")
        for row in rows[1:]:
            grid.add_row(*row)
        console.print(grid)
        for case in doc["cases"]:
            name = f"{case['case']['name']} × {case['case']['workers']}"
            console.print(f"{name}: records/s per wave — " + ", ".join(
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
            if f.name in ("vault_key", "vault_previous_keys", "flower_password", "smtp_password") and value:
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
        from ops.services import database
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
@click.option("--type", "import_type", required=True, type=click.Choice(["registration", "autopay", "paperless"]))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default: FILE with .profile.yaml).")
@click.option("--encoding", help="The file's encoding (default: UTF-8 with or without BOM).")
@click.option("--force", is_flag=True, help="Overwrite an existing profile.")
def csv_profile_init(file: Path, import_type: str, out: Path | None, encoding: str | None, force: bool) -> None:
    """Write a starting profile from FILE's header, with the obvious columns mapped."""

    def go() -> int:
        from ops.profiles import init_profile
        from shared.errors import ConfigError

        target = out or file.with_suffix(".profile.yaml")
        if target.exists() and not force:
            raise ConfigError(f"{target} exists; use --force to overwrite it or --out to write elsewhere")
        text, todo = init_profile(file, import_type, encoding)
        target.write_text(text, encoding="utf-8")
        click.echo(f"wrote {target}")
        needs = "the account_number recipe" + (" and invoice_types" if import_type != "registration" else "")
        click.echo(f"review it: {needs} need you" + (f"; no column found for {', '.join(todo)}" if todo else ""))
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
