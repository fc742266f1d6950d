"""`cutover bench` end to end at its smallest size (docs/cli.md `cutover bench`): every case a real
`cutover run` on a fresh database; on PostgreSQL (a scratch database of this test's own, on the tests'
own Redis, which the benchmark empties) with the COPY baseline, and on SQLite with the embedded Redis.
Each case's records are the synthetic migration's, every one of them loaded (exit 0)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ops.bench.run import RECORDS_PER_ACCOUNT
from ops.sample import expected_counts
from tests.conftest import POSTGRES_ADMIN_URL, clean_environment, postgres_problem, unavailable
from tests.redis_server import RedisServer

pytestmark = pytest.mark.slow

RECORDS, NAIVE_RECORDS = 1000, 200


def bench(tmp_path: Path, *options: str) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    out = tmp_path / "results"
    env = {**clean_environment(), "CUTOVER_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "ops.cli", "bench", "--records", str(RECORDS), "--naive-records",
                           str(NAIVE_RECORDS), "--scaling", "", "--workers", "2", "--out", str(out), *options],
                          env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"written: {out / 'bench.json'}" in done.stdout
    return done, json.loads((out / "bench.json").read_text())


def assert_every_case_loaded_everything(doc: dict[str, object]) -> None:
    accounts = RECORDS // RECORDS_PER_ACCOUNT
    cases = doc["cases"]
    assert isinstance(cases, list)
    assert [(c["case"]["name"], c["case"]["records_per_message"]) for c in cases] == \
        [("default", 500), ("naive", 1), ("per-record", 1), ("passwords", 500)]
    for case in cases:
        size = case["case"]["accounts"] or accounts
        expected = sum(expected_counts(size, points_per_account=3, ledger=True).values())
        assert case["exit_code"] == 0 and case["errors"] == [], case["errors"]
        assert case["records"] == expected == case["counts"]["read"] == case["counts"]["committed"], case["counts"]
        assert case["seconds"] > 0 and case["records_per_second"] > 0
        assert sum(w["committed"] for w in case["waves"]) == expected, "every record's commit is in a wave's rate"
        assert case["processes"]["groups"]["workers"]["cpu_seconds"] > 0, "the workers' CPU was sampled"
    by_name = {c["case"]["name"]: c for c in cases}
    assert by_name["naive"]["case"]["batch_size"] == 1, "the naive case loads one record a batch"
    assert by_name["naive"]["records"] < by_name["default"]["records"], "the naive case is smaller"
    assert by_name["passwords"]["case"]["passwords"] and not by_name["default"]["case"]["passwords"]


@pytest.fixture
def scratch_database() -> Iterator[str]:
    """A database name of this test's own for the benchmark to drop and create, dropped at the end."""
    problem = postgres_problem()
    if problem:
        unavailable("postgres", problem)
    name = f"cutover_t_bench_{uuid.uuid4().hex[:8]}"
    yield name
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.mark.postgres
def test_bench_on_postgresql_with_the_copy_baseline(tmp_path: Path, scratch_database: str,
                                                    private_redis: RedisServer) -> None:
    broker = private_redis.url(9)  # the benchmark empties it before each case
    done, doc = bench(tmp_path, "--database", POSTGRES_ADMIN_URL, "--broker", broker, "--scratch-database",
                      scratch_database)
    assert doc["config"] == {**doc["config"], "database": "postgresql", "broker": "external redis", "workers": 2}
    assert_every_case_loaded_everything(doc)
    copy = doc["copy"]
    assert isinstance(copy, dict)
    assert copy["copy"]["rows"] == copy["staged_insert"]["rows"] > doc["cases"][1]["records"]  # more than the naive case's  # type: ignore[index]
    assert all(case["ratio_to_copy"] > 0 for case in doc["cases"])  # type: ignore[attr-defined]
    assert all(case["redis"]["peak_queue_length"] >= 0 for case in doc["cases"])  # type: ignore[attr-defined]
    assert "PostgreSQL COPY (" in done.stdout and "COPY + INSERT … ON CONFLICT" in done.stdout
    engine = sa.create_engine(sa.engine.make_url(POSTGRES_ADMIN_URL).set(database=scratch_database))
    with engine.connect() as conn:  # the last case's rows are in the scratch database, nowhere else
        assert conn.execute(sa.text("SELECT count(*) FROM ledger")).scalar_one() == doc["cases"][-1]["records"]  # type: ignore[index]
    engine.dispose()


def test_bench_on_sqlite_with_the_embedded_redis(tmp_path: Path) -> None:
    done, doc = bench(tmp_path)
    assert doc["config"] == {**doc["config"], "database": "sqlite", "broker": "embedded redis"}
    assert_every_case_loaded_everything(doc)
    assert doc["copy"] is None, "no COPY figures without PostgreSQL"
    assert "PostgreSQL COPY" not in done.stdout
