"""A worker SIGKILLed mid-wave loses nothing and duplicates nothing: its unacknowledged messages come
back after the visibility timeout, and the idempotency ledger absorbs whatever ran twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import Cluster

pytestmark = pytest.mark.slow

USERS = 120


def write_accounts(path: Path, users: int) -> int:
    """Reference data, then users (slow: Argon2), two contacts and an email each. Returns the record count."""
    lines = ['<?xml version="1.0"?>', "<Export>", '  <Owner Name="admin"/>', '  <ContactType Name="Billing Contact"/>',
             '  <ContactPointType Name="Email Address"/>']
    for i in range(users):
        lines.append(f'  <User Name="acct{i:05d}" Password="pw-{i}-x" Owner="admin" BillDay="{i % 28 + 1}"/>')
    for i in range(users):
        for c in (1, 2):
            lines.append(f'  <Contact User="acct{i:05d}" ContactName="Person {c}" ContactType="Billing Contact"/>')
            lines.append(f'  <ContactEmail User="acct{i:05d}" ContactName="Person {c}" Email="p{c}.{i}@example.com"/>')
    lines.append("</Export>")
    path.write_text("\n".join(lines))
    return 3 + users * 5


def wait_until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_sigkilled_worker_loses_and_duplicates_nothing(cluster: Cluster, tmp_path: Path) -> None:
    source = tmp_path / "accounts.xml"
    total = write_accounts(source, USERS)
    first = cluster.start_worker(concurrency=2)
    code, started = cluster.run_json("run", str(source), "--no-wait")
    assert code == 0
    run_id = started["run_id"]

    def users_committed() -> int:
        return cluster.query("SELECT count(*) FROM staged_records WHERE run_id = :r AND entity = 'User' "
                             "AND status = 'committed'", r=run_id)[0][0]

    wait_until(lambda: users_committed() >= 10, 120, "the User wave to be under way")
    cluster.kill_worker(first)
    killed_at = users_committed()
    assert killed_at < USERS, "the worker must die mid-wave for this test to mean anything"

    cluster.start_worker(concurrency=2)
    wait_until(lambda: cluster.run_json("status", run_id)[1]["state"] == "completed", 240, "the run to complete")
    _, doc = cluster.run_json("status", run_id)
    assert doc["totals"]["read"] == total
    assert doc["totals"]["committed"] == total, doc["totals"]
    assert doc["totals"]["dead"] == doc["totals"]["blocked"] == doc["totals"]["skipped"] == 0
    assert cluster.table_counts() == {"reference_items": 3, "accounts": USERS, "contacts": 2 * USERS,
                                      "contact_points": 2 * USERS}
    assert cluster.query("SELECT count(*) FROM ledger") == [(total,)]
    duplicates = cluster.query("SELECT name, count(*) FROM accounts GROUP BY name HAVING count(*) > 1")
    assert duplicates == []
