"""Faults a cut-over weekend meets, each reproduced for real, and the run finishing by itself — no
`cutover resume`, no worker restarted by hand — with every record committed exactly once."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import POSTGRES_ADMIN_URL
from tests.faults import assert_loaded_once, make_cluster, own_redis, redis_client, settled, wait_until, write_accounts

pytestmark = pytest.mark.slow

USERS = 120


@pytest.mark.parametrize("appendonly", [False, True], ids=["redis-empty-after-restart", "redis-with-aof"])
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_run_finishes_after_a_redis_restart_with_workers_kept_running(tmp_path: Path, database_url: str,
                                                                      appendonly: bool) -> None:
    """Redis goes away while the worker holds messages in its batch buffer (they wait up to
    ``batch_wait`` = 8 s there): the worker must reconnect, flush again on time, and whatever Redis
    lost must be published again, with nobody restarting anything."""
    redis = own_redis(tmp_path, appendonly)
    cluster = make_cluster(tmp_path / "home", redis.url(), database_url, CUTOVER_BATCH_WAIT="8")
    try:
        worker = cluster.start_worker(concurrency=2)
        total = write_accounts(tmp_path / "accounts.xml", USERS)
        code, started = cluster.run_json("run", str(tmp_path / "accounts.xml"), "--no-wait")
        assert code == 0
        run_id = started["run_id"]
        client = redis_client(redis)
        wait_until(lambda: client.hlen("unacked") > 0, 60, "the worker to hold messages")
        assert settled(cluster, run_id).get("committed", 0) == 0, "the fault must come before the first batch"

        redis.restart(down_for=3)  # with AOF the queues come back; without, Redis comes back empty

        wait_until(lambda: cluster.run_json("status", run_id)[1]["state"] == "completed", 300, "the run to complete")
        assert worker.poll() is None, f"the worker died:\n{cluster.log.read_text()[-3000:]}"
        assert_loaded_once(cluster, run_id, total, USERS)
    finally:
        cluster.stop()
        redis.stop()


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_run_finishes_after_workers_are_killed_three_times(tmp_path: Path, database_url: str) -> None:
    """Each SIGKILL strands the messages the worker had taken (unacknowledged, in Redis, for the
    hour-long visibility timeout): the sweeper publishes their records again."""
    redis = own_redis(tmp_path, appendonly=False)
    cluster = make_cluster(tmp_path / "home", redis.url(), database_url)
    try:
        worker = cluster.start_worker(concurrency=2)
        total = write_accounts(tmp_path / "accounts.xml", USERS)
        _, started = cluster.run_json("run", str(tmp_path / "accounts.xml"), "--no-wait")
        run_id = started["run_id"]
        for kill in range(3):
            floor = settled(cluster, run_id).get("committed", 0)
            wait_until(lambda f=floor: settled(cluster, run_id).get("committed", 0) >= f + 5, 180,
                       f"progress before kill {kill + 1}")
            cluster.kill_worker(worker)
            worker = cluster.start_worker(concurrency=2)
        wait_until(lambda: cluster.run_json("status", run_id)[1]["state"] == "completed", 300, "the run to complete")
        assert_loaded_once(cluster, run_id, total, USERS)
        assert "published again" in cluster.log.read_text(), "the sweeper, not luck, finished the run"
    finally:
        cluster.stop()
        redis.stop()


def test_worker_of_another_database_never_takes_the_runs_messages(tmp_path: Path, redis_url: str) -> None:
    mine = make_cluster(tmp_path / "mine", redis_url, f"sqlite:///{tmp_path / 'mine.db'}")
    other = make_cluster(tmp_path / "other", redis_url, f"sqlite:///{tmp_path / 'other.db'}")
    try:
        other.start_worker(concurrency=1)
        total = write_accounts(tmp_path / "accounts.xml", 10, passwords=False)
        _, started = mine.run_json("run", str(tmp_path / "accounts.xml"), "--no-wait")
        run_id = started["run_id"]
        time.sleep(6)
        assert settled(mine, run_id) == {"pending": total}, "nothing of the run may be taken by the other worker"
        assert run_id not in other.log.read_text()
        mine.start_worker(concurrency=1)
        wait_until(lambda: mine.run_json("status", run_id)[1]["state"] == "completed", 120, "the run to complete")
        assert settled(mine, run_id) == {"committed": total}
    finally:
        mine.stop()
        other.stop()


def _allow_connections(database: str, allowed: bool) -> None:
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {"true" if allowed else "false"}'))
        if not allowed:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                         {"d": database})
    admin.dispose()


OUTAGE_SECONDS = 180


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_waiting_run_rides_out_a_three_minute_database_outage(tmp_path: Path, database_url: str, redis_url: str) -> None:
    cluster = make_cluster(tmp_path / "home", redis_url, database_url)
    database = sa.engine.make_url(database_url).database
    assert database
    try:
        cluster.start_worker(concurrency=2)
        total = write_accounts(tmp_path / "accounts.xml", 60)
        waiting = subprocess.Popen([sys.executable, "-m", "ops.cli", "run", str(tmp_path / "accounts.xml")],
                                   env=cluster.env, cwd=cluster.home, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        wait_until(lambda: cluster.query("SELECT count(*) FROM staged_records WHERE status = 'committed'")[0][0] >= 8,
                   120, "the run to be under way")
        from shared.db import engine_for

        engine_for(database_url).dispose()
        _allow_connections(database, allowed=False)
        back = threading.Timer(OUTAGE_SECONDS, _allow_connections, args=(database, True))
        back.start()
        try:
            back.join()
        finally:
            _allow_connections(database, allowed=True)
        out, err = waiting.communicate(timeout=600)
        assert waiting.returncode == 0, f"exit {waiting.returncode}\n{out[-3000:]}\n{err[-3000:]}"
        assert "Traceback" not in out + err
        assert "database" in (out + err).lower() and "unreachable" in (out + err).lower(), "the wait says why it waits"
        run_id = cluster.query("SELECT id FROM runs")[0][0]
        assert settled(cluster, run_id) == {"committed": total}
    finally:
        cluster.stop()
