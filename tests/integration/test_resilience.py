"""A worker SIGKILLed mid-wave loses nothing and duplicates nothing (runbook §9): its unacknowledged
messages come back after the visibility timeout (the test asks for a short one, and small batches so no
batch outlives it), each redelivery is counted on the record, and the idempotency ledger absorbs whatever
ran twice. Or, with the default hour-long timeout, `cutover resume` finishes the stalled chunks at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from tests.conftest import Cluster, wait_until

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


def unacked_loads(cluster: Cluster, queue: str = "accounts") -> int:
    """Messages of ``queue`` a worker has taken from Redis and not acknowledged yet (kombu keeps them in the
    ``unacked`` hash until the batch returns, and gives them back after the visibility timeout). Queue
    names carry the deployment's suffix (``accounts.<id>``)."""
    client = redis.Redis.from_url(cluster.env["CUTOVER_BROKER_URL"])
    try:
        return sum(1 for raw in client.hvals("unacked") if json.loads(raw)[2].split(".")[0] == queue)
    finally:
        client.close()


def kill_mid_wave(cluster: Cluster, source: Path) -> tuple[str, set[int]]:
    """Start a run, SIGKILL its only worker while it holds User messages it has not acknowledged (watched in
    Redis, so the kill cannot fall between two batches). Returns the run id and the records of the chunks
    published by then (the only ones the killed worker can have held)."""
    first = cluster.start_worker(concurrency=2)
    code, started = cluster.run_json("run", str(source), "--no-wait")
    assert code == 0, started
    run_id = started["run_id"]
    wait_until(lambda: "cutover.worker: User: " in cluster.log_text() and unacked_loads(cluster), 120,
               "a User batch to be loaded and the next ones taken from Redis")
    cluster.kill_worker(first)
    held = unacked_loads(cluster)
    assert held, "the worker acknowledged its last batch just before the kill: nothing was interrupted"
    committed = cluster.query("SELECT count(*) FROM staged_records WHERE run_id = :r AND entity = 'User' "
                              "AND status = 'committed'", r=run_id)[0][0]
    assert 0 < committed < USERS, "the worker must die mid-wave for this test to mean anything"
    published = {r[0] for r in cluster.query(
        "SELECT s.id FROM staged_records s JOIN dispatch_chunks c ON c.dispatch_id = s.dispatch_id AND c.wave = s.wave "
        "AND c.chunk = s.chunk WHERE s.run_id = :r", r=run_id)}
    return run_id, published


def assert_everything_once(cluster: Cluster, run_id: str, total: int) -> None:
    _, doc = cluster.run_json("status", run_id)
    assert doc["state"] == "completed", doc
    assert doc["totals"]["read"] == total
    assert doc["totals"]["committed"] == total, doc["totals"]
    assert doc["totals"]["dead"] == doc["totals"]["blocked"] == doc["totals"]["skipped"] == 0
    assert cluster.table_counts() == {"reference_items": 3, "accounts": USERS, "contacts": 2 * USERS,
                                      "contact_points": 2 * USERS}
    assert cluster.query("SELECT count(*) FROM ledger") == [(total,)]
    assert cluster.query("SELECT name, count(*) FROM accounts GROUP BY name HAVING count(*) > 1") == []


@pytest.mark.cluster_env(CUTOVER_VISIBILITY_TIMEOUT="30", CUTOVER_WORKER_BATCH_SIZE="10")
@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_sigkilled_worker_loses_and_duplicates_nothing(cluster: Cluster, tmp_path: Path) -> None:
    source = tmp_path / "accounts.xml"
    total = write_accounts(source, USERS)
    run_id, published = kill_mid_wave(cluster, source)

    cluster.start_worker(concurrency=2)
    wait_until(lambda: cluster.run_json("status", run_id)[1]["state"] == "completed", 240, "the run to complete")
    assert_everything_once(cluster, run_id, total)

    # The killed worker's messages really came back: Redis marked them redelivered and the worker counted
    # each redelivery on its record (runbook §9: "Each redelivery adds one to the record's attempt count").
    redelivered = {r[0]: r[1] for r in cluster.query(
        "SELECT id, attempts FROM staged_records WHERE run_id = :r AND attempts > 0", r=run_id)}
    assert redelivered, "no record was delivered twice: the kill did not interrupt any work"
    assert set(redelivered) <= published, "only messages published before the kill can come back"
    assert all(attempts == 1 for attempts in redelivered.values()), redelivered
    assert cluster.query("SELECT count(*) FROM dead_letters") == [(0,)]


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_resume_finishes_a_stalled_chunk_without_waiting_for_the_visibility_timeout(cluster: Cluster,
                                                                                    tmp_path: Path) -> None:
    """Runbook §9: after a worker machine dies, its messages stay unacknowledged for an hour; a new worker
    alone does not finish the run, `cutover resume RUN` does, and nothing is loaded twice."""
    source = tmp_path / "accounts.xml"
    total = write_accounts(source, USERS)
    run_id, _ = kill_mid_wave(cluster, source)
    cluster.start_worker(concurrency=2)
    assert cluster.run_json("status", run_id)[1]["totals"]["pending"] > 0

    code, resumed = cluster.run_json("resume", run_id, "--no-wait")
    assert (code, resumed) == (0, {"run_id": run_id, "state": "running", "exit_code": 0})
    wait_until(lambda: cluster.run_json("status", run_id)[1]["state"] == "completed", 180,
               "the resumed run to complete (the visibility timeout is an hour: only the resume can finish it)")
    assert_everything_once(cluster, run_id, total)
    resumed_lines = [line for line in cluster.log_text().splitlines() if f"resumed {run_id}:" in line]
    assert resumed_lines and "chunk(s) published again" in resumed_lines[0], resumed_lines

    again = cluster.cli("resume", run_id)
    assert again.returncode == 4, again.stdout + again.stderr
    assert f"error: run {run_id} is completed; nothing to resume" in again.stderr
