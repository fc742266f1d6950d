"""A database outage in the middle of a wave: records retry with exponential back-off and commit
once the database is back; nothing is dead-lettered, nothing is lost."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import POSTGRES_ADMIN_URL, Cluster
from tests.integration.test_resilience import wait_until, write_accounts

pytestmark = pytest.mark.slow

USERS = 60


def set_connections(database: str, allowed: bool) -> None:
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {"true" if allowed else "false"}'))
        if not allowed:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                         {"d": database})
    admin.dispose()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_database_outage_is_retried_not_dead_lettered(cluster: Cluster, tmp_path: Path) -> None:
    source = tmp_path / "accounts.xml"
    total = write_accounts(source, USERS)
    cluster.start_worker(concurrency=2)
    code, started = cluster.run_json("run", str(source), "--no-wait")
    assert code == 0
    run_id = started["run_id"]
    database = sa.engine.make_url(cluster.database_url).database
    assert database

    def committed() -> int:
        return cluster.query("SELECT count(*) FROM staged_records WHERE run_id = :r AND status = 'committed'", r=run_id)[0][0]

    wait_until(lambda: committed() >= 8, 120, "the run to be under way")
    from shared.db import engine_for

    engine_for(cluster.database_url).dispose()
    set_connections(database, allowed=False)
    outage = threading.Timer(4.0, set_connections, args=(database, True))
    outage.start()
    try:
        time.sleep(4.5)
        outage.join()
    finally:
        set_connections(database, allowed=True)
    wait_until(lambda: cluster.run_json("status", run_id)[1]["state"] == "completed", 240, "the run to complete")
    _, doc = cluster.run_json("status", run_id)
    assert doc["totals"]["committed"] == total, doc["totals"]
    assert doc["totals"]["dead"] == 0
    assert "transient OperationalError, retry" in cluster.log.read_text()
