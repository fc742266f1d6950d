"""The embedded default, the path a new user takes first (docs/cli.md "Before you start", runbook §1): no
CUTOVER_BROKER_URL, so `cutover run`, `dlq replay` and `resume` each start a private Redis and local
workers and stop them when they end; `--workers N`; the vault key and the SQLite file made under
CUTOVER_HOME; Ctrl-C and `--timeout` stopping the run (status 5), which `cutover resume` then finishes.
Also `--workers N` with a configured broker, where no local worker starts without it."""

from __future__ import annotations

import re
import signal
import stat
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import CASES, Cluster, wait_until
from tests.integration.test_pipeline import FIRST_RUN
from tests.integration.test_resilience import write_accounts

pytestmark = pytest.mark.slow

REFERENCE = str(CASES / "engageip" / "faults-reference.xml")
ACCOUNTS = str(CASES / "engageip" / "faults-accounts.xml")


def left_running(home: Path, within: float = 15.0) -> list[str]:
    """Processes started for this home (the embedded Redis, local workers) still alive ``within``
    seconds after the command ended: a process killed on the way out may take a moment to be gone on a
    busy machine, one left behind stays."""
    deadline = time.monotonic() + within
    while True:
        found = []
        for proc in psutil.process_iter(["pid", "name"]):
            try:
                if proc.environ().get("CUTOVER_HOME") in (str(home), str(home.resolve())):
                    found.append(f"{proc.pid} {proc.info['name']}")
            except (psutil.Error, OSError):
                continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.fixture(params=["sqlite", "postgres"])
def installation(request: pytest.FixtureRequest, embedded: Cluster) -> Cluster:
    """The embedded broker, with its own SQLite file under home or with a configured PostgreSQL."""
    if request.param == "sqlite":
        return embedded
    configured = embedded.with_env(CUTOVER_DATABASE_URL=str(request.getfixturevalue("postgres_url")))
    assert configured.cli("db", "upgrade").returncode == 0
    return configured


def test_run_and_replay_start_and_stop_their_own_redis_and_workers(installation: Cluster) -> None:
    home = installation.home
    done = installation.cli("run", "--workers", "1", REFERENCE, ACCOUNTS)
    assert done.returncode == 3, done.stdout + done.stderr
    read, committed, skipped, dead, blocked = (sum(row[i] for row in FIRST_RUN.values()) for i in range(5))
    assert re.search(rf"^run r[\w-]+: staged {read} records from 2 file\(s\)$", done.stdout, re.M), done.stdout
    assert (f"read = committed + skipped + dead + blocked holds ({read} = {committed} + {skipped} + {dead} + {blocked})"
            in done.stdout), done.stdout
    log = (home / "logs" / "worker.log").read_text()
    assert "concurrency: 1 (prefork)" in log, "--workers 1 started one worker process"
    assert not (home / "redis.sock").exists(), "the embedded Redis stopped with the command"
    assert left_running(home) == [], "nothing loads once the command has ended"
    key = home / "vault.key"
    assert key.exists() and stat.S_IMODE(key.stat().st_mode) == 0o600, "a vault key made for this home, owner-only"
    if "CUTOVER_DATABASE_URL" not in installation.env:
        assert (home / "cutover.db").exists(), "the SQLite file under CUTOVER_HOME, upgraded by itself"

    # the other commands only read and write the database
    code, runs = installation.run_json("status")
    assert code == 0 and runs[0]["state"] == "completed"
    assert not (home / "redis.sock").exists() and left_running(home) == []

    # dlq replay starts them again for itself (one per core by default), and stops them
    fixed = installation.cli("run", str(CASES / "engageip" / "fix-reference.xml"))
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    code, replay = installation.run_json("dlq", "replay")
    assert code == 3 and replay["state"] == "completed" and replay["entities"]["User"]["committed"] == 1, replay
    assert left_running(home) == [] and not (home / "redis.sock").exists()
    assert installation.query("SELECT count(*) FROM accounts WHERE name = 'carol'") == [(1,)]


def run_id_of(installation: Cluster) -> str | None:
    """The run the background command staged, once its tables exist and its run is there."""
    import sqlalchemy as sa

    try:
        found = installation.query("SELECT id FROM runs WHERE kind = 'run'")
    except sa.exc.SQLAlchemyError:
        return None  # the command has not made its schema yet
    return str(found[0][0]) if found else None


def committed(installation: Cluster, run_id: str) -> int:
    return int(installation.query("SELECT count(*) FROM staged_records WHERE run_id = :r AND status = 'committed'",
                                  r=run_id)[0][0])


def test_ctrl_c_stops_the_run_and_resume_finishes_it(installation: Cluster, tmp_path: Path) -> None:
    source = tmp_path / "accounts.xml"
    total = write_accounts(source, 400)  # the users' batch hashes for seconds: Ctrl-C comes while it loads

    running = installation.popen("run", str(source))
    wait_until(lambda: run_id_of(installation) is not None, 60, "the run to be staged")
    run_id = run_id_of(installation)
    assert run_id is not None
    wait_until(lambda: committed(installation, run_id) >= 3 or running.poll() is not None, 120,
               "the run to be loading (its reference records committed)")
    assert running.poll() is None, "the run must still be loading when Ctrl-C comes"
    assert committed(installation, run_id) < total, "the run must still have records to load when Ctrl-C comes"
    running.send_signal(signal.SIGINT)
    out, err = running.communicate(timeout=120)
    assert running.returncode == 5, out + err
    assert f"interrupted: stopping the local workers; continue with `cutover resume {run_id}`" in out
    assert "Traceback" not in err and "reconciled" not in out
    assert left_running(installation.home) == [], "the workers stop with the command"
    _, doc = installation.run_json("status", run_id)
    assert doc["state"] == "interrupted" and doc["totals"]["pending"] > 0, "nothing loads until it is resumed"
    assert f"cutover resume {run_id}" in doc["message"]

    code, finished = installation.run_json("resume", run_id)
    assert code == 0, finished
    assert finished["state"] == "completed" and finished["totals"]["committed"] == total
    assert finished["reconciliation"][0]["reconciled"] is True
    assert installation.query("SELECT count(*) FROM ledger") == [(total,)], "nothing loaded twice"
    assert left_running(installation.home) == []


def test_timeout_stops_an_embedded_run_and_resume_finishes_it(embedded: Cluster, tmp_path: Path) -> None:
    source = tmp_path / "accounts.xml"
    total = write_accounts(source, 60)
    done = embedded.cli("run", str(source), "--timeout", "2")
    assert done.returncode == 5, done.stdout + done.stderr
    run_id = re.search(r"run (r[\w-]+): staged", done.stdout).group(1)  # type: ignore[union-attr]
    assert f"continue with `cutover resume {run_id}`" in done.stdout
    assert left_running(embedded.home) == []
    code, doc = embedded.run_json("status", run_id)
    assert doc["state"] == "interrupted" and doc["totals"]["pending"] > 0, doc

    resumed = embedded.cli("resume", run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"read = committed + skipped + dead + blocked holds ({total} = {total} + 0 + 0 + 0)" in resumed.stdout
    assert "reconciled: no ledger money in this run; every record read is accounted for" in resumed.stdout
    assert embedded.query("SELECT count(*) FROM ledger") == [(total,)]


def test_workers_option_starts_local_workers_with_a_configured_broker(cluster: Cluster) -> None:
    """With CUTOVER_BROKER_URL set, `run` starts no worker unless --workers N > 0 (no worker is running
    here: without the option the run would wait for one)."""
    code, doc = cluster.run_json("run", REFERENCE, "--workers", "1", timeout=180)
    assert code == 0 and doc["state"] == "completed" and doc["totals"]["committed"] == 13, doc
    log = (cluster.home / "logs" / "worker.log").read_text()
    assert "concurrency: 1 (prefork)" in log
    assert left_running(cluster.home) == []
    code, waited = cluster.run_json("run", REFERENCE, "--timeout", "3")
    assert code == 5 and waited["state"] == "ready", "no control worker: the run was not even picked up"
    assert waited["totals"]["pending"] == 13 and waited["exit_code"] == 5
