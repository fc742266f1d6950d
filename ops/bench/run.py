"""`cutover bench`: a synthetic migration end to end, measured, beside PostgreSQL COPY of the same rows.

Each *case* is one real `cutover run` (a subprocess, the same command operators use) against a fresh
database and an emptied broker, watched from outside: CPU seconds and peak RSS per process group
(producer, workers, Redis, database) and Redis memory and queue length over the run. Rates per wave
come from the ledger's commit times. After the cases, the rows the last case loaded are COPYed into
empty twins of their tables, so the ratio compares the same rows into the same indexes.

Cases: ``naive`` (per-record messages, one transaction each), ``per-record`` (per-record messages,
batched by the workers: the default), ``packed`` (``--records-per-message``), and ``per-record`` again
with 1, 2 and 4 worker processes for the scaling table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ops.bench.copy_baseline import copy_baseline
from ops.bench.metrics import ProcessSampler, RedisMemory, postgres_server, process_tree, redis_server
from ops.sample import expected_counts, write_engageip_sample
from shared.celery_app import queue_name
from shared.entities import CONTROL_QUEUE, REGISTRY
from shared.identity import installation_id
from shared.schema.base import utcnow
from shared.settings import Settings

RECORDS_PER_ACCOUNT = 22
"""1 account : 2 contacts : 3 contact points : 12 transactions : 4 payments (plus a few invoice closes)."""


@dataclass(frozen=True)
class Case:
    """One measured run: how records travel and how many worker processes load them."""

    name: str
    workers: int
    batch_size: int = 2000
    records_per_message: int = 500
    accounts: int | None = None
    """Smaller input for a slow shape (the naive one), so the benchmark ends the same day."""
    passwords: bool = False
    """Every account with a password, hashed with the default ``password_hash``: users/s is reported."""


@dataclass
class BenchConfig:
    accounts: int
    database_url: str
    """A PostgreSQL server URL (its database is replaced by a scratch one per case), or ``sqlite``."""
    broker_url: str | None
    """A Redis URL whose database the benchmark may empty, or None for the embedded Redis."""
    out_dir: Path
    settings: Settings = field(default_factory=Settings)
    """The settings each case's `cutover run` starts from (its home, database, broker and batch size replaced)."""
    workers: int = 2
    scaling: tuple[int, ...] = (1, 2, 4)
    naive_accounts: int = 500
    password_accounts: int = 2000
    packed: int = 500
    ledger: bool = True
    scratch_database: str = "cutover_bench"
    only: tuple[str, ...] = ()
    """Run only the cases of these names (empty: every case)."""
    """The database the benchmark drops and creates again on the PostgreSQL server before each case."""


@dataclass
class CaseResult:
    case: Case
    records: int
    seconds: float
    exit_code: int
    counts: dict[str, int]
    waves: list[dict[str, Any]]
    processes: dict[str, Any]
    redis: dict[str, Any] | None
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    def cpu_per_record_ms(self) -> dict[str, float]:
        groups = self.processes.get("groups", {})
        return {name: round(1000 * g["cpu_seconds"] / max(1, self.records), 3) for name, g in groups.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"case": self.case.__dict__, "records": self.records, "seconds": round(self.seconds, 2),
                "records_per_second": round(self.rate), "exit_code": self.exit_code, "counts": self.counts,
                "waves": self.waves, "cpu_ms_per_record": self.cpu_per_record_ms(), "processes": self.processes,
                "redis": self.redis, "errors": self.errors}


REFERENCE = "default"
"""The case COPY is compared with: the default shape (packed messages, batches, set-based writes)."""


def cases_for(config: BenchConfig) -> list[Case]:
    cases = [Case(REFERENCE, config.workers, records_per_message=config.packed),
             Case("naive", config.workers, batch_size=1, records_per_message=1,
                  accounts=min(config.accounts, config.naive_accounts)),
             Case("per-record", config.workers, records_per_message=1),
             Case("passwords", config.workers, records_per_message=config.packed,
                  accounts=min(config.accounts, config.password_accounts), passwords=True)]
    cases += [Case(REFERENCE, n, records_per_message=config.packed) for n in config.scaling if n != config.workers]
    return [c for c in cases if not config.only or c.name in config.only]


def run_bench(config: BenchConfig, progress: Any = print) -> dict[str, Any]:
    """Run every case, then COPY the last full-size case's rows; write ``bench.json``; return the document."""
    config.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cutover-bench-") as scratch:
        inputs = _Inputs(Path(scratch), config.ledger)
        results: list[CaseResult] = []
        copy: dict[str, Any] | None = None
        for case in cases_for(config):
            accounts = case.accounts or config.accounts
            progress(f"case {case.name} × {case.workers} worker(s), {accounts} accounts …")
            with _fresh_target(config, case) as target:
                result = _run_case(config, case, inputs.files(accounts, case.passwords), target)
                results.append(result)
                progress(f"  {result.records} records in {result.seconds:.1f} s = {result.rate:,.0f} records/s")
                if case.name == REFERENCE and case.workers == config.workers and target.postgres:
                    progress("  COPY of the same rows into empty twins of the same tables …")
                    copy = copy_baseline(sa.create_engine(target.url)).to_dict()
    doc = _document(config, results, copy)
    (config.out_dir / "bench.json").write_text(json.dumps(doc, indent=2))
    return doc


class _Inputs:
    """Generated exports, one per size, reused by every case of that size."""

    def __init__(self, root: Path, ledger: bool) -> None:
        self.root, self.ledger = root, ledger
        self.made: dict[tuple[int, bool], list[Path]] = {}

    def files(self, accounts: int, passwords: bool = False) -> list[Path]:
        key = (accounts, passwords)
        if key not in self.made:
            self.made[key] = write_engageip_sample(self.root / f"a{accounts}{'p' if passwords else ''}", accounts,
                                                   passwords=passwords, points_per_account=3, ledger=self.ledger)
        return self.made[key]


@dataclass
class _Target:
    url: str
    env: dict[str, str]
    postgres: bool


@contextmanager
def _fresh_target(config: BenchConfig, case: Case) -> Iterator[_Target]:
    """A scratch database (PostgreSQL: a new database on the same server; SQLite: a new file) and an
    emptied broker database, plus the environment the run subprocess gets."""
    with tempfile.TemporaryDirectory(prefix="cutover-bench-home-") as home:
        postgres = config.database_url.startswith("postgresql")
        if postgres:
            url = make_url(config.database_url).set(database=config.scratch_database)
            _recreate_database(make_url(config.database_url), config.scratch_database)
            target_url = url.render_as_string(hide_password=False)
        else:
            target_url = f"sqlite:///{home}/cutover.db"
        if config.broker_url:
            _empty_redis(config.broker_url)
        settings = config.settings.with_overrides(home=Path(home), worker_batch_size=case.batch_size,
                                                  records_per_message=case.records_per_message,
                                                  database_url=target_url, broker_url=config.broker_url or "")
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("CUTOVER_")}  # PATH, PYTHONPATH…
        yield _Target(target_url, {**inherited, **settings.as_env()}, postgres)


def _recreate_database(server: Any, name: str) -> None:
    admin = sa.create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def _empty_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def _run_case(config: BenchConfig, case: Case, files: list[Path], target: _Target) -> CaseResult:
    cutover = [sys.executable, "-m", "ops.cli"]
    subprocess.run([*cutover, "db", "upgrade"], env=target.env, check=True, capture_output=True)
    command = [*cutover, "run", *map(str, files), "--workers", str(case.workers), "--json",
               "--records-per-message", str(case.records_per_message)]
    started = time.monotonic()
    started_at = utcnow()
    proc = subprocess.Popen(command, env=target.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tree = process_tree(proc.pid, include_root=True)
    groups: dict[str, Any] = {
        "producer": lambda: [p for p in tree() if p.pid == proc.pid],
        "workers": lambda: [p for p in tree() if "celery" in _cmdline(p)],
        "redis": redis_server(config.broker_url) if config.broker_url else (
            lambda: [p for p in tree() if "redis-server" in _cmdline(p)]),
        "database": postgres_server() if target.postgres else (lambda: []),
    }
    engine = sa.create_engine(target.url)
    identity = installation_id(engine)  # queue names carry the scratch database's identity
    engine.dispose()
    queues = [queue_name(q, identity) for q in (CONTROL_QUEUE, *REGISTRY.queues)]
    with ProcessSampler(groups) as sampler, _redis_watch(config, target, queues) as watch:
        out, err = proc.communicate()
    seconds = time.monotonic() - started
    doc = json.loads(out) if out.strip().startswith("{") else {}
    totals = doc.get("totals", {})
    records = int(totals.get("read", 0))
    counts = {k: int(v) for k, v in totals.items() if isinstance(v, int)}
    return CaseResult(case, records, seconds, proc.returncode, counts, _wave_rates(target.url, started_at),
                      sampler.figures().to_dict(), watch.figures().to_dict() if watch else None,
                      [] if proc.returncode == 0 else [err.strip()[-2000:]])


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return ""


@contextmanager
def _redis_watch(config: BenchConfig, target: _Target, queues: list[str]) -> Iterator[RedisMemory | None]:
    """The embedded Redis listens on a socket under the run's home; it is watched only when external."""
    if not config.broker_url:
        yield None
        return
    with RedisMemory(config.broker_url, queues) as watch:
        yield watch


def _wave_rates(url: str, started: datetime) -> list[dict[str, Any]]:
    """Records committed per wave, and how long each wave took: from the end of the wave before
    (the command's start for the first) to its last commit — so a wave that commits in one or two
    batches is not credited with the time it waited."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT s.wave, count(*), max(l.committed_at) FROM ledger l "
            "JOIN staged_records s ON s.id = l.record_id GROUP BY s.wave ORDER BY s.wave")).all()
        names: dict[int, str] = dict(conn.execute(sa.text("SELECT wave, min(entity) || CASE WHEN count(DISTINCT entity) > 1 "
                                          "THEN ' …' ELSE '' END FROM staged_records GROUP BY wave")).all())
        users = conn.execute(sa.text("SELECT count(*) FROM staged_records WHERE entity = 'User' AND status = 'committed'")
                             ).scalar_one()
    engine.dispose()
    waves = []
    previous_end = started
    for wave, count, last in rows:
        end = _as_datetime(last)
        span = max(0.001, (end - previous_end).total_seconds())
        entry = {"wave": wave, "entities": names.get(wave, ""), "committed": count, "seconds": round(span, 2),
                 "records_per_second": round(count / span)}
        if names.get(wave, "").startswith("User") and users:
            entry["users_per_second"] = round(users / span, 1)
        waves.append(entry)
        previous_end = end
    return waves


def _as_datetime(value: Any) -> Any:
    """SQLite hands timestamps back as text."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _document(config: BenchConfig, results: list[CaseResult], copy: dict[str, Any] | None) -> dict[str, Any]:
    """The ratio compares time for the same work: COPY writing every row the reference case wrote
    (target rows and idempotency ledger) against the case loading its records from the export."""
    reference = next((r for r in results if r.case.name == REFERENCE and r.case.workers == config.workers), None)
    copy_rate = reference.records / copy["copy"]["seconds"] if copy and reference and copy["copy"]["seconds"] else None
    if copy is not None and copy_rate is not None and reference is not None:
        copy["records_per_second"] = round(copy_rate)
        copy["staged_insert"]["records_per_second"] = round(reference.records / copy["staged_insert"]["seconds"])
    return {
        "machine": {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                    "python": sys.version.split()[0]},
        "config": {"accounts": config.accounts, "database": _backend(config.database_url),
                   "broker": "external redis" if config.broker_url else "embedded redis", "workers": config.workers,
                   "packed": config.packed, "ledger": config.ledger,
                   "expected_counts": expected_counts(config.accounts, points_per_account=3, ledger=config.ledger)},
        "copy": copy,
        "cases": [{**r.to_dict(), "ratio_to_copy": round(r.rate / copy_rate, 3) if copy_rate else None} for r in results],
    }


def _backend(url: str) -> str:
    return make_url(url).get_backend_name() if "://" in url else url


def table(doc: dict[str, Any]) -> list[list[str]]:
    """The summary rows: shape, workers, records, seconds, records/s, ratio to COPY, CPU ms/record, peak RSS."""
    rows = [["shape", "workers", "records", "seconds", "records/s", "× COPY", "CPU ms/record (prod/work/redis/db)",
             "peak RSS MB (producer / largest worker)", "peak Redis MB / queued"]]
    copy = doc.get("copy")
    if copy:
        c, s = copy["copy"], copy["staged_insert"]
        rows.append([f"PostgreSQL COPY ({c['rows']:,} rows)", "-", "same", f"{c['seconds']:.2f}",
                     f"{copy['records_per_second']:,}", "1.00", "", "", ""])
        rows.append(["COPY + INSERT … ON CONFLICT", "-", "same", f"{s['seconds']:.2f}", f"{s['records_per_second']:,}",
                     f"{c['seconds'] / s['seconds']:.2f}", "", "", ""])
    for case in doc["cases"]:
        cpu = case["cpu_ms_per_record"]
        groups = case["processes"].get("groups", {})
        redis = case.get("redis") or {}
        packed = case["case"]["records_per_message"]
        users = next((w["users_per_second"] for w in case["waves"] if "users_per_second" in w), None)
        rows.append([
            case["case"]["name"] + (f" ({packed}/msg)" if packed > 1 else " (1/msg)")
            + (f", {users:,} users/s" if case["case"].get("passwords") and users else ""),
            str(case["case"]["workers"]), f"{case['records']:,}", f"{case['seconds']:.1f}", f"{case['records_per_second']:,}",
            f"{case['ratio_to_copy']:.3f}" if case.get("ratio_to_copy") is not None else "-",
            "/".join(f"{cpu.get(g, 0):.2f}" for g in ("producer", "workers", "redis", "database")),
            f"{_mb(groups.get('producer', {}).get('peak_rss'))} / {_mb(groups.get('workers', {}).get('peak_rss'))}",
            f"{_mb(redis.get('peak_used_memory'))} / {redis.get('peak_queue_length', '-')}" if redis else "-",
        ])
    return rows


def _mb(value: Any) -> str:
    return f"{value / 2**20:.0f}" if isinstance(value, (int, float)) else "-"
