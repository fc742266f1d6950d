"""The embedded default (bundled Redis, local workers, SQLite under CUTOVER_HOME), as a first-run user
meets it: a killed or interrupted `cutover run` leaves nothing running and says what to type next;
reads never wait for the workers' write lock; a real-sized file with passwords loads to the end, even
on a busy machine."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ops.sample import expected_counts, write_engageip_sample
from tests.faults import wait_until, write_accounts

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


USERS = 400
"""Accounts with passwords in the runs these tests stop: the users' batch hashes for seconds, so the
command is stopped while it loads (with 150, a busy machine saw the first users commit only when the
contacts were nearly done, and the run ended before the signal came)."""
REFERENCE_RECORDS = 3
"""The reference records ahead of the users: once they are committed, the run is loading."""


class Embedded:
    """`cutover` commands on the embedded default, in a home of their own."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CUTOVER_")}
        self.env.update({"CUTOVER_HOME": str(home), "PYTHONPATH": str(ROOT), "CUTOVER_WORKER_CONCURRENCY": "2"})

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "ops.cli", *args], env=self.env, cwd=self.home.parent,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def cli(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ops.cli", *args], env=self.env, cwd=self.home.parent,
                              capture_output=True, text=True, timeout=timeout)

    def status(self, run_id: str) -> dict:
        done = self.cli("status", run_id, "--json", timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def query(self, sql: str) -> list[tuple]:
        db = self.home / "cutover.db"
        if not db.exists():
            return []
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()

    def run_id(self) -> str | None:
        rows = self.query("SELECT id FROM runs ORDER BY created_at DESC LIMIT 1")
        return rows[0][0] if rows else None

    def committed(self) -> int:
        rows = self.query("SELECT count(*) FROM staged_records WHERE status = 'committed'")
        return rows[0][0] if rows else 0


@pytest.fixture
def embedded(tmp_path: Path) -> Embedded:
    home = tmp_path / "home" / ".cutover"
    home.parent.mkdir()
    return Embedded(home)


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def assert_all_gone(procs: list[psutil.Process], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        alive = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return
        time.sleep(0.2)
    raise AssertionError(f"left behind: {[(p.pid, ' '.join(p.cmdline())[:80]) for p in alive]}")


def test_kill_9_of_cutover_run_leaves_nothing_behind_and_resume_finishes(embedded: Embedded, tmp_path: Path) -> None:
    total = write_accounts(tmp_path / "accounts.xml", USERS)
    proc = embedded.start("run", str(tmp_path / "accounts.xml"))
    wait_until(lambda: embedded.committed() >= REFERENCE_RECORDS, 240, "the run to be loading")
    assert embedded.committed() < total, "the run must still have records to load when it is killed"
    children = descendants(proc.pid)
    assert any("redis-server" in " ".join(p.cmdline()) for p in children)
    assert any("celery" in " ".join(p.cmdline()) for p in children)

    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert_all_gone(children, within=30)

    run_id = embedded.run_id()
    assert run_id
    doc = embedded.status(run_id)
    assert doc["state"] == "interrupted", doc["state"]
    assert f"cutover resume {run_id}" in doc["message"]

    resumed = embedded.cli("resume", run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    doc = embedded.status(run_id)
    assert doc["state"] == "completed"
    assert doc["totals"]["committed"] == total
    assert embedded.query("SELECT count(*) FROM accounts") == [(USERS,)]


def test_ctrl_c_answers_at_once_and_the_run_shows_as_interrupted(embedded: Embedded, tmp_path: Path) -> None:
    total = write_accounts(tmp_path / "accounts.xml", USERS)
    proc = embedded.start("run", str(tmp_path / "accounts.xml"))
    wait_until(lambda: embedded.committed() >= REFERENCE_RECORDS, 240, "the run to be loading")
    assert embedded.committed() < total, "the run must still have records to load when Ctrl-C comes"
    children = descendants(proc.pid)

    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - started < 15, "Ctrl-C must stop the command promptly"
    assert proc.returncode == 5
    assert "Traceback" not in out + err
    run_id = embedded.run_id()
    assert f"cutover resume {run_id}" in out + err
    assert_all_gone(children, within=10)
    assert embedded.status(str(run_id))["state"] == "interrupted"


def test_run_killed_while_staging_is_abandoned_and_can_be_discarded(embedded: Embedded, tmp_path: Path) -> None:
    files = write_engageip_sample(tmp_path / "big", 20_000, passwords=False, points_per_account=1)
    proc = embedded.start("run", *map(str, files))
    wait_until(lambda: (embedded.query("SELECT count(*) FROM staged_records") or [(0,)])[0][0] > 0, 120,
               "staging to be under way")
    assert embedded.query("SELECT state FROM runs") == [("staging",)]
    children = descendants(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert_all_gone(children, within=30)

    run_id = str(embedded.run_id())
    doc = embedded.status(run_id)
    assert doc["state"] == "abandoned"
    assert f"cutover discard {run_id}" in doc["message"]
    assert embedded.cli("resume", run_id).returncode == 4, "an abandoned run cannot be resumed"
    discarded = embedded.cli("discard", run_id)
    assert discarded.returncode == 0, discarded.stderr
    assert embedded.status(run_id)["state"] == "discarded"
    assert embedded.query(f"SELECT count(*) FROM staged_records WHERE run_id = '{run_id}'") == [(0,)]


def test_reads_never_wait_for_the_workers_write_lock(embedded: Embedded, tmp_path: Path) -> None:
    """The root of "database is locked" in the progress poll: a reader taking the write lock."""
    write_accounts(tmp_path / "accounts.xml", 5, passwords=False)
    done = embedded.cli("run", str(tmp_path / "accounts.xml"))
    assert done.returncode == 0, done.stderr
    writer = sqlite3.connect(embedded.home / "cutover.db", timeout=1, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a worker's batch transaction, held
    try:
        started = time.monotonic()
        status = embedded.cli("status", timeout=120)
        assert status.returncode == 0, status.stderr
        assert time.monotonic() - started < 20, "status waited for the write lock"
        run_id = str(embedded.run_id())
        assert embedded.cli("report", run_id, "--out", str(tmp_path / "report")).returncode == 0
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def _burn(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@pytest.fixture
def two_cpu_hogs() -> Iterator[None]:
    hogs = [multiprocessing.Process(target=_burn, args=(1800,), daemon=True) for _ in range(2)]
    for hog in hogs:
        hog.start()
    yield
    for hog in hogs:
        hog.terminate()
        hog.join()


ACCOUNTS = 2000


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "beside-two-cpu-hogs"])
def test_embedded_default_loads_2000_accounts_with_passwords_to_the_end(embedded: Embedded, tmp_path: Path,
                                                                         busy: bool, request: pytest.FixtureRequest) -> None:
    if busy:
        request.getfixturevalue("two_cpu_hogs")
    files = write_engageip_sample(tmp_path / "sample", ACCOUNTS, passwords=True)
    done = embedded.cli("run", *map(str, files), "--json", timeout=3600)
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert doc["state"] == "completed"
    assert doc["totals"]["read"] == doc["totals"]["committed"] == sum(expected_counts(ACCOUNTS).values())


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs to hold CUTOVER_HOME (needs root, as CI runs)."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}); needs root")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def test_disk_full_under_home_is_a_clear_refusal_and_the_run_can_be_discarded(small_disk: Path, tmp_path: Path) -> None:
    embedded = Embedded(small_disk / ".cutover")
    files = write_engageip_sample(tmp_path / "sample", 5_000, passwords=False)
    done = embedded.cli("run", *map(str, files), timeout=600)
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert "full" in done.stderr
    run_id = str(embedded.run_id())
    assert embedded.status(run_id)["state"] in ("abandoned", "refused")

    subprocess.run(["mount", "-o", "remount,size=256m", str(small_disk)], check=True)
    if embedded.status(run_id)["state"] == "abandoned":
        assert embedded.cli("discard", run_id).returncode == 0
    again = embedded.cli("run", *map(str, files), timeout=900)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
