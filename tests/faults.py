"""Tools for fault tests: a cutover installation on a Redis of its own (so the test may stop,
restart or empty it), a sample migration of any size, and waiting for an event rather than a clock."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable
from pathlib import Path

import redis

from tests.conftest import Cluster
from tests.redis_server import RedisServer

HEAL_SETTINGS = {
    # the sweeper looks every second and acts on a dispatch that made no progress for 5 s
    "CUTOVER_SWEEP_SECONDS": "1",
    "CUTOVER_STALL_SECONDS": "5",
    # long enough that Redis's own redelivery (visibility timeout) can never be what heals a test
    "CUTOVER_VISIBILITY_TIMEOUT": "3600",
}


def make_cluster(home: Path, broker_url: str, database_url: str, **settings: str) -> Cluster:
    """A cutover installation like the suite's ``cluster`` fixture, on the given broker."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUTOVER_")}
    env.update({
        "CUTOVER_HOME": str(home),
        "CUTOVER_BROKER_URL": broker_url,
        "CUTOVER_DATABASE_URL": database_url,
        "CUTOVER_VAULT_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "CUTOVER_CHUNK_SIZE": "25",
        "CUTOVER_MAX_IN_FLIGHT": "100",
        "CUTOVER_RETRY_BACKOFF_MAX": "2",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        **HEAL_SETTINGS,
        **settings,
    })
    cluster = Cluster(home, env)
    upgraded = cluster.cli("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    return cluster


def wait_until(predicate: Callable[[], object], timeout: float, what: str, every: float = 0.3) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def write_accounts(path: Path, users: int, passwords: bool = True) -> int:
    """Reference data, then users (slow with passwords: a hash each), two contacts and an email
    each. Returns the record count."""
    lines = ['<?xml version="1.0"?>', "<Export>", '  <Owner Name="admin"/>', '  <ContactType Name="Billing Contact"/>',
             '  <ContactPointType Name="Email Address"/>']
    for i in range(users):
        password = f' Password="pw-{i}-x"' if passwords else ""
        lines.append(f'  <User Name="acct{i:05d}"{password} Owner="admin" BillDay="{i % 28 + 1}"/>')
    for i in range(users):
        for c in (1, 2):
            lines.append(f'  <Contact User="acct{i:05d}" ContactName="Person {c}" ContactType="Billing Contact"/>')
            lines.append(f'  <ContactEmail User="acct{i:05d}" ContactName="Person {c}" Email="p{c}.{i}@example.com"/>')
    lines.append("</Export>")
    path.write_text("\n".join(lines))
    return 3 + users * 5


def settled(cluster: Cluster, run_id: str) -> dict[str, int]:
    """Records of a run by status, straight from the staged records."""
    rows = cluster.query("SELECT status, count(*) FROM staged_records WHERE run_id = :r GROUP BY status", r=run_id)
    return {status: n for status, n in rows}


def assert_loaded_once(cluster: Cluster, run_id: str, total: int, users: int) -> None:
    """Every record committed exactly once: the run's counts, the ledger and the target rows agree."""
    _, doc = cluster.run_json("status", run_id)
    assert doc["state"] == "completed", doc
    assert doc["totals"]["read"] == total
    assert doc["totals"]["committed"] == total, doc["totals"]
    assert cluster.query("SELECT count(*) FROM ledger WHERE run_id = :r", r=run_id) == [(total,)]
    assert cluster.table_counts() == {"reference_items": 3, "accounts": users, "contacts": 2 * users,
                                      "contact_points": 2 * users}
    assert cluster.query("SELECT name FROM accounts GROUP BY name HAVING count(*) > 1") == []


def own_redis(tmp_path: Path, appendonly: bool) -> RedisServer:
    return RedisServer(tmp_path / ("redis-aof" if appendonly else "redis"), appendonly=appendonly).start()


def redis_client(server: RedisServer) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)
