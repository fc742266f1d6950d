"""Database trouble in the middle of a wave (runbook §9 and §10), on the real PostgreSQL:

* an outage shorter than the retry budget: batches are sent again with back-off and commit once the
  database is back; nothing is dead-lettered;
* an outage longer than the retry budget: the worker keeps sending the batch again while even the dead
  letters cannot be written, and the run goes on by itself once the database answers;
* transient errors through every attempt while the database is reachable: `RetriesExhausted` dead
  letters, which replay once the trouble is over;
* a worker that dies on a record every time: `WorkerLost` after `CUTOVER_MAX_ATTEMPTS` deliveries.

Every wait is for an event (a log line, a blocked backend, a dead letter), never for the clock."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import POSTGRES_ADMIN_URL, Cluster, wait_until
from tests.integration.test_resilience import write_accounts

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgres"], indirect=True)]

USERS = 60


def admin_execute(*statements: str, **params: str) -> None:
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for statement in statements:
                conn.execute(sa.text(statement), params)
    finally:
        admin.dispose()


def database_of(cluster: Cluster) -> str:
    name = sa.engine.make_url(cluster.database_url).database
    assert name
    return name


def set_connections(database: str, allowed: bool) -> None:
    """Open or close the database: closed, new connections are refused and every existing one is cut."""
    statements = [f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {"true" if allowed else "false"}']
    if not allowed:
        statements.append("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d")
    admin_execute(*statements, d=database)


def start_run_and_wait_until_under_way(cluster: Cluster, source: Path) -> str:
    code, started = cluster.run_json("run", str(source), "--no-wait")
    assert code == 0, started
    run_id = str(started["run_id"])
    wait_until(lambda: committed(cluster, run_id) >= 8, 120, "the run to be under way")
    return run_id


def committed(cluster: Cluster, run_id: str) -> int:
    return int(cluster.query("SELECT count(*) FROM staged_records WHERE run_id = :r AND status = 'committed'",
                             r=run_id)[0][0])


def log_says(cluster: Cluster, text: str) -> bool:
    return text in cluster.log_text()


def wait_for_completion(cluster: Cluster, run_id: str) -> dict[str, Any]:
    wait_until(lambda: cluster.run_json("status", run_id)[1]["state"] == "completed", 300, "the run to complete")
    return cluster.run_json("status", run_id)[1]


@pytest.mark.cluster_env(CUTOVER_MAX_ATTEMPTS="10")
def test_database_outage_is_retried_not_dead_lettered(cluster: Cluster, tmp_path: Path) -> None:
    source = tmp_path / "accounts.xml"
    total = write_accounts(source, USERS)
    cluster.start_worker(concurrency=2)
    run_id = start_run_and_wait_until_under_way(cluster, source)
    database = database_of(cluster)
    from shared.db import engine_for

    engine_for(cluster.database_url).dispose()
    set_connections(database, allowed=False)
    try:
        # the database stays down until a batch has really failed on it and been sent again
        wait_until(lambda: log_says(cluster, "transient OperationalError, retry 1 of a batch"), 120,
                   "a batch to fail on the outage and be sent again")
    finally:
        set_connections(database, allowed=True)
    doc = wait_for_completion(cluster, run_id)
    totals = doc["totals"]
    assert totals["committed"] == total, totals
    assert totals["dead"] == 0
    assert cluster.query("SELECT count(*) FROM dead_letters") == [(0,)]
    assert cluster.query("SELECT count(*) FROM ledger") == [(total,)]


@pytest.mark.cluster_env(CUTOVER_MAX_ATTEMPTS="2", CUTOVER_RETRY_BACKOFF_MAX="1")
def test_an_outage_past_the_retry_budget_keeps_sending_the_batch_and_loses_nothing(cluster: Cluster,
                                                                                  tmp_path: Path) -> None:
    """Runbook §10: "If the database is still down at the last attempt, even the dead letters cannot be
    written. The worker then sends the batch's messages again … so no record is lost"."""
    source = tmp_path / "accounts.xml"
    total = write_accounts(source, USERS)
    cluster.start_worker(concurrency=2)
    run_id = start_run_and_wait_until_under_way(cluster, source)
    database = database_of(cluster)
    from shared.db import engine_for

    engine_for(cluster.database_url).dispose()
    set_connections(database, allowed=False)
    try:
        wait_until(lambda: log_says(cluster, "database still unreachable; sending the batch again in 1s"), 120,
                   "the retry budget to run out while the database is down")
        assert log_says(cluster, "transient OperationalError, retry 1 of a batch")
    finally:
        set_connections(database, allowed=True)
    doc = wait_for_completion(cluster, run_id)
    totals = doc["totals"]
    assert totals["committed"] == total, totals
    assert totals["dead"] == totals["blocked"] == 0
    assert cluster.query("SELECT count(*) FROM dead_letters") == [(0,)]
    assert cluster.query("SELECT count(*) FROM ledger") == [(total,)]


@contextmanager
def accounts_locked(cluster: Cluster) -> Iterator[sa.Connection]:
    """Hold an EXCLUSIVE lock on `accounts`: reads go on, every insert or update of an account waits."""
    engine = sa.create_engine(cluster.database_url)
    conn = engine.connect()
    try:
        conn.execute(sa.text("LOCK TABLE accounts IN EXCLUSIVE MODE"))
        yield conn
    finally:
        conn.rollback()
        conn.close()
        engine.dispose()


def one_user(tmp_path: Path) -> Path:
    source = tmp_path / "poison.xml"
    source.write_text('<?xml version="1.0"?>\n<Export>\n  <Owner Name="admin"/>\n'
                      '  <User Name="poison" Owner="admin" BillDay="3"/>\n</Export>\n')
    return source


@pytest.mark.cluster_env(CUTOVER_MAX_ATTEMPTS="2", CUTOVER_RETRY_BACKOFF_MAX="1")
def test_transient_errors_through_every_attempt_are_retries_exhausted_and_replay(cluster: Cluster,
                                                                                tmp_path: Path) -> None:
    """A lock held past PostgreSQL's lock_timeout is an OperationalError, like an outage, but the database
    answers: after the last attempt the record is parked as RetriesExhausted, with its hint (runbook §10)."""
    database = database_of(cluster)
    admin_execute(f"ALTER DATABASE \"{database}\" SET lock_timeout = '1s'")
    with accounts_locked(cluster):
        cluster.start_worker(concurrency=2)
        code, started = cluster.run_json("run", str(one_user(tmp_path)), "--no-wait")
        assert code == 0, started
        run_id = started["run_id"]
        doc = wait_for_completion(cluster, run_id)
        assert doc["entities"] == {
            "Owner": {"wave": 0, "read": 1, "committed": 1, "skipped": 0, "dead": 0, "blocked": 0, "pending": 0},
            "User": {"wave": 2, "read": 1, "committed": 0, "skipped": 0, "dead": 1, "blocked": 0, "pending": 0}}
    [letter] = cluster.run_json("dlq", "list", "--run", run_id)[1]
    assert (letter["entity"], letter["error_class"], letter["stage"], letter["attempts"]) == \
        ("User", "RetriesExhausted", "load", 2)
    assert re.match(r"OperationalError after 2 attempts: .*lock timeout", letter["message"]), letter["message"]
    assert letter["hint"] == "check the database and broker, then replay"
    assert log_says(cluster, "User: transient OperationalError, retry 1 of a batch of 1 record(s) in 1s")

    admin_execute(f'ALTER DATABASE "{database}" RESET lock_timeout')
    code, replay = cluster.run_json("dlq", "replay", "--error-class", "RetriesExhausted")
    assert code == 0, replay
    assert replay["totals"]["committed"] == 1
    assert cluster.query("SELECT name FROM accounts") == [("poison",)]
    assert cluster.query("SELECT state FROM dead_letters") == [("replayed",)]


def blocked_backends(database: str) -> list[int]:
    admin = sa.create_engine(POSTGRES_ADMIN_URL)
    try:
        with admin.connect() as conn:
            return [r[0] for r in conn.execute(sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = :d AND wait_event_type = 'Lock'"), {"d": database})]
    finally:
        admin.dispose()


@pytest.mark.cluster_env(CUTOVER_MAX_ATTEMPTS="2", CUTOVER_VISIBILITY_TIMEOUT="10")
def test_a_record_a_worker_dies_on_every_time_is_worker_lost(cluster: Cluster, tmp_path: Path) -> None:
    """Runbook §9: "When the count passes CUTOVER_MAX_ATTEMPTS, the record is not run again. It is
    dead-lettered as WorkerLost". The worker is SIGKILLed each time it is stuck loading the record (behind
    a lock the test holds); Redis delivers the message again after the visibility timeout."""
    database = database_of(cluster)
    kills = 0
    with accounts_locked(cluster):
        worker = cluster.start_worker(concurrency=1)
        code, started = cluster.run_json("run", str(one_user(tmp_path)), "--no-wait")
        assert code == 0, started
        run_id = started["run_id"]

        def parked() -> bool:
            return bool(cluster.query("SELECT count(*) FROM dead_letters")[0][0])

        while not parked():
            wait_until(lambda: parked() or blocked_backends(database), 120,
                       "the worker to be stuck on the record, or the record to be parked")
            if parked():
                break
            cluster.kill_worker(worker)
            kills += 1
            # a dead client's backend still waits for the lock: end it, so the next wait sees a new one
            admin_execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d "
                          "AND wait_event_type = 'Lock'", d=database)
            wait_until(lambda: not blocked_backends(database), 30, "the killed worker's backend to end")
            assert kills <= 2, "the record should have been parked after CUTOVER_MAX_ATTEMPTS deliveries"
            worker = cluster.start_worker(concurrency=1)
        doc = wait_for_completion(cluster, run_id)
    assert kills == 2, "two deliveries died; the third was not run"
    assert doc["totals"] == {"read": 2, "committed": 1, "skipped": 0, "dead": 1, "blocked": 0, "pending": 0}
    [letter] = cluster.run_json("dlq", "list", "--run", run_id)[1]
    assert (letter["entity"], letter["error_class"], letter["attempts"]) == ("User", "WorkerLost", 3)
    assert letter["message"] == "the worker died on this record 2 times"
    assert letter["hint"] == "look for a crash in the worker logs, then replay"
    assert cluster.query("SELECT count(*) FROM accounts") == [(0,)]

    code, replay = cluster.run_json("dlq", "replay", "--error-class", "WorkerLost")
    assert code == 0, replay
    assert cluster.query("SELECT name FROM accounts") == [("poison",)]
    assert cluster.query("SELECT count(*) FROM ledger WHERE entity = 'User'") == [(1,)]
