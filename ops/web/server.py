"""`cutover console`: the web console on the configured database and broker — on the embedded
default too: while it runs it keeps the bundled Redis and local workers up (``ops.backends.broker``),
so a run started from the console loads, and `cutover run` or `cutover flower` of the same home share
that Redis."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from ops import exitcodes
from ops.backends import broker, database
from ops.embedded import LocalWorkers
from ops.web.app import build_app
from ops.web.auth import Throttle, list_operators
from ops.web.launcher import Launcher
from ops.web.metrics import registry_for
from ops.web.pages import Console, templates
from ops.web.runview import Meters
from shared.db import engine_for, read_session_factory
from shared.errors import ConfigError
from shared.permissions import Policy
from shared.settings import Settings


class _Server(uvicorn.Server):
    """uvicorn, minus one habit: after a graceful shutdown it raises the signal it caught again, and a
    SIGTERM raised again ends the process at once, before the embedded Redis and local workers it
    keeps up are stopped. Here the signal only asks the server to stop; `serve` then cleans up."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def check_port(host: str, port: int) -> None:
    """Refuse at once, with a clear message, a port another program holds."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot serve the console on {host}:{port}: {exc.strerror}; choose another with --port") from None


def biller_name(settings: Settings) -> str:
    """The biller's name as the Import screen shows it: the setting, else the target database's name."""
    if settings.console_biller:
        return settings.console_biller
    database_name = engine_for(settings.effective_database_url).url.database or ""
    return Path(database_name).name or "the target database"


def serve(settings: Settings, host: str, port: int, local_workers: int | None, announce: bool = True) -> int:
    policy = Policy.from_settings(settings)  # a malformed `operators` setting stops here, not on a request
    sf = database(settings)
    check_port(host, port)
    if not list_operators(sf):
        print("no operator can sign in yet: add one with `cutover operator add NAME`")
    with broker(settings, local_workers) as (celery, workers):
        meters, reader = Meters(), read_session_factory(settings.effective_database_url)
        console = Console(settings=settings, sf=sf, reader=reader, celery=celery, workers=workers, policy=policy,
                          templates=templates(), meters=meters, launcher=Launcher(settings, sf, reader, celery, workers),
                          throttle=Throttle(), metrics=registry_for(reader, meters), biller=biller_name(settings),
                          flower_url=settings.console_flower_url or f"http://127.0.0.1:{settings.flower_port}/")
        if announce:
            where = "embedded Redis and local workers" if settings.embedded_broker else "the configured broker"
            print(f"cutover console on http://{host}:{port}/ ({where}); Ctrl-C stops it", flush=True)
        if workers is not None:
            threading.Thread(target=_keep_running, args=(workers,), name="console-workers", daemon=True).start()
        config = uvicorn.Config(build_app(console), host=host, port=port, log_level="warning", access_log=False,
                                server_header=False, lifespan="on")
        _Server(config).run()
    return exitcodes.OK


def _keep_running(workers: LocalWorkers) -> None:
    """The console's local workers are started again if they die, as `cutover run`'s are."""
    while True:
        time.sleep(2.0)
        try:
            workers.check()
        except ConfigError as exc:
            print(f"error: {exc}", flush=True)
            return
